//! `get-notifications`: the vendor's email notification settings.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{ecomnow::NotificationsView, App, Call},
    error::{json_response, ApiError},
    store::NotifyStore,
};

/// `GET /basic/notifications`.
pub async fn handle<S: NotifyStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let vendor = call.vendor()?;
    let settings = app.store.get_notifications(&vendor.vendor_id).await?.unwrap_or_default();
    Ok(json_response(StatusCode::OK, &NotificationsView::of(vendor, &settings)))
}
