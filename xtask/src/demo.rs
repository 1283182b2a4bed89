//! `cargo xtask demo`: brings the cluster up and shows what runs on it today: our CRDs, a
//! ResourceScalingGroup over a prefill/decode pair of fake inference Deployments, and a streamed completion
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
    run_cmd(c.kubectl()?.args([
        "get",
        "rsg,deployments,pods,endpointslices",
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
  kubectl scale rsg pd -n {NS} --replicas=3     # sets .spec.scalingStrategy.groupConfig.replicas via /scale
  kubectl explain resourcescalinggroup.spec.scalingStrategy
  kubectl scale deployment llm-decode -n {NS} --replicas=4 && kubectl get pods -n {NS} -w
  curl -s "$PDO_PROMETHEUS_URL/api/v1/query?query=vllm:num_requests_running"
  cargo xtask cluster down                      # stop everything
The RSG, ElasticScaler and DLX controllers arrive with their issues; today the demo shows the API and the
real control plane they run against."#
    );
    Ok(())
}
