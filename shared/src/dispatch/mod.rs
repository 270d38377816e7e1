//! The dispatcher: an SQS batch in, each message delivered concurrently. A failed attempt is
//! followed by a new message for the next one, delayed by its backoff; after the last, the
//! message goes to the dead-letter queue. Attempts are counted in the message, never by SQS's
//! receive count, so a crash, a timeout or a throttled batch uses none up: SQS's redrive after
//! `maxReceiveCount` receives only parks a message that keeps failing without an attempt.
//!
//! With a slow lane (a second queue with an event source of its own), a webhook that fails
//! cannot hold up the others: retries, held deliveries and every delivery of a webhook whose last
//! attempt failed go there, so the deliveries queue carries only first attempts to webhooks that
//! answer. A hanging receiver then ties up the fast lane for one delivery timeout at most.
//!
//! With a grouped lane (`shared::grouped`), a healthy webhook whose cap SQS can keep has every
//! delivery there, its cap kept by its message groups, not by a lease written for each: what
//! reaches another lane for it (a redelivery, a retry once it is healthy again) is moved there.
use std::{sync::Arc, time::Duration};

use aws_lambda_events::sqs::SqsBatchResponse;
use rand::Rng;
use tracing::Instrument;

use crate::{
    clock,
    config::Config,
    delivery::{
        self, Attempt, CircuitBreaker, Deliverer, DeliveryRequest, HttpDeliverer, Outcome, ReceivedMessage,
        RetrySchedule, MESSAGE_VERSION,
    },
    domain::Webhook,
    grouped,
    notify::Alert,
    queue::{DeliveryQueue, SqsQueue},
    sqs_batch::{Decoded, Disposition, MessageWithoutId, SqsEvent, SqsMessage},
    store::{AttemptLog, AttemptRecord, DeliverySlots, DynamoStore, NotifyStore, WebhookStore},
};

mod batch;
mod health;
mod holds;
mod ordered;

pub use ordered::OrderedLane;

use batch::{attempt_record, Batch, DropReason, Slots, Tally, ATTEMPT_OVERHEAD};

/// Everything dispatch needs, built once per container.
pub struct Dispatcher<S, Q, D> {
    pub store: S,
    pub queue: Q,
    /// Where a delivery goes after its last attempt.
    pub dead_letters: Q,
    pub deliverer: D,
    /// How long one attempt may take at most: none starts closer than this to the deadline.
    pub attempt_budget: Duration,
    pub schedule: RetrySchedule,
    /// A webhook whose every delivery has failed for this long is disabled (`None`: never).
    pub auto_disable_after: Option<Duration>,
    /// Each webhook's circuit breaker (`None`: off).
    pub circuit: Option<CircuitBreaker>,
    /// How many deliveries of a webhook may be in flight at once, unless it sets its own (0: no cap).
    pub max_in_flight: u32,
    /// Where failure emails are asked for (`None`: emails are off).
    pub emails: Option<Q>,
    /// Where retries and the deliveries of failing webhooks go (`None`: the deliveries queue).
    pub slow_lane: Option<Lane<Q>>,
    /// The FIFO queue whose message group is the webhook (`shared::grouped`; `None`: there is
    /// none, and every cap is counted in the store).
    pub grouped: Option<Lane<Q>>,
    /// The FIFO queue of webhooks that keep their order per order (`None`: there is none).
    pub ordered: Option<OrderedLane<Q>>,
}

/// A lane's queue, and its name: a record whose event source ARN ends in it came from that
/// lane (the slow lane, the grouped lane).
pub struct Lane<Q> {
    pub queue: Q,
    pub name: String,
}

impl<Q> Lane<Q> {
    /// Whether `record` came from this lane.
    fn holds(&self, record: &SqsMessage) -> bool {
        holds::came_from(record, &self.name)
    }
}

impl Lane<SqsQueue> {
    /// The lane at `url`: `https://sqs.<region>.amazonaws.com/<account>/<name>`.
    pub fn at(sqs: aws_sdk_sqs::Client, url: &str) -> Self {
        let name = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
        Self { queue: SqsQueue::new(sqs, url), name }
    }
}

impl Dispatcher<DynamoStore, SqsQueue, HttpDeliverer> {
    /// Builds the deployed dispatcher: `TABLE_NAME`, `DELIVERIES_QUEUE_URL`,
    /// `DEAD_LETTER_QUEUE_URL`, `RETRY_SCHEDULE`
    /// (default: the standard schedule), the delivery settings, and with `EMAIL_SENDER` (emails
    /// are off without it) `EMAILS_QUEUE_URL`.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let config = Config::from_env()?;
        let deliverer = HttpDeliverer::new(&config.delivery)?;
        let aws = crate::aws::lambda_sdk_config();
        let sqs = aws_sdk_sqs::Client::new(&aws);
        Ok(Self {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name),
            queue: SqsQueue::new(sqs.clone(), config.require_deliveries_queue()?),
            dead_letters: SqsQueue::new(sqs.clone(), config.require_dead_letter_queue()?),
            attempt_budget: config.delivery.timeout + ATTEMPT_OVERHEAD,
            deliverer,
            schedule: config.retry_schedule,
            auto_disable_after: config.auto_disable_after,
            circuit: config.circuit,
            max_in_flight: config.max_in_flight_per_webhook,
            emails: config.emails_queue_url.map(|url| SqsQueue::new(sqs.clone(), url)),
            ordered: match (&config.ordered_deliveries_queue_url, &config.ordered_dead_letter_queue_url) {
                (Some(url), Some(parked)) => Some(OrderedLane::at(sqs.clone(), url, parked)),
                _ => None,
            },
            grouped: config.grouped_deliveries_queue_url.map(|url| Lane::at(sqs.clone(), &url)),
            slow_lane: config.slow_deliveries_queue_url.map(|url| Lane::at(sqs, &url)),
        })
    }
}

impl<S, Q, D> Dispatcher<S, Q, D>
where
    S: WebhookStore + AttemptLog + NotifyStore + DeliverySlots,
    Q: DeliveryQueue,
    D: Deliverer,
{
    /// Handles one SQS batch, received now, that must be done by `deadline_ms` (Unix
    /// milliseconds; the invocation's deadline); the answer lists the messages to retry.
    pub async fn handle(
        &self,
        event: &SqsEvent,
        deadline_ms: Option<i64>,
    ) -> Result<SqsBatchResponse, MessageWithoutId> {
        let received_ms = clock::now_ms();
        // A deadline already past on arrival says nothing (`cargo lambda watch` sends 0).
        let deadline_ms = deadline_ms.filter(|&d| d > received_ms);
        let messages = Decoded::<ReceivedMessage>::of(event)?;
        let slots = Slots::counting(messages.messages().map(|m| m.webhook_id));
        let tally = Tally::for_records(event.records.len());
        let batch = Batch { received_ms, deadline_ms, slots, tally, ..Batch::default() };
        batch.read_webhooks(&self.store, messages.messages()).await;
        // Only the ordered lane's records have groups to keep in order.
        let groups = match &self.ordered {
            Some(_) => ordered::Groups::of(&event.records),
            None => ordered::Groups::default(),
        };
        let answer = messages
            .run(|record, message| {
                // One span for the delivery, its SQS message's id in it too: the JSON subscriber
                // formats a span's fields as it opens, for every delivery, logged in or not.
                let span = tracing::info_span!(
                    "delivery",
                    message_id = record.message_id.as_deref().unwrap_or_default(),
                    event_id = %message.event_id,
                    webhook_id = message.webhook_id,
                    attempt = message.attempt
                );
                let (groups, batch) = (&groups, &batch);
                async move {
                    let webhook_id = message.webhook_id;
                    // An ordered record waits for those before it in its group, and once one of them
                    // is not done, is handed back untried, right behind it.
                    let done = match (groups.lock(record), self.ordered_lane(record)) {
                        (Some(lock), Some(lane)) => {
                            let mut blocked = lock.lock().await;
                            if *blocked {
                                self.hold(&lane.queue, record, Duration::ZERO).await
                            } else {
                                let done = self.process(record, message, batch).await;
                                *blocked = done == Disposition::Retry;
                                done
                            }
                        }
                        _ => self.process(record, message, batch).await,
                    };
                    self.finish_slots(webhook_id, batch).await;
                    done
                }
                .instrument(span)
            })
            .await;
        batch.tally.log_delivered();
        batch.tally.record().emit();
        Ok(answer)
    }

    async fn process(
        &self,
        record: &SqsMessage,
        mut message: ReceivedMessage<'_>,
        batch: &Batch,
    ) -> Disposition {
        let (tally, lookups) = (&batch.tally, &batch.lookups);
        let lane = self.ordered_lane(record);
        if lane.is_some() {
            message.attempt = self.ordered_attempt(record);
        }
        let attempt_no = message.attempt.max(1);
        if message.v != MESSAGE_VERSION {
            tracing::error!(version = message.v, "unknown message version: left for the dead-letter queue");
            return Disposition::Retry;
        }
        if let Some(due) = message.not_before_ms {
            let now = clock::now_ms();
            if due > now {
                return self.wait(record, Duration::from_millis((due - now) as u64), batch).await;
            }
        }
        if let Some(deadline) = batch.deadline_ms {
            let now = clock::now_ms();
            if now + self.attempt_budget.as_millis() as i64 > deadline {
                tracing::info!(
                    left_ms = deadline - now,
                    "too close to the invocation's deadline to attempt: handed back"
                );
                return self.hand_back(record, &message).await;
            }
        }

        // Read with the batch's others at its start, or else here, once per batch: the batch's
        // other messages for it wait for that read and share its answer.
        let lookup = lookups
            .cell((message.vendor_id.clone(), message.webhook_id))
            .get_or_init(|| async {
                self.store
                    .get_webhook(&message.vendor_id, message.webhook_id)
                    .await
                    .map(|w| w.map(Arc::new))
                    .map_err(|e| crate::error::chain(&e))
            })
            .await
            .clone();
        let webhook = match lookup {
            Ok(Some(w)) => w,
            Ok(None) => {
                tracing::info!("webhook deleted since the event was published: delivery dropped");
                tally.add(|t| t.dropped += 1);
                return self.drop_recorded(&message, DropReason::Deleted).await;
            }
            Err(e) => {
                // Left for its next receive: a message that can never be read is parked by SQS's
                // redrive, after maxReceiveCount receives, with no attempt used up.
                tracing::error!(error = %e, "cannot read the webhook");
                return Disposition::Retry;
            }
        };
        if let Some((_, reason)) = &webhook.disabled {
            tracing::info!(reason = %reason, "webhook disabled since the event was published: delivery dropped");
            tally.add(|t| t.dropped += 1);
            return self.drop_recorded(&message, DropReason::Disabled).await;
        }
        if webhook.event_type != message.event_type {
            tracing::info!("webhook no longer takes this event type: delivery dropped");
            tally.add(|t| t.dropped += 1);
            return self.drop_recorded(&message, DropReason::TypeChanged).await;
        }
        if webhook.failing() && !self.in_slow_lane(record) && lane.is_none() {
            if let Some(lane) = &self.slow_lane {
                tracing::info!("the webhook's last attempt failed: delivery moved to the slow lane");
                tally.add(|t| t.moved += 1);
                return self.requeue_to(&lane.queue, &message, Duration::ZERO).await;
            }
        }
        let in_groups = self.in_grouped_lane(record);
        if let (false, None, Some(to), Some(cap)) =
            (in_groups, lane, &self.grouped, grouped::kept_cap(&webhook, self.max_in_flight))
        {
            if self.move_to_groups(&to.queue, record, &message, cap).await {
                tracing::info!("the webhook is healthy: delivery moved to the grouped lane");
                tally.add(|t| t.grouped += 1);
                return Disposition::Done;
            }
        }
        let webhook = match self.through_circuit(webhook, batch).await {
            Ok(w) => w,
            Err(wait) => {
                tally.add(|t| t.held += 1);
                return match lane {
                    Some(lane) => self.hold(&lane.queue, record, wait).await,
                    None => self.requeue(&message, wait).await,
                };
            }
        };

        let timestamp = clock::now();
        let body = message.payload.get().as_bytes();
        let signature = match delivery::signature_header(&webhook, &message.event_id, timestamp, body) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot sign");
                return Disposition::Retry;
            }
        };
        let Some(slot) = self.take_slot(&webhook, in_groups, batch).await else {
            tracing::info!("the webhook has its cap of deliveries in flight: this one waits");
            tally.add(|t| t.capped += 1);
            let wait = Duration::from_millis(rand::thread_rng().gen_range(1_000..3_000));
            return match lane {
                Some(lane) => self.hold(&lane.queue, record, wait).await,
                None => self.requeue(&message, wait).await,
            };
        };
        let attempt = self
            .deliverer
            .deliver(&DeliveryRequest {
                url: &webhook.url,
                authentication: webhook.authentication.as_deref(),
                headers: &webhook.options.headers,
                event_id: &message.event_id,
                timestamp,
                signature: &signature,
                body,
            })
            .await;
        self.log_attempt(&message, &attempt, timestamp, batch).await;
        self.give_slot(webhook.id, slot).await;
        tally.add(|t| t.attempted(&message, &attempt));

        match attempt.outcome {
            Outcome::Delivered { .. } => {
                // Logged with the batch's other deliveries, in one line (`Tally::log_delivered`).
                if webhook.failing() {
                    let closed = self
                        .change_webhook(Arc::unwrap_or_clone(webhook), batch, |w| {
                            let healthy = w.healthy();
                            (healthy != *w).then_some(healthy)
                        })
                        .await;
                    if closed.is_some() {
                        tracing::info!("delivered: the webhook is healthy again");
                    }
                }
                Disposition::Done
            }
            Outcome::Rejected { status: 410, .. } => {
                tracing::warn!("receiver answered 410 Gone: webhook disabled");
                let at = clock::now();
                let disabled = self
                    .change_webhook(Arc::unwrap_or_clone(webhook), batch, |w| {
                        let disabled = Some((at, "the receiver answered 410 Gone".to_owned()));
                        w.disabled.is_none().then(|| Webhook { disabled, ..w.clone() })
                    })
                    .await;
                if let Some(w) = disabled {
                    self.alert(&w, Alert::Disabled, &attempt, attempt_no).await;
                }
                Disposition::Done
            }
            Outcome::Rejected { status, retry_after } => {
                tracing::warn!(status, "delivery rejected");
                self.note_failure(Arc::unwrap_or_clone(webhook), &attempt, attempt_no, batch).await;
                // Only a 429 or a 503 says when to come back.
                let retry_after = retry_after.filter(|_| matches!(status, 429 | 503));
                match lane {
                    Some(lane) => self.retry_in_place(lane, record, &message, retry_after).await,
                    None => self.retry(record, message, retry_after).await,
                }
            }
            Outcome::Failed { class } => {
                tracing::warn!(class = class.as_str(), "delivery failed");
                self.note_failure(Arc::unwrap_or_clone(webhook), &attempt, attempt_no, batch).await;
                match lane {
                    Some(lane) => self.retry_in_place(lane, record, &message, None).await,
                    None => self.retry(record, message, None).await,
                }
            }
        }
    }

    /// Drops a delivery on purpose, once the attempt log says so and why: every (event, webhook)
    /// pair ends somewhere a vendor or an operator can see. If the log cannot be written, the
    /// message stays for a later attempt, which drops it again.
    async fn drop_recorded(&self, message: &ReceivedMessage<'_>, reason: DropReason) -> Disposition {
        let dropped = AttemptRecord {
            status: None,
            outcome: reason.as_str().to_owned(),
            duration_ms: 0,
            response_excerpt: String::new(),
            ..attempt_record(message)
        };
        if self.write_attempt(&dropped).await {
            Disposition::Done
        } else {
            Disposition::Retry
        }
    }

    /// Appends the attempt, signed at `timestamp`, to the log, with the batch's others that
    /// ended about the same time (a record that cannot be written is logged, and lost).
    async fn log_attempt(&self, message: &ReceivedMessage<'_>, a: &Attempt, timestamp: i64, batch: &Batch) {
        let record = AttemptRecord {
            signed_at: Some(timestamp),
            status: a.outcome.status(),
            outcome: a.outcome.label().to_owned(),
            duration_ms: a.duration.as_millis() as u64,
            response_excerpt: a.response_excerpt.clone(),
            ..attempt_record(message)
        };
        batch.journal.write(&self.store, record).await
    }

    /// Writes an attempt record; false if it could not.
    async fn write_attempt(&self, record: &AttemptRecord) -> bool {
        match self.store.record_attempt(record).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "cannot record the attempt");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests;
