//! One batch's shared state: its deadline, its webhook reads (together) and writes, its tally
//! for the metrics line, and the attempt record every outcome starts from.
use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::sync::OnceCell;

use crate::{
    clock,
    delivery::{Attempt, Failure, Outcome, ReceivedMessage, MESSAGE_VERSION},
    domain::Webhook,
    metrics,
    store::{AttemptLog, AttemptRecord, WebhookStore},
};

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
    /// The slots in flight the batch holds, by webhook.
    pub(super) slots: Slots,
    pub(super) journal: Journal,
    pub(super) tally: Tally,
}

impl Batch {
    /// Reads the webhooks of the batch's `messages` due now, together (one call rather than one
    /// per webhook), for their deliveries to share. If that read fails, each delivery reads its
    /// webhook itself, and answers for that read. A batch of one webhook leaves it to that read
    /// (`GetItem`: the same units, and on the emulator 1-2 ms faster than a `BatchGetItem`).
    pub(super) async fn read_webhooks<'m, S: WebhookStore>(
        &self,
        store: &S,
        messages: impl Iterator<Item = &'m ReceivedMessage<'m>>,
    ) {
        let now = clock::now_ms();
        let mut keys: Vec<(&str, u64)> = messages
            .filter(|m| m.v == MESSAGE_VERSION && m.not_before_ms.is_none_or(|due| due <= now))
            .map(|m| (m.vendor_id.as_str(), m.webhook_id))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        if keys.len() < 2 {
            return;
        }
        // Boxed: the SDK call's future is deep, and the batch's would nest it past the
        // compiler's limit on layouts.
        match Box::pin(store.get_webhooks(&keys)).await {
            Ok(webhooks) => {
                for (&(vendor_id, id), webhook) in keys.iter().zip(webhooks) {
                    let _ = self.lookups.cell((vendor_id.to_owned(), id)).set(Ok(webhook.map(Arc::new)));
                }
            }
            Err(e) => tracing::warn!(
                error = %crate::error::chain(&e),
                webhooks = keys.len(),
                "cannot read the batch's webhooks together: each delivery reads its own"
            ),
        }
    }
}

/// The batch's attempt records, written together (group commit): a delivery's record waits for
/// the write in progress, if there is one, and the next write takes every record queued by
/// then. Ten deliveries that end about together cost two calls (one record, then nine) rather
/// than ten, and a record never waits for a delivery still in flight.
#[derive(Default)]
pub(super) struct Journal {
    queued: std::sync::Mutex<Vec<AttemptRecord>>,
    writing: tokio::sync::Mutex<()>,
}

impl Journal {
    /// Appends `record` to the log with the others queued; when this returns, the write that
    /// took it is over. A write that fails is logged, once, by the delivery that made it.
    pub(super) async fn write<S: AttemptLog>(&self, store: &S, record: AttemptRecord) {
        self.queued.lock().unwrap_or_else(|e| e.into_inner()).push(record);
        // Whoever held the turn before took this record, or it is still queued: either way,
        // once the turn is this delivery's, the record is written or this delivery writes it.
        let _turn = self.writing.lock().await;
        let records = std::mem::take(&mut *self.queued.lock().unwrap_or_else(|e| e.into_inner()));
        if records.is_empty() {
            return;
        }
        if let Err(e) = store.record_attempts(&records).await {
            tracing::error!(error = %crate::error::chain(&e), records = records.len(), "cannot record the attempts");
        }
    }
}

/// One webhook read's answer, shared by the batch's deliveries to it.
pub(super) type Lookup = Result<Option<Arc<Webhook>>, String>;

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

/// The slots a batch holds among its webhooks' deliveries in flight, for each webhook with more
/// than one delivery in the batch: taken in one write for as many of them as the cap leaves
/// room for, and given back in one write once the last of them is done. Ten deliveries of one
/// webhook in a batch then cost two writes, not twenty; such a slot is held until the batch's
/// last delivery to its webhook ends, never shorter than its own. (A webhook's only delivery in
/// a batch takes its own slot and gives it back after its attempt.)
#[derive(Default)]
pub(super) struct Slots(HashMap<u64, tokio::sync::Mutex<Pool>>);

/// One webhook's slots in a batch.
#[derive(Default)]
pub(super) struct Pool {
    /// The leases taken, all held until the batch's last delivery to the webhook is done.
    pub(super) leases: Vec<String>,
    /// How many of them no delivery has used yet.
    pub(super) unused: usize,
    /// When the last of them were taken (Unix milliseconds).
    pub(super) taken_ms: i64,
    /// Whether that take found the cap in flight, fewer slots free than asked for.
    pub(super) capped: bool,
    /// The batch's deliveries to the webhook that have not asked for a slot yet.
    pub(super) to_ask: usize,
    /// The batch's deliveries to the webhook that are not done yet.
    pub(super) to_finish: usize,
}

impl Slots {
    /// A batch's slots, for the batch's deliveries to these webhooks (one id per message).
    pub(super) fn counting(webhook_ids: impl Iterator<Item = u64>) -> Self {
        let mut counts: HashMap<u64, usize> = HashMap::new();
        for id in webhook_ids {
            *counts.entry(id).or_default() += 1;
        }
        Self(
            counts
                .into_iter()
                .filter(|&(_, n)| n > 1)
                .map(|(id, n)| {
                    (id, tokio::sync::Mutex::new(Pool { to_ask: n, to_finish: n, ..Pool::default() }))
                })
                .collect(),
        )
    }

    /// The webhook's slots in this batch, if it has more than one delivery in it.
    pub(super) fn pool(&self, webhook_id: u64) -> Option<&tokio::sync::Mutex<Pool>> {
        self.0.get(&webhook_id)
    }

    /// One of the batch's deliveries to the webhook is done: once the last one is, the leases
    /// to give back.
    pub(super) async fn finish(&self, webhook_id: u64) -> Vec<String> {
        let Some(pool) = self.pool(webhook_id) else { return Vec::new() };
        let mut pool = pool.lock().await;
        pool.to_finish = pool.to_finish.saturating_sub(1);
        if pool.to_finish > 0 {
            return Vec::new();
        }
        pool.unused = 0;
        std::mem::take(&mut pool.leases)
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
    pub(super) grouped: u64,
    pub(super) latency_ms: Vec<f64>,
    /// The deliveries that reached a 2xx, for the batch's one line about them: each
    /// `event_id/webhook_id/attempt/status/milliseconds`, space-separated.
    pub(super) delivered_list: String,
}

impl Counts {
    /// Counts an attempt of `message` by its outcome, with its latency; one that reached a 2xx
    /// joins the batch's line about them.
    pub(super) fn attempted(&mut self, message: &ReceivedMessage<'_>, attempt: &Attempt) {
        self.latency_ms.push(attempt.duration.as_secs_f64() * 1000.0);
        match &attempt.outcome {
            Outcome::Delivered { status } => {
                self.delivered += 1;
                let (id, webhook, n) = (&message.event_id, message.webhook_id, message.attempt.max(1));
                let ms = attempt.duration.as_millis();
                crate::telemetry::list_item(
                    &mut self.delivered_list,
                    format_args!("{id}/{webhook}/{n}/{status}/{ms}"),
                );
            }
            Outcome::Rejected { .. } => self.rejected += 1,
            Outcome::Failed { class: Failure::Timeout } => self.timeout += 1,
            Outcome::Failed { class: Failure::Connect } => self.connect += 1,
            Outcome::Failed { class: Failure::RefusedAddress } => self.refused += 1,
            Outcome::Failed { .. } => self.other += 1,
        }
    }
}

/// Room for one delivery's item in the batch's `delivered` line (an event id, a webhook id of
/// up to 16 digits, the attempt, the status and the milliseconds).
const DELIVERED_ITEM_BYTES: usize = 64;

impl Tally {
    /// A tally with room for `records` deliveries' latencies and `delivered` items, so that
    /// neither grows on the way.
    pub(super) fn for_records(records: usize) -> Self {
        Self(std::sync::Mutex::new(Counts {
            latency_ms: Vec::with_capacity(records),
            delivered_list: String::with_capacity(records * DELIVERED_ITEM_BYTES),
            ..Counts::default()
        }))
    }

    pub(super) fn add(&self, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut c) = self.0.lock() {
            f(&mut c);
        }
    }

    /// Logs the batch's deliveries that reached a 2xx in one line, if there were any: what one
    /// line per delivery said (its event, webhook, attempt, status and time), a fifth of the
    /// bytes CloudWatch Logs ingests (each line repeats its invocation's request id and trace).
    /// Every other outcome keeps a line of its own.
    pub(super) fn log_delivered(&self) {
        let Ok(mut c) = self.0.lock() else { return };
        if c.delivered_list.is_empty() {
            return;
        }
        let deliveries = std::mem::take(&mut c.delivered_list);
        tracing::info!(count = c.delivered, %deliveries, "delivered");
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
            .count("MovedToGroupedLane", c.grouped)
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
pub(super) fn attempt_record(message: &ReceivedMessage<'_>) -> AttemptRecord {
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
        signed_at: None,
    }
}
