//! The dispatcher: an SQS batch in, each message delivered concurrently, the failures reported
//! back so that SQS retries them alone, after the backoff their attempt calls for.
use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use rand::Rng;
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::{
    clock,
    config::Config,
    delivery::{
        self, Attempt, Deliverer, DeliveryMessage, DeliveryRequest, Failure, HttpDeliverer, Outcome,
        RetrySchedule, MESSAGE_VERSION,
    },
    domain::Webhook,
    metrics,
    notify::Alert,
    queue::{DeliveryQueue, SqsQueue},
    sqs_batch::{self, run_batch, Disposition, MessageWithoutId},
    store::{AttemptLog, AttemptRecord, DynamoStore, NotifyStore, WebhookStore},
};

mod health;

/// Everything dispatch needs, built once per container.
pub struct Dispatcher<S, Q, D> {
    pub store: S,
    pub queue: Q,
    pub deliverer: D,
    pub schedule: RetrySchedule,
    /// A webhook whose every delivery has failed for this long is disabled (`None`: never).
    pub auto_disable_after: Option<Duration>,
    /// Where failure emails are asked for (`None`: emails are off).
    pub emails: Option<Q>,
}

impl Dispatcher<DynamoStore, SqsQueue, HttpDeliverer> {
    /// Builds the deployed dispatcher: `TABLE_NAME`, `DELIVERIES_QUEUE_URL`, `RETRY_SCHEDULE`
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
            deliverer,
            schedule: config.retry_schedule,
            auto_disable_after: config.auto_disable_after,
            emails: config.emails_queue_url.map(|url| SqsQueue::new(sqs, url)),
        })
    }
}

impl<S, Q, D> Dispatcher<S, Q, D>
where
    S: WebhookStore + AttemptLog + NotifyStore,
    Q: DeliveryQueue,
    D: Deliverer,
{
    /// Handles one SQS batch; the answer lists the messages to retry.
    pub async fn handle(&self, event: &SqsEvent) -> Result<SqsBatchResponse, MessageWithoutId> {
        let tally = Tally::default();
        let lookups = Lookups::default();
        let answer = run_batch(event, |record, message: DeliveryMessage| {
            let span = tracing::info_span!("delivery", event_id = %message.event_id, webhook_id = message.webhook_id);
            self.process(record, message, &tally, &lookups).instrument(span)
        })
        .await;
        tally.record().emit();
        answer
    }

    async fn process(
        &self,
        record: &SqsMessage,
        message: DeliveryMessage,
        tally: &Tally,
        lookups: &Lookups,
    ) -> Disposition {
        let receive_count = sqs_batch::receive_count(record);
        if message.v != MESSAGE_VERSION {
            tracing::error!(version = message.v, "unknown message version: left for the dead-letter queue");
            return Disposition::Retry;
        }

        // One read per distinct webhook per batch: the batch's other messages for it wait for
        // that read and share its answer.
        let lookup = lookups
            .cell(&message.vendor_id, message.webhook_id)
            .get_or_init(|| async {
                self.store
                    .get_webhook(&message.vendor_id, message.webhook_id)
                    .await
                    .map_err(|e| crate::error::chain(&e))
            })
            .await
            .clone();
        let webhook = match lookup {
            Ok(Some(w)) => w,
            Ok(None) => {
                tracing::info!("webhook deleted since the event was published: delivery dropped");
                tally.add(|t| t.dropped += 1);
                return self.drop_recorded(record, &message, receive_count, DropReason::Deleted).await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the webhook");
                return self.retry(record, receive_count, None).await;
            }
        };
        if let Some((_, reason)) = &webhook.disabled {
            tracing::info!(reason = %reason, "webhook disabled since the event was published: delivery dropped");
            tally.add(|t| t.dropped += 1);
            return self.drop_recorded(record, &message, receive_count, DropReason::Disabled).await;
        }
        if webhook.event_type != message.event_type {
            tracing::info!("webhook no longer takes this event type: delivery dropped");
            tally.add(|t| t.dropped += 1);
            return self.drop_recorded(record, &message, receive_count, DropReason::TypeChanged).await;
        }

        let timestamp = clock::now();
        let body = message.payload.get().as_bytes();
        let signature = match delivery::signature_header(&webhook, &message.event_id, timestamp, body) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot sign");
                return self.retry(record, receive_count, None).await;
            }
        };
        let attempt = self
            .deliverer
            .deliver(&DeliveryRequest {
                url: &webhook.url,
                authentication: webhook.authentication.as_deref(),
                event_id: &message.event_id,
                timestamp,
                signature: &signature,
                body,
            })
            .await;
        self.log_attempt(&message, receive_count, &attempt).await;
        let ms = attempt.duration.as_secs_f64() * 1000.0;
        tally.add(|t| {
            t.latency_ms.push(ms);
            match &attempt.outcome {
                Outcome::Delivered { .. } => t.delivered += 1,
                Outcome::Rejected { .. } => t.rejected += 1,
                Outcome::Failed { class: Failure::Timeout } => t.timeout += 1,
                Outcome::Failed { class: Failure::Connect } => t.connect += 1,
                Outcome::Failed { class: Failure::RefusedAddress } => t.refused += 1,
                Outcome::Failed { .. } => t.other += 1,
            }
        });

        match attempt.outcome {
            Outcome::Delivered { status } => {
                tracing::info!(
                    status,
                    attempt = receive_count,
                    duration_ms = attempt.duration.as_millis() as u64,
                    "delivered"
                );
                if webhook.failing_since.is_some() {
                    self.change_webhook(webhook, |w| {
                        w.failing_since.map(|_| Webhook { failing_since: None, ..w.clone() })
                    })
                    .await;
                }
                Disposition::Done
            }
            Outcome::Rejected { status: 410, .. } => {
                tracing::warn!("receiver answered 410 Gone: webhook disabled");
                let at = clock::now();
                let disabled = self
                    .change_webhook(webhook, |w| {
                        let disabled = Some((at, "the receiver answered 410 Gone".to_owned()));
                        w.disabled.is_none().then(|| Webhook { disabled, ..w.clone() })
                    })
                    .await;
                if let Some(w) = disabled {
                    self.alert(&w, Alert::Disabled, &attempt, receive_count).await;
                }
                Disposition::Done
            }
            Outcome::Rejected { status, retry_after } => {
                tracing::warn!(status, attempt = receive_count, "delivery rejected");
                self.note_failure(webhook, &attempt, receive_count).await;
                self.retry(record, receive_count, retry_after).await
            }
            Outcome::Failed { class } => {
                tracing::warn!(class = class.as_str(), attempt = receive_count, "delivery failed");
                self.note_failure(webhook, &attempt, receive_count).await;
                self.retry(record, receive_count, None).await
            }
        }
    }

    /// Hides the message for the backoff of its attempt (or not at all after the last, so that
    /// SQS moves it to the dead-letter queue on its next receive) and reports it failed.
    async fn retry(&self, record: &SqsMessage, attempt: u32, retry_after: Option<Duration>) -> Disposition {
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        let delay = self.schedule.delay_after(attempt, retry_after, jitter).unwrap_or(Duration::ZERO);
        if let Some(receipt) = record.receipt_handle.as_deref() {
            if let Err(e) = self.queue.delay(receipt, delay).await {
                // The queue's own visibility timeout applies instead; nothing is lost.
                tracing::warn!(error = %crate::error::chain(&e), "cannot set the retry delay");
            }
        }
        tracing::info!(
            next_in_s = delay.as_secs(),
            last = attempt >= self.schedule.max_attempts(),
            "will retry"
        );
        Disposition::Retry
    }

    /// Drops a delivery on purpose, once the attempt log says so and why: every (event, webhook)
    /// pair ends somewhere a vendor or an operator can see. If the log cannot be written, the
    /// message stays for a later attempt, which drops it again.
    async fn drop_recorded(
        &self,
        record: &SqsMessage,
        message: &DeliveryMessage,
        attempt: u32,
        reason: DropReason,
    ) -> Disposition {
        let dropped = AttemptRecord {
            status: None,
            outcome: reason.as_str().to_owned(),
            duration_ms: 0,
            response_excerpt: String::new(),
            ..attempt_record(message, attempt)
        };
        if self.write_attempt(&dropped).await {
            Disposition::Done
        } else {
            self.retry(record, attempt, None).await
        }
    }

    /// Appends the attempt to the log; false if it could not.
    async fn log_attempt(&self, message: &DeliveryMessage, attempt: u32, a: &Attempt) -> bool {
        let record = AttemptRecord {
            status: a.outcome.status(),
            outcome: a.outcome.label().to_owned(),
            duration_ms: a.duration.as_millis() as u64,
            response_excerpt: a.response_excerpt.clone(),
            ..attempt_record(message, attempt)
        };
        self.write_attempt(&record).await
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

/// The webhook reads of one batch, shared by its messages.
#[derive(Default)]
struct Lookups(std::sync::Mutex<HashMap<(String, u64), Lookup>>);

/// One webhook read: the first message to need it reads, the others wait for its answer.
type Lookup = Arc<OnceCell<Result<Option<Webhook>, String>>>;

impl Lookups {
    fn cell(&self, vendor_id: &str, webhook_id: u64) -> Lookup {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((vendor_id.to_owned(), webhook_id)).or_default().clone()
    }
}

/// What a batch did, for its metrics line.
#[derive(Default)]
struct Tally(std::sync::Mutex<Counts>);

#[derive(Default)]
struct Counts {
    delivered: u64,
    rejected: u64,
    timeout: u64,
    connect: u64,
    refused: u64,
    other: u64,
    dropped: u64,
    latency_ms: Vec<f64>,
}

impl Tally {
    fn add(&self, f: impl FnOnce(&mut Counts)) {
        if let Ok(mut c) = self.0.lock() {
            f(&mut c);
        }
    }

    /// Delivered, failed (all, then by class), dropped, and each attempt's latency.
    fn record(&self) -> metrics::Record {
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
            .millis("AttemptLatency", c.latency_ms)
    }
}

/// Why a delivery was let go without an attempt (the attempt log's outcome says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DropReason {
    /// The webhook was deleted after the event was published.
    Deleted,
    /// The webhook was disabled after the event was published.
    Disabled,
    /// The webhook now takes another event type.
    TypeChanged,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            DropReason::Deleted => "dropped_deleted",
            DropReason::Disabled => "dropped_disabled",
            DropReason::TypeChanged => "dropped_type_changed",
        }
    }
}

/// An attempt record of a delivery, now, for the caller to fill in how it went.
fn attempt_record(message: &DeliveryMessage, attempt: u32) -> AttemptRecord {
    AttemptRecord {
        webhook_id: message.webhook_id,
        vendor_id: message.vendor_id.clone(),
        event_id: message.event_id.clone(),
        attempt,
        status: None,
        outcome: String::new(),
        duration_ms: 0,
        at_ms: clock::now_ms(),
        response_excerpt: String::new(),
    }
}

#[cfg(test)]
mod tests;
