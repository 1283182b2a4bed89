//! Events off the hot path: a reconcile hands its Event to a bounded queue and goes on; one background task
//! publishes them in order. When many objects act at the same instant (1,000 Tidals firing at 09:00), the
//! writes that matter — the scale and the status — are not queued behind Event writes. Events are
//! best-effort: a full queue drops the Event with a warning, never blocks a reconcile.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct EventQueue {
    tx: mpsc::Sender<(Event, ObjectReference)>,
}

impl EventQueue {
    /// Starts the publishing task for `recorder`, holding at most `capacity` Events; it drains what is
    /// queued and stops when `token` is cancelled.
    pub fn start(recorder: Recorder, capacity: usize, token: CancellationToken) -> EventQueue {
        let (tx, mut rx) = mpsc::channel::<(Event, ObjectReference)>(capacity.max(1));
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = rx.recv() => next,
                    _ = token.cancelled() => {
                        rx.close();
                        rx.recv().await
                    }
                };
                let Some((ev, obj)) = next else { break };
                if let Err(e) = recorder.publish(&ev, &obj).await {
                    tracing::debug!(error = %e, reason = %ev.reason, "publishing an event failed");
                }
            }
        });
        EventQueue { tx }
    }

    /// Queues `ev` about `obj`; drops it (with a warning) if the queue is full.
    pub fn publish(&self, ev: Event, obj: ObjectReference) {
        if let Err(mpsc::error::TrySendError::Full((ev, _))) = self.tx.try_send((ev, obj)) {
            tracing::warn!(reason = %ev.reason, "event queue full; dropping an Event");
        }
    }
}
