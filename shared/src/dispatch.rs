//! The dispatcher: an SQS batch in, each message delivered concurrently, the failures reported
//! back so that SQS retries them alone, after the backoff their attempt calls for.
use std::{collections::HashMap, sync::Arc, time::Duration};

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use rand::Rng;
use tokio::sync::OnceCell;
use tracing::Instrument;

use crate::{
    clock,
    config::ConfigError,
    delivery::{
        self, Attempt, Deliverer, DeliveryMessage, DeliveryRequest, DeliverySettings, Failure, HttpDeliverer,
        Outcome, RetrySchedule, MESSAGE_VERSION,
    },
    domain::Webhook,
    mail::{MailError, Mailer, SesMailer},
    metrics,
    notify::{self, Alert, OrderMailMessage, Topic},
    queue::{DeliveryQueue, SqsQueue},
    store::{
        AttemptLog, AttemptRecord, Conflict, DynamoStore, MailClaim, NotifyStore, StoreError, WebhookStore,
    },
};

/// How long a claim on an order email holds before another attempt may take it over: longer
/// than an SES call may take (10 s at most, see `SesMailer::from_env`).
const MAIL_LEASE_SECS: i64 = 30;

/// A batch the dispatcher cannot answer for message by message.
#[derive(Debug, thiserror::Error)]
#[error("a message of the batch has no id: the whole batch is retried")]
pub struct MessageWithoutId;

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Delivered, or dropped on purpose (its webhook is gone): delete it.
    Done,
    /// Failed: leave it in the queue for its next attempt, or the DLQ after the last.
    Retry,
}

/// Everything dispatch needs, built once per container.
pub struct Dispatcher<S, Q, D, M = SesMailer> {
    pub store: S,
    pub queue: Q,
    pub deliverer: D,
    pub schedule: RetrySchedule,
    /// A webhook whose every delivery has failed for this long is disabled (`None`: never).
    pub auto_disable_after: Option<Duration>,
    /// Sends vendors' order and failure emails (`None`: emails are off).
    pub mailer: Option<M>,
}

impl Dispatcher<DynamoStore, SqsQueue, HttpDeliverer, SesMailer> {
    /// Builds the deployed dispatcher: `TABLE_NAME`, `DELIVERIES_QUEUE_URL`, `RETRY_SCHEDULE`
    /// (default: the standard schedule), the delivery settings, and `EMAIL_SENDER` (emails are
    /// off without it).
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let table = std::env::var("TABLE_NAME").map_err(|_| ConfigError::new("TABLE_NAME", "is not set"))?;
        let queue_url = std::env::var("DELIVERIES_QUEUE_URL")
            .map_err(|_| ConfigError::new("DELIVERIES_QUEUE_URL", "is not set"))?;
        let schedule = match std::env::var("RETRY_SCHEDULE") {
            Ok(spec) => RetrySchedule::parse(&spec).map_err(|e| ConfigError::new("RETRY_SCHEDULE", e))?,
            Err(_) => RetrySchedule::standard(),
        };
        // `AUTO_DISABLE_AFTER`: 5 days unless set; `off` never disables.
        let auto_disable_after = match std::env::var("AUTO_DISABLE_AFTER").as_deref() {
            Err(_) => Some(Duration::from_secs(5 * 86400)),
            Ok("off") => None,
            Ok(spec) => {
                Some(delivery::parse_duration(spec).map_err(|e| ConfigError::new("AUTO_DISABLE_AFTER", e))?)
            }
        };
        let deliverer = HttpDeliverer::new(&DeliverySettings::from_env()?)?;
        let aws = crate::aws::sdk_config().await;
        Ok(Self {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(&aws), queue_url),
            deliverer,
            schedule,
            auto_disable_after,
            mailer: SesMailer::from_env().await,
        })
    }
}

impl<S, Q, D, M> Dispatcher<S, Q, D, M>
where
    S: WebhookStore + AttemptLog + NotifyStore,
    Q: DeliveryQueue,
    D: Deliverer,
    M: Mailer,
{
    /// Handles one SQS batch; the answer lists the messages to retry.
    pub async fn handle(&self, event: &SqsEvent) -> Result<SqsBatchResponse, MessageWithoutId> {
        let mut ids = Vec::with_capacity(event.records.len());
        for record in &event.records {
            match record.message_id.as_deref() {
                Some(id) if !id.is_empty() => ids.push(id),
                _ => {
                    tracing::error!("SQS message without an id");
                    return Err(MessageWithoutId);
                }
            }
        }
        let tally = Tally::default();
        let lookups = Lookups::default();
        let dispositions = futures_util::future::join_all(event.records.iter().zip(&ids).map(|(record, id)| {
            let span = tracing::info_span!("message", message_id = %id, event_id = tracing::field::Empty, webhook_id = tracing::field::Empty);
            self.process(record, &tally, &lookups).instrument(span)
        }))
        .await;
        tally.record().emit();
        let mut response = SqsBatchResponse::default();
        for (id, d) in ids.iter().zip(dispositions) {
            if d == Disposition::Retry {
                response.add_failure(*id);
            }
        }
        Ok(response)
    }

    async fn process(&self, record: &SqsMessage, tally: &Tally, lookups: &Lookups) -> Disposition {
        let receive_count: u32 =
            record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
        let Some(body) = record.body.as_deref() else {
            tracing::error!("message without a body: left for the dead-letter queue");
            return Disposition::Retry;
        };
        let message = match serde_json::from_str::<DeliveryMessage>(body) {
            Ok(m) if m.v == MESSAGE_VERSION => m,
            Ok(m) => {
                tracing::error!(version = m.v, "unknown message version: left for the dead-letter queue");
                return Disposition::Retry;
            }
            Err(e) => match serde_json::from_str::<OrderMailMessage>(body) {
                Ok(mail) => return self.order_mail(record, receive_count, mail, tally).await,
                Err(_) => {
                    tracing::error!(error = %e, "undecodable message: left for the dead-letter queue");
                    return Disposition::Retry;
                }
            },
        };
        let span = tracing::Span::current();
        span.record("event_id", message.event_id.as_str());
        span.record("webhook_id", message.webhook_id);

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
                    self.alert(&w, Alert::Disabled, &attempt, receive_count, tally).await;
                }
                Disposition::Done
            }
            Outcome::Rejected { status, retry_after } => {
                tracing::warn!(status, attempt = receive_count, "delivery rejected");
                self.note_failure(webhook, &attempt, receive_count, tally).await;
                self.retry(record, receive_count, retry_after).await
            }
            Outcome::Failed { class } => {
                tracing::warn!(class = class.as_str(), attempt = receive_count, "delivery failed");
                self.note_failure(webhook, &attempt, receive_count, tally).await;
                self.retry(record, receive_count, None).await
            }
        }
    }

    /// Emails the vendor about an order event, once per order (see [`notify::order_mail_key`]):
    /// a claim before sending keeps concurrent and repeated messages from sending it again.
    async fn order_mail(
        &self,
        record: &SqsMessage,
        attempt: u32,
        m: OrderMailMessage,
        tally: &Tally,
    ) -> Disposition {
        let span = tracing::Span::current();
        span.record("event_id", m.event_id.as_str());
        if m.v != MESSAGE_VERSION || m.mail != "order" {
            tracing::error!(version = m.v, kind = %m.mail, "unknown email message: left for the dead-letter queue");
            return Disposition::Retry;
        }
        let Some(mailer) = &self.mailer else {
            tracing::info!("emails are off (no EMAIL_SENDER): order email not sent");
            return Disposition::Done;
        };
        let settings = match self.store.get_notifications(&m.vendor_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "cannot read the vendor's notification settings");
                return self.retry(record, attempt, None).await;
            }
        };
        let to = Topic::of_event(m.event_type).and_then(|t| settings.as_ref()?.address_for(t));
        let Some(to) = to else {
            tracing::info!("the vendor no longer takes this email: not sent");
            return Disposition::Done;
        };
        let payload = m.payload.get();
        let Some((order_no, mail)) = notify::order_mail(&m.vendor_id, to, m.event_type, payload) else {
            tracing::error!("the event is not an order: no email");
            return Disposition::Done;
        };
        let key = notify::order_mail_key(&m.vendor_id, m.event_type, &order_no);
        let token = format!("{:016x}", rand::random::<u64>());
        match self.store.claim_mail(&key, &token, clock::now(), MAIL_LEASE_SECS).await {
            Ok(MailClaim::Claimed) => {}
            Ok(MailClaim::Settled) => {
                tracing::info!("this order's email was sent already: not again");
                return Disposition::Done;
            }
            Ok(MailClaim::Busy) => {
                tracing::info!("another attempt is sending this order's email");
                return self.retry(record, attempt, None).await;
            }
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "cannot claim the order email");
                return self.retry(record, attempt, None).await;
            }
        }
        let sent = mailer.send(&mail).await;
        let settled =
            self.store.settle_mail(&key, &token, !matches!(sent, Err(MailError::Unavailable(_)))).await;
        if let Err(e) = settled {
            // The claim lapses after its lease: at worst the email goes out once more.
            tracing::error!(error = %crate::error::chain(&e), "cannot settle the order email's claim");
        }
        match sent {
            Ok(id) => {
                tracing::info!(ses_message_id = %id, event_type = %m.event_type, "order email sent");
                tally.add(|t| t.mails_sent += 1);
                Disposition::Done
            }
            Err(MailError::Refused(why)) => {
                self.refused(&m.vendor_id, to, &why, tally).await;
                Disposition::Done
            }
            Err(MailError::Unavailable(why)) => {
                tracing::warn!(error = %why, "cannot send the order email now");
                tally.add(|t| t.mails_failed += 1);
                self.retry(record, attempt, None).await
            }
        }
    }

    /// Tells the vendor (if it asked to be told of failures) that a webhook is failing, gave a
    /// delivery up, or was disabled: at most one email per webhook per hour, each kind once per
    /// incident. Best effort: it never changes what becomes of the delivery.
    async fn alert(&self, webhook: &Webhook, alert: Alert, last: &Attempt, attempts: u32, tally: &Tally) {
        let Some(mailer) = &self.mailer else { return };
        let settings = match self.store.get_notifications(&webhook.vendor_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot read the vendor's notification settings");
                return;
            }
        };
        let Some(to) = settings.as_ref().and_then(|s| s.address_for(Topic::Failures)) else { return };
        let now = clock::now();
        let interval = notify::ALERT_INTERVAL_SECS;
        match self.store.open_alert(webhook.id, alert.as_str(), webhook.failing_since, now, interval).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    alert = alert.as_str(),
                    "failure email held back: the vendor was told already"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot record the failure email");
                return;
            }
        }
        let mail = notify::alert_mail(to, alert, webhook, &last_error(last), attempts);
        match mailer.send(&mail).await {
            Ok(id) => {
                tracing::info!(alert = alert.as_str(), ses_message_id = %id, "failure email sent");
                tally.add(|t| t.mails_sent += 1);
            }
            Err(MailError::Refused(why)) => self.refused(&webhook.vendor_id, to, &why, tally).await,
            Err(MailError::Unavailable(why)) => {
                tracing::warn!(error = %why, "cannot send the failure email now");
                tally.add(|t| t.mails_failed += 1);
                if let Err(e) = self.store.cancel_alert(webhook.id, now).await {
                    tracing::warn!(error = %crate::error::chain(&e), "cannot take the failure email back");
                }
            }
        }
    }

    /// SES refused a vendor's address: recorded (the vendor sees it in its settings), and
    /// nothing more is sent to it until the vendor sets an address again.
    async fn refused(&self, vendor_id: &str, email: &str, why: &str, tally: &Tally) {
        tracing::warn!(reason = %why, "SES refused the vendor's address: no more emails to it until it is set again");
        tally.add(|t| t.mails_refused += 1);
        if let Err(e) = self.store.refuse_email(vendor_id, email, clock::now(), why).await {
            tracing::error!(error = %crate::error::chain(&e), "cannot record the refused address");
        }
    }

    /// Remembers since when a webhook's deliveries fail, and disables it once that is longer
    /// than `auto_disable_after`: its deliveries then stop, and the vendor sees why in `GET`.
    /// The vendor is told after the [`notify::FAILING_ALERT_AFTER`]th failed attempt, after the
    /// last, and when the webhook is disabled.
    async fn note_failure(&self, webhook: Webhook, last: &Attempt, attempt: u32, tally: &Tally) {
        let now = clock::now();
        if attempt >= self.schedule.max_attempts() {
            self.alert(&webhook, Alert::DeadLettered, last, attempt, tally).await;
        } else if attempt == notify::FAILING_ALERT_AFTER {
            self.alert(&webhook, Alert::Failing, last, attempt, tally).await;
        }
        // With auto-disable off there is nothing to remember: no write per failure.
        let Some(window) = self.auto_disable_after.map(|d| d.as_secs() as i64) else { return };
        match webhook.failing_since {
            Some(since) if now - since >= window => {
                tracing::warn!(
                    failing_since = since,
                    "deliveries have failed for too long: webhook disabled"
                );
                let disabled = self
                    .change_webhook(webhook, |w| match w.failing_since {
                        Some(since) if w.disabled.is_none() && now - since >= window => {
                            let reason = format!(
                                "every delivery has failed since {} ({} or longer)",
                                clock::rfc3339(since),
                                humanize(window)
                            );
                            Some(Webhook { disabled: Some((now, reason)), ..w.clone() })
                        }
                        _ => None,
                    })
                    .await;
                if let Some(w) = disabled {
                    self.alert(&w, Alert::Disabled, last, attempt, tally).await;
                }
            }
            Some(_) => {}
            None => {
                self.change_webhook(webhook, |w| {
                    w.failing_since.is_none().then(|| Webhook { failing_since: Some(now), ..w.clone() })
                })
                .await;
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

    /// Writes `change` of the webhook (`None`: nothing to change), re-reading it if another
    /// writer got there first; the webhook as written, if this call wrote it. Best effort: a
    /// failure here must not fail the delivery.
    async fn change_webhook(
        &self,
        mut webhook: Webhook,
        change: impl Fn(&Webhook) -> Option<Webhook>,
    ) -> Option<Webhook> {
        for _ in 0..3 {
            let next = change(&webhook)?;
            let next = Webhook { version: webhook.version + 1, ..next };
            match self.store.replace_webhook(&webhook, &next).await {
                Ok(()) => return Some(next),
                Err(StoreError::Conflict(Conflict::Concurrent)) => {
                    webhook = self.store.get_webhook(&webhook.vendor_id, webhook.id).await.ok()??;
                }
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "cannot update the webhook");
                    return None;
                }
            }
        }
        None
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
    mails_sent: u64,
    mails_failed: u64,
    mails_refused: u64,
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
            .count("EmailsSent", c.mails_sent)
            .count("EmailsFailed", c.mails_failed)
            .count("EmailsRefused", c.mails_refused)
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

/// The last error of a delivery as a vendor reads it in an email: the status and the start of
/// the answer, or why there was none.
fn last_error(a: &Attempt) -> String {
    match &a.outcome {
        Outcome::Delivered { status } => format!("none (the endpoint answered {status})"),
        Outcome::Rejected { status, .. } => {
            let excerpt: String = a.response_excerpt.chars().take(200).collect();
            let excerpt = excerpt.trim();
            if excerpt.is_empty() {
                format!("the endpoint answered HTTP {status}")
            } else {
                format!("the endpoint answered HTTP {status}: {excerpt}")
            }
        }
        Outcome::Failed { class: Failure::Timeout } => "no answer within the delivery timeout".to_owned(),
        Outcome::Failed { class: Failure::Connect } => "could not connect to the endpoint".to_owned(),
        Outcome::Failed { class: Failure::RefusedAddress } => {
            "the URL resolves to an address deliveries may not go to (private or internal)".to_owned()
        }
        Outcome::Failed { class } => format!("the delivery failed ({})", class.as_str()),
    }
}

/// `5 days`, `15 seconds`: a window as people say it.
fn humanize(secs: i64) -> String {
    let (n, unit) = match secs {
        s if s % 86400 == 0 => (s / 86400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::{
        domain::EventType,
        queue::QueueError,
        store::{MemoryStore, WebhookStore},
    };

    struct Answers200;
    impl Deliverer for Answers200 {
        async fn deliver(&self, _: &DeliveryRequest<'_>) -> Attempt {
            Attempt {
                outcome: Outcome::Delivered { status: 200 },
                duration: Duration::ZERO,
                response_excerpt: String::new(),
            }
        }
    }

    struct NoQueue;
    impl DeliveryQueue for NoQueue {
        async fn send_all(&self, _: Vec<String>) -> Result<(), QueueError> {
            Ok(())
        }
        async fn delay(&self, _: &str, _: Duration) -> Result<(), QueueError> {
            Ok(())
        }
    }

    /// A dispatcher over `store` whose receivers all answer 200, without auto-disable.
    fn dispatcher<S: WebhookStore + AttemptLog>(store: S) -> Dispatcher<S, NoQueue, Answers200> {
        with_mailer(store, Answers200, None)
    }

    fn with_mailer<S, D, M>(store: S, deliverer: D, mailer: Option<M>) -> Dispatcher<S, NoQueue, D, M> {
        Dispatcher {
            store,
            queue: NoQueue,
            deliverer,
            schedule: RetrySchedule::standard(),
            auto_disable_after: None,
            mailer,
        }
    }

    struct Answers500;
    impl Deliverer for Answers500 {
        async fn deliver(&self, _: &DeliveryRequest<'_>) -> Attempt {
            Attempt {
                outcome: Outcome::Rejected { status: 500, retry_after: None },
                duration: Duration::ZERO,
                response_excerpt: "upstream down".into(),
            }
        }
    }

    /// A mailer that keeps what it sends, or answers `fail` while it is set.
    #[derive(Default)]
    struct Outbox {
        sent: std::sync::Mutex<Vec<notify::Mail>>,
        fail: std::sync::Mutex<Option<MailError>>,
    }
    impl Mailer for &Outbox {
        async fn send(&self, mail: &notify::Mail) -> Result<String, MailError> {
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(e);
            }
            self.sent.lock().unwrap().push(mail.clone());
            Ok("ses-1".into())
        }
    }

    fn order_message(i: usize, order_no: &str) -> SqsMessage {
        let body = format!(
            r#"{{"v":1,"mail":"order","eventId":"evt_{i}","eventType":"new_order","vendorId":"ven_x","publishedAt":1,"payload":{{"orderNo":"{order_no}","type":"new_order","items":[{{"skuNr":"S1","itemName":"Mug","itemQuantity":2,"itemPrice":30,"itemTotal":60}}]}}}}"#
        );
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.receipt_handle = Some(format!("r{i}"));
        m.body = Some(body);
        m
    }

    fn opted_in(store: &MemoryStore, topics: &[Topic]) {
        store.notifications.lock().unwrap().insert(
            "ven_x".into(),
            notify::Notifications {
                email: Some("vendor@example.com".into()),
                topics: topics.to_vec(),
                ..Default::default()
            },
        );
    }

    async fn run<S, D, M>(d: &Dispatcher<S, NoQueue, D, M>, records: Vec<SqsMessage>) -> Vec<String>
    where
        S: WebhookStore + AttemptLog + NotifyStore,
        D: Deliverer,
        M: Mailer,
    {
        let mut event = SqsEvent::default();
        event.records = records;
        let answer = d.handle(&event).await.unwrap();
        answer.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }

    #[tokio::test]
    async fn an_order_is_emailed_once_however_often_its_message_comes() {
        let outbox = Outbox::default();
        let store = MemoryStore::default();
        opted_in(&store, &[Topic::NewOrder]);
        let d = with_mailer(store, Answers200, Some(&outbox));
        // The same order twice in one batch, again in a later one, and under another event id.
        assert!(run(&d, vec![order_message(1, "1000-1"), order_message(1, "1000-1")]).await.is_empty());
        assert!(run(&d, vec![order_message(1, "1000-1"), order_message(2, "1000-1")]).await.is_empty());
        let sent = outbox.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            (sent[0].to.as_str(), sent[0].subject.as_str()),
            ("vendor@example.com", "New order 1000-1")
        );
        assert!(run(&d, vec![order_message(3, "1000-2")]).await.is_empty());
        assert_eq!(outbox.sent.lock().unwrap().len(), 2, "another order, another email");
    }

    #[tokio::test]
    async fn nothing_is_emailed_to_a_vendor_who_did_not_opt_in() {
        let outbox = Outbox::default();
        let store = MemoryStore::default();
        opted_in(&store, &[Topic::OrderCancellation, Topic::Failures]);
        let d = with_mailer(store, Answers200, Some(&outbox));
        assert!(run(&d, vec![order_message(1, "1000-1")]).await.is_empty());
        assert!(outbox.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unavailable_ses_retries_and_a_refused_address_is_recorded_and_not_retried() {
        let outbox = Outbox::default();
        let store = MemoryStore::default();
        opted_in(&store, &[Topic::NewOrder]);
        let d = with_mailer(store, Answers200, Some(&outbox));
        *outbox.fail.lock().unwrap() = Some(MailError::Unavailable("throttled".into()));
        assert_eq!(run(&d, vec![order_message(1, "1000-1")]).await, ["m1"], "comes back for another attempt");
        *outbox.fail.lock().unwrap() = None;
        assert!(run(&d, vec![order_message(1, "1000-1")]).await.is_empty());
        assert_eq!(outbox.sent.lock().unwrap().len(), 1, "the claim was released, the retry sent it");

        *outbox.fail.lock().unwrap() = Some(MailError::Refused("MessageRejected: not verified".into()));
        assert!(run(&d, vec![order_message(2, "1000-2")]).await.is_empty(), "not retried");
        let n = d.store.notifications.lock().unwrap().get("ven_x").cloned().unwrap();
        assert_eq!(n.refused.map(|r| r.1).as_deref(), Some("MessageRejected: not verified"));
        *outbox.fail.lock().unwrap() = None;
        assert!(run(&d, vec![order_message(3, "1000-3")]).await.is_empty());
        assert_eq!(outbox.sent.lock().unwrap().len(), 1, "nothing more to a refused address");
    }

    #[tokio::test]
    async fn a_failure_storm_sends_one_email_per_webhook() {
        let outbox = Outbox::default();
        let store = MemoryStore::default();
        opted_in(&store, &[Topic::Failures]);
        let mut w = crate::domain::tests::webhook();
        w.vendor_id = "ven_x".into();
        w.event_type = EventType::NewOrder;
        w.previous_secret = None;
        store.insert_webhook(&w).await.unwrap();
        let d = with_mailer(store, Answers500, Some(&outbox));
        let at = |i: usize, attempt: u32| {
            let mut m = message(i, w.id);
            m.attributes.insert("ApproximateReceiveCount".into(), attempt.to_string());
            m
        };
        // Attempts 1 to 3 tell nobody; the fourth of many deliveries tells the vendor once; the
        // last attempts (the dead-letter queue) are held back within the hour.
        assert_eq!(run(&d, (0..5).map(|i| at(i, 3)).collect()).await.len(), 5);
        assert!(outbox.sent.lock().unwrap().is_empty());
        run(&d, (0..5).map(|i| at(i, 4)).collect()).await;
        run(&d, (0..5).map(|i| at(i, RetrySchedule::standard().max_attempts())).collect()).await;
        let sent = outbox.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].subject, format!("Webhook {} is failing", w.id));
        assert!(sent[0].text.contains("Last error: the endpoint answered HTTP 500: upstream down"));
    }

    fn message(i: usize, webhook_id: u64) -> SqsMessage {
        let body = format!(
            r#"{{"v":1,"eventId":"evt_{i}","eventType":"new_order","vendorId":"ven_x","webhookId":{webhook_id},"publishedAt":1,"payload":{{"orderNo":"1"}}}}"#
        );
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.receipt_handle = Some(format!("r{i}"));
        m.body = Some(body);
        m
    }

    /// The memory store, but the attempt log is down.
    struct LogDown(MemoryStore);
    impl WebhookStore for LogDown {
        async fn insert_webhook(&self, w: &Webhook) -> Result<(), crate::store::StoreError> {
            self.0.insert_webhook(w).await
        }
        async fn get_webhook(&self, v: &str, id: u64) -> Result<Option<Webhook>, crate::store::StoreError> {
            self.0.get_webhook(v, id).await
        }
        async fn list_webhooks(&self, v: &str) -> Result<Vec<Webhook>, crate::store::StoreError> {
            self.0.list_webhooks(v).await
        }
        async fn replace_webhook(&self, c: &Webhook, n: &Webhook) -> Result<(), crate::store::StoreError> {
            self.0.replace_webhook(c, n).await
        }
        async fn delete_webhook(&self, w: &Webhook) -> Result<(), crate::store::StoreError> {
            self.0.delete_webhook(w).await
        }
    }
    impl NotifyStore for LogDown {
        async fn get_notifications(&self, v: &str) -> Result<Option<notify::Notifications>, StoreError> {
            self.0.get_notifications(v).await
        }
        async fn put_notifications(&self, v: &str, n: &notify::Notifications) -> Result<(), StoreError> {
            self.0.put_notifications(v, n).await
        }
        async fn refuse_email(&self, v: &str, e: &str, at: i64, why: &str) -> Result<(), StoreError> {
            self.0.refuse_email(v, e, at, why).await
        }
        async fn claim_mail(&self, k: &str, t: &str, now: i64, lease: i64) -> Result<MailClaim, StoreError> {
            self.0.claim_mail(k, t, now, lease).await
        }
        async fn settle_mail(&self, k: &str, t: &str, sent: bool) -> Result<(), StoreError> {
            self.0.settle_mail(k, t, sent).await
        }
        async fn open_alert(
            &self,
            id: u64,
            kind: &str,
            incident: Option<i64>,
            now: i64,
            interval: i64,
        ) -> Result<bool, StoreError> {
            self.0.open_alert(id, kind, incident, now, interval).await
        }
        async fn cancel_alert(&self, id: u64, at: i64) -> Result<(), StoreError> {
            self.0.cancel_alert(id, at).await
        }
    }
    impl AttemptLog for LogDown {
        async fn record_attempt(&self, _: &AttemptRecord) -> Result<(), crate::store::StoreError> {
            Err(crate::store::StoreError::Backend("the emulator is away".into()))
        }
        async fn attempts_page(
            &self,
            _: u64,
            _: i32,
            _: Option<&str>,
        ) -> Result<(Vec<AttemptRecord>, Option<String>), crate::store::StoreError> {
            Ok((Vec::new(), None))
        }
        async fn list_attempts(
            &self,
            _: u64,
            _: i32,
        ) -> Result<Vec<AttemptRecord>, crate::store::StoreError> {
            Ok(Vec::new())
        }
    }

    /// Found by the soak: a drop must be recorded before the message is let go.
    #[tokio::test]
    async fn a_drop_that_cannot_be_recorded_keeps_its_message() {
        let mut w = crate::domain::tests::webhook();
        w.disabled = Some((1, "the receiver answered 410 Gone".into()));
        let store = LogDown(MemoryStore::default());
        store.insert_webhook(&w).await.unwrap();
        let dispatcher = dispatcher(store);
        let mut event = SqsEvent::default();
        event.records = vec![message(1, w.id), message(2, 424242)];
        let answer = dispatcher.handle(&event).await.unwrap();
        let retried: Vec<&str> =
            answer.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(retried, ["m1", "m2"], "both drops (disabled, deleted) come back until recorded");
    }

    #[tokio::test]
    async fn a_batch_reads_each_distinct_webhook_once() {
        let mut w = crate::domain::tests::webhook();
        w.previous_secret = None;
        w.event_type = EventType::NewOrder;
        let store = MemoryStore::default();
        store.insert_webhook(&w).await.unwrap();
        let dispatcher = dispatcher(store);
        let mut event = SqsEvent::default();
        event.records = (0..9).map(|i| message(i, w.id)).collect();
        event.records.push(message(9, 424242));
        let answer = dispatcher.handle(&event).await.unwrap();
        assert!(answer.batch_item_failures.is_empty(), "delivered, or dropped (the unknown webhook)");
        assert_eq!(dispatcher.store.reads.load(Ordering::Relaxed), 2, "two distinct webhooks, two reads");
        assert_eq!(dispatcher.store.attempts.load(Ordering::Relaxed), 10, "nine delivered, one dropped");
    }
}
