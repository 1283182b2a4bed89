//! `cargo xtask cluster up|down|status|env`: a real Kubernetes control plane as local processes.
//!
//! `up` brings the parts up in dependency order and waits for each to be healthy before the next:
//!
//! 1. the pod network ([`netns`]): a network namespace holding every pod IP, the Service CIDR blackholed;
//! 2. a fresh PKI and kubeconfig ([`pki`]);
//! 3. etcd → kube-apiserver → kube-controller-manager + kube-scheduler ([`procs`]), built from Go modules and
//!    cached by version (`hack/build-tools.sh`);
//! 4. our CRDs, applied and Established;
//! 5. `sim-kubelet`, which registers a Node and runs scheduled pods (fake inference servers inside the
//!    namespace, bound to their pod IPs);
//! 6. Prometheus (Debian's package) scraping annotated pods through Kubernetes service discovery.
//!
//! Every process is started in its own process group with its PID recorded under the state directory;
//! `down` stops exactly those PIDs (after checking their command line) and removes the namespace and routes.
//! `up` on a healthy cluster is a no-op; on a half-dead one it tears down first.

mod netns;
mod pki;
mod procs;
mod prometheus;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use serde_json::json;

use crate::util::{self, output};

/// Cluster subcommands.
#[derive(Subcommand)]
pub enum ClusterCmd {
    /// Bring the cluster up (idempotent).
    Up,
    /// Stop every process `up` started and remove the pod network.
    Down,
    /// Show what is running.
    Status,
    /// Print `export KUBECONFIG=...` and friends, for `eval "$(cargo xtask cluster env)"`.
    Env,
}

pub fn run(cmd: ClusterCmd) -> Result<()> {
    let c = Cluster::new();
    match cmd {
        ClusterCmd::Up => c.up(),
        ClusterCmd::Down => c.down(),
        ClusterCmd::Status => c.status(),
        ClusterCmd::Env => {
            print!("{}", c.env()?);
            Ok(())
        }
    }
}

/// Starts `cmd` as a cluster process: logged under `logs/<name>.log`, its PID recorded, stopped by `down`.
pub fn start_process(dir: &std::path::Path, name: &str, cmd: &mut Command) -> Result<u32> {
    procs::Procs::new(dir).start(name, cmd)
}

/// The recorded cluster processes: name, PID, alive.
pub fn procs_list(dir: &std::path::Path) -> Result<Vec<(String, u32, bool)>> {
    procs::list(dir)
}

/// Addresses of the simulated network. Pod IPs come from `POD_CIDR` (allocated by sim-kubelet from
/// 10.244.1.1 up) and live inside the namespace; `HOST_ADDR` is the host end of the veth pair.
pub mod net {
    /// The network namespace that holds every pod IP.
    pub const NETNS: &str = "pdo-pods";
    /// Host end of the veth pair.
    pub const HOST_IF: &str = "pdo-veth-h";
    /// Namespace end of the veth pair.
    pub const POD_IF: &str = "pdo-veth-p";
    /// The host's address on the pod network (also the apiserver's advertise address).
    pub const HOST_IP: &str = "10.244.0.1";
    /// The namespace end's own address, which keeps its routes alive when no pod exists.
    pub const POD_ANCHOR_IP: &str = "10.244.0.2";
    /// The pod network.
    pub const POD_CIDR: &str = "10.244.0.0/16";
    /// The Service network: routed to a blackhole, so nothing ever leaves toward it.
    pub const SERVICE_CIDR: &str = "10.96.0.0/16";

    /// Whether `ip` is inside the pod network (the only addresses besides loopback we ever dial).
    pub fn in_pod_network(ip: &str) -> bool {
        ip.parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.octets()[..2] == [10, 244])
    }
}

/// Pods of this image run the `dlx` binary (sim-kubelet `--image-program`).
pub const DLX_IMAGE: &str = "pd-orchestrator/dlx:dev";

/// The node sim-kubelet registers.
pub const NODE_NAME: &str = "pdo-node-0";

/// A local cluster rooted at a state directory.
pub struct Cluster {
    /// `$PDO_CLUSTER_DIR`, default `~/.cache/pd-orchestrator/cluster`.
    pub dir: PathBuf,
}

impl Cluster {
    pub fn new() -> Self {
        let dir = std::env::var_os("PDO_CLUSTER_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cache/pd-orchestrator/cluster")
            });
        Self { dir }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn state_file(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn state(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(self.state_file()).ok()?).ok()
    }

    /// `kubectl` against this cluster.
    pub fn kubectl(&self) -> Result<Command> {
        let kubectl = self
            .state()
            .and_then(|s| s["kubectl"].as_str().map(PathBuf::from))
            .context("the cluster is not up: run `cargo xtask cluster up`")?;
        let mut c = Command::new(kubectl);
        c.arg("--kubeconfig").arg(self.kubeconfig());
        Ok(c)
    }

    /// Whether the cluster is up and answering.
    pub fn healthy(&self) -> bool {
        procs::all_alive(&self.dir)
            && self.kubectl().is_ok_and(|mut k| {
                output(k.args(["get", "--raw", "/readyz"])).is_ok_and(|o| o.trim() == "ok")
            })
    }

    /// The environment that points tools and tests at this cluster.
    pub fn env_vars(&self) -> Result<Vec<(&'static str, String)>> {
        let s = self
            .state()
            .context("the cluster is not up: run `cargo xtask cluster up`")?;
        let field = |k: &str| {
            s[k].as_str()
                .map(str::to_string)
                .with_context(|| format!("state.json lacks {k}"))
        };
        Ok(vec![
            ("KUBECONFIG", self.kubeconfig().display().to_string()),
            ("PDO_PROMETHEUS_URL", field("prometheusUrl")?),
            ("PDO_KUBECTL", field("kubectl")?),
            ("PDO_HELM", field("helm")?),
        ])
    }

    pub fn env(&self) -> Result<String> {
        let mut out: String = self
            .env_vars()?
            .iter()
            .map(|(k, v)| format!("export {k}={v}\n"))
            .collect();
        out.push_str(&format!(
            "export PATH={}:$PATH\n",
            self.dir.join("bin").display()
        ));
        Ok(out)
    }

    pub fn up(&self) -> Result<()> {
        let start = Instant::now();
        if self.healthy() {
            println!(
                "cluster is already up ({}); `cargo xtask cluster down` to stop it",
                self.dir.display()
            );
            return Ok(());
        }
        if self.dir.exists() {
            println!(
                "found a stale cluster in {}; tearing it down first",
                self.dir.display()
            );
            self.down()?;
        }
        let tools = util::tools()?;
        let bins = util::build_cluster_binaries()?;
        let prometheus_bin = prometheus::binary()?;
        std::fs::create_dir_all(self.dir.join("logs"))?;
        let built = start.elapsed();

        netns::up()?;
        let pki = pki::generate(&self.dir.join("pki"))?;
        let ports = procs::free_ports(7)?;
        let (etcd_client, etcd_peer, api, kcm, sched, prom, kubelet_admin) = (
            ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6],
        );
        pki.write_kubeconfig(&self.kubeconfig(), api)?;
        let k = |name: &str| tools.bin(name);
        let state = json!({
            "kubectl": k("kubectl")?, "helm": k("helm")?,
            "apiserver": format!("https://127.0.0.1:{api}"),
            "prometheusUrl": format!("http://127.0.0.1:{prom}"),
        });
        std::fs::write(self.state_file(), serde_json::to_string_pretty(&state)?)?;
        // Unversioned names for `cluster env`'s PATH.
        let bin_dir = self.dir.join("bin");
        std::fs::create_dir_all(&bin_dir)?;
        for name in ["kubectl", "helm"] {
            std::os::unix::fs::symlink(k(name)?, bin_dir.join(name))?;
        }

        let p = procs::Procs::new(&self.dir);
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        p.start(
            "etcd",
            Command::new(k("etcd")?).args([
                "--name=pdo".to_string(),
                format!("--data-dir={}", self.dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}"),
                format!("--initial-cluster=pdo=http://127.0.0.1:{etcd_peer}"),
                "--unsafe-no-fsync=true".into(),
                "--quota-backend-bytes=4294967296".into(),
                "--log-level=warn".into(),
            ]),
        )?;
        wait_for("etcd /health", Duration::from_secs(30), || {
            Ok(
                output(Command::new("curl").args(["-sf", &format!("{etcd_url}/health")]))?
                    .contains("true"),
            )
        })?;

        let d = |f: &str| pki.dir.join(f).display().to_string();
        p.start(
            "kube-apiserver",
            Command::new(k("kube-apiserver")?).args([
                format!("--etcd-servers={etcd_url}"),
                format!("--secure-port={api}"),
                "--bind-address=127.0.0.1".into(),
                format!("--advertise-address={}", net::HOST_IP),
                "--endpoint-reconciler-type=none".into(),
                format!("--service-cluster-ip-range={}", net::SERVICE_CIDR),
                format!("--tls-cert-file={}", d("apiserver.crt")),
                format!("--tls-private-key-file={}", d("apiserver.key")),
                format!("--client-ca-file={}", d("ca.crt")),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", d("sa.pub")),
                format!("--service-account-signing-key-file={}", d("sa.key")),
                "--authorization-mode=Node,RBAC".into(),
                "--allow-privileged=true".into(),
                format!("--requestheader-client-ca-file={}", d("front-proxy-ca.crt")),
                "--requestheader-allowed-names=front-proxy-client".into(),
                "--requestheader-username-headers=X-Remote-User".into(),
                "--requestheader-group-headers=X-Remote-Group".into(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
                format!("--proxy-client-cert-file={}", d("front-proxy-client.crt")),
                format!("--proxy-client-key-file={}", d("front-proxy-client.key")),
                // Aggregated APIs (metrics adapters, e2e's test adapter) are proxied to an endpoint of their
                // Service (its EndpointSlice), not its ClusterIP: ClusterIPs are blackholed here, no kube-proxy.
                "--enable-aggregator-routing=true".into(),
                "--profiling=true".into(),
                "--v=0".into(),
            ]),
        )?;
        wait_for("kube-apiserver /readyz", Duration::from_secs(120), || {
            Ok(output(self.kubectl()?.args(["get", "--raw", "/readyz"]))?.trim() == "ok")
        })
        .context("see logs/kube-apiserver.log")?;

        let kubeconfig = self.kubeconfig().display().to_string();
        p.start(
            "kube-controller-manager",
            Command::new(k("kube-controller-manager")?).args([
                format!("--kubeconfig={kubeconfig}"),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={kcm}"),
                format!("--service-account-private-key-file={}", d("sa.key")),
                format!("--root-ca-file={}", d("ca.crt")),
                format!("--service-cluster-ip-range={}", net::SERVICE_CIDR),
                // node-lifecycle stays on: it lifts the not-ready taint the apiserver puts on new Nodes, and
                // sim-kubelet renews its Lease. There are no node CIDRs to allocate (sim-kubelet owns pod IPs).
                "--controllers=*,-nodeipam".into(),
                "--node-monitor-grace-period=60s".into(),
                "--concurrent-deployment-syncs=10".into(),
                "--concurrent-replicaset-syncs=10".into(),
                "--kube-api-qps=200".into(),
                "--kube-api-burst=400".into(),
                "--v=0".into(),
            ]),
        )?;
        p.start(
            "kube-scheduler",
            Command::new(k("kube-scheduler")?).args([
                format!("--kubeconfig={kubeconfig}"),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={sched}"),
                "--kube-api-qps=200".into(),
                "--kube-api-burst=400".into(),
                "--v=0".into(),
            ]),
        )?;

        let crd_dir = self.dir.join("crds");
        std::fs::create_dir_all(&crd_dir)?;
        for (file, yaml) in crate::crds::render()? {
            std::fs::write(crd_dir.join(file), yaml)?;
        }
        util::run(
            self.kubectl()?
                .args(["apply", "--server-side", "-f"])
                .arg(&crd_dir)
                .arg("-o=name"),
        )?;
        // `kubectl wait` fails at once ("accessor error: <nil>") if it looks before a new CRD has
        // any status, so a failure is retried until the deadline.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let waited = util::run(
                self.kubectl()?
                    .args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
                    .arg(&crd_dir),
            );
            match waited {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(500)),
            }
        }

        p.start(
            "sim-kubelet",
            Command::new(bins.join("sim-kubelet"))
                .env("KUBECONFIG", &kubeconfig)
                .args([
                    format!("--node-name={NODE_NAME}"),
                    format!("--netns={}", net::NETNS),
                    format!("--pod-iface={}", net::POD_IF),
                    format!("--pod-cidr={}", net::POD_CIDR),
                    format!(
                        "--fake-inference-bin={}",
                        bins.join("fake-inference").display()
                    ),
                    // Pods of image pd-orchestrator/dlx:dev run the real DLX in the pod network, with
                    // their ServiceAccount's token, reaching the API server at its advertise address.
                    format!("--image-program={DLX_IMAGE}={}", bins.join("dlx").display()),
                    format!("--apiserver-forward={}:{api}", net::HOST_IP),
                    format!("--log-dir={}", self.dir.join("logs/pods").display()),
                    format!("--admin-addr=127.0.0.1:{kubelet_admin}"),
                ]),
        )?;
        prometheus::start(&p, &prometheus_bin, &self.dir, prom, kubelet_admin)?;

        wait_for(
            &format!("node {NODE_NAME} Ready and untainted"),
            Duration::from_secs(60),
            || {
                Ok(output(self.kubectl()?.args([
                    "get",
                    "node",
                    NODE_NAME,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Ready')].status}{.spec.taints}",
                ]))
                .unwrap_or_default()
                    == "True")
            },
        )
        .context("see logs/sim-kubelet.log")?;
        wait_for(
            "the default ServiceAccount (kube-controller-manager)",
            Duration::from_secs(60),
            || {
                Ok(output(self.kubectl()?.args([
                    "get",
                    "serviceaccount",
                    "default",
                    "-n",
                    "default",
                    "-o=name",
                ]))
                .is_ok())
            },
        )
        .context("see logs/kube-controller-manager.log")?;
        wait_for("Prometheus /-/ready", Duration::from_secs(60), || {
            Ok(output(
                Command::new("curl").args(["-sf", &format!("http://127.0.0.1:{prom}/-/ready")]),
            )
            .is_ok())
        })
        .context("see logs/prometheus.log")?;

        println!(
            "cluster up in {:.1}s ({:.1}s of it building/checking binaries)\n{}",
            start.elapsed().as_secs_f64(),
            built.as_secs_f64(),
            self.env()?
        );
        Ok(())
    }

    pub fn down(&self) -> Result<()> {
        procs::Procs::new(&self.dir).stop_all()?;
        netns::down()?;
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir)
                .with_context(|| format!("removing {}", self.dir.display()))?;
        }
        println!("cluster down");
        Ok(())
    }

    pub fn status(&self) -> Result<()> {
        if !self.dir.exists() {
            println!("cluster is down");
            return Ok(());
        }
        for (name, pid, alive) in procs::list(&self.dir)? {
            println!(
                "{name:<24} pid {pid:<8} {}",
                if alive { "running" } else { "NOT RUNNING" }
            );
        }
        println!(
            "network namespace {}: {}",
            net::NETNS,
            if netns::exists() {
                "present"
            } else {
                "missing"
            }
        );
        if self.healthy() {
            util::run(self.kubectl()?.args(["get", "nodes,crds", "-o", "wide"]))?;
        } else {
            println!("cluster is not healthy; `cargo xtask cluster up` repairs it");
        }
        Ok(())
    }
}

/// Polls `check` every 250 ms until it returns true; on timeout the error names what was awaited and
/// the last error seen.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    let mut last = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last = Some(e),
        }
        if start.elapsed() > timeout {
            match last {
                Some(e) => {
                    bail!("timed out after {timeout:?} waiting for {what}; last error: {e:#}")
                }
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
