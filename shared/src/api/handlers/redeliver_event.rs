//! `redeliver-event`: queues a kept event for one webhook again (`…/redeliver`), or every kept
//! event of a window it did not get (`…/recover`).
use lambda_http::{http::StatusCode, Body, Response};
use serde::Deserialize;

use crate::{
    api::{recover::Window, request, App, Call},
    clock::now,
    error::{json_response, ApiError},
    queue::DeliveryQueue,
    store::{AttemptLog, EventLog, WebhookStore},
};

/// The path of a recovery.
pub const RECOVER_PATH: &str = "/basic/webhooks/{webhookId}/recover";

/// The body of a recovery.
#[derive(Deserialize)]
struct RecoverBody {
    since: String,
    #[serde(default)]
    until: Option<String>,
}

/// The body of a redelivery.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedeliverBody {
    event_id: String,
}

/// `POST /basic/webhooks/{webhookId}/redeliver` with `{"eventId"}`, and
/// `POST /basic/webhooks/{webhookId}/recover` with `{"since", "until"?}`.
pub async fn handle<S: WebhookStore + EventLog + AttemptLog, Q: DeliveryQueue>(
    app: &App<S, Q>,
    call: Call,
) -> Result<Response<Body>, ApiError> {
    let id = call.webhook_id()?;
    if call.path == RECOVER_PATH {
        let body: RecoverBody = request::json_body(&call.request, request::MAX_REGISTRATION_BODY)?;
        let window = Window::parse(&body.since, body.until.as_deref(), now())?;
        let queued = app.recover(call.vendor()?, id, window).await?;
        return Ok(json_response(
            StatusCode::ACCEPTED,
            &serde_json::json!({"webhookId": id, "queued": queued}),
        ));
    }
    let RedeliverBody { event_id } = request::json_body(&call.request, request::MAX_REGISTRATION_BODY)?;
    let event_id = event_id.as_str();
    app.redeliver(call.vendor()?, id, event_id).await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({"webhookId": id, "eventId": event_id, "status": "queued"}),
    ))
}
