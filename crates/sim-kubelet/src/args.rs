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
    /// `IMAGE=BINARY`: a container whose image contains `IMAGE` runs `BINARY` with the container's args, in
    /// the pod network, with a token of the pod's ServiceAccount (`KUBECONFIG`). Repeatable; in the
    /// environment, comma-separated.
    #[arg(long = "image-program", env = "SIM_KUBELET_IMAGE_PROGRAMS", value_delimiter = ',', value_parser = image_program)]
    pub image_programs: Vec<(String, PathBuf)>,
    /// Where pods reach the API server: sim-kubelet relays this address (on the host side of the pod
    /// network, e.g. the API server's advertise address) to the server of its own kubeconfig. Without it,
    /// programs get that server address as is.
    #[arg(long, env = "SIM_KUBELET_APISERVER_FORWARD")]
    pub apiserver_forward: Option<std::net::SocketAddr>,
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

fn image_program(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((image, bin)) if !image.is_empty() && !bin.is_empty() => {
            Ok((image.to_owned(), PathBuf::from(bin)))
        }
        _ => Err(format!(
            "{s:?}: expected IMAGE=BINARY, e.g. pd-orchestrator/dlx:dev=/usr/local/bin/dlx"
        )),
    }
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
            "--image-program=pd-orchestrator/dlx:dev=/bin/dlx",
            "--image-program=other=/bin/o",
            "--apiserver-forward=10.244.0.1:6443",
        ])
        .unwrap();
        assert_eq!(
            a.image_programs,
            [
                (
                    "pd-orchestrator/dlx:dev".to_owned(),
                    PathBuf::from("/bin/dlx")
                ),
                ("other".to_owned(), PathBuf::from("/bin/o"))
            ]
        );
        assert_eq!(
            a.apiserver_forward,
            Some("10.244.0.1:6443".parse().unwrap())
        );
        let err = Args::try_parse_from(["sim-kubelet", "--image-program=nobinary"]).unwrap_err();
        assert!(err.to_string().contains("expected IMAGE=BINARY"), "{err}");
        assert_eq!(a.node_name, "n1");
        assert_eq!(a.pod_cidr.to_string(), "10.250.0.0/20");
        assert_eq!(a.fake_inference_bin, PathBuf::from("/bin/fake"));
        assert_eq!(a.log_dir(), PathBuf::from("/tmp/x"));
        assert!(Args::try_parse_from(["sim-kubelet", "--pod-cidr=nonsense"]).is_err());
    }
}
