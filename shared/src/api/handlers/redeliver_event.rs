//! `redeliver-event`: queues a kept event for one webhook again.
use lambda_http::{http::StatusCode, Body, Response};
use serde::Deserialize;

use crate::{
    api::{request, App, Call},
    domain::FieldError,
    error::{json_response, ApiError},
    queue::DeliveryQueue,
    store::{EventLog, WebhookStore},
};

/// The body of a redelivery.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedeliverBody {
    event_id: String,
}

/// `POST /basic/webhooks/{webhookId}/redeliver` with `{"eventId"}`.
pub async fn handle<S: WebhookStore + EventLog, Q: DeliveryQueue>(
    app: &App<S, Q>,
    call: Call,
) -> Result<Response<Body>, ApiError> {
    let id = call.webhook_id()?;
    let RedeliverBody { event_id } = request::json_body(&call.request, request::MAX_REGISTRATION_BODY)?;
    let event_id = event_id.as_str();
    if event_id.is_empty() || event_id.len() > 256 {
        return Err(FieldError::malformed("eventId", "eventId must be 1 to 256 characters").into());
    }
    app.redeliver(call.vendor()?, id, event_id).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({"webhookId": id, "eventId": event_id, "status": "queued"}),
    ))
}
