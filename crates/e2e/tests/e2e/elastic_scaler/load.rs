//! A load generator: keeps `concurrency` completions in flight against a Service's ready endpoints
//! (re-read for every request, so new pods get traffic) until stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use test_kit::ServiceClient;

/// Running load; stops when dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    pub completed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `concurrency` loops, each sending one `max_tokens` completion after another.
    pub fn start(
        client: kube::Client,
        ns: &str,
        service: &str,
        concurrency: usize,
        max_tokens: u32,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let completed = Arc::new(AtomicUsize::new(0));
        let svc = Arc::new(ServiceClient::new(client, ns, service));
        let tasks = (0..concurrency)
            .map(|_| {
                let (stop, completed, svc) = (stop.clone(), completed.clone(), svc.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let body = serde_json::json!({"model": "fake-llm", "prompt": "hi", "max_tokens": max_tokens});
                        let sent = match svc.request(reqwest::Method::POST, "/v1/completions").await {
                            Ok(req) => req.json(&body).send().await.map(|r| r.status().is_success()),
                            Err(_) => Ok(false),
                        };
                        match sent {
                            Ok(true) => {
                                completed.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            completed,
            tasks,
        }
    }

    /// Stops sending and abandons requests in flight.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop();
    }
}
