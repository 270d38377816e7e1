//! The eComNow dialect: `/basic/webhooks`, camelCase bodies, vendor credentials.
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use lambda_http::{
    http::{header, HeaderValue, StatusCode},
    Body, Response,
};
use serde::{
    de::{self, SeqAccess, Visitor},
    Deserialize, Deserializer, Serialize,
};
use serde_json::Value;
use std::fmt;

use crate::{
    clock::{now, rfc3339, rfc3339_ms},
    domain::{self, Dialect, Vendor, Webhook, WebhookSpec},
    error::{json_response, ApiError},
    fields::{self, NullableString},
    notify::{self, Notifications},
    options::{Filter, OptionsChange, Ordering},
    store::AttemptRecord,
    urls,
};

/// A webhook as eComNow shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookView<'a> {
    webhook_id: u64,
    vendor_id: &'a str,
    webhook_type: &'static str,
    url: &'a str,
    method: &'static str,
    authentication: Option<&'a str>,
    created_at: String,
    updated_at: String,
    /// `active`, or `disabled` when deliveries stopped (a `410 Gone` from the receiver).
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<&'a str>,
    /// The webhook's own cap on deliveries in flight, if it set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_in_flight: Option<u32>,
    /// While the circuit breaker holds deliveries back: `open` until `circuitOpenUntil`, then
    /// `probing` while one delivery tries the receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    circuit_open_until: Option<String>,
    /// Failed attempts in a row since the last delivery.
    #[serde(skip_serializing_if = "is_zero")]
    consecutive_failures: u32,
    /// The delivery options, each only when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    filter: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ordering: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<serde_json::Map<String, Value>>,
    /// Only in the answers to the creation and a rotation: a signing secret is shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) secret: Option<&'a str>,
    /// In the answer to a rotation: until when the former secret still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) previous_secret_expires_at: Option<String>,
}

impl<'a> WebhookView<'a> {
    pub(super) fn of(w: &'a Webhook) -> Self {
        Self {
            webhook_id: w.id,
            vendor_id: &w.vendor_id,
            webhook_type: w.event_type.as_str(),
            url: &w.url,
            method: "POST",
            authentication: w.authentication.as_deref(),
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
            status: if w.disabled.is_some() { "disabled" } else { "active" },
            disabled_at: w.disabled.as_ref().map(|(at, _)| rfc3339(*at)),
            disabled_reason: w.disabled.as_ref().map(|(_, why)| why.as_str()),
            max_in_flight: w.max_in_flight,
            circuit: w.circuit_open_until.map(|until| if until > now() { "open" } else { "probing" }),
            circuit_open_until: w.circuit_open_until.map(rfc3339),
            consecutive_failures: w.consecutive_failures,
            filter: w.options.filter.as_ref().map(Filter::to_value),
            ordering: (w.options.ordering != Ordering::None).then(|| w.options.ordering.as_str()),
            headers: (!w.options.headers.is_empty()).then(|| {
                w.options.headers.iter().map(|(n, v)| (n.clone(), Value::String(v.clone()))).collect()
            }),
            secret: None,
            previous_secret_expires_at: None,
        }
    }
}

/// The highest cap a webhook may set on its deliveries in flight.
pub const MAX_IN_FLIGHT: u32 = 100;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One delivery attempt, as the vendor sees it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeliveryView<'a> {
    event_id: &'a str,
    attempt: u32,
    /// `delivered`, `rejected` (a non-2xx answer), or why there was no answer.
    outcome: &'a str,
    status: Option<u16>,
    duration_ms: u64,
    at: String,
    /// The first KiB of the receiver's answer.
    response: &'a str,
}

impl<'a> DeliveryView<'a> {
    pub(super) fn of(a: &'a AttemptRecord) -> Self {
        Self {
            event_id: &a.event_id,
            attempt: a.attempt,
            outcome: &a.outcome,
            status: a.status,
            duration_ms: a.duration_ms,
            at: rfc3339_ms(a.at_ms),
            response: &a.response_excerpt,
        }
    }
}

/// A page of attempts, newest first, and the cursor of the next page.
#[derive(Serialize)]
pub(super) struct DeliveryPage<'a> {
    pub(super) deliveries: Vec<DeliveryView<'a>>,
    pub(super) next: Option<String>,
}

/// Page cursors are opaque to clients: the store's sort key, base64url.
pub(super) fn encode_cursor(sk: &str) -> String {
    URL_SAFE_NO_PAD.encode(sk)
}

/// Reads a cursor back; anything that is not one of ours is refused.
pub(super) fn decode_cursor(c: &str) -> Option<String> {
    let sk = String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()?;
    let ok = sk.len() <= 300
        && sk.split('#').next().is_some_and(|t| t.len() == 13 && t.bytes().all(|b| b.is_ascii_digit()));
    ok.then_some(sk)
}

/// The answer to the list: `{"webhooks": [...]}`.
#[derive(Serialize)]
struct WebhookList<'a> {
    webhooks: Vec<WebhookView<'a>>,
}

/// The answer to the list.
pub(super) fn list(webhooks: &[Webhook]) -> Response<Body> {
    json_response(StatusCode::OK, &WebhookList { webhooks: webhooks.iter().map(WebhookView::of).collect() })
}

/// The answer to a creation: `201`, the webhook with its secret (shown this once), and where
/// it lives.
pub(super) fn created(webhook: &Webhook) -> Response<Body> {
    let mut view = WebhookView::of(webhook);
    view.secret = Some(&webhook.secret);
    let mut response = json_response(StatusCode::CREATED, &view);
    if let Ok(location) = HeaderValue::from_str(&format!("/basic/webhooks/{}", webhook.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A vendor's notification settings as eComNow shows them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NotificationsView<'a> {
    vendor_id: &'a str,
    email: Option<&'a str>,
    notify: Vec<&'static str>,
    /// `none` (no address), `active`, or `refused` (SES refused the address: nothing is sent to
    /// it until it is set again).
    email_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at: Option<String>,
}

impl<'a> NotificationsView<'a> {
    pub(super) fn of(vendor: &'a Vendor, n: &'a Notifications) -> Self {
        Self {
            vendor_id: &vendor.vendor_id,
            email: n.email.as_deref(),
            notify: n.topics.iter().map(|t| t.as_str()).collect(),
            email_status: match (&n.email, &n.refused) {
                (None, _) => "none",
                (Some(_), None) => "active",
                (Some(_), Some(_)) => "refused",
            },
            refused_at: n.refused.as_ref().map(|(at, _)| rfc3339(*at)),
            refused_reason: n.refused.as_ref().map(|(_, why)| why.as_str()),
            updated_at: (n.updated_at > 0).then(|| rfc3339(n.updated_at)),
        }
    }
}

/// The body of `PUT /basic/notifications`: `{"email": string or null, "notify": [topic, …]}`.
#[derive(Deserialize)]
pub(super) struct NotificationsBody {
    #[serde(default, deserialize_with = "fields::present")]
    email: Option<NullableString>,
    #[serde(default, deserialize_with = "fields::present")]
    notify: Option<TopicNames>,
}

/// At most 16 names of notification topics.
struct TopicNames(Vec<String>);

impl<'de> Deserialize<'de> for TopicNames {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopicNames;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of names")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TopicNames, A::Error> {
                let mut names = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    if names.len() == 16 {
                        return Err(de::Error::custom("holds at most 16 names"));
                    }
                    match item {
                        Value::String(name) => names.push(name),
                        _ => return Err(de::Error::custom("must hold strings")),
                    }
                }
                Ok(TopicNames(names))
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks `PUT /basic/notifications`. Setting an address (even the same one) clears a refusal:
/// the next email tries it again.
pub(super) fn notifications_from_body(body: NotificationsBody) -> Result<Notifications, ApiError> {
    let Some(NullableString(email)) = body.email else {
        return Err(domain::FieldError::malformed("email", "email is required (null for none)").into());
    };
    let email = email.as_deref().map(|e| notify::validate_email("email", e)).transpose()?;
    let Some(TopicNames(names)) = body.notify else {
        return Err(domain::FieldError::malformed("notify", "notify is required ([] for none)").into());
    };
    let topics = notify::parse_topics("notify", names.iter().map(String::as_str))?;
    notify::check_settings(email.as_deref(), &topics, "notify")?;
    Ok(Notifications { email, topics, refused: None, updated_at: now() })
}

/// The body of `POST` and `PUT /basic/webhooks…`, in the order its fields are checked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookBody {
    #[serde(default)]
    authentication: NullableString,
    webhook_type: String,
    url: String,
    /// The document speaks of a "webhook method"; POST is the only one deliveries use.
    #[serde(default)]
    method: NullableString,
    #[serde(default)]
    max_in_flight: Option<InFlightCap>,
    /// Absent leaves an option as it is (on `PUT`), `null` removes it.
    #[serde(default, deserialize_with = "fields::present")]
    filter: Option<Value>,
    #[serde(default, deserialize_with = "fields::present")]
    ordering: Option<Value>,
    #[serde(default, deserialize_with = "fields::present")]
    headers: Option<Value>,
}

/// `maxInFlight`: a whole number from 1 to [`MAX_IN_FLIGHT`].
struct InFlightCap(u32);

impl<'de> Deserialize<'de> for InFlightCap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = InFlightCap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "a whole number from 1 to {MAX_IN_FLIGHT}")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<InFlightCap, E> {
                match u32::try_from(n) {
                    Ok(n) if (1..=MAX_IN_FLIGHT).contains(&n) => Ok(InFlightCap(n)),
                    _ => Err(E::invalid_value(de::Unexpected::Unsigned(n), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks the body of `POST` and `PUT`: `{"authentication"?, "webhookType", "url"}`.
pub(super) fn spec_from_body(body: WebhookBody, policy: urls::TargetPolicy) -> Result<WebhookSpec, ApiError> {
    if let NullableString(Some(method)) = &body.method {
        if !method.eq_ignore_ascii_case("POST") {
            return Err(domain::FieldError::malformed("method", "method must be POST").into());
        }
    }
    let event_type = domain::parse_event_type("webhookType", &body.webhook_type, Dialect::Ecomnow)?;
    let url = urls::validate_target_url("url", &body.url, policy)?;
    let authentication = domain::validate_authentication("authentication", body.authentication.0.as_deref())?;
    let max_in_flight = body.max_in_flight.map(|InFlightCap(n)| n);
    let options = OptionsChange::parse(body.filter.as_ref(), body.ordering.as_ref(), body.headers.as_ref())?;
    Ok(WebhookSpec { event_type, url: url.into(), authentication, max_in_flight, options })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::request, domain::EventType};
    use serde_json::json;

    const LOCAL: urls::TargetPolicy = urls::TargetPolicy { allow_private: true, allow_http: true };
    const PROD: urls::TargetPolicy = urls::TargetPolicy { allow_private: false, allow_http: false };

    fn spec(v: Value, policy: urls::TargetPolicy) -> Result<WebhookSpec, ApiError> {
        spec_from_body(request::object(&v)?, policy)
    }

    #[test]
    fn the_documents_example_body_is_accepted() {
        let spec = spec(json!({"authentication": "Basic XxxXxxXX", "webhookType": "new_order", "url": "https://vendor.example.com/hooks"}), PROD)
        .unwrap();
        assert_eq!(spec.event_type, EventType::NewOrder);
        assert_eq!(spec.url, "https://vendor.example.com/hooks");
        assert_eq!(spec.authentication.as_deref(), Some("Basic XxxXxxXX"));
    }

    #[test]
    fn errors_name_the_field_and_the_allowed_values() {
        let e = spec(json!({"webhookType": "order_created", "url": "https://a.example/"}), PROD).unwrap_err();
        assert_eq!((e.status.as_u16(), e.field.as_deref()), (400, Some("webhookType")));
        assert!(e.message.contains("new_order, order_cancellation"));

        let e = spec(json!({"webhookType": "new_order"}), PROD).unwrap_err();
        assert_eq!((e.status.as_u16(), e.field.as_deref()), (400, Some("url")));

        let e = spec(json!({"webhookType": "new_order", "url": 5}), PROD).unwrap_err();
        assert_eq!(e.message, "url must be a string");

        let e = spec(json!({"webhookType": "new_order", "url": "https://a.example/", "hook": 1}), PROD)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("hook"));

        let e = spec(json!({"webhookType": "new_order", "url": "http://a.example/"}), PROD).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (422, "not_allowed"));

        let e = spec(json!({"webhookType": "new_order", "url": "https://a.example/", "method": "GET"}), PROD)
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("method"));
    }

    #[test]
    fn local_policy_accepts_a_loopback_http_receiver() {
        let spec = spec(json!({"webhookType": "order_cancellation", "url": "http://127.0.0.1:8080/in", "authentication": null}), LOCAL).unwrap();
        assert_eq!(spec.authentication, None);
    }
}
