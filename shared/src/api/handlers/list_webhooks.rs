//! `list-webhooks`: the vendor's webhooks, in either dialect.
use lambda_http::{Body, Response};

use crate::{
    api::{ecomnow, ventiapp, App, Call},
    domain::Dialect,
    error::ApiError,
    store::WebhookStore,
};

/// `GET /basic/webhooks` and `GET /api/webhooks/list`.
pub async fn handle<S: WebhookStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let webhooks = app.store.list_webhooks(&call.vendor()?.vendor_id).await?;
    Ok(match call.dialect {
        Dialect::Ventiapp => ventiapp::list(&webhooks),
        _ => ecomnow::list(&webhooks),
    })
}
