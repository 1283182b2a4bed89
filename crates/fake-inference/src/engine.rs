//! The simulated inference engine: admission, FIFO slots and token pacing.
//!
//! A request's life, and the metric each step moves:
//!
//! 1. [`Engine::admit`] refuses while the model is "loading" (cold start) or when running + waiting
//!    requests already fill `max_concurrency + max_queue`; otherwise the request counts as *waiting*.
//! 2. [`Sequence::start`] waits for one of `max_concurrency` slots. Tokio's semaphore is fair, so slots
//!    go out in arrival order. Holding a slot, the request counts as *running*.
//! 3. [`Sequence::tokens`] yields `tok0`, `tok1`, … : the first after the prefill time (TTFT), the rest
//!    one inter-token interval apart, on absolute deadlines so a slow reader does not slow the pace.
//!
//! Every counter is undone in `Drop`, so whatever drops the [`Sequence`] — the stream ending, a client
//! hanging up mid-stream, or hyper cancelling a handler still waiting for a slot — frees it at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until};

use crate::config::Config;
use crate::metrics::Metrics;

/// Why a request was not admitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdmitError {
    /// The simulated cold start has not finished.
    #[error("the model is still loading")]
    Loading,
    /// Running and waiting requests already fill the slots and the queue.
    #[error("too many requests: {in_flight} running or waiting, the limit is {limit}")]
    QueueFull {
        /// Requests running or waiting.
        in_flight: u64,
        /// `max_concurrency + max_queue`.
        limit: u64,
    },
}

/// The shared engine; cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    ready_at: Instant,
    ttft: Duration,
    inter_token: Duration,
    in_flight: AtomicU64,
    limit: u64,
}

impl Engine {
    /// An engine whose cold start begins now.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Self {
        let inner = Inner {
            metrics,
            slots: Arc::new(Semaphore::new(config.max_concurrency as usize)),
            ready_at: Instant::now() + config.cold_start(),
            ttft: config.ttft(),
            inter_token: config.inter_token(),
            in_flight: AtomicU64::new(0),
            limit: u64::from(config.max_concurrency) + u64::from(config.max_queue),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Whether the simulated model has finished loading.
    pub fn is_ready(&self) -> bool {
        Instant::now() >= self.inner.ready_at
    }

    /// The metrics this engine updates.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Admits a request as waiting, or refuses it.
    pub fn admit(&self) -> Result<Sequence, AdmitError> {
        if !self.is_ready() {
            return Err(AdmitError::Loading);
        }
        let inner = &self.inner;
        // Check and reserve in one step, so concurrent admissions cannot overshoot the limit.
        inner
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < inner.limit).then_some(n + 1)
            })
            .map_err(|in_flight| AdmitError::QueueFull {
                in_flight,
                limit: inner.limit,
            })?;
        inner.metrics.waiting_add(1);
        Ok(Sequence {
            inner: Arc::clone(inner),
            permit: None,
            arrived: Instant::now(),
        })
    }
}

/// One admitted request: waiting until [`start`](Self::start) returns, then running until dropped.
#[derive(Debug)]
pub struct Sequence {
    inner: Arc<Inner>,
    permit: Option<OwnedSemaphorePermit>,
    arrived: Instant,
}

/// One generated token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// Position in the completion, from 0.
    pub index: u32,
    /// The token's text including its leading separator: `tok0`, then ` tok1`, ` tok2`, …
    pub text: String,
    /// Whether this is the last token of the completion.
    pub last: bool,
}

impl Sequence {
    /// Waits for a free slot (FIFO) and moves the request from waiting to running.
    pub async fn start(mut self) -> Self {
        if self.permit.is_none() {
            // The semaphore is never closed, so acquiring only fails if that invariant breaks.
            let permit = Arc::clone(&self.inner.slots)
                .acquire_owned()
                .await
                .expect("slots semaphore is never closed");
            self.inner.metrics.waiting_add(-1);
            self.inner.metrics.running_add(1);
            self.permit = Some(permit);
        }
        self
    }

    /// Generates `max_tokens` tokens paced by TTFT and the decode rate; the slot is held until the
    /// stream ends or is dropped. Call after [`start`](Self::start); the clock starts at this call.
    pub fn tokens(self, max_tokens: u32) -> impl Stream<Item = Token> + Send + 'static {
        let first_at = Instant::now() + self.inner.ttft;
        futures::stream::unfold((self, 0u32), move |(seq, index)| async move {
            if index >= max_tokens {
                return None;
            }
            sleep_until(first_at + seq.inner.inter_token * index).await;
            let metrics = &seq.inner.metrics;
            if index == 0 {
                metrics.observe_ttft(seq.arrived.elapsed());
            }
            metrics.token_generated();
            let last = index + 1 == max_tokens;
            if last {
                metrics.request_succeeded();
            }
            let text = if index == 0 {
                "tok0".to_string()
            } else {
                format!(" tok{index}")
            };
            Some((Token { index, text, last }, (seq, index + 1)))
        })
    }
}

impl Drop for Sequence {
    fn drop(&mut self) {
        // The permit itself returns to the semaphore when the field drops right after this.
        if self.permit.is_some() {
            self.inner.metrics.running_add(-1);
        } else {
            self.inner.metrics.waiting_add(-1);
        }
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use futures::StreamExt;

    fn engine(args: &[&str]) -> Engine {
        let config =
            Config::try_parse_from(std::iter::once("fake-inference").chain(args.iter().copied()))
                .unwrap();
        Engine::new(
            &config,
            Arc::new(Metrics::new("m", "g", config.max_concurrency)),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn paces_tokens_after_ttft_and_counts_them() {
        let e = engine(&["--ttft-ms", "100", "--tokens-per-second", "10"]);
        let t0 = Instant::now();
        let seq = e.admit().unwrap().start().await;
        assert_eq!((e.metrics().running(), e.metrics().waiting()), (1, 0));
        let tokens: Vec<_> = seq.tokens(3).collect().await;
        assert_eq!(t0.elapsed(), Duration::from_millis(300));
        let text: String = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(text, "tok0 tok1 tok2");
        assert_eq!(
            tokens.iter().map(|t| t.last).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_eq!(e.metrics().running(), 0);
        assert!(
            e.metrics()
                .render()
                .contains("vllm:generation_tokens_total{model_name=\"m\",group_id=\"g\"} 3")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn queues_fifo_refuses_beyond_the_queue_and_frees_on_drop() {
        let e = engine(&["--max-concurrency", "1", "--max-queue", "1"]);
        let first = e.admit().unwrap().start().await;
        let second = e.admit().unwrap();
        assert_eq!(
            e.admit().unwrap_err(),
            AdmitError::QueueFull {
                in_flight: 2,
                limit: 2
            }
        );
        assert_eq!((e.metrics().running(), e.metrics().waiting()), (1, 1));
        let waiter = tokio::spawn(second.start());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        let second = waiter.await.unwrap();
        assert_eq!((e.metrics().running(), e.metrics().waiting()), (1, 0));
        drop(second);
        assert_eq!((e.metrics().running(), e.metrics().waiting()), (0, 0));
        // A waiter cancelled before it got a slot leaves no trace either.
        let holder = e.admit().unwrap().start().await;
        let waiter = tokio::spawn(e.admit().unwrap().start());
        tokio::task::yield_now().await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!((e.metrics().running(), e.metrics().waiting()), (1, 0));
        drop(holder);
        assert!(e.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_during_cold_start() {
        let e = engine(&["--cold-start-ms", "500"]);
        assert!(!e.is_ready());
        assert_eq!(e.admit().unwrap_err(), AdmitError::Loading);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(e.is_ready() && e.admit().is_ok());
    }
}
