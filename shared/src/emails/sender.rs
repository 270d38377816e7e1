//! `send-email`: the consumer of the emails queue. An order email goes out once per order, a
//! failure email as its sender asked; SES's refusal of an address is recorded, and nothing more
//! is sent to that address until the vendor sets one again.
use aws_lambda_events::sqs::SqsBatchResponse;

use super::{AlertEmail, EmailMessage, OrderEmail};
use crate::{
    clock,
    mail::{MailError, Mailer, SesMailer},
    metrics,
    notify::{self, Topic},
    sqs_batch::{run_batch, Disposition, MessageWithoutId, SqsEvent},
    store::{DynamoStore, MailClaim, NotifyStore, WebhookStore},
};

/// How long a claim on an order email holds before another attempt may take it over: longer
/// than an SES call may take (10 s at most, see `SesMailer::from_config`).
const MAIL_LEASE_SECS: i64 = 30;

/// Everything `send-email` needs, built once per container.
pub struct EmailSender<S, M = SesMailer> {
    pub store: S,
    /// `None`: emails are off (no `EMAIL_SENDER`), and what arrives is let go.
    pub mailer: Option<M>,
}

impl EmailSender<DynamoStore, SesMailer> {
    /// Builds the deployed sender: `TABLE_NAME`, `EMAIL_SENDER` and `EMAIL_CONFIGURATION_SET`.
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let config = crate::config::Config::from_env()?;
        let aws = crate::aws::lambda_sdk_config();
        Ok(Self {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name),
            mailer: SesMailer::from_config(&config, &aws),
        })
    }
}

/// An email that went to SES: the address, and what SES answered.
type Sent = (String, Result<String, MailError>);

/// What a batch sent, for its metrics line.
#[derive(Default)]
struct Counts {
    sent: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicU64,
    misconfigured: std::sync::atomic::AtomicU64,
}

impl<S: WebhookStore + NotifyStore, M: Mailer> EmailSender<S, M> {
    /// Handles one SQS batch; the answer lists the messages to retry.
    pub async fn handle(&self, event: &SqsEvent) -> Result<SqsBatchResponse, MessageWithoutId> {
        let counts = Counts::default();
        let answer = run_batch(event, |_, message: EmailMessage| self.send(message, &counts)).await;
        let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        metrics::Record::new("send-email")
            .count("EmailsSent", n(&counts.sent))
            .count("EmailsFailed", n(&counts.failed))
            .count("EmailsRefused", n(&counts.refused))
            .count("EmailsMisconfigured", n(&counts.misconfigured))
            .emit();
        answer
    }

    async fn send(&self, message: EmailMessage, counts: &Counts) -> Disposition {
        let Some(mailer) = &self.mailer else {
            tracing::info!("emails are off (no EMAIL_SENDER): not sent");
            return Disposition::Done;
        };
        let attempt = match &message {
            EmailMessage::Order(o) => self.order(mailer, o).await,
            EmailMessage::Alert(a) => self.alert(mailer, a).await,
        };
        let (to, sent) = match attempt {
            Ok(Some(sending)) => sending,
            Ok(None) => return Disposition::Done,
            Err(()) => return Disposition::Retry,
        };
        let vendor_id = message.vendor_id();
        let bump = |c: &std::sync::atomic::AtomicU64| c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match sent {
            Ok(id) => {
                tracing::info!(ses_message_id = %id, "email sent");
                bump(&counts.sent);
                Disposition::Done
            }
            Err(MailError::Refused(why)) => {
                tracing::warn!(reason = %why, "SES refused the vendor's address: no more emails to it until it is set again");
                bump(&counts.refused);
                if let Err(e) = self.store.refuse_email(vendor_id, &to, clock::now(), &why).await {
                    tracing::error!(error = %crate::error::chain(&e), "cannot record the refused address");
                }
                Disposition::Done
            }
            Err(MailError::Unavailable(why)) => {
                tracing::warn!(error = %why, "cannot send the email now: it comes back after the queue's visibility timeout");
                bump(&counts.failed);
                Disposition::Retry
            }
            Err(MailError::Misconfigured(why)) => {
                // The operator's to fix; the vendor's address is not marked refused.
                tracing::error!(error = %why, "SES refused the sender identity: verify EMAIL_SENDER in SES; the email is kept for a retry");
                bump(&counts.misconfigured);
                Disposition::Retry
            }
        }
    }

    /// Sends an order email, once per order (see [`notify::order_mail_key`]): a claim before
    /// sending keeps concurrent and repeated messages from sending it again. `Ok(None)`: nothing
    /// to send; `Err`: try again later.
    async fn order(&self, mailer: &M, m: &OrderEmail) -> Result<Option<Sent>, ()> {
        let Some(to) = self.address(&m.vendor_id, Topic::of_event(m.event_type)).await? else {
            tracing::info!("the vendor no longer takes this email: not sent");
            return Ok(None);
        };
        let Some((order_no, mail)) = notify::order_mail(&m.vendor_id, &to, m.event_type, m.payload.get())
        else {
            tracing::error!("the event is not an order: no email");
            return Ok(None);
        };
        let key = notify::order_mail_key(&m.vendor_id, m.event_type, &order_no);
        let token = format!("{:016x}", rand::random::<u64>());
        match self.store.claim_mail(&key, &token, clock::now(), MAIL_LEASE_SECS).await {
            Ok(MailClaim::Claimed) => {}
            Ok(MailClaim::Settled) => {
                tracing::info!("this order's email was sent already: not again");
                return Ok(None);
            }
            Ok(MailClaim::Busy) => {
                tracing::info!("another attempt is sending this order's email");
                return Err(());
            }
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "cannot claim the order email");
                return Err(());
            }
        }
        tracing::info!(event_id = %m.event_id, event_type = %m.event_type, "sending an order email");
        let sent = mailer.send(&mail).await;
        let settled = self
            .store
            .settle_mail(
                &key,
                &token,
                !matches!(sent, Err(MailError::Unavailable(_) | MailError::Misconfigured(_))),
            )
            .await;
        if let Err(e) = settled {
            // The claim lapses after its lease: at worst the email goes out once more.
            tracing::error!(error = %crate::error::chain(&e), "cannot settle the order email's claim");
        }
        Ok(Some((to, sent)))
    }

    /// Sends a failure email about the webhook as it is now (a deleted one is no longer news).
    async fn alert(&self, mailer: &M, a: &AlertEmail) -> Result<Option<Sent>, ()> {
        let webhook = match self.store.get_webhook(&a.vendor_id, a.webhook_id).await {
            Ok(Some(w)) => w,
            Ok(None) => {
                tracing::info!("the webhook was deleted: no failure email");
                return Ok(None);
            }
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "cannot read the webhook");
                return Err(());
            }
        };
        let Some(to) = self.address(&a.vendor_id, Some(Topic::Failures)).await? else {
            tracing::info!("the vendor no longer takes failure emails: not sent");
            return Ok(None);
        };
        let mail = notify::alert_mail(&to, a.alert, &webhook, &a.last_error, a.attempts);
        tracing::info!(alert = a.alert.as_str(), webhook_id = a.webhook_id, "sending a failure email");
        Ok(Some((to.clone(), mailer.send(&mail).await)))
    }

    /// The vendor's address for `topic`, if it takes emails of it.
    async fn address(&self, vendor_id: &str, topic: Option<Topic>) -> Result<Option<String>, ()> {
        match self.store.get_notifications(vendor_id).await {
            Ok(settings) => Ok(topic.and_then(|t| settings?.address_for(t).map(str::to_owned))),
            Err(e) => {
                tracing::error!(error = %crate::error::chain(&e), "cannot read the vendor's notification settings");
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::EventType,
        notify::{Alert, Mail, Notifications},
        sqs_batch::SqsMessage,
        store::MemoryStore,
    };

    /// A mailer that keeps what it sends, or answers `fail` while it is set.
    #[derive(Default)]
    struct Outbox {
        sent: std::sync::Mutex<Vec<Mail>>,
        fail: std::sync::Mutex<Option<MailError>>,
    }
    impl Mailer for &Outbox {
        async fn send(&self, mail: &Mail) -> Result<String, MailError> {
            if let Some(e) = self.fail.lock().unwrap().clone() {
                return Err(e);
            }
            self.sent.lock().unwrap().push(mail.clone());
            Ok("ses-1".into())
        }
    }

    fn record(i: usize, body: String) -> SqsMessage {
        SqsMessage {
            message_id: Some(format!("m{i}")),
            receipt_handle: Some(format!("r{i}")),
            body: Some(body),
            ..SqsMessage::default()
        }
    }

    fn order(i: usize, order_no: &str) -> SqsMessage {
        let payload = format!(
            r#"{{"orderNo":"{order_no}","type":"new_order","items":[{{"skuNr":"S1","itemName":"Mug","itemQuantity":2,"itemPrice":30,"itemTotal":60}}]}}"#
        );
        let payload = serde_json::value::RawValue::from_string(payload).unwrap();
        record(
            i,
            EmailMessage::order(&format!("evt_{i}"), EventType::NewOrder, "ven_x", 1, payload).to_body(),
        )
    }

    fn opted_in(store: &MemoryStore, topics: &[Topic]) {
        store.notifications.lock().unwrap().insert(
            "ven_x".into(),
            Notifications {
                email: Some("vendor@example.com".into()),
                topics: topics.to_vec(),
                ..Default::default()
            },
        );
    }

    async fn run(s: &EmailSender<MemoryStore, &Outbox>, records: Vec<SqsMessage>) -> Vec<String> {
        let event = SqsEvent { records };
        let answer = s.handle(&event).await.unwrap();
        answer.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
    }

    #[tokio::test]
    async fn an_order_is_emailed_once_however_often_its_message_comes() {
        let outbox = Outbox::default();
        let store = MemoryStore::default();
        opted_in(&store, &[Topic::NewOrder]);
        let s = EmailSender { store, mailer: Some(&outbox) };
        // The same order twice in one batch, again in a later one, and under another event id.
        assert!(run(&s, vec![order(1, "1000-1"), order(1, "1000-1")]).await.is_empty());
        assert!(run(&s, vec![order(1, "1000-1"), order(2, "1000-1")]).await.is_empty());
        let sent = outbox.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(
            (sent[0].to.as_str(), sent[0].subject.as_str()),
            ("vendor@example.com", "New order 1000-1")
        );
        assert!(run(&s, vec![order(3, "1000-2")]).await.is_empty());
        assert_eq!(outbox.sent.lock().unwrap().len(), 2, "another order, another email");
    }

    #[tokio::test]
    async fn nothing_is_emailed_to_a_vendor_who_did_not_opt_in_or_with_emails_off() {
        let outbox = Outbox::default();
        let store = MemoryStore::default();
        opted_in(&store, &[Topic::OrderCancellation, Topic::Failures]);
        let s = EmailSender { store, mailer: Some(&outbox) };
        assert!(run(&s, vec![order(1, "1000-1")]).await.is_empty());
        let off = EmailSender { store: MemoryStore::default(), mailer: None::<&Outbox> };
        opted_in(&off.store, &[Topic::NewOrder]);
        assert!(run(&off, vec![order(2, "1000-2")]).await.is_empty(), "let go, not retried");
        assert!(outbox.sent.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_unavailable_ses_retries_and_a_refused_address_is_recorded_and_not_retried() {
        let outbox = Outbox::default();
        let store = MemoryStore::default();
        opted_in(&store, &[Topic::NewOrder]);
        let s = EmailSender { store, mailer: Some(&outbox) };
        *outbox.fail.lock().unwrap() = Some(MailError::Unavailable("throttled".into()));
        assert_eq!(run(&s, vec![order(1, "1000-1")]).await, ["m1"], "comes back for another attempt");
        *outbox.fail.lock().unwrap() = None;
        assert!(run(&s, vec![order(1, "1000-1")]).await.is_empty());
        assert_eq!(outbox.sent.lock().unwrap().len(), 1, "the claim was released, the retry sent it");

        *outbox.fail.lock().unwrap() = Some(MailError::Refused("MessageRejected: not verified".into()));
        assert!(run(&s, vec![order(2, "1000-2")]).await.is_empty(), "not retried");
        let n = s.store.notifications.lock().unwrap().get("ven_x").cloned().unwrap();
        assert_eq!(n.refused.map(|r| r.1).as_deref(), Some("MessageRejected: not verified"));
        *outbox.fail.lock().unwrap() = None;
        assert!(run(&s, vec![order(3, "1000-3")]).await.is_empty());
        assert_eq!(outbox.sent.lock().unwrap().len(), 1, "nothing more to a refused address");
    }

    #[tokio::test]
    async fn a_failure_email_names_the_webhook_as_it_is_now_and_unknown_messages_are_kept() {
        let outbox = Outbox::default();
        let store = MemoryStore::default();
        opted_in(&store, &[Topic::Failures]);
        let mut w = crate::domain::tests::webhook();
        w.vendor_id = "ven_x".into();
        store.insert_webhook(&w).await.unwrap();
        let s = EmailSender { store, mailer: Some(&outbox) };
        let alert = |i, id| {
            record(
                i,
                EmailMessage::alert("ven_x", id, Alert::Failing, "the endpoint answered HTTP 500".into(), 4)
                    .to_body(),
            )
        };
        let unknown = record(3, r#"{"v":1,"kind":"sms","vendorId":"ven_x"}"#.into());
        assert_eq!(run(&s, vec![alert(1, w.id), alert(2, 424242), unknown]).await, ["m3"]);
        let sent = outbox.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "none about a deleted webhook: {sent:?}");
        assert_eq!(sent[0].subject, format!("Webhook {} is failing", w.id));
        assert!(sent[0].text.contains(&format!("URL: {}", w.url)));
        assert!(sent[0].text.contains("Last error: the endpoint answered HTTP 500"));
    }
}
