//! `delete-webhook`: deletes a webhook and answers what it was, in either dialect.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{ecomnow, request, ventiapp, App, Call},
    domain::Dialect,
    error::{json_response, ApiError},
    store::WebhookStore,
};

/// `DELETE /basic/webhooks/{webhookId}` and `POST /api/webhooks/delete`.
pub async fn handle<S: WebhookStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let vendor = call.vendor()?;
    if call.dialect == Dialect::Ventiapp {
        let body = request::json_body(&call.request, request::MAX_REGISTRATION_BODY)?;
        let webhook = app.delete_webhook(vendor, ventiapp::id_from_body(body)).await?;
        return Ok(ventiapp::deleted(&webhook));
    }
    let webhook = app.delete_webhook(vendor, call.webhook_id()?).await?;
    Ok(json_response(StatusCode::OK, &ecomnow::WebhookView::of(&webhook)))
}
