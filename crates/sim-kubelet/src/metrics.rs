//! The metrics sim-kubelet serves on its admin server's `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Handles to the metrics; cloning shares the underlying values.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Pods on this node that sim-kubelet tracks.
    pub pods: Gauge,
    /// Pods reported in phase Running.
    pub pods_running: Gauge,
    /// Live fake inference server processes.
    pub fake_processes: Gauge,
    /// Restarts of fake inference server processes after they exited.
    pub process_restarts: Counter,
}

impl Metrics {
    /// Registers every metric in `registry` (which should carry the `sim_kubelet` prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "pods",
            "Pods on this node tracked by sim-kubelet",
            self.pods.clone(),
        );
        registry.register(
            "pods_running",
            "Pods reported in phase Running",
            self.pods_running.clone(),
        );
        registry.register(
            "fake_processes",
            "Live fake inference server processes",
            self.fake_processes.clone(),
        );
        registry.register(
            "process_restarts",
            "Restarts of fake inference server processes after they exited",
            self.process_restarts.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_prefix() {
        let m = Metrics::default();
        let mut r = Registry::with_prefix("sim_kubelet");
        m.register(&mut r);
        m.pods_running.set(3);
        m.process_restarts.inc();
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
        assert!(out.contains("sim_kubelet_pods_running 3"), "{out}");
        assert!(
            out.contains("sim_kubelet_process_restarts_total 1"),
            "{out}"
        );
    }
}
