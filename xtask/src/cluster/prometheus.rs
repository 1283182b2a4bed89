//! Prometheus from Debian's package, as our own process on a loopback port.
//!
//! Debian builds Prometheus without Kubernetes service discovery, so it discovers pods through sim-kubelet's
//! HTTP service discovery (`/sd/pods`), which emits the same `__meta_kubernetes_pod_*` labels; the relabel
//! rules below are the ones a real cluster's `kubernetes_sd_configs` would use. It scrapes pods annotated
//! `prometheus.io/scrape: "true"` at their pod IP and `prometheus.io/port`: addresses inside the pod network
//! namespace, never anything else. The fake inference server labels its series with `group_id`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

use super::procs::Procs;

/// The Prometheus binary; installed by `.ci/run` (`apt-get install prometheus`).
pub fn binary() -> Result<PathBuf> {
    let p = PathBuf::from(
        std::env::var("PDO_PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into()),
    );
    if !p.exists() {
        bail!(
            "{} not found: install Debian's package (`apt-get install prometheus`) or set PDO_PROMETHEUS_BIN",
            p.display()
        );
    }
    Ok(p)
}

pub fn start(procs: &Procs, bin: &Path, dir: &Path, port: u16, sd_port: u16) -> Result<()> {
    let pdir = dir.join("prometheus");
    std::fs::create_dir_all(pdir.join("data"))?;
    let config = format!(
        r#"global:
  scrape_interval: 2s
  scrape_timeout: 1s
  evaluation_interval: 2s
scrape_configs:
- job_name: pods
  http_sd_configs:
  - url: http://127.0.0.1:{sd_port}/sd/pods
    refresh_interval: 2s
  relabel_configs:
  - {{source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], regex: "true", action: keep}}
  - {{source_labels: [__meta_kubernetes_pod_phase], regex: Running, action: keep}}
  - source_labels: [__meta_kubernetes_pod_ip, __meta_kubernetes_pod_annotation_prometheus_io_port]
    regex: (.+);(\d+)
    replacement: $1:$2
    target_label: __address__
  - {{source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_path], regex: (.+), target_label: __metrics_path__}}
  - {{source_labels: [__meta_kubernetes_namespace], target_label: namespace}}
  - {{source_labels: [__meta_kubernetes_pod_name], target_label: pod}}
"#
    );
    let cfg = pdir.join("prometheus.yml");
    std::fs::write(&cfg, config)?;
    procs.start(
        "prometheus",
        Command::new(bin).args([
            format!("--config.file={}", cfg.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            format!("--storage.tsdb.path={}", pdir.join("data").display()),
            "--storage.tsdb.retention.time=2h".into(),
            "--log.level=warn".into(),
        ]),
    )?;
    Ok(())
}
