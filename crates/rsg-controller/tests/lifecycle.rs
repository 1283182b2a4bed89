//! The binary starts, serves its admin endpoints, and exits cleanly on SIGTERM.

#[test]
fn serves_probes_and_metrics_and_exits_on_sigterm() {
    pdo_runtime::testing::assert_serves_and_stops(
        env!("CARGO_BIN_EXE_rsg-controller"),
        "rsg_controller",
    );
}
