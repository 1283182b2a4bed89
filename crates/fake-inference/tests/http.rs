//! The HTTP API end to end: a real server on 127.0.0.1:0 and a real client, no mocks.

use std::time::Duration;

use clap::Parser;
use fake_inference::{Config, FakeServer};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Starts a server with the given flags and returns its base URL.
async fn start(args: &[&str]) -> String {
    let argv = ["fake-inference", "--listen", "127.0.0.1:0"]
        .into_iter()
        .chain(args.iter().copied());
    let server = FakeServer::bind(&Config::try_parse_from(argv).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    tokio::spawn(server.run(std::future::pending()));
    base
}

async fn post(base: &str, path: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Sends a completion request from a task of its own.
fn spawn_post(base: &str, body: Value) -> tokio::task::JoinHandle<reqwest::Response> {
    let base = base.to_string();
    tokio::spawn(async move { post(&base, "/v1/completions", body).await })
}

async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the first sample of `name` (without its labels) in the exposition.
fn sample(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .unwrap_or_else(|| panic!("{name}: {text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

/// Polls `/metrics` until `name` has `value`, failing after two seconds.
async fn wait_metric(base: &str, name: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let text = metrics(base).await;
        if sample(&text, name) == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {value}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Splits a server-sent-events body into its `data:` payloads.
fn events(body: &str) -> Vec<&str> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect()
}

#[tokio::test]
async fn cold_start_answers_503_until_loaded() {
    let t0 = Instant::now();
    let base = start(&[
        "--cold-start-ms",
        "300",
        "--ttft-ms",
        "0",
        "--tokens-per-second",
        "1000",
    ])
    .await;
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert_eq!(health.status(), 503);
    let busy = post(&base, "/v1/completions", json!({"prompt": "hi"})).await;
    assert_eq!(busy.status(), 503);
    assert_eq!(busy.json::<Value>().await.unwrap()["error"]["code"], 503);
    loop {
        let health = reqwest::get(format!("{base}/health")).await.unwrap();
        if health.status() == 200 {
            assert_eq!(health.text().await.unwrap(), "ok");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        post(&base, "/v1/completions", json!({"prompt": "hi"}))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn non_streaming_answers_have_the_openai_shape() {
    let base = start(&[
        "--model",
        "m1",
        "--ttft-ms",
        "0",
        "--tokens-per-second",
        "1000",
    ])
    .await;
    let r = post(
        &base,
        "/v1/completions",
        json!({"model": "m1", "prompt": "hello big world", "max_tokens": 5}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"), "{body}");
    assert_eq!(
        (&body["object"], &body["model"]),
        (&json!("text_completion"), &json!("m1"))
    );
    assert!(body["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(body["choices"][0]["text"], "tok0 tok1 tok2 tok3 tok4");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8})
    );

    // Without max_tokens the default (16) applies.
    let body: Value = post(&base, "/v1/completions", json!({"prompt": ["a", "b"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["usage"]["completion_tokens"], 16);

    let chat = json!({"messages": [{"role": "user", "content": "say two words"}], "max_tokens": 2});
    let body: Value = post(&base, "/v1/chat/completions", chat)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        body["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{body}"
    );
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "tok0 tok1"})
    );
    assert_eq!(body["usage"]["total_tokens"], 5);

    let models: Value = reqwest::get(format!("{base}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "m1");
}

#[tokio::test]
async fn streaming_flushes_each_token_as_it_is_generated() {
    let base = start(&["--tokens-per-second", "20", "--ttft-ms", "50"]).await;
    let t0 = Instant::now();
    let r = post(
        &base,
        "/v1/completions",
        json!({"prompt": "go", "max_tokens": 10, "stream": true}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let mut first_chunk = None;
    while let Some(chunk) = body.next().await {
        first_chunk.get_or_insert(t0.elapsed());
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
    }
    let (first_chunk, total) = (first_chunk.unwrap(), t0.elapsed());
    // 50 ms to the first token, then 9 more 50 ms apart: the stream takes ~500 ms, the first token ~50.
    assert!(
        first_chunk < Duration::from_millis(300),
        "first chunk after {first_chunk:?}"
    );
    assert!(
        total >= Duration::from_millis(450),
        "whole stream in {total:?}"
    );

    let events = events(&text);
    assert_eq!(events.len(), 11, "{text}");
    assert_eq!(*events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..10]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let generated: String = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        generated,
        "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 tok8 tok9"
    );
    assert_eq!(chunks[8]["choices"][0]["finish_reason"], Value::Null);
    assert_eq!(chunks[9]["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn chat_streaming_sends_deltas_and_an_optional_usage_chunk() {
    let base = start(&["--ttft-ms", "0", "--tokens-per-second", "1000"]).await;
    let request = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 3,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let text = post(&base, "/v1/chat/completions", request)
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    assert_eq!(events.len(), 5, "{text}");
    let chunks: Vec<Value> = events[..4]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "tok0"})
    );
    assert_eq!(
        chunks[2]["choices"][0]["delta"],
        json!({"content": " tok2"})
    );
    assert_eq!(
        chunks[3]["usage"],
        json!({"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4})
    );
    assert_eq!(events[4], "[DONE]");
}

#[tokio::test]
async fn a_request_beyond_max_concurrency_waits_fifo() {
    let base = start(&[
        "--max-concurrency",
        "1",
        "--tokens-per-second",
        "20",
        "--ttft-ms",
        "10",
    ])
    .await;
    // The first request holds the only slot for ~1 s, ample time to see the second one wait.
    let first = spawn_post(&base, json!({"prompt": "x", "max_tokens": 20}));
    wait_metric(&base, "vllm:num_requests_running", 1.0).await;
    let second = spawn_post(&base, json!({"prompt": "x", "max_tokens": 2}));
    wait_metric(&base, "vllm:num_requests_waiting", 1.0).await;
    let text = metrics(&base).await;
    assert_eq!(sample(&text, "vllm:num_requests_running"), 1.0, "{text}");
    assert_eq!(sample(&text, "vllm:gpu_cache_usage_perc"), 1.0, "{text}");

    assert_eq!(first.await.unwrap().status(), 200);
    assert_eq!(second.await.unwrap().status(), 200);
    let text = metrics(&base).await;
    assert_eq!(sample(&text, "vllm:num_requests_running"), 0.0, "{text}");
    assert_eq!(sample(&text, "vllm:num_requests_waiting"), 0.0, "{text}");
    assert_eq!(sample(&text, "vllm:request_success_total"), 2.0, "{text}");
    assert_eq!(
        sample(&text, "vllm:generation_tokens_total"),
        22.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, "vllm:time_to_first_token_seconds_count"),
        2.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_frees_its_slot_or_queue_place() {
    let base = start(&[
        "--max-concurrency",
        "1",
        "--tokens-per-second",
        "20",
        "--ttft-ms",
        "0",
    ])
    .await;
    // A long stream (50 s if read to the end) holds the only slot.
    let long = post(
        &base,
        "/v1/completions",
        json!({"prompt": "x", "max_tokens": 1000, "stream": true}),
    )
    .await;
    let mut long = long.bytes_stream();
    long.next().await.unwrap().unwrap();
    wait_metric(&base, "vllm:num_requests_running", 1.0).await;

    // A queued request whose client gives up leaves the queue.
    let queued = spawn_post(&base, json!({"prompt": "x", "max_tokens": 1}));
    wait_metric(&base, "vllm:num_requests_waiting", 1.0).await;
    queued.abort();
    wait_metric(&base, "vllm:num_requests_waiting", 0.0).await;

    // Dropping the stream mid-way frees the slot, and the next request runs at once.
    drop(long);
    wait_metric(&base, "vllm:num_requests_running", 0.0).await;
    let t0 = Instant::now();
    let r = post(
        &base,
        "/v1/completions",
        json!({"prompt": "x", "max_tokens": 1}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        sample(&metrics(&base).await, "vllm:request_success_total"),
        1.0
    );
}

#[tokio::test]
async fn a_full_queue_answers_429() {
    let base = start(&[
        "--max-concurrency",
        "1",
        "--max-queue",
        "0",
        "--tokens-per-second",
        "20",
    ])
    .await;
    let long = post(
        &base,
        "/v1/completions",
        json!({"prompt": "x", "max_tokens": 1000, "stream": true}),
    )
    .await;
    wait_metric(&base, "vllm:num_requests_running", 1.0).await;
    let refused = post(&base, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["error"]["type"],
        "rate_limit_exceeded"
    );
    drop(long);
}

#[tokio::test]
async fn metrics_use_the_vllm_names_and_both_labels() {
    let base = start(&[
        "--model",
        "m1",
        "--group-id",
        "g-7",
        "--ttft-ms",
        "0",
        "--tokens-per-second",
        "1000",
    ])
    .await;
    post(
        &base,
        "/v1/completions",
        json!({"prompt": "x", "max_tokens": 3}),
    )
    .await;
    let r = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    let labels = r#"model_name="m1",group_id="g-7""#;
    for (name, kind) in [
        ("vllm:num_requests_running", "gauge"),
        ("vllm:num_requests_waiting", "gauge"),
        ("vllm:gpu_cache_usage_perc", "gauge"),
        ("vllm:time_to_first_token_seconds", "histogram"),
        ("vllm:request_success_total", "counter"),
        ("vllm:generation_tokens_total", "counter"),
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}:\n{text}");
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}:\n{text}"
        );
    }
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains(labels), "{line}");
    }
    assert!(text.contains(&format!(
        "vllm:time_to_first_token_seconds_bucket{{{labels},le=\"+Inf\"}} 1\n"
    )));
    assert!(text.contains(&format!(
        "vllm:time_to_first_token_seconds_count{{{labels}}} 1\n"
    )));
    assert_eq!(sample(&text, "vllm:generation_tokens_total"), 3.0);
}

#[tokio::test]
async fn malformed_requests_get_an_openai_style_400() {
    let base = start(&[]).await;
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{base}/v1/completions"))
        .body("{\"prompt\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed request body"),
        "{error}"
    );

    for (path, body, needle) in [
        ("/v1/completions", json!({"max_tokens": 3}), "prompt"),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": 0}),
            "max_tokens",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": "many"}),
            "expected u32",
        ),
        ("/v1/chat/completions", json!({"prompt": "x"}), "messages"),
        ("/v1/chat/completions", json!({"messages": []}), "messages"),
    ] {
        let r = post(&base, path, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let error: Value = r.json().await.unwrap();
        assert!(
            error["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {error}"
        );
    }
    // Nothing was admitted.
    assert_eq!(
        sample(&metrics(&base).await, "vllm:generation_tokens_total"),
        0.0
    );
}
