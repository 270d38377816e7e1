//! Where a delivery waits: the lanes (the queue a record came from, the slow lane for what
//! comes later), the per-webhook cap on deliveries in flight, the circuit breaker, a retry's
//! backoff, and after the last attempt the dead-letter queue.
use std::{sync::Arc, time::Duration};

use rand::Rng;

use super::{batch::Batch, Dispatcher};
use crate::{
    clock,
    delivery::{Deliverer, DeliveryMessage, ReceivedMessage},
    domain::Webhook,
    grouped,
    queue::{DeliveryQueue, MAX_VISIBILITY},
    sqs_batch::{Disposition, SqsMessage},
    store::{AttemptLog, DeliverySlots, NotifyStore, WebhookStore},
};

/// How long after a batch took its slots for a webhook its other deliveries to it may still
/// use them: each slot's lease lasts an attempt's budget and this.
const SLOT_SHARING_MS: i64 = 1_000;

/// Whether `record` came from the queue named `name` (its event source ARN's last part).
pub(super) fn came_from(record: &SqsMessage, name: &str) -> bool {
    record.event_source_arn.as_deref().and_then(|arn| arn.rsplit(':').next()) == Some(name)
}

/// A delivery's slot among its webhook's deliveries in flight.
pub(super) enum Slot {
    /// None: the webhook has no cap, or the store could not count.
    Unheld,
    /// A lease of its own, given back after its attempt.
    Own(String),
    /// One of the batch's slots for its webhook, given back with the others after the batch's
    /// last delivery to it.
    Shared,
}

impl<S, Q, D> Dispatcher<S, Q, D>
where
    S: WebhookStore + AttemptLog + NotifyStore + DeliverySlots,
    Q: DeliveryQueue,
    D: Deliverer,
{
    /// The queue `record` came from: its receipt handle is good for that one only.
    pub(super) fn source(&self, record: &SqsMessage) -> &Q {
        match (self.ordered_lane(record), &self.grouped) {
            (Some(lane), _) => &lane.queue,
            (None, Some(lane)) if lane.holds(record) => &lane.queue,
            (None, _) if self.in_slow_lane(record) => self.later(),
            (None, _) => &self.queue,
        }
    }

    /// Whether `record` came from the slow lane.
    pub(super) fn in_slow_lane(&self, record: &SqsMessage) -> bool {
        self.slow_lane.as_ref().is_some_and(|lane| lane.holds(record))
    }

    /// Whether `record` came from the grouped lane.
    pub(super) fn in_grouped_lane(&self, record: &SqsMessage) -> bool {
        self.grouped.as_ref().is_some_and(|lane| lane.holds(record))
    }

    /// A delivery to a healthy webhook whose cap (`cap`) SQS can keep, put in the grouped lane
    /// (with the record's message id as its deduplication id: a move repeated after a crash is
    /// dropped); false if the lane could not take it, and the delivery goes on where it is.
    pub(super) async fn move_to_groups(
        &self,
        lane: &Q,
        record: &SqsMessage,
        message: &ReceivedMessage<'_>,
        cap: u32,
    ) -> bool {
        let dedup = record.message_id.clone().unwrap_or_else(crate::ids::event_id);
        let moved = grouped::message(message, cap, dedup);
        match lane.send_grouped(vec![moved]).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot move the delivery to the grouped lane: it goes on here");
                false
            }
        }
    }

    /// Where what waits goes: the slow lane, if there is one.
    pub(super) fn later(&self) -> &Q {
        self.slow_lane.as_ref().map_or(&self.queue, |lane| &lane.queue)
    }

    /// The message queued again (in the slow lane, if there is one) for the same attempt, not
    /// before `wait` from now; if that fails, it comes back after its visibility timeout.
    pub(super) async fn requeue(&self, message: &ReceivedMessage<'_>, wait: Duration) -> Disposition {
        self.requeue_to(self.later(), message, wait).await
    }

    pub(super) async fn requeue_to(
        &self,
        queue: &Q,
        message: &ReceivedMessage<'_>,
        wait: Duration,
    ) -> Disposition {
        let again = DeliveryMessage {
            not_before_ms: (!wait.is_zero()).then(|| clock::now_ms() + wait.as_millis() as i64),
            ..message.clone()
        };
        match queue.send_later(again.to_body(), wait).await {
            Ok(()) => Disposition::Done,
            Err(_) => Disposition::Retry,
        }
    }

    /// A slot among the webhook's deliveries in flight, held until the attempt ends (or its
    /// budget, if this instance dies); `None` if the webhook has its cap in flight. With no cap,
    /// or if the store cannot say, the attempt goes ahead without one. A webhook with more than
    /// one delivery in the batch gets one of the batch's slots for it, taken (if the batch has
    /// none left) for this delivery and its others to the webhook that have not asked yet.
    pub(super) async fn take_slot(&self, webhook: &Webhook, in_groups: bool, batch: &Batch) -> Option<Slot> {
        let cap = grouped::cap(webhook, self.max_in_flight);
        // In the grouped lane SQS keeps the cap (unless it was lowered under a batch since).
        if cap == 0 || (in_groups && grouped::groups(cap) > 0) {
            return Some(Slot::Unheld);
        }
        let now = clock::now_ms();
        let until = now + self.attempt_budget.as_millis() as i64;
        let lease = || format!("{:016x}", rand::random::<u64>());
        let Some(pool) = batch.slots.pool(webhook.id) else {
            let leases = [lease()];
            return match self.store.take_slots(webhook.id, &leases, now, until, cap).await {
                Ok(0) => None,
                Ok(_) => {
                    let [lease] = leases;
                    Some(Slot::Own(lease))
                }
                Err(e) => Some(self.uncounted(&e)),
            };
        };
        let mut pool = pool.lock().await;
        pool.to_ask = pool.to_ask.saturating_sub(1);
        // Taken for this batch's deliveries a moment ago, and still good for a whole attempt;
        // if they were fewer than asked for, the cap was in flight then, and is still.
        if now <= pool.taken_ms + SLOT_SHARING_MS {
            if pool.unused > 0 {
                pool.unused -= 1;
                return Some(Slot::Shared);
            }
            if pool.capped {
                return None;
            }
        }
        let leases: Vec<String> = (0..=pool.to_ask).map(|_| lease()).collect();
        match self.store.take_slots(webhook.id, &leases, now, until + SLOT_SHARING_MS, cap).await {
            Ok(taken) => {
                (pool.unused, pool.taken_ms, pool.capped) =
                    (taken.saturating_sub(1), now, taken < leases.len());
                pool.leases.extend(leases.into_iter().take(taken));
                (taken > 0).then_some(Slot::Shared)
            }
            Err(e) => Some(self.uncounted(&e)),
        }
    }

    fn uncounted(&self, e: &crate::store::StoreError) -> Slot {
        tracing::warn!(error = %crate::error::chain(e), "cannot count the deliveries in flight");
        Slot::Unheld
    }

    /// After the attempt: a slot of its own given back.
    pub(super) async fn give_slot(&self, webhook_id: u64, slot: Slot) {
        if let Slot::Own(lease) = slot {
            self.give_slots(webhook_id, &[lease]).await;
        }
    }

    /// One of the batch's deliveries is done; after its webhook's last, the batch's slots for it
    /// are given back.
    pub(super) async fn finish_slots(&self, webhook_id: u64, batch: &Batch) {
        let leases = batch.slots.finish(webhook_id).await;
        if !leases.is_empty() {
            self.give_slots(webhook_id, &leases).await;
        }
    }

    async fn give_slots(&self, webhook_id: u64, leases: &[String]) {
        if let Err(e) = self.store.give_slots(webhook_id, leases).await {
            tracing::warn!(error = %crate::error::chain(&e), "cannot give the slots back: they free themselves at their expiry");
        }
    }

    /// The webhook, if a delivery may be attempted now; otherwise how long to wait. While the
    /// circuit is open nothing is attempted; once its time is past, the first delivery to claim
    /// the probe (a conditional write) tries the receiver, and the others wait for its answer.
    pub(super) async fn through_circuit(
        &self,
        webhook: Arc<Webhook>,
        batch: &Batch,
    ) -> Result<Arc<Webhook>, Duration> {
        let (Some(circuit), Some(until)) = (self.circuit, webhook.circuit_open_until) else {
            return Ok(webhook);
        };
        let now = clock::now();
        let wait = circuit.open_for(webhook.consecutive_failures).unwrap_or(Duration::from_secs(1));
        // What waits comes back spread over the period after the probe, not all at its instant:
        // a herd of a dead receiver's deliveries would otherwise arrive together at every probe.
        let spread = |d: Duration| d + wait.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
        if until > now {
            return Err(spread(Duration::from_secs((until - now) as u64)));
        }
        let probe_until = now + wait.as_secs() as i64;
        let claimed = self
            .change_webhook(Arc::unwrap_or_clone(webhook), batch, |w| {
                (w.circuit_open_until == Some(until))
                    .then(|| Webhook { circuit_open_until: Some(probe_until), ..w.clone() })
            })
            .await;
        match claimed {
            Some(w) => {
                tracing::info!("circuit half-open: this delivery probes the receiver");
                batch.lookups.forget(&(w.vendor_id.clone(), w.id));
                Ok(Arc::new(w))
            }
            None => Err(spread(wait)),
        }
    }

    /// After a failed attempt: the next attempt's message, delayed by its backoff (a
    /// receiver's `Retry-After` on a 429 or 503 included), or after the last attempt the
    /// dead-letter queue. The message in hand is then done. If the queue cannot take the new
    /// message, this one comes back after the backoff instead, for the same attempt again.
    pub(super) async fn retry(
        &self,
        record: &SqsMessage,
        message: ReceivedMessage<'_>,
        retry_after: Option<Duration>,
    ) -> Disposition {
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        let Some(delay) = self.schedule.delay_after(message.attempt.max(1), retry_after, jitter) else {
            return self.park(record).await;
        };
        let next = DeliveryMessage {
            attempt: message.attempt.max(1) + 1,
            not_before_ms: Some(clock::now_ms() + delay.as_millis() as i64),
            ..message
        };
        match self.later().send_later(next.to_body(), delay).await {
            Ok(()) => {
                tracing::info!(
                    next_attempt = next.attempt,
                    next_in_ms = delay.as_millis() as u64,
                    "will retry"
                );
                Disposition::Done
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot queue the next attempt: this one comes back");
                if let Some(receipt) = record.receipt_handle.as_deref() {
                    let _ = self.source(record).delay(receipt, delay.min(MAX_VISIBILITY / 2)).await;
                }
                Disposition::Retry
            }
        }
    }

    /// After the last attempt: the message, exactly as received, to the dead-letter queue.
    pub(super) async fn park(&self, record: &SqsMessage) -> Disposition {
        let body = record.body.clone().unwrap_or_default();
        match self.dead_letters.send_all(vec![body]).await {
            Ok(()) => {
                tracing::warn!("last attempt failed: parked in the dead-letter queue");
                Disposition::Done
            }
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "cannot park the delivery: it comes back");
                Disposition::Retry
            }
        }
    }

    /// A message not due yet (its backoff outlasts SQS's 15-minute delay): hidden until it is,
    /// as far as SQS allows from this receive.
    pub(super) async fn wait(&self, record: &SqsMessage, remaining: Duration, batch: &Batch) -> Disposition {
        let held = Duration::from_millis((clock::now_ms() - batch.received_ms).max(0) as u64);
        let allowed = MAX_VISIBILITY.saturating_sub(held + Duration::from_secs(1));
        if let Some(receipt) = record.receipt_handle.as_deref() {
            if let Err(e) = self.source(record).delay(receipt, remaining.min(allowed)).await {
                tracing::warn!(error = %crate::error::chain(&e), "cannot hide the message until it is due");
            }
        }
        tracing::debug!(due_in_ms = remaining.as_millis() as u64, "not due yet");
        Disposition::Retry
    }

    /// A message this invocation has no time left for: queued again as it is, in its own lane,
    /// for another invocation. In a FIFO lane (ordered, grouped) the message itself is handed
    /// back, visible again at once: a FIFO queue takes no message without its group.
    pub(super) async fn hand_back(&self, record: &SqsMessage, message: &ReceivedMessage<'_>) -> Disposition {
        if self.ordered_lane(record).is_some() || self.in_grouped_lane(record) {
            return self.hold(self.source(record), record, Duration::ZERO).await;
        }
        self.requeue_to(self.source(record), message, Duration::ZERO).await
    }
}
