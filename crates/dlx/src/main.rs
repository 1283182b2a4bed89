//! `dlx`: the scale-to-zero proxy. Flags (each with an env fallback), logs, the runtime with
//! `--worker-threads`, then [`dlx::run`].

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let args = dlx::Args::parse();
    pdo_runtime::init_tracing(&args.log)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.worker_threads > 0 {
        runtime.worker_threads(args.worker_threads);
    }
    runtime.enable_all().build()?.block_on(dlx::run(args))
}
