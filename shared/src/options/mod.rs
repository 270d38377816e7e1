//! A webhook's delivery options: a payload filter, ordered delivery per order, and headers of
//! the vendor's own. Each is optional; a webhook without them delivers as it always did.
use std::fmt;

use serde_json::Value;

use crate::domain::{EventType, FieldError};

mod filter;
pub use filter::{Filter, MAX_CONDITIONS, MAX_FILTER_BYTES};

/// The most headers of its own a webhook may send.
pub const MAX_HEADERS: usize = 10;

/// The longest header value accepted, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;

/// The longest header name accepted.
pub const MAX_HEADER_NAME_BYTES: usize = 256;

/// Header names a webhook may not set: the signature's, the ones the sender owns, the
/// `authentication` field's, and hop-by-hop headers.
const RESERVED_HEADERS: [&str; 14] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "authorization",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The options of one webhook.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DeliveryOptions {
    /// Only events whose payload passes are delivered.
    pub filter: Option<Filter>,
    pub ordering: Ordering,
    /// Sent with every delivery, in this order. Values are secrets, like `authentication`.
    pub headers: Vec<(String, String)>,
}

// Header values stay out of `{:?}`, so no log line can carry them.
impl fmt::Debug for DeliveryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryOptions")
            .field("filter", &self.filter)
            .field("ordering", &self.ordering)
            .field("headers", &self.headers.iter().map(|(name, _)| (name, "<redacted>")).collect::<Vec<_>>())
            .finish()
    }
}

/// Whether a webhook's deliveries for one order keep their publish order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ordering {
    /// Deliveries are independent (the default).
    #[default]
    None,
    /// A delivery for an order waits until the order's earlier one got a 2xx or was parked in
    /// the dead-letter queue.
    PerOrder,
}

impl Ordering {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::None => "none",
            Ordering::PerOrder => "per_order",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Ordering> {
        [Ordering::None, Ordering::PerOrder].into_iter().find(|o| o.as_str() == s)
    }
}

/// What a request asks to change: `None` leaves an option as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptionsChange {
    /// `Some(None)`: remove the filter.
    pub filter: Option<Option<Filter>>,
    pub ordering: Option<Ordering>,
    pub headers: Option<Vec<(String, String)>>,
}

impl OptionsChange {
    /// Validates the options of a registration's body: absent leaves an option as it is, `null`
    /// removes it.
    pub fn parse(
        filter: Option<&Value>,
        ordering: Option<&Value>,
        headers: Option<&Value>,
    ) -> Result<Self, FieldError> {
        Ok(Self {
            filter: filter.map(|v| (!v.is_null()).then(|| Filter::parse(v)).transpose()).transpose()?,
            ordering: ordering.map(parse_ordering).transpose()?,
            headers: headers.map(parse_headers).transpose()?,
        })
    }

    /// The options once this change is made to `current`.
    pub fn apply(&self, current: &DeliveryOptions) -> DeliveryOptions {
        DeliveryOptions {
            filter: self.filter.clone().unwrap_or_else(|| current.filter.clone()),
            ordering: self.ordering.unwrap_or(current.ordering),
            headers: self.headers.clone().unwrap_or_else(|| current.headers.clone()),
        }
    }
}

fn parse_ordering(value: &Value) -> Result<Ordering, FieldError> {
    match value {
        Value::Null => Some(Ordering::None),
        Value::String(s) => Ordering::parse(s),
        _ => None,
    }
    .ok_or_else(|| FieldError::malformed("ordering", "ordering must be one of: none, per_order"))
}

/// Validates `headers`: an object of at most [`MAX_HEADERS`] names to values. The values are
/// secrets: no message quotes one.
pub fn parse_headers(value: &Value) -> Result<Vec<(String, String)>, FieldError> {
    let bad = |message: String| FieldError::malformed("headers", format!("headers {message}"));
    let map = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(map) => map,
        _ => return Err(bad("must be an object of header names to values, or null".into())),
    };
    if map.len() > MAX_HEADERS {
        return Err(bad(format!("has {} headers; at most {MAX_HEADERS} are allowed", map.len())));
    }
    let mut headers: Vec<(String, String)> = Vec::with_capacity(map.len());
    for (name, value) in map {
        if name.is_empty() || name.len() > MAX_HEADER_NAME_BYTES || !name.bytes().all(is_tchar) {
            return Err(bad(format!(
                "name {name:?} is not an HTTP header name (1 to {MAX_HEADER_NAME_BYTES} letters, digits \
                 and !#$%&'*+-.^_`|~)"
            )));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("webhook-") || RESERVED_HEADERS.contains(&lower.as_str()) {
            let hint = if lower == "authorization" { " (use authentication)" } else { "" };
            return Err(bad(format!("name {name:?} is reserved: the service sets it{hint}")));
        }
        if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(bad(format!("name {name:?} is given twice (names are not case-sensitive)")));
        }
        let Value::String(value) = value else {
            return Err(bad(format!("[{name:?}] must be a string")));
        };
        if value.len() > MAX_HEADER_VALUE_BYTES || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(bad(format!(
                "[{name:?}] must be printable ASCII, at most {MAX_HEADER_VALUE_BYTES} bytes"
            )));
        }
        headers.push((name.clone(), value.clone()));
    }
    Ok(headers)
}

/// RFC 9110's `tchar`: what a header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The order (or product) an event is about, which ordered delivery keeps apart: eComNow's
/// `orderNo`, `orderId` in Ventiapp's orders and bills, `productId` in its products.
pub fn order_key(event_type: EventType, payload: &Value) -> Option<String> {
    let field = match event_type {
        EventType::NewOrder | EventType::OrderCancellation => "orderNo",
        EventType::OrdersCreated
        | EventType::OrdersUpdated
        | EventType::OrdersCancelled
        | EventType::BillsCreated => "orderId",
        EventType::ProductsCreated | EventType::ProductsUpdated | EventType::ProductsDeleted => "productId",
    };
    match payload.get(field)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The FIFO message group of a webhook's deliveries for one order: SQS hands them out one at a
/// time, in order. The order key is hashed: a group id is 128 characters of a narrow alphabet.
pub fn message_group(webhook_id: u64, order_key: &str) -> String {
    format!("{webhook_id}-{}", &crate::digest::sha256_hex(order_key)[..32])
}

/// A delivery for an ordered webhook, as its FIFO queue takes it: in its order's group, with a
/// deduplication id (`dedup`) that makes a publisher's retry within five minutes a no-op.
pub fn grouped(
    message: &crate::delivery::DeliveryMessage,
    order_key: &str,
    dedup: String,
) -> crate::queue::Grouped {
    crate::queue::Grouped {
        body: message.to_body(),
        group: message_group(message.webhook_id, order_key),
        dedup,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(v: Value) -> Result<Vec<(String, String)>, String> {
        parse_headers(&v).map_err(|e| {
            assert_eq!(e.field, "headers");
            e.message
        })
    }

    #[test]
    fn headers_are_tokens_to_printable_values_and_keep_their_order() {
        assert_eq!(
            headers(json!({"X-Shop": "abc-123", "x-b": ""})).unwrap(),
            vec![("X-Shop".to_owned(), "abc-123".to_owned()), ("x-b".to_owned(), String::new())]
        );
        assert_eq!(headers(Value::Null).unwrap(), vec![]);
        for (v, message) in [
            (json!("X: 1"), "headers must be an object of header names to values, or null"),
            (json!({"X Shop": "1"}), "headers name \"X Shop\" is not an HTTP header name"),
            (
                json!({"Webhook-Signature": "1"}),
                "headers name \"Webhook-Signature\" is reserved: the service sets it",
            ),
            (
                json!({"Authorization": "1"}),
                "headers name \"Authorization\" is reserved: the service sets it (use authentication)",
            ),
            (json!({"transfer-encoding": "1"}), "is reserved"),
            (json!({"X-A": "1", "x-a": "2"}), "headers name \"x-a\" is given twice"),
            (json!({"X-A": 1}), "headers [\"X-A\"] must be a string"),
            (
                json!({"X-A": "a\r\nX-Evil: 1"}),
                "headers [\"X-A\"] must be printable ASCII, at most 1024 bytes",
            ),
            (json!({"X-A": "x".repeat(1025)}), "at most 1024 bytes"),
        ] {
            let message_got = headers(v.clone()).unwrap_err();
            assert!(message_got.starts_with(message) || message_got.contains(message), "{v}: {message_got}");
            assert!(!message_got.contains("X-Evil"), "a value is never quoted");
        }
        let many: serde_json::Map<String, Value> = (0..11).map(|i| (format!("X-{i}"), json!("v"))).collect();
        assert_eq!(
            headers(Value::Object(many)).unwrap_err(),
            "headers has 11 headers; at most 10 are allowed"
        );
    }

    #[test]
    fn a_change_leaves_what_it_does_not_name_and_null_removes() {
        let current = DeliveryOptions {
            filter: Some(Filter::parse(&json!({"/orderNo": "1"})).unwrap()),
            ordering: Ordering::PerOrder,
            headers: vec![("X-A".into(), "1".into())],
        };
        assert_eq!(OptionsChange::parse(None, None, None).unwrap().apply(&current), current);
        let cleared =
            OptionsChange::parse(Some(&Value::Null), Some(&Value::Null), Some(&Value::Null)).unwrap();
        assert_eq!(cleared.apply(&current), DeliveryOptions::default());
        let e = OptionsChange::parse(None, Some(&json!("fifo")), None).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("ordering", "ordering must be one of: none, per_order")
        );
    }

    #[test]
    fn debug_output_redacts_header_values() {
        let o = DeliveryOptions { headers: vec![("X-Key".into(), "s3cr3t".into())], ..Default::default() };
        assert!(!format!("{o:?}").contains("s3cr3t"));
    }

    #[test]
    fn the_order_key_of_each_dialect() {
        assert_eq!(
            order_key(EventType::NewOrder, &json!({"orderNo": "1000-4612"})).as_deref(),
            Some("1000-4612")
        );
        assert_eq!(order_key(EventType::OrdersUpdated, &json!({"orderId": 42})).as_deref(), Some("42"));
        assert_eq!(order_key(EventType::ProductsDeleted, &json!({"productId": 7})).as_deref(), Some("7"));
        assert_eq!(order_key(EventType::BillsCreated, &json!({})), None);
    }
}
