//! `test-webhook`: sends a signed test event now and answers what the receiver did.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{ecomnow::DeliveryView, App, Call},
    error::{json_response, ApiError},
    store::{AttemptLog, WebhookStore},
};

/// `POST /basic/webhooks/{webhookId}/test`.
pub async fn handle<S: WebhookStore + AttemptLog, Q>(
    app: &App<S, Q>,
    call: Call,
) -> Result<Response<Body>, ApiError> {
    let id = call.webhook_id()?;
    let sent = app.test_webhook(call.vendor()?, id).await?;
    let mut view = serde_json::to_value(DeliveryView::of(&sent)).map_err(|e| ApiError::internal(&e))?;
    view["webhookId"] = id.into();
    view["delivered"] = (sent.outcome == "delivered").into();
    Ok(json_response(StatusCode::OK, &view))
}
