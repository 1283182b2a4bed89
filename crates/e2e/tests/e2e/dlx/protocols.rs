//! A WebSocket echo and a gRPC call (h2c) survive a cold start: both are held while the workload is at
//! zero and completed by the pod once it is ready. The clients are `dlx-bench` subcommands.

use tokio::process::Command;

use super::{Rig, Scaler};

async fn probe(rig: &Rig, replica: usize, what: &str) -> serde_json::Value {
    let out = Command::new(test_kit::bin_path("dlx-bench"))
        .args([
            what,
            "--addr",
            &rig.dlx[replica].proxy.to_string(),
            "--host",
            &rig.host(),
        ])
        .output()
        .await
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    serde_json::from_str(line.trim()).unwrap_or_else(|e| {
        panic!(
            "dlx-bench {what}: {e}: {line} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn dlx_websocket_echo_and_grpc_survive_a_cold_start() {
    let rig = Rig::new("dlx-protocols", 2, 2000, &[]).await;
    let (ws, grpc) = tokio::join!(probe(&rig, 0, "ws"), async {
        rig.wait_held(0, 1.0).await;
        rig.wait_held(1, 0.0).await;
        let grpc = tokio::spawn({
            let args = (rig.dlx[1].proxy.to_string(), rig.host());
            async move {
                Command::new(test_kit::bin_path("dlx-bench"))
                    .args(["grpc", "--addr", &args.0, "--host", &args.1])
                    .output()
                    .await
                    .unwrap()
            }
        });
        rig.wait_held(1, 1.0).await;
        // Both are held at zero; now the workload comes up.
        let scaler = Scaler::start(&rig, 1);
        let out = grpc.await.unwrap();
        drop(scaler);
        String::from_utf8_lossy(&out.stdout).to_string()
    });
    assert_eq!(ws["ok"], true, "{ws}");
    let grpc: serde_json::Value = serde_json::from_str(grpc.trim()).unwrap();
    assert_eq!(grpc["ok"], true, "{grpc}");
    assert_eq!(grpc["detail"]["serving"], true, "{grpc}");
    // Both went the same way as any request: counted 101 and 200.
    assert_eq!(
        rig.metric(0, "dlx_requests_total", &[r#"code="101""#])
            .await,
        1.0
    );
    assert_eq!(
        rig.metric(1, "dlx_requests_total", &[r#"code="200""#])
            .await,
        1.0
    );
}
