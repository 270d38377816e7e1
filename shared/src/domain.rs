//! The domain: what a webhook is, which events exist, and the rules on what vendors send.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::options::{DeliveryOptions, OptionsChange};

/// The nine event types across both dialects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "new_order")]
    NewOrder,
    #[serde(rename = "order_cancellation")]
    OrderCancellation,
    #[serde(rename = "orders/created")]
    OrdersCreated,
    #[serde(rename = "orders/updated")]
    OrdersUpdated,
    #[serde(rename = "orders/cancelled")]
    OrdersCancelled,
    #[serde(rename = "bills/created")]
    BillsCreated,
    #[serde(rename = "products/created")]
    ProductsCreated,
    #[serde(rename = "products/updated")]
    ProductsUpdated,
    #[serde(rename = "products/deleted")]
    ProductsDeleted,
}

/// The two published API dialects; the route decides which one a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// eComNow Management: `/basic/webhooks`, vendor username and password.
    Ecomnow,
    /// Ventiapp: `/api/webhooks/...`, bearer tokens.
    Ventiapp,
    /// Not a vendor dialect: the platform's `POST /events`, authorised by IAM at the gateway.
    Platform,
}

impl EventType {
    /// Every event type, eComNow's first.
    pub const ALL: [EventType; 9] = [
        EventType::NewOrder,
        EventType::OrderCancellation,
        EventType::OrdersCreated,
        EventType::OrdersUpdated,
        EventType::OrdersCancelled,
        EventType::BillsCreated,
        EventType::ProductsCreated,
        EventType::ProductsUpdated,
        EventType::ProductsDeleted,
    ];

    /// The name on the wire: `new_order`, `orders/created`, …
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::NewOrder => "new_order",
            EventType::OrderCancellation => "order_cancellation",
            EventType::OrdersCreated => "orders/created",
            EventType::OrdersUpdated => "orders/updated",
            EventType::OrdersCancelled => "orders/cancelled",
            EventType::BillsCreated => "bills/created",
            EventType::ProductsCreated => "products/created",
            EventType::ProductsUpdated => "products/updated",
            EventType::ProductsDeleted => "products/deleted",
        }
    }

    /// Parses a wire name, exactly (no case folding: the documents spell them one way).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The dialect whose document defines this type.
    pub fn dialect(self) -> Dialect {
        match self {
            EventType::NewOrder | EventType::OrderCancellation => Dialect::Ecomnow,
            _ => Dialect::Ventiapp,
        }
    }

    /// The types a dialect's registration accepts.
    pub fn of_dialect(dialect: Dialect) -> impl Iterator<Item = EventType> {
        Self::ALL.into_iter().filter(move |t| t.dialect() == dialect)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A vendor account: the owner of webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vendor {
    pub vendor_id: String,
    pub username: String,
    pub created_at: i64,
}

/// A registered endpoint that receives one event type for one vendor.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: u64,
    pub vendor_id: String,
    pub event_type: EventType,
    pub url: String,
    /// Sent back as the delivery's `Authorization` header; a secret of the vendor's.
    pub authentication: Option<String>,
    /// The Standard Webhooks signing secret (`whsec_…`).
    pub secret: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Bumped on every change; the store's writes are conditional on it.
    pub version: u64,
    /// Set when deliveries stopped (the receiver answered `410 Gone`, …): (unix seconds, why).
    pub disabled: Option<(i64, String)>,
    /// Former secrets that still sign, newest first, each with until when (unix seconds): at
    /// most [`MAX_PREVIOUS_SECRETS`].
    pub previous_secrets: Vec<(String, i64)>,
    /// The last rotation, so that a repeated request gets the same new secret.
    pub last_rotation: Option<Rotation>,
    /// Since when (unix seconds) every delivery attempt has failed; `None` while deliveries succeed.
    pub failing_since: Option<i64>,
    /// How many of its deliveries may be in flight at once (`None`: the service's default).
    pub max_in_flight: Option<u32>,
    /// Failed attempts in a row since the last delivery (counted while the circuit breaker is on).
    pub consecutive_failures: u32,
    /// The circuit breaker: while open (until this time, unix seconds) the webhook's deliveries
    /// wait unattempted; once past, one of them probes the receiver.
    pub circuit_open_until: Option<i64>,
    /// Its filter, ordering and headers of its own.
    pub options: DeliveryOptions,
}

// Secrets stay out of `{:?}`, so no log line can carry them by accident.
impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("vendor_id", &self.vendor_id)
            .field("event_type", &self.event_type)
            .field("url", &self.url)
            .field("authentication", &self.authentication.as_ref().map(|_| "<redacted>"))
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("version", &self.version)
            .field("disabled", &self.disabled)
            .field(
                "previous_secrets",
                &self.previous_secrets.iter().map(|(_, until)| ("<redacted>", until)).collect::<Vec<_>>(),
            )
            .field("last_rotation", &self.last_rotation)
            .field("failing_since", &self.failing_since)
            .field("max_in_flight", &self.max_in_flight)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("circuit_open_until", &self.circuit_open_until)
            .field("options", &self.options)
            .finish()
    }
}

impl Webhook {
    /// A webhook as registration makes it: active, never failed, version 1, created `now`.
    pub fn new(id: u64, vendor_id: impl Into<String>, spec: WebhookSpec, secret: String, now: i64) -> Self {
        Self {
            id,
            vendor_id: vendor_id.into(),
            event_type: spec.event_type,
            url: spec.url,
            authentication: spec.authentication,
            max_in_flight: spec.max_in_flight,
            options: spec.options.apply(&DeliveryOptions::default()),
            secret,
            created_at: now,
            updated_at: now,
            version: 1,
            disabled: None,
            previous_secrets: Vec::new(),
            last_rotation: None,
            failing_since: None,
            consecutive_failures: 0,
            circuit_open_until: None,
        }
    }

    /// Whether its last attempt failed (or its circuit is open): its deliveries then take the
    /// slow lane.
    pub fn failing(&self) -> bool {
        self.failing_since.is_some() || self.consecutive_failures > 0 || self.circuit_open_until.is_some()
    }

    /// The webhook as a delivery leaves it: nothing failing, no failures in a row, the circuit
    /// closed.
    pub fn healthy(&self) -> Webhook {
        Webhook { failing_since: None, consecutive_failures: 0, circuit_open_until: None, ..self.clone() }
    }

    /// The webhook with `secret` as its signing secret, the current one signing beside it until
    /// `now + grace` and each former one until its own time; `None` if the request repeats the
    /// last rotation (the same `Idempotency-Key` within a day, or none within
    /// [`ROTATION_REPEAT_SECS`]), which is answered with the webhook as it is.
    pub fn rotated(&self, secret: String, now: i64, grace: i64, key_digest: Option<&str>) -> Option<Webhook> {
        if let Some(last) = &self.last_rotation {
            let repeat = match (key_digest, last.key_digest.as_deref()) {
                (Some(key), Some(last_key)) => key == last_key && now - last.at < ROTATION_KEY_SECS,
                (Some(_), None) => false,
                (None, _) => now - last.at < ROTATION_REPEAT_SECS,
            };
            if repeat {
                return None;
            }
        }
        let mut previous = vec![(self.secret.clone(), now + grace)];
        previous.extend(self.previous_secrets.iter().filter(|(_, until)| *until > now).cloned());
        previous.truncate(MAX_PREVIOUS_SECRETS);
        Some(Webhook {
            secret,
            previous_secrets: previous,
            last_rotation: Some(Rotation { at: now, key_digest: key_digest.map(str::to_owned) }),
            ..self.clone()
        })
    }
}

/// The most former secrets a webhook keeps signing with: a sixth rotation within the grace
/// period retires the oldest early.
pub const MAX_PREVIOUS_SECRETS: usize = 5;

/// A rotation without an `Idempotency-Key` this soon after the last is a client's retry.
pub const ROTATION_REPEAT_SECS: i64 = 10;

/// How long a rotation's `Idempotency-Key` is remembered.
pub const ROTATION_KEY_SECS: i64 = 24 * 3600;

/// When a webhook's secret was last rotated, and a digest of that request's `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub at: i64,
    pub key_digest: Option<String>,
}

/// What a vendor asks for when registering or updating a webhook, once validated.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSpec {
    pub event_type: EventType,
    pub url: String,
    pub authentication: Option<String>,
    /// How many of its deliveries may be in flight at once (`None`: the service's default).
    pub max_in_flight: Option<u32>,
    /// The delivery options the request sets or removes.
    pub options: OptionsChange,
}

impl fmt::Debug for WebhookSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSpec")
            .field("event_type", &self.event_type)
            .field("url", &self.url)
            .field("authentication", &self.authentication.as_ref().map(|_| "<redacted>"))
            .field("max_in_flight", &self.max_in_flight)
            .field("options", &self.options)
            .finish()
    }
}

/// Why a field of a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The field, as the client spelled it (`url`, `webhook.address`).
    pub field: String,
    pub message: String,
    /// Well-formed but not allowed here (`422`), rather than malformed (`400`).
    pub not_allowed: bool,
}

impl FieldError {
    /// A malformed or missing field (400).
    pub fn malformed(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), not_allowed: false }
    }

    /// A well-formed value that policy refuses (422).
    pub fn not_allowed(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into(), not_allowed: true }
    }
}

/// The longest `authentication` value accepted: an Authorization header, not a document.
pub const MAX_AUTHENTICATION_LEN: usize = 4096;

/// Validates an `authentication` value: it becomes an HTTP header, so only visible ASCII,
/// spaces and tabs; CR or LF would let a vendor inject headers into deliveries.
/// An empty value means none. The value itself never appears in the message.
pub fn validate_authentication(field: &str, value: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(value) = value else { return Ok(None) };
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > MAX_AUTHENTICATION_LEN {
        return Err(FieldError::malformed(
            field,
            format!("{field} must be at most {MAX_AUTHENTICATION_LEN} characters"),
        ));
    }
    if value.chars().any(|c| c == '\r' || c == '\n') {
        return Err(FieldError::malformed(field, format!("{field} must not contain line breaks (CR or LF)")));
    }
    if !value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err(FieldError::malformed(
            field,
            format!("{field} must be printable ASCII, as an HTTP header value is"),
        ));
    }
    Ok(Some(value.to_owned()))
}

/// Parses an event type for a dialect, naming the allowed values when it is not one of them.
pub fn parse_event_type(field: &str, value: &str, dialect: Dialect) -> Result<EventType, FieldError> {
    EventType::parse(value).filter(|t| t.dialect() == dialect).ok_or_else(|| {
        let allowed: Vec<&str> = EventType::of_dialect(dialect).map(EventType::as_str).collect();
        FieldError::malformed(field, format!("{field} must be one of: {}", allowed.join(", ")))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
        assert_eq!(EventType::parse("orders/create"), None);
        assert_eq!(EventType::parse("NEW_ORDER"), None);
    }

    #[test]
    fn ecomnow_types_are_the_two_order_types() {
        let names: Vec<_> = EventType::of_dialect(Dialect::Ecomnow).map(EventType::as_str).collect();
        assert_eq!(names, ["new_order", "order_cancellation"]);
        assert_eq!(EventType::of_dialect(Dialect::Ventiapp).count(), 7);
    }

    #[test]
    fn unknown_type_lists_the_allowed_values() {
        let e = parse_event_type("webhookType", "order_created", Dialect::Ecomnow).unwrap_err();
        assert_eq!(e.field, "webhookType");
        assert!(e.message.contains("new_order, order_cancellation"), "{}", e.message);
        assert!(!e.not_allowed);
        // A Ventiapp topic is not an eComNow type.
        assert!(parse_event_type("webhookType", "orders/created", Dialect::Ecomnow).is_err());
    }

    #[test]
    fn authentication_refuses_header_injection_without_echoing_it() {
        let e = validate_authentication("authentication", Some("Basic abc\r\nX-Evil: 1")).unwrap_err();
        assert!(e.message.contains("CR or LF"));
        assert!(!e.message.contains("abc"));
        assert!(validate_authentication("authentication", Some("Basic \u{7f}")).is_err());
        assert!(validate_authentication("authentication", Some("Bäsic")).is_err());
        let long = "x".repeat(MAX_AUTHENTICATION_LEN + 1);
        assert!(validate_authentication("authentication", Some(&long)).is_err());
    }

    #[test]
    fn authentication_empty_means_none_and_is_trimmed() {
        assert_eq!(validate_authentication("a", None).unwrap(), None);
        assert_eq!(validate_authentication("a", Some("  ")).unwrap(), None);
        assert_eq!(
            validate_authentication("a", Some(" Basic XxxXxxXX ")).unwrap().as_deref(),
            Some("Basic XxxXxxXX")
        );
    }

    /// A webhook for unit tests.
    pub(crate) fn webhook() -> Webhook {
        Webhook {
            id: 1,
            vendor_id: "ven_x".into(),
            event_type: EventType::NewOrder,
            url: "https://example.com/".into(),
            authentication: Some("Basic s3cr3t".into()),
            secret: "whsec_s3cr3tMfKQ9r8GKYqrTwjUPD8ILPZIo2".into(),
            created_at: 0,
            updated_at: 0,
            version: 1,
            disabled: None,
            previous_secrets: vec![("whsec_s3cr3tOld".into(), 5)],
            last_rotation: None,
            failing_since: None,
            max_in_flight: None,
            consecutive_failures: 0,
            circuit_open_until: None,
            options: Default::default(),
        }
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let w = webhook();
        let dbg = format!("{w:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
    }

    #[test]
    fn a_rotation_keeps_former_secrets_until_their_own_time_and_a_repeat_changes_nothing() {
        let mut w = webhook();
        w.previous_secrets.clear();
        let first = w.secret.clone();
        let a = w.rotated("whsec_a".into(), 100, 50, Some("k1")).unwrap();
        assert_eq!((a.secret.as_str(), a.previous_secrets.clone()), ("whsec_a", vec![(first.clone(), 150)]));
        assert_eq!(a.rotated("whsec_x".into(), 101, 50, Some("k1")), None, "the same key");
        assert_eq!(a.rotated("whsec_x".into(), 105, 50, None), None, "no key, seconds later");
        let b = a.rotated("whsec_b".into(), 120, 50, Some("k2")).unwrap();
        assert_eq!(b.previous_secrets, vec![("whsec_a".to_owned(), 170), (first, 150)]);
        assert!(b.rotated("whsec_c".into(), 120 + ROTATION_REPEAT_SECS, 50, None).is_some());
        // Expired former secrets go; at most five stay.
        let late = b.rotated("whsec_c".into(), 160, 50, None).unwrap();
        assert_eq!(late.previous_secrets, vec![("whsec_b".to_owned(), 210), ("whsec_a".to_owned(), 170)]);
        let mut many = late;
        for i in 0..6 {
            many = many.rotated(format!("whsec_{i}"), 200 + i * 20, 1000, None).unwrap();
        }
        assert_eq!(many.previous_secrets.len(), MAX_PREVIOUS_SECRETS);
        assert_eq!(many.previous_secrets[0].0, "whsec_4", "newest first");
    }
}
