//! `create-webhook`: registers a webhook, in either dialect; its signing secret is shown once.
use lambda_http::{Body, Response};

use crate::{
    api::{ecomnow, request, ventiapp, App, Call},
    domain::Dialect,
    error::ApiError,
    store::WebhookStore,
    urls,
};

/// `POST /basic/webhooks` and `POST /api/webhooks/create`.
pub async fn handle<S: WebhookStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let body = request::json_object(&call.request, request::MAX_REGISTRATION_BODY)?;
    let policy = app.target_policy(call.dialect);
    let (spec, url_field) = match call.dialect {
        Dialect::Ventiapp => (ventiapp::spec_from_body(&body, policy)?, "webhook.address"),
        _ => (ecomnow::spec_from_body(&body, policy)?, "url"),
    };
    urls::check_resolved_host(url_field, &spec.url, policy).await?;
    let webhook = app.create_webhook(call.vendor()?, spec).await?;
    Ok(match call.dialect {
        Dialect::Ventiapp => ventiapp::created(&webhook),
        _ => ecomnow::created(&webhook),
    })
}
