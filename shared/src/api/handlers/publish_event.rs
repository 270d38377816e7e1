//! `publish-event`: the platform publishes an event (`POST /events`) or up to a hundred
//! (`POST /events/batch`); one delivery is enqueued per matching active webhook of the vendor.
use lambda_http::{http::StatusCode, Body, Response};
use serde::{Deserialize, Serialize};
use serde_json::{value::RawValue, Value};

use crate::{
    api::{
        publish::{publish_all, Published},
        request, App, Call,
    },
    error::{json_response, ApiError},
    events::{self, PublishError, PublishRequest, MAX_EVENT_BYTES},
    queue::DeliveryQueue,
    store::{EventLog, NotifyStore, VendorStore, WebhookStore},
};

/// The most events one batch may hold.
pub const MAX_BATCH_EVENTS: usize = 100;

/// The largest batch body accepted.
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// The path of a batch.
pub const BATCH_PATH: &str = "/events/batch";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted<'a> {
    event_id: &'a str,
    deliveries: u32,
}

/// `POST /events` and `POST /events/batch`.
pub async fn handle<S, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError>
where
    S: VendorStore + WebhookStore + EventLog + NotifyStore,
    Q: DeliveryQueue,
{
    let Some(queue) = &app.queue else {
        tracing::error!("publish-event runs without DELIVERIES_QUEUE_URL");
        return Err(ApiError::internal_error());
    };
    if call.path == BATCH_PATH {
        let events = read_batch(request::json_bytes(&call.request, MAX_BATCH_BYTES)?)?;
        let answers = publish_all(app, queue, events).await;
        let results: Vec<Value> = answers
            .iter()
            .map(|a| match a {
                Ok(p) => serde_json::json!({"eventId": p.event_id, "deliveries": p.deliveries}),
                Err(e) => e.body(),
            })
            .collect();
        return Ok(json_response(StatusCode::OK, &serde_json::json!({ "results": results })));
    }
    let event = read_event(request::json_bytes(&call.request, MAX_EVENT_BYTES)?);
    let answer = publish_all(app, queue, vec![event]).await.pop();
    let Published { event_id, deliveries } = answer.unwrap_or_else(|| Err(ApiError::internal_error()))?;
    Ok(json_response(StatusCode::ACCEPTED, &Accepted { event_id: &event_id, deliveries }))
}

/// One event's body, read and validated.
fn read_event(body: &[u8]) -> Result<PublishRequest, ApiError> {
    events::parse_publish(body).map_err(|e| match e {
        PublishError::Json(m) => {
            ApiError::bad_request("invalid_json", format!("request body is not valid: {m}"))
        }
        PublishError::Field(f) => f.into(),
    })
}

/// A batch's body: `{"events": [event, …]}`, 1 to [`MAX_BATCH_EVENTS`] of them. The batch is
/// refused whole only when it is not that shape; each event is read on its own, and a bad one is
/// refused alone.
fn read_batch(body: &[u8]) -> Result<Vec<Result<PublishRequest, ApiError>>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    let batch: Batch = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("request body must be {{\"events\": [event, …]}}: {e}"))
    })?;
    if batch.events.is_empty() || batch.events.len() > MAX_BATCH_EVENTS {
        let mut e = ApiError::bad_request(
            "invalid_field",
            format!("events must hold 1 to {MAX_BATCH_EVENTS} events; it holds {}", batch.events.len()),
        );
        e.field = Some("events".into());
        return Err(e);
    }
    Ok(batch
        .events
        .into_iter()
        .map(|raw| match raw.get().len() {
            n if n > MAX_EVENT_BYTES => Err(ApiError::too_large(MAX_EVENT_BYTES)),
            _ => read_event(raw.get().as_bytes()),
        })
        .collect())
}
