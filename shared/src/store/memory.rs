//! The store in memory, for benchmarks and unit tests.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use super::{AttemptLog, AttemptRecord, MailClaim, NotifyStore, StoreError, WebhookStore};
use crate::{
    domain::Webhook,
    notify::{AlertRecord, Notifications},
};

/// The webhook and attempt ports in memory: DynamoDB's latency is not ours to measure in a
/// benchmark, nor needed in a unit test. Webhooks in a map; attempts counted, not kept; webhook
/// reads counted.
#[derive(Default)]
pub struct MemoryStore {
    webhooks: Mutex<HashMap<u64, Webhook>>,
    /// Attempts recorded.
    pub attempts: AtomicU64,
    /// `get_webhook` calls.
    pub reads: AtomicU64,
    /// Vendors' notification settings.
    pub notifications: Mutex<HashMap<String, Notifications>>,
    /// Email claims: key -> (token, claimed at, sent).
    mails: Mutex<HashMap<String, (String, i64, bool)>>,
    /// Failure alerts by webhook.
    alerts: Mutex<HashMap<u64, AlertRecord>>,
}

impl MemoryStore {
    /// A store holding these webhooks.
    pub fn with(webhooks: &[Webhook]) -> Self {
        Self {
            webhooks: Mutex::new(webhooks.iter().map(|w| (w.id, w.clone())).collect()),
            ..Default::default()
        }
    }
}

impl WebhookStore for MemoryStore {
    async fn insert_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        self.webhooks.lock().unwrap().insert(w.id, w.clone());
        Ok(())
    }
    async fn get_webhook(&self, vendor_id: &str, id: u64) -> Result<Option<Webhook>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(self.webhooks.lock().unwrap().get(&id).filter(|w| w.vendor_id == vendor_id).cloned())
    }
    async fn list_webhooks(&self, vendor_id: &str) -> Result<Vec<Webhook>, StoreError> {
        Ok(self.webhooks.lock().unwrap().values().filter(|w| w.vendor_id == vendor_id).cloned().collect())
    }
    async fn replace_webhook(&self, _: &Webhook, next: &Webhook) -> Result<(), StoreError> {
        self.webhooks.lock().unwrap().insert(next.id, next.clone());
        Ok(())
    }
    async fn delete_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        self.webhooks.lock().unwrap().remove(&w.id);
        Ok(())
    }
}

impl AttemptLog for MemoryStore {
    async fn record_attempt(&self, _: &AttemptRecord) -> Result<(), StoreError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn attempts_page(
        &self,
        _: u64,
        _: i32,
        _: Option<&str>,
    ) -> Result<(Vec<AttemptRecord>, Option<String>), StoreError> {
        Ok((Vec::new(), None))
    }
    async fn list_attempts(&self, _: u64, _: i32) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(Vec::new())
    }
}

impl NotifyStore for MemoryStore {
    async fn get_notifications(&self, vendor_id: &str) -> Result<Option<Notifications>, StoreError> {
        Ok(self.notifications.lock().unwrap().get(vendor_id).cloned())
    }
    async fn put_notifications(&self, vendor_id: &str, n: &Notifications) -> Result<(), StoreError> {
        self.notifications.lock().unwrap().insert(vendor_id.to_owned(), n.clone());
        Ok(())
    }
    async fn refuse_email(
        &self,
        vendor_id: &str,
        email: &str,
        at: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        if let Some(n) = self.notifications.lock().unwrap().get_mut(vendor_id) {
            if n.email.as_deref() == Some(email) {
                n.refused = Some((at, reason.to_owned()));
            }
        }
        Ok(())
    }
    async fn claim_mail(
        &self,
        key: &str,
        token: &str,
        now: i64,
        lease_secs: i64,
    ) -> Result<MailClaim, StoreError> {
        let mut mails = self.mails.lock().unwrap();
        match mails.get(key) {
            Some((_, _, true)) => Ok(MailClaim::Settled),
            Some((_, at, false)) if now - at <= lease_secs => Ok(MailClaim::Busy),
            _ => {
                mails.insert(key.to_owned(), (token.to_owned(), now, false));
                Ok(MailClaim::Claimed)
            }
        }
    }
    async fn settle_mail(&self, key: &str, token: &str, sent: bool) -> Result<(), StoreError> {
        let mut mails = self.mails.lock().unwrap();
        if mails.get(key).is_some_and(|(t, _, _)| t == token) {
            if sent {
                mails.entry(key.to_owned()).and_modify(|m| m.2 = true);
            } else {
                mails.remove(key);
            }
        }
        Ok(())
    }
    async fn open_alert(
        &self,
        webhook_id: u64,
        kind: &str,
        incident: Option<i64>,
        now: i64,
        interval_secs: i64,
    ) -> Result<bool, StoreError> {
        let mut alerts = self.alerts.lock().unwrap();
        match crate::notify::next_alert(alerts.get(&webhook_id), kind, incident, now, interval_secs) {
            Some(next) => {
                alerts.insert(webhook_id, next);
                Ok(true)
            }
            None => Ok(false),
        }
    }
    async fn cancel_alert(&self, webhook_id: u64, opened_at: i64) -> Result<(), StoreError> {
        let mut alerts = self.alerts.lock().unwrap();
        if alerts.get(&webhook_id).is_some_and(|a| a.sent_at == opened_at) {
            alerts.remove(&webhook_id);
        }
        Ok(())
    }
}
