//! `update-webhook`: replaces a webhook's type, URL and authentication.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{ecomnow, request, App, Call},
    error::{json_response, ApiError},
    store::WebhookStore,
    urls,
};

/// `PUT /basic/webhooks/{webhookId}`.
pub async fn handle<S: WebhookStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let id = call.webhook_id()?;
    let body = request::json_body(&call.request, request::MAX_REGISTRATION_BODY)?;
    let policy = app.target_policy(call.dialect);
    let spec = ecomnow::spec_from_body(body, policy)?;
    urls::check_resolved_host("url", &spec.url, policy).await?;
    let webhook = app.update_webhook(call.vendor()?, id, spec).await?;
    Ok(json_response(StatusCode::OK, &ecomnow::WebhookView::of(&webhook)))
}
