//! Vendors' emails as messages of their own queue: the contract between those who ask for an
//! email (`publish-event` for orders, `dispatch` for failing webhooks) and `send-email`, which
//! sends them. Every message is versioned (`v`) and tagged by kind (`kind`), so the consumer
//! knows what it holds without guessing, and refuses what it does not know.
use serde::{de::Error as _, Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::{domain::EventType, notify::Alert};

pub mod sender;

/// The version of every email message this code writes and reads.
pub const EMAIL_MESSAGE_VERSION: u32 = 1;

/// A message of the emails queue.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum EmailMessage {
    /// `kind: "order"`: tell the vendor of an order event (placed, cancelled), once per order.
    Order(OrderEmail),
    /// `kind: "alert"`: tell the vendor that a webhook is failing, gave a delivery up, or was
    /// disabled. The alert was already let through the once-an-hour gate by its sender.
    Alert(AlertEmail),
}

/// An order event to email its vendor about.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderEmail {
    pub v: u32,
    /// Always `order`.
    pub kind: String,
    pub event_id: String,
    pub event_type: EventType,
    pub vendor_id: String,
    /// Unix seconds.
    pub published_at: i64,
    /// The event's payload as published.
    pub payload: Box<RawValue>,
}

/// A failing webhook to email its vendor about.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertEmail {
    pub v: u32,
    /// Always `alert`.
    pub kind: String,
    pub vendor_id: String,
    pub webhook_id: u64,
    pub alert: Alert,
    /// The last error, as a vendor reads it (the status and the start of the answer, or why
    /// there was none).
    pub last_error: String,
    /// The attempts the delivery had made.
    pub attempts: u32,
}

impl EmailMessage {
    /// An order email's message.
    pub fn order(
        event_id: &str,
        event_type: EventType,
        vendor_id: &str,
        published_at: i64,
        payload: Box<RawValue>,
    ) -> Self {
        Self::Order(OrderEmail {
            v: EMAIL_MESSAGE_VERSION,
            kind: "order".into(),
            event_id: event_id.into(),
            event_type,
            vendor_id: vendor_id.into(),
            published_at,
            payload,
        })
    }

    /// A failure email's message.
    pub fn alert(vendor_id: &str, webhook_id: u64, alert: Alert, last_error: String, attempts: u32) -> Self {
        Self::Alert(AlertEmail {
            v: EMAIL_MESSAGE_VERSION,
            kind: "alert".into(),
            vendor_id: vendor_id.into(),
            webhook_id,
            alert,
            last_error,
            attempts,
        })
    }

    /// The vendor it is for.
    pub fn vendor_id(&self) -> &str {
        match self {
            EmailMessage::Order(o) => &o.vendor_id,
            EmailMessage::Alert(a) => &a.vendor_id,
        }
    }

    /// The message body.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("an email message serialises")
    }
}

/// What every email message starts with.
#[derive(Deserialize)]
struct Envelope {
    v: u32,
    kind: String,
}

impl<'de> Deserialize<'de> for EmailMessage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read as raw JSON first: the envelope says which type the whole message is.
        let raw = Box::<RawValue>::deserialize(d)?;
        let envelope: Envelope = serde_json::from_str(raw.get()).map_err(D::Error::custom)?;
        match (envelope.v, envelope.kind.as_str()) {
            (EMAIL_MESSAGE_VERSION, "order") => {
                serde_json::from_str(raw.get()).map(EmailMessage::Order).map_err(D::Error::custom)
            }
            (EMAIL_MESSAGE_VERSION, "alert") => {
                serde_json::from_str(raw.get()).map(EmailMessage::Alert).map_err(D::Error::custom)
            }
            (v, kind) => Err(D::Error::custom(format!("no email message of version {v} and kind {kind:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_version_and_kind_and_read_back() {
        let payload = RawValue::from_string(r#"{"orderNo":"1000-1","items":[]}"#.into()).unwrap();
        let order = EmailMessage::order("evt_1", EventType::NewOrder, "ven_x", 7, payload).to_body();
        assert!(order.starts_with(r#"{"v":1,"kind":"order","eventId":"evt_1""#), "{order}");
        assert!(order.contains(r#""payload":{"orderNo":"1000-1","items":[]}"#), "kept byte for byte");
        match serde_json::from_str::<EmailMessage>(&order).unwrap() {
            EmailMessage::Order(o) => {
                assert_eq!((o.vendor_id.as_str(), o.payload.get().len()), ("ven_x", 31))
            }
            other => panic!("{other:?}"),
        }
        let alert = EmailMessage::alert("ven_x", 42, Alert::DeadLettered, "HTTP 500".into(), 8).to_body();
        assert!(
            alert.contains(r#""kind":"alert""#) && alert.contains(r#""alert":"dead_lettered""#),
            "{alert}"
        );
        match serde_json::from_str::<EmailMessage>(&alert).unwrap() {
            EmailMessage::Alert(a) => {
                assert_eq!((a.webhook_id, a.alert, a.attempts), (42, Alert::DeadLettered, 8))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_sample_messages_are_the_contract() {
        let one: EmailMessage =
            serde_json::from_str(include_str!("../../../events/email-message.json")).unwrap();
        assert_eq!(one.vendor_id(), "ven_demo");
        let batch: crate::sqs_batch::SqsEvent =
            serde_json::from_str(include_str!("../../../events/send-email-batch.json")).unwrap();
        let read: Vec<bool> = batch
            .records
            .iter()
            .map(|r| serde_json::from_str::<EmailMessage>(r.body.as_deref().unwrap()).is_ok())
            .collect();
        assert_eq!(read, [true, true, false], "an order, an alert, and a version no one knows");
    }

    #[test]
    fn unknown_versions_kinds_and_fields_are_refused() {
        for body in [
            r#"{"v":2,"kind":"order","eventId":"e","eventType":"new_order","vendorId":"v","publishedAt":1,"payload":{}}"#,
            r#"{"v":1,"kind":"sms","vendorId":"v"}"#,
            r#"{"v":1,"kind":"alert","vendorId":"v","webhookId":1,"alert":"failing","lastError":"","attempts":4,"extra":1}"#,
            r#"{"v":1,"mail":"order","eventId":"e","eventType":"new_order","vendorId":"v","publishedAt":1,"payload":{}}"#,
            r#"{"v":1,"eventId":"e","eventType":"new_order","vendorId":"v","webhookId":1,"publishedAt":1,"payload":{}}"#,
        ] {
            assert!(serde_json::from_str::<EmailMessage>(body).is_err(), "{body}");
        }
    }
}
