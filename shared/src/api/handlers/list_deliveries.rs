//! `list-deliveries`: a webhook's delivery attempts, newest first, a page at a time.
use lambda_http::{http::StatusCode, Body, RequestExt, Response};

use crate::{
    api::{
        ecomnow::{decode_cursor, encode_cursor, DeliveryPage, DeliveryView},
        App, Call,
    },
    domain::FieldError,
    error::{json_response, ApiError},
    store::{AttemptLog, WebhookStore},
};

/// `GET /basic/webhooks/{webhookId}/deliveries?limit=&after=`.
pub async fn handle<S: WebhookStore + AttemptLog, Q>(
    app: &App<S, Q>,
    call: Call,
) -> Result<Response<Body>, ApiError> {
    let id = call.webhook_id()?;
    app.find_webhook(call.vendor()?, id).await?;
    let query = call.request.query_string_parameters();
    let limit = match query.first("limit") {
        None => 20,
        Some(l) => l
            .parse::<i32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| FieldError::malformed("limit", "limit must be an integer from 1 to 100"))?,
    };
    let after =
        match query.first("after") {
            None => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                FieldError::malformed("after", "after must be a cursor from a previous page")
            })?),
        };
    let (attempts, next) = app.store.attempts_page(id, limit, after.as_deref()).await?;
    let deliveries: Vec<DeliveryView> = attempts.iter().map(DeliveryView::of).collect();
    Ok(json_response(StatusCode::OK, &DeliveryPage { deliveries, next: next.as_deref().map(encode_cursor) }))
}
