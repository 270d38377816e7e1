//! `get-webhook`: one of the vendor's webhooks.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{ecomnow::WebhookView, App, Call},
    error::{json_response, ApiError},
    store::WebhookStore,
};

/// `GET /basic/webhooks/{webhookId}`.
pub async fn handle<S: WebhookStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let webhook = app.find_webhook(call.vendor()?, call.webhook_id()?).await?;
    Ok(json_response(StatusCode::OK, &WebhookView::of(&webhook)))
}
