//! Pod addresses in the network namespace: each pod IP is a /32 on the namespace's veth, added and removed
//! with the `ip` tool. Both operations are idempotent: `ip addr replace` succeeds when the address already
//! exists (a restarted sim-kubelet re-adds every address), and deleting a missing address counts as done.
//!
//! Each add also (re)installs the namespace's route to the pod CIDR (`ip route replace`): the kernel flushes
//! every route of an interface when its last IPv4 address goes, so once the last pod was deleted the route
//! the harness made is gone, and the next pods could no longer answer the host.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::Path;

use tokio::process::Command;

use crate::ipam::PodCidr;

/// Failure of an `ip` command.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// `ip` could not be started.
    #[error("running `ip {args}`: {source}")]
    Spawn {
        /// The arguments.
        args: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `ip` exited non-zero.
    #[error("`ip {args}` failed ({status}): {stderr}")]
    Failed {
        /// The arguments.
        args: String,
        /// The exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// The namespace and interface that hold pod addresses.
#[derive(Clone, Debug)]
pub struct PodNetwork {
    /// Network namespace name (`--netns`).
    pub netns: String,
    /// Interface inside it (`--pod-iface`).
    pub iface: String,
    /// The pod CIDR, routed through the interface (`--pod-cidr`).
    pub cidr: PodCidr,
}

impl PodNetwork {
    /// Arguments of `ip` that add `ip`/32 (or leave it in place).
    pub fn add_args(&self, ip: Ipv4Addr) -> Vec<String> {
        self.addr_args("replace", ip)
    }

    /// Arguments of `ip` that remove `ip`/32.
    pub fn del_args(&self, ip: Ipv4Addr) -> Vec<String> {
        self.addr_args("del", ip)
    }

    /// Arguments of `ip` that route the pod CIDR through the interface (or leave the route in place).
    pub fn route_args(&self) -> Vec<String> {
        [
            "-n",
            &self.netns,
            "route",
            "replace",
            &self.cidr.to_string(),
            "dev",
            &self.iface,
        ]
        .map(str::to_owned)
        .into()
    }

    fn addr_args(&self, verb: &str, ip: Ipv4Addr) -> Vec<String> {
        [
            "-n",
            &self.netns,
            "addr",
            verb,
            &format!("{ip}/32"),
            "dev",
            &self.iface,
        ]
        .map(str::to_owned)
        .into()
    }

    /// The command line that runs `program args` inside the namespace.
    pub fn exec_argv(&self, program: &Path, args: &[String]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec![
            "netns".into(),
            "exec".into(),
            self.netns.clone().into(),
            program.into(),
        ];
        v.extend(args.iter().map(OsString::from));
        v
    }

    /// Adds the pod address inside the namespace, and the route back to the pod CIDR.
    pub async fn add(&self, ip: Ipv4Addr) -> Result<(), NetError> {
        run_ip(&self.add_args(ip), false).await?;
        run_ip(&self.route_args(), false).await
    }

    /// Removes the pod address; an address that is not there is not an error.
    pub async fn remove(&self, ip: Ipv4Addr) -> Result<(), NetError> {
        run_ip(&self.del_args(ip), true).await
    }
}

/// Whether `ip addr del` failed only because the address was not there.
pub fn is_missing_address(stderr: &str) -> bool {
    stderr.contains("Cannot assign requested address") || stderr.contains("No such address")
}

async fn run_ip(args: &[String], missing_ok: bool) -> Result<(), NetError> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ip(&args, missing_ok).await.map(drop)
}

/// Runs `ip ARGS` and returns its stdout. With `missing_ok`, failing only because an address is not
/// there counts as success (removal is idempotent).
pub(crate) async fn ip(args: &[&str], missing_ok: bool) -> Result<String, NetError> {
    let out = Command::new("ip")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| NetError::Spawn {
            args: args.join(" "),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if out.status.success() || (missing_ok && is_missing_address(&stderr)) {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(NetError::Failed {
        args: args.join(" "),
        status: out.status,
        stderr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> PodNetwork {
        PodNetwork {
            netns: "pdo-pods".into(),
            iface: "pdo-veth-p".into(),
            cidr: "10.244.0.0/16".parse().unwrap(),
        }
    }

    #[test]
    fn address_commands() {
        let ip = "10.244.1.7".parse().unwrap();
        assert_eq!(
            net().add_args(ip).join(" "),
            "-n pdo-pods addr replace 10.244.1.7/32 dev pdo-veth-p"
        );
        assert_eq!(
            net().del_args(ip).join(" "),
            "-n pdo-pods addr del 10.244.1.7/32 dev pdo-veth-p"
        );
    }

    #[test]
    fn exec_command() {
        let argv = net().exec_argv(
            Path::new("/bin/fake"),
            &["--listen".into(), "10.244.1.7:8000".into()],
        );
        let s: Vec<_> = argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            s,
            [
                "netns",
                "exec",
                "pdo-pods",
                "/bin/fake",
                "--listen",
                "10.244.1.7:8000"
            ]
        );
    }

    #[test]
    fn missing_address_is_recognised() {
        assert!(is_missing_address(
            "RTNETLINK answers: Cannot assign requested address"
        ));
        assert!(!is_missing_address(
            "Cannot open network namespace \"pdo-pods\": No such file or directory"
        ));
    }
}
