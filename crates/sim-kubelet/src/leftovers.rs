//! Leftovers of an earlier sim-kubelet run, cleared once at start-up before any pod task starts.
//!
//! A sim-kubelet that was killed hard (SIGKILL, OOM) leaves its fake servers running inside the namespace,
//! still bound to their pod addresses, so the new run's servers could not bind; and pods deleted while
//! no sim-kubelet ran leave their /32 behind. So, at start-up:
//!
//! 1. every process in the namespace whose command line names `--fake-inference-bin`, or whose environment
//!    carries the pod-UID mark every started program gets ([`crate::credentials::POD_UID_ENV`]), gets SIGTERM,
//!    then SIGKILL after 2 s ([`stop_orphans`]);
//! 2. after the first pod list has rebuilt the allocator, every pool address on the interface that no listed
//!    pod holds is removed ([`stale_addresses`]).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::ipam::IpAllocator;
use crate::netns::{NetError, PodNetwork};

/// Whether a process with these (NUL-separated) command-line arguments is a fake server we started.
pub fn is_fake_server(cmdline: &[u8], fake_bin: &Path) -> bool {
    let bin = fake_bin.as_os_str().as_encoded_bytes();
    cmdline.split(|&b| b == 0).any(|arg| arg == bin)
        && cmdline.split(|&b| b == 0).any(|arg| arg == b"--listen")
}

/// Whether a process with this (NUL-separated) environment was started by sim-kubelet.
pub fn has_pod_mark(environ: &[u8]) -> bool {
    let mark = format!("{}=", crate::credentials::POD_UID_ENV);
    environ
        .split(|&b| b == 0)
        .any(|kv| kv.starts_with(mark.as_bytes()))
}

/// The /32 IPv4 addresses in the output of `ip -4 -o addr show`.
pub fn parse_addresses(out: &str) -> Vec<Ipv4Addr> {
    out.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            let (ip, len) = words.next()?.split_once('/')?;
            (len == "32").then(|| ip.parse().ok()).flatten()
        })
        .collect()
}

/// The addresses present on the interface that lie in the allocator's pool but belong to no pod.
pub fn stale_addresses(present: &[Ipv4Addr], ipam: &IpAllocator) -> Vec<Ipv4Addr> {
    present
        .iter()
        .copied()
        .filter(|&ip| ipam.in_pool(ip) && !ipam.is_allocated(ip))
        .collect()
}

async fn ip_output(args: &[&str]) -> Result<String, NetError> {
    crate::netns::ip(args, false).await
}

/// Stops fake servers left running in the namespace by an earlier run. Returns how many it found.
pub async fn stop_orphans(net: &PodNetwork, fake_bin: &Path) -> Result<usize, NetError> {
    let pids: Vec<i32> = ip_output(&["netns", "pids", &net.netns])
        .await?
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| is_fake_server(&c, fake_bin))
                || std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| has_pod_mark(&e))
        })
        .collect();
    for &pid in &pids {
        tracing::warn!(pid, "stopping a pod process left over by an earlier run");
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    for _ in 0..20 {
        if pids
            .iter()
            .all(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        {
            return Ok(pids.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for &pid in &pids {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    Ok(pids.len())
}

/// Removes pool addresses that no pod holds any more.
pub async fn remove_stale_addresses(
    net: &PodNetwork,
    ipam: &IpAllocator,
) -> Result<usize, NetError> {
    let out = ip_output(&[
        "-n", &net.netns, "-4", "-o", "addr", "show", "dev", &net.iface,
    ])
    .await?;
    let stale = stale_addresses(&parse_addresses(&out), ipam);
    for &ip in &stale {
        tracing::info!(%ip, "removing a pod address no pod holds");
        net.remove(ip).await?;
    }
    Ok(stale.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_fake_servers() {
        let bin = Path::new("/opt/bin/fake-inference");
        let cmd = |args: &[&str]| args.join("\0").into_bytes();
        assert!(is_fake_server(
            &cmd(&[
                "/opt/bin/fake-inference",
                "--listen",
                "10.244.1.1:8000",
                "--group-id",
                "0"
            ]),
            bin
        ));
        assert!(is_fake_server(
            &cmd(&["python3", "/opt/bin/fake-inference", "--listen", "x"]),
            bin
        ));
        assert!(!is_fake_server(
            &cmd(&["/opt/bin/fake-inference-other", "--listen", "x"]),
            bin
        ));
        assert!(!is_fake_server(
            &cmd(&["/opt/bin/fake-inference", "--version"]),
            bin
        ));
        assert!(!is_fake_server(&cmd(&["sleep", "100"]), bin));
    }

    #[test]
    fn recognises_marked_programs() {
        assert!(has_pod_mark(b"PATH=/bin\0SIM_KUBELET_POD_UID=u-1\0"));
        assert!(!has_pod_mark(b"PATH=/bin\0X_SIM_KUBELET_POD_UID=u\0"));
        assert!(!has_pod_mark(b""));
    }

    #[test]
    fn parses_ip_addr_output() {
        let out = "2: pdo-veth-p    inet 10.244.1.1/32 scope global pdo-veth-p\\       valid_lft forever preferred_lft forever\n\
                   2: pdo-veth-p    inet 10.244.1.2/32 scope global pdo-veth-p\\       valid_lft forever preferred_lft forever\n\
                   2: pdo-veth-p    inet 10.244.0.2/16 scope global pdo-veth-p\n";
        assert_eq!(
            parse_addresses(out),
            [
                "10.244.1.1".parse::<Ipv4Addr>().unwrap(),
                "10.244.1.2".parse().unwrap()
            ]
        );
        assert!(parse_addresses("").is_empty());
    }

    #[test]
    fn only_unowned_pool_addresses_are_stale() {
        let cidr = "10.244.0.0/16".parse().unwrap();
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let (ipam, _) = IpAllocator::rebuild(cidr, [("u1", ip("10.244.1.1"))]);
        let present = [
            ip("10.244.1.1"),
            ip("10.244.1.2"),
            ip("10.244.0.1"),
            ip("10.99.0.1"),
        ];
        assert_eq!(stale_addresses(&present, &ipam), [ip("10.244.1.2")]);
    }
}
