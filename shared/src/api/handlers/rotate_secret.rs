//! `rotate-secret`: a new signing secret, shown once; the former ones sign for their grace
//! periods. A repeated request (the same `Idempotency-Key`, or none within seconds) gets the
//! same new secret.
use lambda_http::{http::StatusCode, Body, Response};

use crate::{
    api::{ecomnow::WebhookView, App, Call},
    clock::rfc3339,
    digest,
    domain::FieldError,
    error::{json_response, ApiError},
    store::WebhookStore,
};

/// The longest `Idempotency-Key` taken.
const MAX_KEY_LEN: usize = 255;

/// `POST /basic/webhooks/{webhookId}/rotate-secret`.
pub async fn handle<S: WebhookStore, Q>(app: &App<S, Q>, call: Call) -> Result<Response<Body>, ApiError> {
    let id = call.webhook_id()?;
    let key = match call.request.headers().get("idempotency-key") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(k) if (1..=MAX_KEY_LEN).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()) => {
                Some(digest::sha256_hex(k.as_bytes()))
            }
            _ => {
                return Err(FieldError::malformed(
                    "Idempotency-Key",
                    format!("Idempotency-Key must be 1-{MAX_KEY_LEN} visible ASCII characters"),
                )
                .into())
            }
        },
    };
    let webhook =
        app.rotate_secret(call.vendor()?, id, app.config.rotation_grace_secs, key.as_deref()).await?;
    let mut view = WebhookView::of(&webhook);
    view.secret = Some(&webhook.secret);
    view.previous_secret_expires_at = webhook.previous_secrets.first().map(|(_, until)| rfc3339(*until));
    Ok(json_response(StatusCode::OK, &view))
}
