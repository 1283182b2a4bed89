//! `dlx`: the scale-to-zero proxy. Flags (each with an env fallback), logs, the runtime with
//! `--worker-threads`, then [`dlx::run`].

use clap::Parser;

// jemalloc keeps no header inside a block, so the untouched part of an allocation stays out of RSS:
// hyper gives every HTTP/1.1 connection an 8 KiB read and an 8 KiB write buffer that a held request
// barely touches. See docs/dlx.md, "Measured".
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let args = dlx::Args::parse();
    pdo_runtime::init_tracing(&args.log)?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.worker_threads > 0 {
        runtime.worker_threads(args.worker_threads);
    }
    runtime.enable_all().build()?.block_on(dlx::run(args))
}
