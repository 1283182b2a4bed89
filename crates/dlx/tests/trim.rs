//! `trim::purge` with jemalloc as the allocator, as in the `dlx` binary: the pages of a freed burst
//! leave the process's RSS at once, instead of over jemalloc's ~10 s decay.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// This process's resident set, from /proc/self/statm.
fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("reading /proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm's second field");
    pages * 4096
}

#[test]
fn purge_returns_a_freed_burst_to_the_kernel() {
    const MIB: usize = 1 << 20;
    // A burst shaped like held connections: many small blocks, each touched.
    let burst: Vec<Vec<u8>> = (0..40_000).map(|i| vec![i as u8; 1024]).collect();
    let peak = rss_bytes();
    drop(burst);
    let freed = rss_bytes();
    let arenas = dlx::trim::purge().expect("purging jemalloc's arenas");
    let after = rss_bytes();
    use tikv_jemalloc_ctl::{Access, AsName};
    let muzzy: isize = b"opt.muzzy_decay_ms\0".name().read().unwrap_or(-2);
    eprintln!("opt.muzzy_decay_ms = {muzzy}");
    eprintln!(
        "RSS: {} MiB with the burst, {} MiB after freeing it, {} MiB after purging {arenas} arena(s)",
        peak / MIB,
        freed / MIB,
        after / MIB
    );
    assert!(arenas >= 1);
    assert!(
        freed > after + 25 * MIB,
        "purging returned only {} KiB of a freed 40 MiB burst",
        freed.saturating_sub(after) / 1024
    );
}
