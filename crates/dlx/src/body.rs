//! Bodies in flight.
//!
//! - [`Prefetch`]: while a request is held, the DLX reads the frames of its body that are already on
//!   the connection, up to a small budget, as the `Bytes` hyper decoded them (no copy). Reading is what
//!   lets hyper notice a client that goes away (a half-read body errors, a fully read one lets hyper
//!   watch for EOF), so its queue place is freed at once. Beyond the budget the rest stays in the
//!   client's socket, under TCP flow control, until a pod takes the request.
//! - [`Held`]: the request body sent to the pod: the prefetched frames, then the rest as it comes.
//! - [`Relayed`]: the pod's response body on its way to the client, frame by frame as it arrives (every
//!   SSE event is written and flushed when the pod sends it); it holds the request's place at the pod
//!   until the body ends or the client goes away, and returns a finished HTTP/1.1 connection to the pool.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::pool::BoxError;
use crate::target::Permit;

/// Reads a held request's body frames up to a byte budget.
pub struct Prefetch {
    frames: VecDeque<Frame<Bytes>>,
    bytes: usize,
    budget: usize,
    rest: Option<Incoming>,
    taken: bool,
}

impl Prefetch {
    /// Starts with `body`, reading at most `budget` bytes ahead.
    pub fn new(body: Incoming, budget: usize) -> Self {
        let rest = (!body.is_end_stream()).then_some(body);
        Self {
            frames: VecDeque::new(),
            bytes: 0,
            budget,
            rest,
            taken: false,
        }
    }

    /// Whether reading ahead should continue (body not finished, budget not spent).
    pub fn active(&self) -> bool {
        !self.taken && self.rest.is_some() && self.bytes < self.budget
    }

    /// Whether the whole body has been read (so it could be sent twice).
    pub fn complete(&self) -> bool {
        self.rest.is_none() && !self.taken
    }

    /// Reads the next frame; an error means the client is gone (or sent a broken body).
    pub async fn step(&mut self) -> Result<(), hyper::Error> {
        let Some(body) = self.rest.as_mut() else {
            return std::future::pending().await;
        };
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    self.bytes += d.len();
                }
                self.frames.push_back(frame);
                if self.rest.as_ref().is_some_and(Body::is_end_stream) {
                    self.rest = None;
                }
                Ok(())
            }
            Some(Err(e)) => Err(e),
            None => {
                self.rest = None;
                Ok(())
            }
        }
    }

    /// Whether the body can still be sent: never sent yet, or read whole (so it can be sent again).
    pub fn restartable(&self) -> bool {
        self.complete() || !self.taken
    }

    /// The body to send: the read frames, then the rest. A body read whole can be taken again (for
    /// another pod); otherwise `None` after the first time, until [`restore`](Self::restore).
    pub fn take(&mut self) -> Option<Held> {
        if self.complete() {
            let frames = self
                .frames
                .iter()
                .filter_map(|f| match f.data_ref() {
                    Some(d) => Some(Frame::data(d.clone())),
                    None => f.trailers_ref().map(|t| Frame::trailers(t.clone())),
                })
                .collect();
            return Some(Held { frames, rest: None });
        }
        if self.taken {
            return None;
        }
        self.taken = true;
        Some(Held {
            frames: std::mem::take(&mut self.frames),
            rest: self.rest.take(),
        })
    }

    /// Puts back a body that was never sent (hyper returned the request unsent).
    pub fn restore(&mut self, held: Held) {
        if self.taken {
            self.frames = held.frames;
            self.rest = held.rest;
            self.taken = false;
        }
    }
}

/// A request body: frames already read, then the rest from the client.
pub struct Held {
    frames: VecDeque<Frame<Bytes>>,
    rest: Option<Incoming>,
}

impl Body for Held {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(f) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(f)));
        }
        match self.rest.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let read: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        match &self.rest {
            None => SizeHint::with_exact(read),
            Some(b) => {
                let h = b.size_hint();
                let mut out = SizeHint::new();
                out.set_lower(h.lower() + read);
                if let Some(u) = h.upper() {
                    out.set_upper(u + read);
                }
                out
            }
        }
    }
}

/// What to do when a response body has been relayed to its end.
pub type OnEnd = Box<dyn FnOnce() + Send>;

/// A pod's response body relayed to the client; holds the request's place at the pod.
pub struct Relayed {
    inner: Incoming,
    permit: Option<Permit>,
    on_end: Option<OnEnd>,
}

impl Relayed {
    /// Relays `inner`, freeing `permit` and running `on_end` when it ends.
    pub fn new(inner: Incoming, permit: Permit, on_end: Option<OnEnd>) -> Self {
        Self {
            inner,
            permit: Some(permit),
            on_end,
        }
    }

    fn finish(&mut self) {
        if let Some(f) = self.on_end.take() {
            f();
        }
        self.permit = None;
    }
}

impl Body for Relayed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // A broken response: the connection is not reused.
                self.on_end = None;
                self.permit = None;
                Poll::Ready(Some(Err(e.into())))
            }
            other => other.map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        // An empty body may never be polled; its connection is still clean.
        if self.inner.is_end_stream() {
            self.finish();
        }
    }
}
