//! `redeliver-event`: queues a kept event for one webhook again.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{request, App, Call},
    domain::FieldError,
    error::{json_response, ApiError},
    queue::DeliveryQueue,
    store::{EventLog, WebhookStore},
};

/// `POST /basic/webhooks/{webhookId}/redeliver` with `{"eventId"}`.
pub async fn handle<S: WebhookStore + EventLog, Q: DeliveryQueue>(
    app: &App<S, Q>,
    call: Call,
) -> Result<Response<Body>, ApiError> {
    let id = call.webhook_id()?;
    let body = request::json_object(&call.request, request::MAX_REGISTRATION_BODY)?;
    request::only_fields(&body, "", &["eventId"])?;
    let event_id = request::required_str(&body, "", "eventId")?;
    if event_id.is_empty() || event_id.len() > 256 {
        return Err(FieldError::malformed("eventId", "eventId must be 1 to 256 characters").into());
    }
    app.redeliver(call.vendor()?, id, event_id).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({"webhookId": id, "eventId": event_id, "status": "queued"}),
    ))
}
