//! What vendors do when deliveries go wrong: enable a disabled webhook, rotate its signing
//! secret, send a past event again, send a test event and see what the receiver answers.
use lambda_http::http::StatusCode;
use serde_json::value::RawValue;

use super::App;
use crate::clock::now;
use crate::{
    delivery::{self, Deliverer, DeliveryMessage, DeliveryRequest, HttpDeliverer},
    domain::{FieldError, Vendor, Webhook},
    error::ApiError,
    events, ids,
    queue::DeliveryQueue,
    store::{AttemptLog, AttemptRecord, EventLog, WebhookStore},
};

impl<S: WebhookStore, Q> App<S, Q> {
    /// Starts deliveries to a disabled webhook again, with a clean failure record.
    pub async fn enable_webhook(&self, vendor: &Vendor, id: u64) -> Result<Webhook, ApiError> {
        let w = self.modify_webhook(vendor, id, |w| Webhook { disabled: None, ..w.healthy() }).await?;
        tracing::info!(webhook_id = id, "webhook enabled");
        Ok(w)
    }

    /// Gives a webhook a new signing secret; the former one keeps signing for `grace_secs`, and
    /// those before it until their own time. A repeat of the last rotation (the same
    /// `Idempotency-Key`, digested as `key_digest`, or none within seconds) changes nothing and
    /// answers the webhook as it is, with the secret that rotation made.
    pub async fn rotate_secret(
        &self,
        vendor: &Vendor,
        id: u64,
        grace_secs: i64,
        key_digest: Option<&str>,
    ) -> Result<Webhook, ApiError> {
        let current = self.find_webhook(vendor, id).await?;
        if current.rotated(String::new(), now(), grace_secs, key_digest).is_none() {
            tracing::info!(webhook_id = id, "repeated rotation: the secret it made is answered");
            return Ok(current);
        }
        let secret = ids::signing_secret();
        let w = self
            .modify_webhook(vendor, id, |w| {
                w.rotated(secret.clone(), now(), grace_secs, key_digest).unwrap_or_else(|| w.clone())
            })
            .await?;
        tracing::info!(
            webhook_id = id,
            grace_secs,
            signing = w.previous_secrets.len() + 1,
            "signing secret rotated"
        );
        Ok(w)
    }
}

impl<S: WebhookStore + EventLog, Q: DeliveryQueue> App<S, Q> {
    /// Queues a kept event for one of the vendor's webhooks again, as a new delivery with its
    /// own attempts and the event's own id (receivers deduplicate on `webhook-id`).
    pub async fn redeliver(&self, vendor: &Vendor, id: u64, event_id: &str) -> Result<Webhook, ApiError> {
        if event_id.is_empty() || event_id.len() > 256 {
            return Err(FieldError::malformed("eventId", "eventId must be 1 to 256 characters").into());
        }
        let webhook = self.find_webhook(vendor, id).await?;
        let event = self.store.get_event(&vendor.vendor_id, event_id).await?.ok_or_else(|| {
            ApiError::not_found(
                "event (events are kept 30 days, those of a type the vendor has a webhook for)",
            )
        })?;
        if event.event_type != webhook.event_type {
            return Err(FieldError::not_allowed(
                "eventId",
                format!(
                    "the event is {}, and this webhook takes {}",
                    event.event_type.as_str(),
                    webhook.event_type.as_str()
                ),
            )
            .into());
        }
        if webhook.disabled.is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "webhook_disabled",
                "the webhook is disabled: enable it (POST .../enable), then redeliver",
            ));
        }
        let payload = RawValue::from_string(event.payload).map_err(|e| ApiError::internal(&e))?;
        let message = DeliveryMessage::first(
            event.event_id,
            event.event_type,
            event.vendor_id,
            webhook.id,
            event.published_at,
            payload,
        );
        if let Err(e) = self.enqueue_for(&webhook, vec![message]).await {
            tracing::error!(error = %crate::error::chain(&e), "cannot queue the redelivery");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the delivery could not be queued; please retry",
            ));
        }
        tracing::info!(webhook_id = id, event_id, "redelivery queued");
        Ok(webhook)
    }
}

impl<S: WebhookStore + AttemptLog, Q> App<S, Q> {
    /// Sends a signed test event of the webhook's type now, disabled or not, and answers what
    /// the receiver did. The attempt goes in the delivery log like any other.
    pub async fn test_webhook(&self, vendor: &Vendor, id: u64) -> Result<AttemptRecord, ApiError> {
        let webhook = self.find_webhook(vendor, id).await?;
        let deliverer = self.deliverer()?;
        let event_id = format!("test_{}", ids::event_id());
        let body = events::test_payload(webhook.event_type).to_string();
        let timestamp = now();
        let signature = delivery::signature_header(&webhook, &event_id, timestamp, body.as_bytes())
            .map_err(|e| ApiError::internal(&e))?;
        let attempt = deliverer
            .deliver(&DeliveryRequest {
                url: &webhook.url,
                authentication: webhook.authentication.as_deref(),
                headers: &webhook.options.headers,
                event_id: &event_id,
                timestamp,
                signature: &signature,
                body: body.as_bytes(),
            })
            .await;
        let (status, outcome) = (attempt.outcome.status(), attempt.outcome.label());
        let record = AttemptRecord {
            webhook_id: id,
            vendor_id: vendor.vendor_id.clone(),
            event_id,
            attempt: 1,
            status,
            outcome: outcome.to_owned(),
            duration_ms: attempt.duration.as_millis() as u64,
            at_ms: crate::clock::now_ms(),
            response_excerpt: attempt.response_excerpt,
            signed_at: Some(timestamp),
        };
        if let Err(e) = self.store.record_attempt(&record).await {
            tracing::error!(error = %crate::error::chain(&e), "cannot record the test attempt");
        }
        tracing::info!(webhook_id = id, outcome, status, "test event sent");
        Ok(record)
    }

    /// The HTTP client, built once per container on first use.
    fn deliverer(&self) -> Result<&HttpDeliverer, ApiError> {
        if let Some(d) = self.deliverer.get() {
            return Ok(d);
        }
        let built = HttpDeliverer::new(&self.config.delivery).map_err(|e| ApiError::internal(e.as_ref()))?;
        Ok(self.deliverer.get_or_init(|| built))
    }
}
