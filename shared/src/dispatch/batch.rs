//! One batch's shared state: its deadline, its webhook reads and writes, its tally for the
//! metrics line, and the attempt record every outcome starts from.
use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::sync::OnceCell;

use crate::{clock, delivery::DeliveryMessage, domain::Webhook, metrics, store::AttemptRecord};

/// What one attempt may take besides the HTTP request: the webhook read, signing, the log.
pub(super) const ATTEMPT_OVERHEAD: Duration = Duration::from_secs(2);

/// One batch: when it was received, its deadline, its webhook reads and its tally.
#[derive(Default)]
pub(super) struct Batch {
    pub(super) received_ms: i64,
    pub(super) deadline_ms: Option<i64>,
    /// The webhook reads, by (vendor, webhook): the first message to need one reads, the others
    /// wait for its answer.
    pub(super) lookups: Cells<(String, u64), OnceCell<Lookup>>,
    /// The writes of each webhook: one at a time, and the last one written.
    pub(super) writes: Cells<u64, tokio::sync::Mutex<Option<Webhook>>>,
    pub(super) tally: Tally,
}

/// One webhook read's answer.
pub(super) type Lookup = Result<Option<Webhook>, String>;

/// A cell per key, shared by the batch's messages for that key.
pub(super) struct Cells<K, V>(std::sync::Mutex<HashMap<K, Arc<V>>>);

impl<K, V> Default for Cells<K, V> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + std::hash::Hash, V: Default> Cells<K, V> {
    pub(super) fn cell(&self, key: K) -> Arc<V> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key).or_default().clone()
    }

    /// Drops a cell that is out of date: the batch's next message for the key starts a new one.
    pub(super) fn forget(&self, key: &K) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(key);
    }
}

/// What a batch did, for its metrics line.
#[derive(Default)]
pub(super) struct Tally(std::sync::Mutex<Counts>);

#[derive(Default)]
pub(super) struct Counts {
    pub(super) delivered: u64,
    pub(super) rejected: u64,
    pub(super) timeout: u64,
    pub(super) connect: u64,
    pub(super) refused: u64,
    pub(super) other: u64,
    pub(super) dropped: u64,
    pub(super) held: u64,
    pub(super) capped: u64,
    pub(super) moved: u64,
    pub(super) latency_ms: Vec<f64>,
}

impl Tally {
    pub(super) fn add(&self, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut c) = self.0.lock() {
            f(&mut c);
        }
    }

    /// Delivered, failed (all, then by class), dropped, and each attempt's latency.
    pub(super) fn record(&self) -> metrics::Record {
        let c = self.0.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
        metrics::Record::new("dispatch")
            .count("Delivered", c.delivered)
            .count("Failed", c.rejected + c.timeout + c.connect + c.refused + c.other)
            .count("FailedRejected", c.rejected)
            .count("FailedTimeout", c.timeout)
            .count("FailedConnect", c.connect)
            .count("FailedRefusedAddress", c.refused)
            .count("FailedOther", c.other)
            .count("Dropped", c.dropped)
            .count("HeldByCircuit", c.held)
            .count("HeldByInFlightCap", c.capped)
            .count("MovedToSlowLane", c.moved)
            .millis("AttemptLatency", c.latency_ms)
    }
}

/// Why a delivery was let go without an attempt (the attempt log's outcome says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DropReason {
    /// The webhook was deleted after the event was published.
    Deleted,
    /// The webhook was disabled after the event was published.
    Disabled,
    /// The webhook now takes another event type.
    TypeChanged,
}

impl DropReason {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            DropReason::Deleted => "dropped_deleted",
            DropReason::Disabled => "dropped_disabled",
            DropReason::TypeChanged => "dropped_type_changed",
        }
    }
}

/// An attempt record of a delivery, now, for the caller to fill in how it went.
pub(super) fn attempt_record(message: &DeliveryMessage) -> AttemptRecord {
    AttemptRecord {
        webhook_id: message.webhook_id,
        vendor_id: message.vendor_id.clone(),
        event_id: message.event_id.clone(),
        attempt: message.attempt.max(1),
        status: None,
        outcome: String::new(),
        duration_ms: 0,
        at_ms: clock::now_ms(),
        response_excerpt: String::new(),
    }
}
