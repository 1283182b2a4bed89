//! End-to-end tests against the local cluster (one test binary, one module per area).
//!
//! Run with `cargo xtask e2e`, which brings up the real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, sim-kubelet, Prometheus) and passes its location in the
//! environment. Every test works in its own namespace.

mod crds;
mod dlx;
mod elastic_scaler;
mod helm;
mod inference;
mod rsg;
mod scale;
mod seeds;
mod tidal;
mod webhook;
