//! Where a delivery waits: the lanes (the queue a record came from, the slow lane for what
//! comes later), the per-webhook cap on deliveries in flight, and the circuit breaker.
use std::time::Duration;

use aws_lambda_events::sqs::SqsMessage;
use rand::Rng;

use super::{batch::Batch, Dispatcher};
use crate::{
    clock,
    delivery::{Deliverer, DeliveryMessage},
    domain::Webhook,
    queue::DeliveryQueue,
    sqs_batch::Disposition,
    store::{AttemptLog, DeliverySlots, NotifyStore, WebhookStore},
};

impl<S, Q, D> Dispatcher<S, Q, D>
where
    S: WebhookStore + AttemptLog + NotifyStore + DeliverySlots,
    Q: DeliveryQueue,
    D: Deliverer,
{
    /// The queue `record` came from: its receipt handle is good for that one only.
    pub(super) fn source(&self, record: &SqsMessage) -> &Q {
        if self.in_slow_lane(record) {
            self.later()
        } else {
            &self.queue
        }
    }

    /// Whether `record` came from the slow lane.
    pub(super) fn in_slow_lane(&self, record: &SqsMessage) -> bool {
        match (&self.slow_lane, record.event_source_arn.as_deref()) {
            (Some(lane), Some(arn)) => arn.rsplit(':').next() == Some(lane.name.as_str()),
            _ => false,
        }
    }

    /// Where what waits goes: the slow lane, if there is one.
    pub(super) fn later(&self) -> &Q {
        self.slow_lane.as_ref().map_or(&self.queue, |lane| &lane.queue)
    }

    /// The message queued again (in the slow lane, if there is one) for the same attempt, not
    /// before `wait` from now; if that fails, it comes back after its visibility timeout.
    pub(super) async fn requeue(&self, message: &DeliveryMessage, wait: Duration) -> Disposition {
        self.requeue_to(self.later(), message, wait).await
    }

    pub(super) async fn requeue_to(
        &self,
        queue: &Q,
        message: &DeliveryMessage,
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
    /// or if the store cannot say, the attempt goes ahead without one.
    pub(super) async fn take_slot(&self, webhook: &Webhook) -> Option<Option<String>> {
        let cap = webhook.max_in_flight.unwrap_or(self.max_in_flight);
        if cap == 0 {
            return Some(None);
        }
        let lease = format!("{:016x}", rand::random::<u64>());
        let now = clock::now_ms();
        let until = now + self.attempt_budget.as_millis() as i64;
        match self.store.take_slot(webhook.id, &lease, now, until, cap).await {
            Ok(true) => Some(Some(lease)),
            Ok(false) => {
                tracing::info!(cap, "the webhook has its cap of deliveries in flight: this one waits");
                None
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot count the deliveries in flight");
                Some(None)
            }
        }
    }

    pub(super) async fn give_slot(&self, webhook_id: u64, slot: Option<String>) {
        let Some(lease) = slot else { return };
        if let Err(e) = self.store.give_slot(webhook_id, &lease).await {
            tracing::warn!(error = %crate::error::chain(&e), "cannot give the slot back: it frees itself at its expiry");
        }
    }

    /// The webhook, if a delivery may be attempted now; otherwise how long to wait. While the
    /// circuit is open nothing is attempted; once its time is past, the first delivery to claim
    /// the probe (a conditional write) tries the receiver, and the others wait for its answer.
    pub(super) async fn through_circuit(&self, webhook: Webhook, batch: &Batch) -> Result<Webhook, Duration> {
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
            .change_webhook(webhook, batch, |w| {
                (w.circuit_open_until == Some(until))
                    .then(|| Webhook { circuit_open_until: Some(probe_until), ..w.clone() })
            })
            .await;
        match claimed {
            Some(w) => {
                tracing::info!("circuit half-open: this delivery probes the receiver");
                batch.lookups.forget(&(w.vendor_id.clone(), w.id));
                Ok(w)
            }
            None => Err(spread(wait)),
        }
    }
}
