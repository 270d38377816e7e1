//! `update-notifications`: replaces the vendor's email notification settings.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{
        ecomnow::{notifications_from_body, NotificationsView},
        request, App, Call,
    },
    error::{json_response, ApiError},
    store::NotifyStore,
};

/// `PUT /basic/notifications` with `{"email", "notify"}`.
pub async fn handle<S: NotifyStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let vendor = call.vendor()?;
    let body = request::json_body(&call.request, request::MAX_REGISTRATION_BODY)?;
    let settings = notifications_from_body(body)?;
    app.store.put_notifications(&vendor.vendor_id, &settings).await?;
    tracing::info!(
        topics = settings.topics.len(),
        has_email = settings.email.is_some(),
        "notification settings changed"
    );
    Ok(json_response(StatusCode::OK, &NotificationsView::of(vendor, &settings)))
}
