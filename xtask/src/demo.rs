//! `cargo xtask demo`: brings the cluster up and shows what runs on it today: our CRDs, the RSG controller
//! (a local process watching the demo namespace, stopped by `cluster down`), a ResourceScalingGroup over a
//! prefill/decode pair of fake inference Deployments with its second group cloned, and a streamed completion
//! answered by a pod through its Service's EndpointSlice.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cluster::{Cluster, net, wait_for};
use crate::util::{output, root, run as run_cmd};

const NS: &str = "pdo-demo";

pub fn run() -> Result<()> {
    let c = Cluster::new();
    c.up()?;
    let _ = output(c.kubectl()?.args(["create", "namespace", NS]));
    start_controllers(&c)?;
    run_cmd(
        c.kubectl()?
            .args(["apply", "-n", NS, "-f"])
            .arg(root().join("examples/demo")),
    )?;
    for d in ["llm-prefill", "llm-decode"] {
        run_cmd(c.kubectl()?.args([
            "rollout",
            "status",
            "-n",
            NS,
            "--timeout=120s",
            &format!("deployment/{d}"),
        ]))?;
    }
    // Pick a ready endpoint of the decode Service the way kube-proxy would, and stream a completion from it.
    let mut addr = String::new();
    wait_for(
        "a ready endpoint of Service llm-decode",
        Duration::from_secs(60),
        || {
            addr = output(c.kubectl()?.args([
                "get",
                "endpointslices",
                "-n",
                NS,
                "-l",
                "kubernetes.io/service-name=llm-decode",
                "-o",
                "jsonpath={.items[0].endpoints[?(@.conditions.ready==true)].addresses[0]}",
            ]))?;
            Ok(!addr.trim().is_empty())
        },
    )?;
    let ip = addr.split_whitespace().next().unwrap_or_default();
    if !net::in_pod_network(ip) {
        bail!(
            "endpoint {ip} is outside the pod network {}; refusing to dial it",
            net::POD_CIDR
        );
    }
    println!(
        "\nStreaming a completion from pod {ip}:8000 (an EndpointSlice address of Service llm-decode):\n"
    );
    let body = r#"{"model":"fake-llm","prompt":"Hello from pd-orchestrator","max_tokens":8,"stream":true}"#;
    run_cmd(Command::new("curl").args([
        "-sN",
        "--max-time",
        "20",
        "-H",
        "content-type: application/json",
        "-d",
        body,
        &format!("http://{ip}:8000/v1/completions"),
    ]))
    .context("streaming a completion from the fake inference server")?;
    wait_for("RSG pd to have 2 groups", Duration::from_secs(60), || {
        let current = output(c.kubectl()?.args([
            "get",
            "rsg",
            "pd",
            "-n",
            NS,
            "-o",
            "jsonpath={.status.currentReplicas}",
        ]))?;
        Ok(current.trim() == "2")
    })?;
    run_cmd(c.kubectl()?.args([
        "get",
        "rsg,deployments,services,pods,endpointslices",
        "-n",
        NS,
        "-o",
        "wide",
    ]))?;
    println!(
        r#"
The cluster stays up. Try next:
  eval "$(cargo xtask cluster env)"
  kubectl get rsg -n {NS}                       # the ResourceScalingGroup (printer columns)
  kubectl scale rsg pd -n {NS} --replicas=3     # a third group: pd-llm-prefill-2, pd-llm-decode-2, Services
  kubectl describe rsg pd -n {NS}               # conditions, Events (which path chose scale-down victims)
  kubectl get configmap pd-replica-config -n {NS} -o yaml   # the replica baseline of new groups
  kubectl explain resourcescalinggroup.spec.scalingStrategy
  kubectl scale deployment llm-decode -n {NS} --replicas=4 && kubectl get pods -n {NS} -w
  curl -s "$PDO_PROMETHEUS_URL/api/v1/query?query=vllm:num_requests_running"
  cargo xtask cluster down                      # stop everything
The RSG controller's log: ~/.cache/pd-orchestrator/cluster/logs/rsg-controller.log. The ElasticScaler and
DLX arrive with their issues."#
    );
    Ok(())
}

/// Starts the RSG controller as a cluster process (logs and PID under the cluster's state dir, so
/// `cluster down` stops it), watching the demo namespace only.
fn start_controllers(c: &Cluster) -> Result<()> {
    let running = crate::cluster::procs_list(&c.dir)?;
    if running
        .iter()
        .any(|(name, _, alive)| name == "rsg-controller" && *alive)
    {
        return Ok(());
    }
    run_cmd(Command::new(env!("CARGO")).current_dir(root()).args([
        "build",
        "--quiet",
        "-p",
        "rsg-controller",
    ]))?;
    let bin = crate::util::target_dir().join("debug/rsg-controller");
    let prometheus = c
        .env_vars()?
        .into_iter()
        .find(|(k, _)| *k == "PDO_PROMETHEUS_URL")
        .map(|(_, v)| v)
        .unwrap_or_default();
    let mut cmd = Command::new(bin);
    cmd.env("KUBECONFIG", c.kubeconfig())
        .env("WATCH_NAMESPACE", NS)
        .env("LEADER_ELECT", "false")
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("LOG_FORMAT", "text")
        .env("RSG_PROMETHEUS_URL", prometheus);
    crate::cluster::start_process(&c.dir, "rsg-controller", &mut cmd)?;
    Ok(())
}
