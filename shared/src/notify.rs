//! Email notifications: what a vendor asked to be told and where, the addresses accepted, and
//! the emails themselves (orders placed and cancelled; webhooks that stop working).
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::{EventType, FieldError, Webhook};

/// What a vendor can be told by email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Topic {
    /// An order was placed (`new_order` events).
    NewOrder,
    /// An order was cancelled (`order_cancellation` events).
    OrderCancellation,
    /// A webhook keeps failing, a delivery reached the dead-letter queue, a webhook was disabled.
    Failures,
}

impl Topic {
    pub const ALL: [Topic; 3] = [Topic::NewOrder, Topic::OrderCancellation, Topic::Failures];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::NewOrder => "new_order",
            Topic::OrderCancellation => "order_cancellation",
            Topic::Failures => "failures",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The topic of an event's order email, if its type has one.
    pub fn of_event(event_type: EventType) -> Option<Self> {
        match event_type {
            EventType::NewOrder => Some(Topic::NewOrder),
            EventType::OrderCancellation => Some(Topic::OrderCancellation),
            _ => None,
        }
    }
}

/// A vendor's notification settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notifications {
    /// The contact address, validated ([`validate_email`]).
    pub email: Option<String>,
    /// What the vendor opted in to, sorted, each once.
    pub topics: Vec<Topic>,
    /// When SES refused the address, and its reason: nothing more is sent to it until it is
    /// changed (set again, even to the same address, to try it again).
    pub refused: Option<(i64, String)>,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Notifications {
    /// The address to tell about `topic`: set, opted in, not refused.
    pub fn address_for(&self, topic: Topic) -> Option<&str> {
        let email = self.email.as_deref()?;
        (self.topics.contains(&topic) && self.refused.is_none()).then_some(email)
    }
}

/// The longest address SMTP carries (RFC 5321: a 256-octet path, less its angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

/// Validates a contact address: `local@domain`, the forms mail providers and SES accept. The
/// local part is dot-atoms of RFC 5322 (no quoted strings), the domain a DNS name of at least two
/// labels with an alphabetic top level (no address literals); ASCII only (SES takes
/// internationalised domains only as punycode). The domain is lowercased; the local part kept.
pub fn validate_email(field: &str, raw: &str) -> Result<String, FieldError> {
    let bad =
        |why: &str| FieldError::malformed(field, format!("{field} is not a valid email address: {why}"));
    let value = raw.trim();
    if value.is_empty() {
        return Err(bad("it is empty"));
    }
    if value.len() > MAX_EMAIL_LEN {
        return Err(bad("it is longer than 254 characters"));
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Err(bad("it has no @"));
    };
    const ATEXT: &[u8] = b"!#$%&'*+-/=?^_`{|}~";
    let atext = |b: u8| b.is_ascii_alphanumeric() || ATEXT.contains(&b);
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the part before @ must be 1 to 64 characters"));
    }
    if local.split('.').any(|atom| atom.is_empty() || !atom.bytes().all(atext)) {
        return Err(bad(
            "the part before @ may hold letters, digits, dots between them, and !#$%&'*+-/=?^_`{|}~",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(bad("the domain must be a name such as example.com"));
    }
    let tld = labels[labels.len() - 1];
    if tld.len() < 2 || !(tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--")) {
        return Err(bad("the domain must end in a top-level domain such as .com"));
    }
    Ok(format!("{local}@{}", domain.to_ascii_lowercase()))
}

/// Parses topic names: each known, duplicates folded, sorted.
pub fn parse_topics<'a>(
    field: &str,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Topic>, FieldError> {
    let mut topics = Vec::new();
    for name in names {
        let topic = Topic::parse(name).ok_or_else(|| {
            let shown: String = name.chars().take(40).collect();
            let allowed: Vec<&str> = Topic::ALL.iter().map(|t| t.as_str()).collect();
            FieldError::malformed(
                field,
                format!("{field}: unknown notification {shown:?}; allowed: {}", allowed.join(", ")),
            )
        })?;
        topics.push(topic);
    }
    topics.sort();
    topics.dedup();
    Ok(topics)
}

/// Settings as a vendor asks for them: topics without an address make no sense.
pub fn check_settings(email: Option<&str>, topics: &[Topic], topics_field: &str) -> Result<(), FieldError> {
    if email.is_none() && !topics.is_empty() {
        return Err(FieldError::not_allowed(
            topics_field,
            "notifications need an email address: set email too",
        ));
    }
    Ok(())
}

/// One email, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The vendor it is for: tagged on the email, so that a later bounce finds its vendor.
    pub vendor_id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The key an order email is sent once under: the vendor, the kind and the order number, so
/// that neither a retried message nor an order published twice (even under two event ids) mails
/// the vendor twice.
pub fn order_mail_key(vendor_id: &str, event_type: EventType, order_no: &str) -> String {
    format!("{vendor_id}#{}#{}", event_type.as_str(), crate::digest::sha256_hex(order_no))
}

/// The order number and the email for an order event (`new_order`, `order_cancellation`), from
/// its payload as published (validated then: `orderNo`, `items[]` of `skuNr`, `itemName`,
/// `itemQuantity`, `itemPrice`, `itemTotal`). `None` for other types or a payload that is not an
/// order.
pub fn order_mail(vendor_id: &str, to: &str, event_type: EventType, payload: &str) -> Option<(String, Mail)> {
    let v: Value = serde_json::from_str(payload).ok()?;
    let order_no = v.get("orderNo")?.as_str()?;
    let items = v.get("items")?.as_array()?;
    let (subject, lead) = match event_type {
        EventType::NewOrder => {
            (format!("New order {order_no}"), format!("You have a new order: {order_no}."))
        }
        EventType::OrderCancellation => (
            format!("Order {order_no} cancelled"),
            format!("Order {order_no} has been cancelled. Please do not ship it."),
        ),
        _ => return None,
    };
    struct Line {
        sku: String,
        name: String,
        qty: String,
        price: String,
        total: String,
    }
    let field = |item: &Value, k: &str| match item.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let money = |item: &Value, k: &str| match item.get(k).and_then(Value::as_f64) {
        Some(x) => format!("{x:.2}"),
        None => field(item, k),
    };
    let lines: Vec<Line> = items
        .iter()
        .map(|i| Line {
            sku: field(i, "skuNr"),
            name: field(i, "itemName"),
            qty: field(i, "itemQuantity"),
            price: money(i, "itemPrice"),
            total: money(i, "itemTotal"),
        })
        .collect();
    let sum: f64 = items.iter().filter_map(|i| i.get("itemTotal").and_then(Value::as_f64)).sum();

    let mut text = format!("{lead}\n\nItems:\n");
    for l in &lines {
        let _ = writeln!(text, "- {} (SKU {}): {} x {} = {}", l.name, l.sku, l.qty, l.price, l.total);
    }
    let _ = write!(
        text,
        "\nOrder total: {sum:.2}\n\nYou receive this email because you asked to be told of {} events. \
         Change that with PUT /basic/notifications.\n",
        event_type.as_str()
    );

    let mut html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\"><p>{}</p>\
         <table cellpadding=\"6\" style=\"border-collapse:collapse\">\
         <thead><tr><th align=\"left\">SKU</th><th align=\"left\">Item</th><th align=\"right\">Quantity</th>\
         <th align=\"right\">Price</th><th align=\"right\">Total</th></tr></thead><tbody>",
        escape(&lead)
    );
    for l in &lines {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td><td align=\"right\">{}</td></tr>",
            escape(&l.sku),
            escape(&l.name),
            escape(&l.qty),
            escape(&l.price),
            escape(&l.total)
        );
    }
    let _ = write!(
        html,
        "</tbody><tfoot><tr><td colspan=\"4\" align=\"right\"><b>Order total</b></td>\
         <td align=\"right\"><b>{sum:.2}</b></td></tr></tfoot></table>\
         <p style=\"color:#666\">You receive this email because you asked to be told of {} events. \
         Change that with PUT /basic/notifications.</p></body></html>",
        event_type.as_str()
    );
    let mail = Mail { vendor_id: vendor_id.to_owned(), to: to.to_owned(), subject, text, html };
    Some((order_no.to_owned(), mail))
}

/// Why a vendor is told about one of its webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alert {
    /// A delivery has failed its first attempts ([`FAILING_ALERT_AFTER`]).
    Failing,
    /// A delivery used every attempt and went to the dead-letter queue.
    DeadLettered,
    /// The webhook was disabled (a `410 Gone`, or failing for too long).
    Disabled,
}

/// The failed attempt of a delivery after which its vendor is told the webhook is failing.
pub const FAILING_ALERT_AFTER: u32 = 4;

/// The shortest time between two failure emails about one webhook.
pub const ALERT_INTERVAL_SECS: i64 = 3600;

/// The last failure email about a webhook, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// Unix seconds.
    pub sent_at: i64,
    /// When the incident it was about began, if known.
    pub incident: Option<i64>,
    /// The kinds ([`Alert::as_str`]) told of in that incident.
    pub kinds: Vec<String>,
}

/// Whether an alert of `kind` may go out now after `previous`, and if so the record it leaves:
/// not within `interval_secs` of the last one, and each kind once per known incident.
pub fn next_alert(
    previous: Option<&AlertRecord>,
    kind: &str,
    incident: Option<i64>,
    now: i64,
    interval_secs: i64,
) -> Option<AlertRecord> {
    let mut kinds = vec![kind.to_owned()];
    if let Some(p) = previous {
        if now - p.sent_at < interval_secs {
            return None;
        }
        if incident.is_some() && p.incident == incident {
            if p.kinds.iter().any(|k| k == kind) {
                return None;
            }
            kinds.extend(p.kinds.iter().cloned());
        }
    }
    Some(AlertRecord { sent_at: now, incident, kinds })
}

impl Alert {
    pub fn as_str(self) -> &'static str {
        match self {
            Alert::Failing => "failing",
            Alert::DeadLettered => "dead_lettered",
            Alert::Disabled => "disabled",
        }
    }
}

/// The email telling a vendor that a webhook stopped working: which one, its URL, the last
/// error and what to do. The URL is the vendor's own; the `authentication` value and the signing
/// secret are never in it.
pub fn alert_mail(to: &str, alert: Alert, webhook: &Webhook, last_error: &str, attempts: u32) -> Mail {
    let id = webhook.id;
    let (subject, what, todo) = match alert {
        Alert::Failing => (
            format!("Webhook {id} is failing"),
            format!("Deliveries to your webhook {id} are failing: one has now failed {attempts} attempts. We keep retrying with backoff."),
            "Check that the endpoint is up and answers 2xx within 10 seconds. Deliveries resume on their own once it does; \
             GET /basic/webhooks/{id}/deliveries shows every attempt, and POST /basic/webhooks/{id}/test sends a test event."
                .replace("{id}", &id.to_string()),
        ),
        Alert::DeadLettered => (
            format!("Webhook {id}: a delivery was given up"),
            format!("A delivery to your webhook {id} failed all {attempts} attempts and was set aside."),
            "Fix the endpoint, then send the event again with POST /basic/webhooks/{id}/redeliver \
             (GET /basic/webhooks/{id}/deliveries lists the event ids)."
                .replace("{id}", &id.to_string()),
        ),
        Alert::Disabled => (
            format!("Webhook {id} has been disabled"),
            format!(
                "Your webhook {id} has been disabled: {}. No more events are sent to it.",
                webhook.disabled.as_ref().map(|(_, why)| why.as_str()).unwrap_or("its deliveries kept failing")
            ),
            "Fix the endpoint, then enable the webhook with POST /basic/webhooks/{id}/enable, and send missed events \
             again with POST /basic/webhooks/{id}/redeliver."
                .replace("{id}", &id.to_string()),
        ),
    };
    let event_type = webhook.event_type.as_str();
    let text = format!(
        "{what}\n\nWebhook: {id} ({event_type})\nURL: {}\nLast error: {last_error}\n\nWhat to do: {todo}\n\n\
         You receive this email because you asked to be told of failures. Change that with \
         PUT /basic/notifications. We send at most one such email per webhook per hour.\n",
        webhook.url
    );
    let html = format!(
        "<!DOCTYPE html><html><body style=\"font-family:sans-serif\"><p>{}</p><table cellpadding=\"4\">\
         <tr><td><b>Webhook</b></td><td>{id} ({event_type})</td></tr><tr><td><b>URL</b></td><td>{}</td></tr>\
         <tr><td><b>Last error</b></td><td>{}</td></tr></table><p><b>What to do:</b> {}</p>\
         <p style=\"color:#666\">You receive this email because you asked to be told of failures. Change that with \
         PUT /basic/notifications. We send at most one such email per webhook per hour.</p></body></html>",
        escape(&what),
        escape(&webhook.url),
        escape(last_error),
        escape(&todo)
    );
    Mail { vendor_id: webhook.vendor_id.clone(), to: to.to_owned(), subject, text, html }
}

/// HTML-escapes text for element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_people_use_are_accepted_and_the_domain_lowercased() {
        for (raw, want) in [
            ("vendor@example.com", "vendor@example.com"),
            ("  Orders+shop@Mail.Example.CO.uk ", "Orders+shop@mail.example.co.uk"),
            ("o'brien@example.org", "o'brien@example.org"),
            ("a.b-c_d@xn--bcher-kva.example", "a.b-c_d@xn--bcher-kva.example"),
            ("x@shop.xn--p1ai", "x@shop.xn--p1ai"),
        ] {
            assert_eq!(validate_email("email", raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused_with_the_field_named() {
        for bad in [
            "",
            "vendor",
            "vendor@",
            "@example.com",
            "vendor@localhost",
            "vendor@example",
            "vendor@example.c",
            "vendor@exa_mple.com",
            "vendor@-example.com",
            "vendor@example..com",
            "ven dor@example.com",
            "vendor.@example.com",
            ".vendor@example.com",
            "ve..ndor@example.com",
            "\"quoted\"@example.com",
            "vendor@[127.0.0.1]",
            "vendor@127.0.0.1",
            "vendör@example.com",
            "vendor@exämple.com",
            "Vendor <vendor@example.com>",
            "vendor@example.com\r\nBcc: x@example.com",
            "a@b@example.com",
        ] {
            let e = validate_email("email", bad).unwrap_err();
            assert_eq!((e.field.as_str(), e.not_allowed), ("email", false), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(validate_email("email", &long).is_err());
        let long = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
        assert!(validate_email("email", &long).unwrap_err().message.contains("254"));
    }

    #[test]
    fn topics_parse_sorted_and_once() {
        assert_eq!(
            parse_topics("notify", ["failures", "new_order", "failures"]).unwrap(),
            vec![Topic::NewOrder, Topic::Failures]
        );
        let e = parse_topics("notify", ["new_order", "spam"]).unwrap_err();
        assert!(e.message.contains("new_order, order_cancellation, failures"), "{}", e.message);
        assert!(check_settings(None, &[Topic::Failures], "notify").unwrap_err().not_allowed);
        assert!(check_settings(None, &[], "notify").is_ok());
    }

    #[test]
    fn only_an_opted_in_unrefused_address_is_written_to() {
        let mut n = Notifications {
            email: Some("v@example.com".into()),
            topics: vec![Topic::NewOrder],
            ..Default::default()
        };
        assert_eq!(n.address_for(Topic::NewOrder), Some("v@example.com"));
        assert_eq!(n.address_for(Topic::Failures), None);
        n.refused = Some((1, "rejected".into()));
        assert_eq!(n.address_for(Topic::NewOrder), None);
    }

    const ORDER: &str = r#"{"orderNo": "1000-4612", "type": "new_order", "items": [
        {"skuNr": "SKU-1", "itemName": "Mug <large> & co", "itemQuantity": 2, "itemPrice": 30, "itemTotal": 60.0},
        {"skuNr": "SKU-2", "itemName": "Tea", "itemQuantity": 1, "itemPrice": 4.5, "itemTotal": 4.5}]}"#;

    #[test]
    fn an_order_email_lists_the_order_and_its_items_in_text_and_html() {
        let (order_no, m) = order_mail("ven_1", "v@example.com", EventType::NewOrder, ORDER).unwrap();
        assert_eq!(order_no, "1000-4612");
        assert_eq!(m.vendor_id, "ven_1");
        assert_eq!(m.subject, "New order 1000-4612");
        assert_eq!(m.to, "v@example.com");
        assert!(m.text.contains("- Mug <large> & co (SKU SKU-1): 2 x 30.00 = 60.00"), "{}", m.text);
        assert!(m.text.contains("- Tea (SKU SKU-2): 1 x 4.50 = 4.50"));
        assert!(m.text.contains("Order total: 64.50"));
        assert!(m.html.contains("<td>Mug &lt;large&gt; &amp; co</td>"), "{}", m.html);
        assert!(m.html.contains("<b>64.50</b>"));
        assert!(!m.html.contains("<large>"));

        let (_, c) = order_mail("ven_1", "v@example.com", EventType::OrderCancellation, ORDER).unwrap();
        assert_eq!(c.subject, "Order 1000-4612 cancelled");
        assert!(order_mail("ven_1", "v@example.com", EventType::OrdersCreated, ORDER).is_none());
        assert!(order_mail("ven_1", "v@example.com", EventType::NewOrder, "{}").is_none());
    }

    #[test]
    fn an_order_is_mailed_once_per_vendor_kind_and_number() {
        let a = order_mail_key("ven_1", EventType::NewOrder, "1000-4612");
        assert_eq!(a, order_mail_key("ven_1", EventType::NewOrder, "1000-4612"));
        assert_ne!(a, order_mail_key("ven_1", EventType::OrderCancellation, "1000-4612"));
        assert_ne!(a, order_mail_key("ven_2", EventType::NewOrder, "1000-4612"));
        assert!(order_mail_key("ven_1", EventType::NewOrder, &"9".repeat(10_000)).len() < 120);
    }

    #[test]
    fn an_alert_names_the_webhook_url_error_and_remedy_but_no_secret() {
        let mut w = crate::domain::tests::webhook();
        w.authentication = Some("Basic c2VjcmV0".into());
        let m = alert_mail("v@example.com", Alert::Failing, &w, "status 500: <oops>", 4);
        assert_eq!(m.subject, format!("Webhook {} is failing", w.id));
        for part in [&m.text, &m.html] {
            assert!(part.contains(&w.url));
            assert!(!part.contains("c2VjcmV0") && !part.contains(&w.secret));
            assert!(part.contains(&format!("/basic/webhooks/{}/test", w.id)));
        }
        assert!(m.text.contains("Last error: status 500: <oops>"));
        assert!(m.html.contains("status 500: &lt;oops&gt;"));
        w.disabled = Some((1, "the receiver answered 410 Gone".into()));
        let d = alert_mail("v@example.com", Alert::Disabled, &w, "status 410", 1);
        assert!(d.text.contains("disabled: the receiver answered 410 Gone"));
        assert!(d.text.contains("/enable"));
    }
}
