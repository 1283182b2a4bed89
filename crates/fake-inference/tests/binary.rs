//! The binary's launch contract: flags from the environment, the bound address in the logs, and on
//! SIGTERM a graceful exit 0 that lets a stream in flight finish.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

#[tokio::test]
async fn reads_env_logs_its_address_and_exits_0_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-inference"))
        .env_clear()
        .env("FAKE_LISTEN", "127.0.0.1:0")
        .env("FAKE_GROUP_ID", "grp-env")
        .env("FAKE_MODEL", "from-env")
        .env("FAKE_TTFT_MS", "0")
        .env("FAKE_TOKENS_PER_SECOND", "20")
        .env("LOG_FORMAT", "json")
        .args(["--model", "from-flag"]) // a flag beats its env fallback
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = timeout(Duration::from_secs(5), async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("exited before listening");
            let event: Value = serde_json::from_str(&line).unwrap();
            if event["message"] == "listening" {
                return event;
            }
        }
    })
    .await
    .expect("no `listening` log line");
    let base = format!("http://{}", listening["local_addr"].as_str().unwrap());

    assert_eq!(
        reqwest::get(format!("{base}/health"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains(r#"vllm:num_requests_running{model_name="from-flag",group_id="grp-env"} 0"#),
        "{metrics}"
    );

    // A 5-token stream (~200 ms) is in flight when SIGTERM arrives; it still ends with [DONE].
    let body = json!({"prompt": "x", "max_tokens": 5, "stream": true});
    let stream = reqwest::Client::new()
        .post(format!("{base}/v1/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let text = timeout(Duration::from_secs(5), stream.text())
        .await
        .unwrap()
        .unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let status = timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("did not exit")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}
