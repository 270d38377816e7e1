//! The Ventiapp dialect: `/api/webhooks/{list,create,delete}`, bearer tokens, and the shapes
//! of the Ventiapp document (`id`, `address`, `topic`, `created_at`, `api_version`).
use lambda_http::{http::StatusCode, Body, Response};
use serde::{
    de::{self, IgnoredAny, Visitor},
    Deserialize, Deserializer, Serialize,
};
use std::fmt;
use time::{macros::format_description, OffsetDateTime};

use crate::{
    domain::{self, Dialect, Webhook, WebhookSpec},
    error::{json_response, ApiError},
    ids::MAX_WEBHOOK_ID,
    urls,
};

/// The `api_version` every Ventiapp answer carries: the version of the Ventiapp webhook API
/// whose document this implements.
pub const API_VERSION: &str = "1.0.9";

/// A webhook as Ventiapp shows it, in the document's field order.
#[derive(Serialize)]
struct WebhookView<'a> {
    id: u64,
    address: &'a str,
    topic: &'static str,
    created_at: String,
    api_version: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    /// Only in the answer to the creation: the signing secret is shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

impl<'a> WebhookView<'a> {
    fn of(w: &'a Webhook) -> Self {
        Self {
            id: w.id,
            address: &w.url,
            topic: w.event_type.as_str(),
            created_at: created_at(w.created_at),
            api_version: API_VERSION,
            message: None,
            secret: None,
        }
    }
}

#[derive(Serialize)]
struct One<'a> {
    webhook: WebhookView<'a>,
}

#[derive(Serialize)]
struct List<'a> {
    webhooks: Vec<WebhookView<'a>>,
}

/// The answer to the list: the document lists "the active webhooks".
pub(super) fn list(webhooks: &[Webhook]) -> Response<Body> {
    let webhooks = webhooks.iter().filter(|w| w.disabled.is_none()).map(WebhookView::of).collect();
    json_response(StatusCode::OK, &List { webhooks })
}

/// The answer to a creation: `201`, the webhook with its secret (shown this once).
pub(super) fn created(webhook: &Webhook) -> Response<Body> {
    let mut view = WebhookView::of(webhook);
    view.message = Some("Webhook created");
    view.secret = Some(&webhook.secret);
    json_response(StatusCode::CREATED, &One { webhook: view })
}

/// The answer to creating a disabled webhook again: `200`, the webhook enabled as it was (its
/// secret unchanged, and not shown again).
pub(super) fn enabled(webhook: &Webhook) -> Response<Body> {
    let mut view = WebhookView::of(webhook);
    view.message = Some("Webhook enabled");
    json_response(StatusCode::OK, &One { webhook: view })
}

/// The answer to a deletion: what the webhook was.
pub(super) fn deleted(webhook: &Webhook) -> Response<Body> {
    let mut view = WebhookView::of(webhook);
    view.message = Some("Webhook deleted");
    json_response(StatusCode::OK, &One { webhook: view })
}

/// A Ventiapp request body: `{"webhook": {…}}`.
#[derive(Deserialize)]
pub(super) struct Envelope<T> {
    webhook: T,
}

/// The webhook of a creation: `{"topic", "address"}`.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
pub(super) struct NewWebhook {
    topic: String,
    address: String,
}

/// The webhook of a deletion: its `id`; the other fields of a webhook, sent back as they were,
/// are ignored.
#[derive(Deserialize)]
#[serde(expecting = "an object")]
#[allow(dead_code, reason = "declared to be accepted, never read")]
pub(super) struct WebhookRef {
    id: WebhookId,
    #[serde(default)]
    address: IgnoredAny,
    #[serde(default)]
    topic: IgnoredAny,
    #[serde(default)]
    created_at: IgnoredAny,
    #[serde(default)]
    api_version: IgnoredAny,
}

/// A webhook id in a body: a JSON integer in `1..2^53`.
struct WebhookId(u64);

impl<'de> Deserialize<'de> for WebhookId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WebhookId;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a positive integer below 2^53")
            }
            fn visit_u64<E: de::Error>(self, id: u64) -> Result<WebhookId, E> {
                if (1..=MAX_WEBHOOK_ID).contains(&id) {
                    Ok(WebhookId(id))
                } else {
                    Err(E::invalid_value(de::Unexpected::Unsigned(id), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks a creation's topic and address.
pub(super) fn spec_from_body(
    body: Envelope<NewWebhook>,
    policy: urls::TargetPolicy,
) -> Result<WebhookSpec, ApiError> {
    let NewWebhook { topic, address } = body.webhook;
    let event_type = domain::parse_event_type("webhook.topic", &topic, Dialect::Ventiapp)?;
    let url = urls::validate_target_url("webhook.address", &address, policy)?;
    Ok(WebhookSpec {
        event_type,
        url: url.into(),
        authentication: None,
        max_in_flight: None,
        options: Default::default(),
    })
}

/// The id of the webhook a deletion names.
pub(super) fn id_from_body(body: Envelope<WebhookRef>) -> u64 {
    body.webhook.id.0
}

/// RFC 3339 with a numeric offset and no fractions, as the document writes it.
fn created_at(unix: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+00:00");
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&format).ok()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{api::request, domain::EventType};
    use serde_json::{json, Value};

    const PROD: urls::TargetPolicy = urls::TargetPolicy { allow_private: false, allow_http: false };

    fn spec(v: &Value, policy: urls::TargetPolicy) -> Result<WebhookSpec, ApiError> {
        spec_from_body(request::object(v)?, policy)
    }

    fn id(v: Value) -> Result<u64, ApiError> {
        request::object(&v).map(id_from_body)
    }

    #[test]
    fn the_documents_create_body_is_accepted() {
        let spec = spec(
            &json!({"webhook": {"topic": "orders/created", "address": "https://whatever.hostname.com/"}}),
            PROD,
        )
        .unwrap();
        assert_eq!(spec.event_type, EventType::OrdersCreated);
        assert_eq!(spec.url, "https://whatever.hostname.com/");
    }

    #[test]
    fn topics_are_the_seven_of_the_document() {
        for topic in [
            "orders/created",
            "orders/updated",
            "orders/cancelled",
            "bills/created",
            "products/created",
            "products/updated",
            "products/deleted",
        ] {
            let b = json!({"webhook": {"topic": topic, "address": "https://a.example/"}});
            assert_eq!(spec(&b, PROD).unwrap().event_type.as_str(), topic);
        }
        for topic in ["orders/create", "new_order", "orders/*", ""] {
            let b = json!({"webhook": {"topic": topic, "address": "https://a.example/"}});
            let e = spec(&b, PROD).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("webhook.topic"));
            assert!(
                e.message.contains("orders/created, orders/updated, orders/cancelled, bills/created"),
                "{}",
                e.message
            );
        }
    }

    #[test]
    fn http_addresses_are_refused_even_where_local_targets_are_allowed() {
        let local_ventiapp = urls::TargetPolicy { allow_private: true, allow_http: false };
        let b = json!({"webhook": {"topic": "bills/created", "address": "http://127.0.0.1:9/"}});
        let e = spec(&b, local_ventiapp).unwrap_err();
        assert_eq!((e.status.as_u16(), e.field.as_deref()), (422, Some("webhook.address")));
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        for (b, field) in [
            (json!({}), "webhook"),
            (json!({"webhook": "x"}), "webhook"),
            (json!({"webhook": {"address": "https://a.example/"}}), "webhook.topic"),
            (json!({"webhook": {"topic": "bills/created"}}), "webhook.address"),
            (
                json!({"webhook": {"topic": "bills/created", "address": "https://a.example/", "format": "xml"}}),
                "webhook.format",
            ),
            (json!({"hook": {}}), "hook"),
        ] {
            let e = spec(&b, PROD).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{b}");
        }
    }

    #[test]
    fn delete_ids_are_json_integers_below_2_pow_53() {
        assert_eq!(id(json!({"webhook": {"id": 1047897671}})).unwrap(), 1047897671);
        let echoed = json!({"webhook": {"id": 7, "address": "https://a/", "topic": "orders/created", "created_at": "x", "api_version": "1.0.9"}});
        assert_eq!(id(echoed).unwrap(), 7);
        for bad in [json!("7"), json!(-7), json!(0), json!(1.5), json!(9007199254740992u64), json!(null)] {
            let e = id(json!({"webhook": {"id": bad}})).unwrap_err();
            assert_eq!((e.status.as_u16(), e.field.as_deref()), (400, Some("webhook.id")), "{bad}");
        }
    }

    #[test]
    fn created_at_has_an_offset_and_no_fractions() {
        assert_eq!(created_at(1_583_343_384), "2020-03-04T17:36:24+00:00");
    }
}
