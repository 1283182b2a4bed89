//! The pod network: a network namespace holding every pod IP, joined to the host by a veth pair.
//!
//! Host side `10.244.0.1/16`; the namespace side carries one `/32` per pod (added by sim-kubelet) and a route
//! back to `10.244.0.0/16`. The namespace has no default route, so a pod can reach nothing but the host end
//! and other pods. The Service CIDR is routed to a blackhole on the host: anything dialling a ClusterIP
//! fails at once instead of leaving the machine. See docs/testing.md for the network rule this enforces.

use std::process::Command;

use anyhow::Result;

use super::net::{HOST_IF, HOST_IP, NETNS, POD_ANCHOR_IP, POD_CIDR, POD_IF, SERVICE_CIDR};
use crate::util::{output, run};

fn ip(args: &[&str]) -> Result<()> {
    run(Command::new("ip").args(args))
}

pub fn exists() -> bool {
    output(Command::new("ip").args(["netns", "list"])).is_ok_and(|o| {
        o.lines()
            .any(|l| l.split_whitespace().next() == Some(NETNS))
    })
}

fn route_exists(prefix: &str) -> bool {
    output(Command::new("ip").args(["route", "show", prefix])).is_ok_and(|o| !o.trim().is_empty())
}

/// Creates the namespace, veth pair, addresses and routes (idempotent).
pub fn up() -> Result<()> {
    if !exists() {
        ip(&["netns", "add", NETNS])?;
    }
    let has_link = output(Command::new("ip").args(["link", "show", HOST_IF])).is_ok();
    if !has_link {
        ip(&[
            "link", "add", HOST_IF, "type", "veth", "peer", "name", POD_IF, "netns", NETNS,
        ])?;
        let prefix_len = POD_CIDR.split('/').nth(1).unwrap_or("16");
        ip(&[
            "addr",
            "add",
            &format!("{HOST_IP}/{prefix_len}"),
            "dev",
            HOST_IF,
        ])?;
    }
    ip(&["link", "set", HOST_IF, "up"])?;
    ip(&["-n", NETNS, "link", "set", "lo", "up"])?;
    ip(&["-n", NETNS, "link", "set", POD_IF, "up"])?;
    // A permanent address on the namespace end: Linux drops every route of an interface when its last
    // IPv4 address goes, and pod /32s come and go. sim-kubelet allocates from 10.244.1.1 up, never this.
    let anchor = format!("{POD_ANCHOR_IP}/32");
    if !output(Command::new("ip").args(["-n", NETNS, "addr", "show", "dev", POD_IF]))
        .is_ok_and(|o| o.contains(&anchor))
    {
        ip(&["-n", NETNS, "addr", "add", &anchor, "dev", POD_IF])?;
    }
    if !output(Command::new("ip").args(["-n", NETNS, "route", "show", POD_CIDR]))
        .is_ok_and(|o| !o.trim().is_empty())
    {
        ip(&["-n", NETNS, "route", "add", POD_CIDR, "dev", POD_IF])?;
    }
    if !route_exists(SERVICE_CIDR) {
        ip(&["route", "add", "blackhole", SERVICE_CIDR])?;
    }
    Ok(())
}

/// Kills anything left in the namespace, deletes it (which deletes the veth pair) and the blackhole route.
pub fn down() -> Result<()> {
    if exists() {
        if let Ok(pids) = output(Command::new("ip").args(["netns", "pids", NETNS])) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        ip(&["netns", "del", NETNS])?;
    }
    if output(Command::new("ip").args(["link", "show", HOST_IF])).is_ok() {
        ip(&["link", "del", HOST_IF])?;
    }
    if route_exists(SERVICE_CIDR) {
        ip(&["route", "del", "blackhole", SERVICE_CIDR])?;
    }
    Ok(())
}
