//! `publish-event`: the platform publishes an event; one delivery is enqueued per matching
//! active webhook of the vendor.
use lambda_http::{http::StatusCode, Body, Response};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{
    api::{request, App, Call},
    clock::now,
    delivery::DeliveryMessage,
    digest,
    domain::FieldError,
    emails::EmailMessage,
    error::{json_response, ApiError},
    events::{self, PublishError, PublishRequest, MAX_EVENT_BYTES},
    ids, metrics,
    notify::Topic,
    queue::{DeliveryQueue, MAX_MESSAGE_BYTES},
    store::{EventClaim, EventLog, EventStart, NotifyStore, StoredEvent, VendorStore, WebhookStore},
};

/// How long a publisher's idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 24 * 3600;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted<'a> {
    event_id: &'a str,
    deliveries: u32,
}

/// `POST /events`.
pub async fn handle<S, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError>
where
    S: VendorStore + WebhookStore + EventLog + NotifyStore,
    Q: DeliveryQueue,
{
    let Some(queue) = &app.queue else {
        tracing::error!("publish-event runs without DELIVERIES_QUEUE_URL");
        return Err(ApiError::internal_error());
    };
    let event =
        events::parse_publish(request::json_bytes(&call.request, MAX_EVENT_BYTES)?).map_err(|e| match e {
            PublishError::Json(m) => {
                ApiError::bad_request("invalid_json", format!("request body is not valid: {m}"))
            }
            PublishError::Field(f) => f.into(),
        })?;
    if app.store.vendor_by_id(&event.vendor_id).await?.is_none() {
        return Err(FieldError::not_allowed("vendorId", "vendorId names no vendor").into());
    }

    let mut event_id = event.id.clone().unwrap_or_else(ids::event_id);
    refuse_what_cannot_be_queued(&event_id, &event)?;
    if let Some(key) = &event.id {
        let t = now();
        let fingerprint = fingerprint(&event);
        let claim = EventClaim {
            vendor_id: &event.vendor_id,
            key,
            event_id: &event_id,
            fingerprint: &fingerprint,
            now: t,
            lease_until: t + FAN_OUT_LEASE_SECS,
            expires_at: t + IDEMPOTENCY_WINDOW_SECS,
        };
        match app.store.begin_event(&claim).await? {
            EventStart::New => {}
            EventStart::Resumed { event_id: first } => {
                tracing::warn!(event_id = %first, "repeated event id whose fan-out stopped: fanning out again");
                event_id = first;
            }
            EventStart::Done { event_id, deliveries } => {
                tracing::info!(event_id = %event_id, "repeated event id: nothing enqueued");
                metrics::Record::new("publish-event").count("Repeated", 1).emit();
                return Ok(json_response(
                    StatusCode::ACCEPTED,
                    &Accepted { event_id: &event_id, deliveries },
                ));
            }
            EventStart::InProgress { retry_after_secs } => {
                tracing::info!(event_id = %key, "repeated event id while its fan-out runs: nothing enqueued");
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "in_progress",
                    "an event with this id is being fanned out now: publish it again after Retry-After",
                )
                .with_retry_after(retry_after_secs));
            }
            EventStart::Mismatch => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_mismatch",
                    "an event with this id was published with another type or payload: give a new \
                     event a new id",
                ));
            }
        }
    }

    let fanned = fan_out(app, queue, &event, &event_id).await;
    let deliveries = match (fanned, &event.id) {
        (Ok(deliveries), Some(key)) => {
            app.store.finish_event(&event.vendor_id, key, deliveries).await?;
            deliveries
        }
        (Ok(deliveries), None) => deliveries,
        (Err(e), key) => {
            // The lease is given up, so that publishing again can complete it at once.
            if let Some(key) = key {
                if let Err(release) = app.store.release_event(&event.vendor_id, key).await {
                    tracing::warn!(error = %crate::error::chain(&release), "cannot release the event's lease");
                }
            }
            return Err(e);
        }
    };
    tracing::info!(event_id = %event_id, event_type = %event.event_type, vendor = %event.vendor_id, deliveries, "event published");
    metrics::Record::new("publish-event").count("Published", 1).count("FannedOut", deliveries as u64).emit();
    Ok(json_response(StatusCode::ACCEPTED, &Accepted { event_id: &event_id, deliveries }))
}

/// How long a publish holds its idempotency key while it fans out: three times the function's
/// time limit (10 s), so that a lease past its time is a fan-out that died.
pub const FAN_OUT_LEASE_SECS: i64 = 30;

/// What makes two publishes under one id the same event: their type and payload, as JSON
/// values (a publisher that serialises the same payload again, with its keys in another order or
/// other whitespace, publishes the same event).
fn fingerprint(event: &PublishRequest) -> String {
    let mut canonical = format!("{}\n", event.event_type.as_str());
    match serde_json::from_str::<serde_json::Value>(event.payload.get()) {
        Ok(value) => write_canonical(&value, &mut canonical),
        Err(_) => canonical.push_str(event.payload.get()),
    }
    digest::sha256_hex(canonical.as_bytes())
}

/// JSON with every object's keys in order, whatever order the map type keeps them in.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Enqueues one delivery per matching active webhook (and the order email, if the vendor asked
/// for one); the number of deliveries. A webhook whose last attempt failed has its delivery put
/// in the slow lane, where dispatch would move it: healthy webhooks' deliveries never queue
/// behind it.
async fn fan_out<S, Q>(
    app: &App<S, Q>,
    queue: &Q,
    event: &PublishRequest,
    event_id: &str,
) -> Result<u32, ApiError>
where
    S: VendorStore + WebhookStore + EventLog + NotifyStore,
    Q: DeliveryQueue,
{
    let published_at = now();
    let webhooks = app.store.list_webhooks(&event.vendor_id).await?;
    let (mut bodies, mut slow) = (Vec::new(), Vec::new());
    // The payload as a value, read once and only if a filter needs it (it was validated).
    let mut payload: Option<serde_json::Value> = None;
    let mut filtered_out = 0;
    for w in webhooks.iter().filter(|w| w.event_type == event.event_type && w.disabled.is_none()) {
        if let Some(filter) = &w.options.filter {
            let payload = payload.get_or_insert_with(|| {
                serde_json::from_str(event.payload.get()).unwrap_or(serde_json::Value::Null)
            });
            if !filter.matches(payload) {
                filtered_out += 1;
                continue;
            }
        }
        let body = DeliveryMessage::first(
            event_id.to_owned(),
            event.event_type,
            event.vendor_id.clone(),
            w.id,
            published_at,
            event.payload.clone(),
        )
        .to_body();
        if w.failing() && app.slow_lane.is_some() {
            slow.push(body);
        } else {
            bodies.push(body);
        }
    }
    let deliveries = (bodies.len() + slow.len()) as u32;
    if filtered_out > 0 {
        tracing::info!(event_id, filtered_out, "webhooks whose filter the event does not pass");
        metrics::Record::new("publish-event").count("FilteredOut", filtered_out).emit();
    }
    // An order email, if the vendor asked for one: a message on the emails queue, so that sending
    // it never holds the deliveries up; send-email sends it once per order.
    let mut email = None;
    if let (Some(topic), Some(emails)) = (Topic::of_event(event.event_type), &app.emails) {
        let settings = app.store.get_notifications(&event.vendor_id).await?;
        if settings.as_ref().and_then(|s| s.address_for(topic)).is_some() {
            let message = EmailMessage::order(
                event_id,
                event.event_type,
                &event.vendor_id,
                published_at,
                event.payload.clone(),
            );
            email = Some((emails, message.to_body()));
        }
    }
    if deliveries > 0 {
        // Kept for `POST /basic/webhooks/{id}/redeliver`. Delivering matters more than being able
        // to deliver again: a failure here is logged, and the fan-out goes on.
        let stored = StoredEvent {
            event_id: event_id.to_owned(),
            vendor_id: event.vendor_id.clone(),
            event_type: event.event_type,
            payload: event.payload.get().to_owned(),
            published_at,
        };
        if let Err(e) = app.store.store_event(&stored).await {
            tracing::error!(error = %crate::error::chain(&e), "cannot keep the event for redelivery");
        }
    }
    let mut queued = queue.send_all(bodies).await;
    if let (Ok(()), Some(lane)) = (&queued, app.slow_lane.as_ref().filter(|_| !slow.is_empty())) {
        queued = lane.send_all(slow).await;
    }
    if let (Ok(()), Some((emails, body))) = (&queued, email) {
        queued = emails.send_all(vec![body]).await;
    }
    if let Err(e) = queued {
        tracing::error!(error = %crate::error::chain(&e), "fan-out failed");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the event could not be queued; publish it again with the same id",
        ));
    }
    Ok(deliveries)
}

/// `413` for an event whose delivery message (or order email) would not fit in one SQS message,
/// before anything is stored or queued: publishing it again could never succeed.
fn refuse_what_cannot_be_queued(event_id: &str, event: &PublishRequest) -> Result<(), ApiError> {
    // Both messages embed the payload as it is: their envelopes, measured around a one-byte
    // payload, plus the payload's length, without copying it.
    let payload_len = event.payload.get().len();
    let delivery =
        DeliveryMessage::longest_body_len(event_id, event.event_type, &event.vendor_id, payload_len);
    let placeholder = RawValue::from_string("0".to_owned()).expect("0 is JSON");
    let email = EmailMessage::order(event_id, event.event_type, &event.vendor_id, i64::MIN, placeholder)
        .to_body()
        .len()
        - 1
        + payload_len;
    let longest = delivery.max(email);
    if longest > MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the event would need a queue message of {longest} bytes, and SQS takes at most \
                 {MAX_MESSAGE_BYTES}: make the payload {} bytes smaller",
                longest - MAX_MESSAGE_BYTES
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(payload: &str) -> PublishRequest {
        crate::events::parse_publish(
            format!(r#"{{"vendorId":"ven_1","type":"products/deleted","payload":{payload}}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_fingerprint_is_the_payloads_value_not_its_bytes() {
        let a = request(r#"{"productId": 1, "sku": "A", "price": 1.5, "title": "t"}"#);
        let b = request(r#"{"title":"t","price":1.50,"sku":"A","productId":1}"#);
        let c = request(r#"{"productId": 1, "sku": "B", "price": 1.5, "title": "t"}"#);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
