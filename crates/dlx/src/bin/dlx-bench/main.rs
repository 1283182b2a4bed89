//! `dlx-bench`: the DLX's load driver and protocol probes. Subcommands:
//!
//! - `ws`, `grpc`: one WebSocket echo or gRPC health check through `--addr` with `--host` (the e2e tests'
//!   clients for protocols the test crates do not speak); one JSON line, exit 1 if the exchange was wrong;
//! - `bench`: the whole `cargo xtask bench dlx` scenario on the local cluster (see [`scenario`]); the JSON
//!   result on stdout, progress on stderr.

mod load;
mod probes;
mod scenario;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "dlx-bench",
    about = "The DLX's load driver and protocol probes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Upgrade `GET /ws/echo` to a WebSocket and check `--messages` text messages come back.
    Ws {
        #[command(flatten)]
        to: Target,
        #[arg(long, default_value_t = 3)]
        messages: u32,
    },
    /// `grpc.health.v1.Health/Check` over h2c; correct when grpc-status is 0 and the status SERVING.
    Grpc {
        #[command(flatten)]
        to: Target,
    },
    /// Load on one address: keep-alive `GET`s at saturation or at `--rate`; prints the report.
    Load {
        #[command(flatten)]
        to: Target,
        #[arg(long, default_value = "/bytes/1024")]
        path: String,
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// The benchmark: passthrough (direct, nginx, DLX), cold path, 10,000 held requests.
    Bench(scenario::Args),
}

#[derive(clap::Args, Debug)]
struct Target {
    /// Where to connect (the DLX's proxy address, or a pod).
    #[arg(long)]
    addr: SocketAddr,
    /// The Host (HTTP/1.1) or :authority (HTTP/2) to send, e.g. llm.ns.svc.cluster.local.
    #[arg(long)]
    host: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout_seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (to, probe) = match cli.command {
        Command::Bench(args) => {
            let result = scenario::run(args).await?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            return Ok(());
        }
        Command::Load {
            to,
            path,
            body_bytes,
            connections,
            rate,
            seconds,
        } => {
            let spec = load::Spec {
                addr: to.addr,
                host: to.host,
                path,
                body_bytes,
                connections,
                rate,
                duration: Duration::from_secs_f64(seconds),
                warmup: Duration::from_secs(1),
            };
            println!("{}", serde_json::to_string(&load::run(&spec).await)?);
            return Ok(());
        }
        Command::Ws { to, messages } => (to, Some(messages)),
        Command::Grpc { to } => (to, None),
    };
    let started = Instant::now();
    let run = async {
        match probe {
            Some(messages) => probes::ws(to.addr, &to.host, messages).await,
            None => probes::grpc(to.addr, &to.host).await,
        }
    };
    let result = tokio::time::timeout(Duration::from_secs(to.timeout_seconds), run)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {} s", to.timeout_seconds)));
    let ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(detail) => println!("{}", json!({"ok": true, "ms": ms, "detail": detail})),
        Err(e) => {
            println!(
                "{}",
                json!({"ok": false, "ms": ms, "error": format!("{e:#}")})
            );
            std::process::exit(1);
        }
    }
    Ok(())
}
