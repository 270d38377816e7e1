//! `rotate-secret`: a new signing secret, shown once; the former one signs for a grace period.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{ecomnow::WebhookView, App, Call},
    clock::rfc3339,
    error::{json_response, ApiError},
    store::WebhookStore,
};

/// `POST /basic/webhooks/{webhookId}/rotate-secret`.
pub async fn handle<S: WebhookStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let id = call.webhook_id()?;
    let webhook = app.rotate_secret(call.vendor()?, id, app.config.rotation_grace_secs).await?;
    let mut view = WebhookView::of(&webhook);
    view.secret = Some(&webhook.secret);
    view.previous_secret_expires_at = webhook.previous_secret.as_ref().map(|(_, until)| rfc3339(*until));
    Ok(json_response(StatusCode::OK, &view))
}
