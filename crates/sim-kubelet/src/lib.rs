//! sim-kubelet: a simulated kubelet for a container-less test cluster.
//!
//! The project's tests run a real kube-apiserver, controller manager and scheduler but no container engine.
//! sim-kubelet plays the node:
//!
//! 1. [`node`] registers the Node `<node-name>` (Ready, huge capacity, address 127.0.0.1) and keeps it alive
//!    with a Lease renewed every 10 s and a status heartbeat every 40 s;
//! 2. [`supervisor`] watches the pods bound to the node and runs one [`worker`] task per pod, which
//!    - gives the pod an IP from [`ipam`] and adds it as a /32 inside the pod network namespace ([`netns`]),
//!    - for a container whose image matches `--fake-image-match`, runs the fake inference server bound to that
//!      IP ([`process`]); for one whose image matches an `--image-program`, runs that binary with the
//!      container's args and env (downward-API fields included, [`podspec`]) and a kubeconfig holding a token
//!      of the pod's ServiceAccount ([`credentials`]); probes it for readiness ([`probe`]) and restarts it with
//!      backoff ([`backoff`]) when it exits,
//!    - reports the pod Running (or, for a Job's pod, Succeeded) through `pods/status` ([`status`]),
//!    - on deletion stops the process, frees the IP and finalises the delete;
//! 3. [`sd`] serves Prometheus HTTP service discovery for the node's pods on the admin server;
//! 4. at start-up, [`leftovers`] stops fake servers and removes addresses an earlier, killed run left behind;
//! 5. with `--apiserver-forward`, [`credentials::forward`] relays that address on the pod network to the API
//!    server, so programs in pods reach it as they would through the `kubernetes` Service.
//!
//! Child output goes to one log file per pod and container under `--log-dir` (see [`process`]), not into
//! sim-kubelet's own log.
//!
//! The decisions (IP allocation, what to run, status contents, backoff, probe verdicts, watch bookkeeping) are
//! pure functions with unit tests; the IO around them is thin. sim-kubelet only ever connects to the
//! apiserver from the kubeconfig and to the pod IPs it allocated.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod args;
pub mod backoff;
pub mod credentials;
pub mod ipam;
pub mod leftovers;
pub mod metrics;
pub mod netns;
pub mod node;
pub mod podspec;
pub mod probe;
pub mod process;
pub mod sd;
pub mod status;
pub mod supervisor;
pub mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use pdo_runtime::{AdminServer, Readiness};
use tokio_util::sync::CancellationToken;

pub use args::Args;

/// What every pod task shares.
pub struct Context {
    /// The apiserver client.
    pub client: Client,
    /// This node's name.
    pub node_name: String,
    /// Namespace and interface for pod addresses.
    pub net: netns::PodNetwork,
    /// The pod CIDR.
    pub pod_cidr: ipam::PodCidr,
    /// The pod IP allocator.
    pub ipam: Mutex<ipam::IpAllocator>,
    /// The fake inference server binary.
    pub fake_bin: PathBuf,
    /// Which images run which program.
    pub images: podspec::Images,
    /// How programs in pods reach the API server (set when `--image-program` is).
    pub api_access: Option<credentials::ApiAccess>,
    /// Directory of per-pod process logs.
    pub log_dir: PathBuf,
    /// HTTP client for readiness probes.
    pub http: reqwest::Client,
    /// Metrics handles.
    pub metrics: metrics::Metrics,
    /// Cancelled on SIGTERM/SIGINT.
    pub shutdown: CancellationToken,
}

/// Runs sim-kubelet until SIGTERM: admin server, node registration and heartbeats, pod watch.
pub async fn run(args: Args) -> anyhow::Result<()> {
    pdo_runtime::init_tracing(&args.log)?;
    let shutdown = pdo_runtime::shutdown_token()?;
    let metrics = metrics::Metrics::default();
    let mut registry = prometheus_client::registry::Registry::with_prefix("sim_kubelet");
    metrics.register(&mut registry);
    let ready = Readiness::default();
    let client = Client::try_default()
        .await
        .context("building the Kubernetes client from KUBECONFIG")?;
    let admin = AdminServer::spawn_with(
        args.admin.admin_addr,
        registry,
        ready.clone(),
        shutdown.clone(),
        sd::router(client.clone(), args.node_name.clone()),
    )
    .await?;
    let api_access = if args.image_programs.is_empty() && args.apiserver_forward.is_none() {
        None
    } else {
        let kubeconfig = kube::config::Kubeconfig::read()
            .context("reading KUBECONFIG (--image-program and --apiserver-forward need it)")?;
        Some(credentials::ApiAccess::from_kubeconfig(
            &kubeconfig,
            args.apiserver_forward,
        )?)
    };
    let relay = match (args.apiserver_forward, &api_access) {
        (Some(listen), Some(a)) => {
            Some(credentials::forward(listen, a.upstream.clone(), shutdown.clone()).await?)
        }
        _ => None,
    };
    let log_dir = args.log_dir();
    std::fs::create_dir_all(&log_dir)
        .with_context(|| format!("creating --log-dir {}", log_dir.display()))?;
    let net = netns::PodNetwork {
        netns: args.netns.clone(),
        iface: args.pod_iface.clone(),
        cidr: args.pod_cidr,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        node_name: args.node_name.clone(),
        net,
        pod_cidr: args.pod_cidr,
        ipam: Mutex::new(ipam::IpAllocator::new(args.pod_cidr)),
        fake_bin: args.fake_inference_bin.clone(),
        images: podspec::Images {
            fake_match: args.fake_image_match.clone(),
            programs: args.image_programs.clone(),
        },
        api_access,
        log_dir,
        http: probe::http_client().context("building the probe HTTP client")?,
        metrics,
        shutdown: shutdown.clone(),
    });
    tracing::info!(
        node = %ctx.node_name,
        cidr = %ctx.pod_cidr,
        log_dir = %ctx.log_dir.display(),
        "sim-kubelet starting"
    );

    let since = Timestamp::now();
    let registered = backoff::retry_until("registering the node", &shutdown, || {
        node::register(&client, &ctx.node_name, since)
    })
    .await;
    if let Some(node_uid) = registered {
        tracing::info!(node = %ctx.node_name, "node registered");
        let heartbeat = tokio::spawn(node::heartbeat(
            client,
            ctx.node_name.clone(),
            node_uid,
            since,
            shutdown.clone(),
        ));
        if let Err(e) = leftovers::stop_orphans(&ctx.net, &ctx.fake_bin).await {
            tracing::warn!(error = %e, "could not look for fake servers left by an earlier run");
        }
        supervisor::run(ctx, ready).await;
        heartbeat.await?;
    }
    admin.task.await?;
    if let Some(relay) = relay {
        relay.await?;
    }
    tracing::info!("sim-kubelet stopped");
    Ok(())
}
