//! `create-webhook`: registers a webhook, in either dialect; its signing secret is shown once.
use lambda_http::{Body, Response};

use crate::{
    api::{ecomnow, request, ventiapp, App, Call},
    domain::{Dialect, Vendor, WebhookSpec},
    error::ApiError,
    store::WebhookStore,
    urls,
};

/// `POST /basic/webhooks` and `POST /api/webhooks/create`.
pub async fn handle<S: WebhookStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let limit = request::MAX_REGISTRATION_BODY;
    let policy = app.target_policy(call.dialect);
    let (spec, url_field) = match call.dialect {
        Dialect::Ventiapp => {
            (ventiapp::spec_from_body(request::json_body(&call.request, limit)?, policy)?, "webhook.address")
        }
        _ => (ecomnow::spec_from_body(request::json_body(&call.request, limit)?, policy)?, "url"),
    };
    urls::check_resolved_host(url_field, &spec.url, policy).await?;
    let vendor = call.vendor()?;
    let webhook = match app.create_webhook(vendor, spec.clone()).await {
        Ok(w) => w,
        // At the limit too: enabling a hidden webhook adds none.
        Err(e) if call.dialect == Dialect::Ventiapp && matches!(e.code, "duplicate" | "webhook_limit") => {
            return enable_hidden_duplicate(app, vendor, &spec).await?.ok_or(e);
        }
        Err(e) => return Err(e),
    };
    Ok(match call.dialect {
        Dialect::Ventiapp => ventiapp::created(&webhook),
        _ => ecomnow::created(&webhook),
    })
}

/// Ventiapp's list shows active webhooks only, so a vendor can be unable to see the webhook its
/// creation duplicates. Never an invisible 409: creating a disabled webhook's topic and address
/// again enables it (`None`: the duplicate is active, and visible; the 409 stands).
async fn enable_hidden_duplicate<S: WebhookStore, Q>(
    app: &App<S, Q>,
    vendor: &Vendor,
    spec: &WebhookSpec,
) -> Result<Option<Response<Body>>, ApiError> {
    let webhooks = app.store.list_webhooks(&vendor.vendor_id).await?;
    let hidden = webhooks
        .iter()
        .find(|w| w.event_type == spec.event_type && w.url == spec.url && w.disabled.is_some());
    let Some(hidden) = hidden else { return Ok(None) };
    let webhook = app.enable_webhook(vendor, hidden.id).await?;
    Ok(Some(ventiapp::enabled(&webhook)))
}
