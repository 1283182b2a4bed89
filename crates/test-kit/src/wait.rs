//! Polling with a deadline and a useful failure message.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `check` every 200 ms until it returns `Ok(Some(v))`, and returns `v`. Panics after `timeout`
/// naming `what` and the last error or "condition not met".
pub async fn wait_until<T, E, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
    E: Debug,
{
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => String::from("condition not met"),
            Err(e) => format!("error: {e:?}"),
        };
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
