//! Recovery: the events of a window that a webhook never got with a 2xx (published while it was
//! disabled, parked in the dead-letter queue, or lost to a receiver's outage), queued again.
//! The webhook's attempt log says which events it was sent and which it got; the events no
//! delivery to it was queued for are in the vendor's timeline (`EventLog::events_between`).
use std::collections::HashSet;

use lambda_http::http::StatusCode;
use serde_json::value::RawValue;

use super::App;
use crate::{
    clock::{parse_rfc3339, rfc3339},
    delivery::DeliveryMessage,
    domain::{FieldError, Vendor, Webhook},
    error::ApiError,
    ids,
    options::{self, Ordering},
    queue::{DeliveryQueue, QueueError},
    store::{AttemptLog, EventLog, WebhookStore, ATTEMPT_TTL_SECS},
};

/// The most events one recovery reads: the queueing fits the function's time limit.
pub const MAX_RECOVERED_EVENTS: usize = 2000;

/// A window of publish times (unix seconds, both ends included) within what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: i64,
    pub until: i64,
}

impl Window {
    /// Reads `since` and `until` (RFC 3339; `until` defaults to now): `since` within the 30
    /// days events are kept, `until` not before it.
    pub fn parse(since: &str, until: Option<&str>, now: i64) -> Result<Window, FieldError> {
        let time = |field: &str, text: &str| {
            parse_rfc3339(text).ok_or_else(|| {
                FieldError::malformed(
                    field,
                    format!("{field} must be an RFC 3339 time (2026-11-30T08:00:00Z)"),
                )
            })
        };
        let since = time("since", since)?;
        let until = until.map(|u| time("until", u)).transpose()?.unwrap_or(now);
        let oldest = now - ATTEMPT_TTL_SECS;
        if since < oldest {
            return Err(FieldError::malformed(
                "since",
                format!("events are kept 30 days: since must be {} or later", rfc3339(oldest)),
            ));
        }
        if until < since {
            return Err(FieldError::malformed("until", "until must not be before since"));
        }
        Ok(Window { since, until: until.min(now) })
    }
}

impl<S: WebhookStore + EventLog + AttemptLog, Q: DeliveryQueue> App<S, Q> {
    /// Queues every kept event of the webhook's type published in `window`, since the webhook
    /// was created, that the webhook has not had a 2xx for and that passes its filter: each with
    /// its own id as `webhook-id`, so a receiver that did get one drops it. The number queued.
    pub async fn recover(&self, vendor: &Vendor, id: u64, window: Window) -> Result<u32, ApiError> {
        let webhook = self.find_webhook(vendor, id).await?;
        if webhook.disabled.is_some() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "webhook_disabled",
                "the webhook is disabled: enable it (POST .../enable), then recover",
            ));
        }
        let window = Window { since: window.since.max(webhook.created_at), ..window };
        if window.since > window.until {
            return Ok(0); // the window ended before the webhook was created
        }
        // Attempts come after their event's publishing: those since the window began say which
        // events the webhook was sent, and which of them it got with a 2xx.
        let attempted = self.store.attempted_since(id, window.since * 1000).await?;
        let too_many = || -> ApiError {
            FieldError::malformed(
                "since",
                format!(
                    "the window holds more than {MAX_RECOVERED_EVENTS} events of this type: recover it in \
                     narrower windows"
                ),
            )
            .into()
        };
        // Events no delivery to the webhook was queued for (published while it was disabled, or
        // refused by its filter) are in the vendor's timeline.
        let mut events = self
            .store
            .events_between(
                &vendor.vendor_id,
                webhook.event_type,
                window.since,
                window.until,
                MAX_RECOVERED_EVENTS + 1,
            )
            .await?;
        if events.len() > MAX_RECOVERED_EVENTS {
            return Err(too_many());
        }
        // The events it was sent and never got, from the attempt log.
        let in_timeline: HashSet<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        let missed: Vec<String> = attempted
            .iter()
            .filter(|(event_id, delivered)| !**delivered && !in_timeline.contains(event_id.as_str()))
            .map(|(event_id, _)| event_id.clone())
            .collect();
        for chunk in missed.chunks(MAX_RECOVERED_EVENTS) {
            let sent = self.store.events_by_id(&vendor.vendor_id, chunk).await?;
            events.extend(sent.into_iter().filter(|e| {
                e.event_type == webhook.event_type && (window.since..=window.until).contains(&e.published_at)
            }));
            if events.len() > MAX_RECOVERED_EVENTS {
                return Err(too_many());
            }
        }
        events.sort_by(|a, b| (a.published_at, &a.event_id).cmp(&(b.published_at, &b.event_id)));
        let delivered = |event_id: &str| attempted.get(event_id).copied().unwrap_or(false);
        let mut messages = Vec::new();
        for event in events.into_iter().filter(|e| !delivered(&e.event_id)) {
            if let Some(filter) = &webhook.options.filter {
                let payload = serde_json::from_str(&event.payload).unwrap_or(serde_json::Value::Null);
                if !filter.matches(&payload) {
                    continue;
                }
            }
            let payload = RawValue::from_string(event.payload).map_err(|e| ApiError::internal(&e))?;
            messages.push(DeliveryMessage::first(
                event.event_id,
                event.event_type,
                event.vendor_id,
                id,
                event.published_at,
                payload,
            ));
        }
        let queued = messages.len() as u32;
        self.enqueue_for(&webhook, messages).await.map_err(|e| {
            tracing::error!(error = %crate::error::chain(&e), "cannot queue the recovered events");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the events could not all be queued; recover again (a receiver drops what it got twice by webhook-id)",
            )
        })?;
        tracing::info!(
            webhook_id = id,
            queued,
            since = window.since,
            until = window.until,
            "events recovered"
        );
        Ok(queued)
    }
}

impl<S, Q: DeliveryQueue> App<S, Q> {
    /// Queues deliveries to one webhook, in order: on the FIFO queue, each in its order's group,
    /// if the webhook keeps its order per order; on the deliveries queue otherwise.
    pub(super) async fn enqueue_for(
        &self,
        webhook: &Webhook,
        messages: Vec<DeliveryMessage>,
    ) -> Result<(), QueueError> {
        let Some(queue) = &self.queue else {
            tracing::error!("queueing deliveries without DELIVERIES_QUEUE_URL");
            return Err(QueueError::NotEnqueued(messages.len()));
        };
        let (mut grouped, mut bodies) = (Vec::new(), Vec::new());
        for message in messages {
            let key = (webhook.options.ordering == Ordering::PerOrder && self.ordered.is_some())
                .then(|| serde_json::from_str(message.payload.get()).ok())
                .flatten()
                .and_then(|payload| options::order_key(message.event_type, &payload));
            match key {
                // Sent again on purpose: a deduplication id of its own, never one SQS saw.
                Some(key) => grouped.push(options::grouped(&message, &key, ids::event_id())),
                None => bodies.push(message.to_body()),
            }
        }
        queue.send_all(bodies).await?;
        match &self.ordered {
            Some(ordered) if !grouped.is_empty() => ordered.send_grouped(grouped).await,
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_within_what_is_kept_and_in_order() {
        let now = 1_800_000_000;
        let hour_ago = rfc3339(now - 3600);
        assert_eq!(Window::parse(&hour_ago, None, now).unwrap(), Window { since: now - 3600, until: now });
        let later = rfc3339(now + 3600);
        assert_eq!(Window::parse(&hour_ago, Some(&later), now).unwrap().until, now, "the future is now");
        let refusal = |since: &str, until: Option<&str>| {
            let e = Window::parse(since, until, now).unwrap_err();
            (e.field, e.message)
        };
        let (field, message) = refusal(&rfc3339(now - 31 * 86_400), None);
        assert_eq!(field, "since");
        assert_eq!(
            message,
            format!("events are kept 30 days: since must be {} or later", rfc3339(now - 30 * 86_400))
        );
        assert_eq!(refusal(&hour_ago, Some(&rfc3339(now - 7200))).1, "until must not be before since");
        assert_eq!(refusal("yesterday", None).1, "since must be an RFC 3339 time (2026-11-30T08:00:00Z)");
    }
}
