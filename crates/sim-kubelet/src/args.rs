//! Command-line flags. Every flag has a `SIM_KUBELET_*` environment fallback; the shared logging and admin
//! flags come from `pdo-runtime`.

use std::path::PathBuf;

use clap::Parser;
use pdo_runtime::{AdminArgs, LogArgs};

use crate::ipam::PodCidr;

/// A simulated kubelet for a container-less test cluster.
#[derive(Parser, Clone, Debug)]
#[command(name = "sim-kubelet", version, about)]
pub struct Args {
    /// Name of the Node this kubelet registers and whose pods it runs.
    #[arg(long, env = "SIM_KUBELET_NODE_NAME", default_value = "pdo-node-0")]
    pub node_name: String,
    /// Network namespace that holds the pod addresses (created by the harness).
    #[arg(long, env = "SIM_KUBELET_NETNS", default_value = "pdo-pods")]
    pub netns: String,
    /// Interface inside the namespace on which pod addresses are added as /32.
    #[arg(long, env = "SIM_KUBELET_POD_IFACE", default_value = "pdo-veth-p")]
    pub pod_iface: String,
    /// Pod CIDR; addresses are handed out from the second /24 upward (10.244.1.1 for the default).
    #[arg(long, env = "SIM_KUBELET_POD_CIDR", default_value = "10.244.0.0/16")]
    pub pod_cidr: PodCidr,
    /// Path of the fake inference server binary, run for containers whose image matches.
    #[arg(
        long,
        env = "SIM_KUBELET_FAKE_INFERENCE_BIN",
        default_value = "fake-inference"
    )]
    pub fake_inference_bin: PathBuf,
    /// A container whose image contains this substring runs the fake inference server.
    #[arg(
        long,
        env = "SIM_KUBELET_FAKE_IMAGE_MATCH",
        default_value = "fake-inference"
    )]
    pub fake_image_match: String,
    /// Directory for the per-pod process logs (`<ns>_<pod>_<uid>/<container>.log`);
    /// default `<tmp>/sim-kubelet-<node-name>`.
    #[arg(long, env = "SIM_KUBELET_LOG_DIR")]
    pub log_dir: Option<PathBuf>,
    /// Logging flags.
    #[command(flatten)]
    pub log: LogArgs,
    /// Admin server flags.
    #[command(flatten)]
    pub admin: AdminArgs,
}

impl Args {
    /// The directory for per-pod logs, defaulting to a directory under the system temp dir.
    pub fn log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(format!("sim-kubelet-{}", self.node_name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn defaults_parse() {
        Args::command().debug_assert();
        let a = Args::try_parse_from(["sim-kubelet"]).unwrap();
        assert_eq!(a.node_name, "pdo-node-0");
        assert_eq!(a.netns, "pdo-pods");
        assert_eq!(a.pod_iface, "pdo-veth-p");
        assert_eq!(a.pod_cidr.to_string(), "10.244.0.0/16");
        assert_eq!(a.fake_image_match, "fake-inference");
        assert!(a.log_dir().ends_with("sim-kubelet-pdo-node-0"));
    }

    #[test]
    fn flags_override() {
        let a = Args::try_parse_from([
            "sim-kubelet",
            "--node-name=n1",
            "--pod-cidr=10.250.0.0/20",
            "--fake-inference-bin=/bin/fake",
            "--log-dir=/tmp/x",
        ])
        .unwrap();
        assert_eq!(a.node_name, "n1");
        assert_eq!(a.pod_cidr.to_string(), "10.250.0.0/20");
        assert_eq!(a.fake_inference_bin, PathBuf::from("/bin/fake"));
        assert_eq!(a.log_dir(), PathBuf::from("/tmp/x"));
        assert!(Args::try_parse_from(["sim-kubelet", "--pod-cidr=nonsense"]).is_err());
    }
}
