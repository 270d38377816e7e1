//! A webhook's health, as dispatch sees it: since when its deliveries fail, when it is
//! disabled for failing too long, and when its vendor is told (through the emails queue, at most
//! once an hour per webhook and each kind of news once per incident).
use super::{batch::Batch, Dispatcher};
use crate::{
    clock,
    delivery::{Attempt, Failure, Outcome},
    domain::Webhook,
    emails::EmailMessage,
    notify::{self, Alert, Topic},
    queue::DeliveryQueue,
    store::{AttemptLog, Conflict, NotifyStore, StoreError, WebhookStore},
};

impl<S, Q, D> Dispatcher<S, Q, D>
where
    S: WebhookStore + AttemptLog + NotifyStore,
    Q: DeliveryQueue,
{
    /// Asks for an email telling the vendor (if it asked to be told of failures) that a webhook
    /// is failing, gave a delivery up, or was disabled: at most one per webhook per hour, each
    /// kind once per incident. Best effort: it never changes what becomes of the delivery.
    pub(super) async fn alert(&self, webhook: &Webhook, alert: Alert, last: &Attempt, attempts: u32) {
        let Some(emails) = &self.emails else { return };
        let settings = match self.store.get_notifications(&webhook.vendor_id).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot read the vendor's notification settings");
                return;
            }
        };
        if settings.as_ref().and_then(|s| s.address_for(Topic::Failures)).is_none() {
            return;
        }
        let now = clock::now();
        let interval = notify::ALERT_INTERVAL_SECS;
        match self.store.open_alert(webhook.id, alert.as_str(), webhook.failing_since, now, interval).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(
                    alert = alert.as_str(),
                    "failure email held back: the vendor was told already"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot record the failure email");
                return;
            }
        }
        let message = EmailMessage::alert(&webhook.vendor_id, webhook.id, alert, last_error(last), attempts);
        match emails.send_all(vec![message.to_body()]).await {
            Ok(()) => tracing::info!(alert = alert.as_str(), "failure email queued"),
            Err(e) => {
                tracing::warn!(error = %crate::error::chain(&e), "cannot queue the failure email");
                if let Err(e) = self.store.cancel_alert(webhook.id, now).await {
                    tracing::warn!(error = %crate::error::chain(&e), "cannot take the failure email back");
                }
            }
        }
    }

    /// Remembers since when a webhook's deliveries fail, and disables it once that is longer
    /// than `auto_disable_after`: its deliveries then stop, and the vendor sees why in `GET`.
    /// Counts the failures in a row, and opens the circuit breaker at its threshold. The vendor
    /// is told after the [`notify::FAILING_ALERT_AFTER`]th failed attempt, after the last, and
    /// when the webhook is disabled.
    pub(super) async fn note_failure(&self, webhook: Webhook, last: &Attempt, attempt: u32, batch: &Batch) {
        let now = clock::now();
        if attempt >= self.schedule.max_attempts() {
            self.alert(&webhook, Alert::DeadLettered, last, attempt).await;
        } else if attempt == notify::FAILING_ALERT_AFTER {
            self.alert(&webhook, Alert::Failing, last, attempt).await;
        }
        let window = self.auto_disable_after.map(|d| d.as_secs() as i64);
        let circuit = self.circuit;
        // Failures in a row are counted for the circuit breaker and the slow lane. With neither,
        // nor auto-disable, there is nothing to remember: no write per failure.
        let count = circuit.is_some() || self.slow_lane.is_some();
        if window.is_none() && !count {
            return;
        }
        let was_disabled = webhook.disabled.is_some();
        let changed = self
            .change_webhook(webhook, batch, |w| {
                let mut next = w.clone();
                if let Some(window) = window {
                    next.failing_since = w.failing_since.or(Some(now));
                    if let Some(since) = w.failing_since.filter(|s| w.disabled.is_none() && now - s >= window)
                    {
                        let reason = format!(
                            "every delivery has failed since {} ({} or longer)",
                            clock::rfc3339(since),
                            humanize(window)
                        );
                        next.disabled = Some((now, reason));
                    }
                }
                if count {
                    next.consecutive_failures = w.consecutive_failures.saturating_add(1);
                }
                if let Some(circuit) = circuit {
                    if let Some(wait) = circuit.open_for(next.consecutive_failures) {
                        next.circuit_open_until = Some(now + wait.as_secs() as i64);
                    }
                }
                (next != *w).then_some(next)
            })
            .await;
        let Some(w) = changed else { return };
        if w.circuit_open_until.is_some_and(|until| until > now) {
            tracing::warn!(
                failures = w.consecutive_failures,
                "circuit open: the webhook's deliveries wait for a probe"
            );
        }
        if w.disabled.is_some() && !was_disabled {
            tracing::warn!("deliveries have failed for too long: webhook disabled");
            self.alert(&w, Alert::Disabled, last, attempt).await;
        }
    }

    /// Writes `change` of the webhook (`None`: nothing to change), re-reading it if another
    /// writer got there first; the webhook as written, if this call wrote it. Best effort: a
    /// failure here must not fail the delivery. The batch's changes of one webhook are written
    /// one after the other, each on the last: ten failures of a webhook in a batch are ten
    /// writes, not ten writes racing for one item and re-reading it after each lost race.
    pub(super) async fn change_webhook(
        &self,
        webhook: Webhook,
        batch: &Batch,
        change: impl Fn(&Webhook) -> Option<Webhook>,
    ) -> Option<Webhook> {
        let cell = batch.writes.cell(webhook.id);
        let mut last = cell.lock().await;
        let mut webhook = match last.take() {
            Some(written) if written.version > webhook.version => written,
            _ => webhook,
        };
        let written = self.write_change(&mut webhook, change).await;
        *last = Some(written.clone().unwrap_or(webhook));
        written
    }

    async fn write_change(
        &self,
        webhook: &mut Webhook,
        change: impl Fn(&Webhook) -> Option<Webhook>,
    ) -> Option<Webhook> {
        for _ in 0..3 {
            let next = change(webhook)?;
            let next = Webhook { version: webhook.version + 1, ..next };
            match self.store.replace_webhook(webhook, &next).await {
                Ok(()) => return Some(next),
                Err(StoreError::Conflict(Conflict::Concurrent)) => {
                    *webhook = self.store.get_webhook(&webhook.vendor_id, webhook.id).await.ok()??;
                }
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "cannot update the webhook");
                    return None;
                }
            }
        }
        None
    }
}

/// The last error of a delivery as a vendor reads it in an email: the status and the start of
/// the answer, or why there was none.
pub(super) fn last_error(a: &Attempt) -> String {
    match &a.outcome {
        Outcome::Delivered { status } => format!("none (the endpoint answered {status})"),
        Outcome::Rejected { status, .. } => {
            let excerpt: String = a.response_excerpt.chars().take(200).collect();
            let excerpt = excerpt.trim();
            if excerpt.is_empty() {
                format!("the endpoint answered HTTP {status}")
            } else {
                format!("the endpoint answered HTTP {status}: {excerpt}")
            }
        }
        Outcome::Failed { class: Failure::Timeout } => "no answer within the delivery timeout".to_owned(),
        Outcome::Failed { class: Failure::Connect } => "could not connect to the endpoint".to_owned(),
        Outcome::Failed { class: Failure::RefusedAddress } => {
            "the URL resolves to an address deliveries may not go to (private or internal)".to_owned()
        }
        Outcome::Failed { class } => format!("the delivery failed ({})", class.as_str()),
    }
}

/// `5 days`, `15 seconds`: a window as people say it.
fn humanize(secs: i64) -> String {
    let (n, unit) = match secs {
        s if s % 86400 == 0 => (s / 86400, "day"),
        s if s % 3600 == 0 => (s / 3600, "hour"),
        s if s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}
