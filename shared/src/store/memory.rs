//! The store in memory, for benchmarks and unit tests, keeping the DynamoDB adapter's contract.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use super::{
    ApiToken, AttemptLog, AttemptRecord, Conflict, DeliverySlots, MailClaim, NotifyStore, PortalSession,
    SessionStore, StoreError, TokenStore, VendorLogin, VendorStore, WebhookStore,
};
use crate::{
    domain::{Vendor, Webhook},
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
    /// `take_slots` and `give_slots` calls.
    pub slot_writes: AtomicU64,
    /// Vendors' notification settings.
    pub notifications: Mutex<HashMap<String, Notifications>>,
    /// Email claims: key -> (token, claimed at, sent).
    mails: Mutex<HashMap<String, (String, i64, bool)>>,
    /// Failure alerts by webhook.
    alerts: Mutex<HashMap<u64, AlertRecord>>,
    /// Vendor accounts by username, with their password hashes.
    vendors: Mutex<HashMap<String, (Vendor, String)>>,
    /// Bearer tokens by hash.
    tokens: Mutex<HashMap<String, ApiToken>>,
    /// Deliveries in flight: webhook -> lease -> expiry (Unix ms).
    slots: Mutex<HashMap<u64, HashMap<String, i64>>>,
    /// Portal sessions by id hash.
    sessions: Mutex<HashMap<String, PortalSession>>,
    /// Failed sign-ins by key: (failures, window end).
    sign_ins: Mutex<HashMap<String, (u32, i64)>>,
}

impl SessionStore for MemoryStore {
    async fn put_session(&self, id_hash: &str, session: &PortalSession) -> Result<(), StoreError> {
        self.sessions.lock().unwrap().insert(id_hash.to_owned(), session.clone());
        Ok(())
    }

    async fn get_session(&self, id_hash: &str, now: i64) -> Result<Option<PortalSession>, StoreError> {
        Ok(self.sessions.lock().unwrap().get(id_hash).filter(|s| s.expires_at > now).cloned())
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.sessions.lock().unwrap().remove(id_hash);
        Ok(())
    }

    async fn sign_in_failures(&self, key: &str, now: i64) -> Result<(u32, i64), StoreError> {
        Ok(self
            .sign_ins
            .lock()
            .unwrap()
            .get(key)
            .copied()
            .filter(|(_, ends)| *ends > now)
            .unwrap_or((0, now)))
    }

    async fn count_sign_in_failure(&self, key: &str, now: i64, window_secs: i64) -> Result<(), StoreError> {
        let mut all = self.sign_ins.lock().unwrap();
        let entry = all.entry(key.to_owned()).or_insert((0, now + window_secs));
        if entry.1 <= now {
            *entry = (0, now + window_secs);
        }
        entry.0 += 1;
        Ok(())
    }
}

impl DeliverySlots for MemoryStore {
    async fn take_slots(
        &self,
        webhook_id: u64,
        leases: &[String],
        now_ms: i64,
        expires_ms: i64,
        cap: u32,
    ) -> Result<usize, StoreError> {
        self.slot_writes.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots.lock().unwrap();
        let held = slots.entry(webhook_id).or_default();
        if held.len() + leases.len() > cap as usize {
            held.retain(|_, until| *until > now_ms);
        }
        let taken = leases.len().min((cap as usize).saturating_sub(held.len()));
        for lease in &leases[..taken] {
            held.insert(lease.clone(), expires_ms);
        }
        Ok(taken)
    }

    async fn give_slots(&self, webhook_id: u64, leases: &[String]) -> Result<(), StoreError> {
        self.slot_writes.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = self.slots.lock().unwrap().get_mut(&webhook_id) {
            for lease in leases {
                held.remove(lease);
            }
        }
        Ok(())
    }
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

impl MemoryStore {
    /// Adds a vendor account that signs in with `password_hash` (argon2id PHC).
    pub fn add_vendor(&self, vendor: Vendor, password_hash: &str) {
        self.vendors.lock().unwrap().insert(vendor.username.clone(), (vendor, password_hash.to_owned()));
    }

    /// Adds a bearer token (stored by its hash) for a vendor.
    pub fn add_token(&self, token: ApiToken, hash: &str) {
        self.tokens.lock().unwrap().insert(hash.to_owned(), token);
    }
}

/// The endpoint a webhook takes: one webhook per vendor, type and URL, as in DynamoDB.
fn same_endpoint(a: &Webhook, b: &Webhook) -> bool {
    a.vendor_id == b.vendor_id && a.event_type == b.event_type && a.url == b.url
}

/// The same contract as the DynamoDB adapter: ids and endpoints unique, and a replace or delete
/// applies only to the version it was read at.
impl WebhookStore for MemoryStore {
    async fn insert_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        let mut webhooks = self.webhooks.lock().unwrap();
        if webhooks.contains_key(&w.id) {
            return Err(StoreError::Conflict(Conflict::IdTaken));
        }
        if webhooks.values().any(|o| same_endpoint(o, w)) {
            return Err(StoreError::Conflict(Conflict::DuplicateEndpoint));
        }
        webhooks.insert(w.id, w.clone());
        Ok(())
    }
    async fn get_webhook(&self, vendor_id: &str, id: u64) -> Result<Option<Webhook>, StoreError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(self.webhooks.lock().unwrap().get(&id).filter(|w| w.vendor_id == vendor_id).cloned())
    }
    async fn get_webhooks(&self, keys: &[(&str, u64)]) -> Result<Vec<Option<Webhook>>, StoreError> {
        self.reads.fetch_add(keys.len() as u64, Ordering::Relaxed);
        let webhooks = self.webhooks.lock().unwrap();
        Ok(keys.iter().map(|&(v, id)| webhooks.get(&id).filter(|w| w.vendor_id == v).cloned()).collect())
    }
    async fn list_webhooks(&self, vendor_id: &str) -> Result<Vec<Webhook>, StoreError> {
        let mut list: Vec<Webhook> =
            self.webhooks.lock().unwrap().values().filter(|w| w.vendor_id == vendor_id).cloned().collect();
        list.sort_by_key(|w| w.id);
        Ok(list)
    }
    async fn replace_webhook(&self, current: &Webhook, next: &Webhook) -> Result<(), StoreError> {
        let mut webhooks = self.webhooks.lock().unwrap();
        if webhooks.get(&current.id).map(|w| w.version) != Some(current.version) {
            return Err(StoreError::Conflict(Conflict::Concurrent));
        }
        if webhooks.values().any(|o| o.id != next.id && same_endpoint(o, next)) {
            return Err(StoreError::Conflict(Conflict::DuplicateEndpoint));
        }
        webhooks.insert(next.id, next.clone());
        Ok(())
    }
    async fn delete_webhook(&self, current: &Webhook) -> Result<(), StoreError> {
        let mut webhooks = self.webhooks.lock().unwrap();
        if webhooks.get(&current.id).map(|w| w.version) != Some(current.version) {
            return Err(StoreError::Conflict(Conflict::Concurrent));
        }
        webhooks.remove(&current.id);
        Ok(())
    }
}

impl VendorStore for MemoryStore {
    async fn create_vendor(&self, vendor: &Vendor, password_hash: &str) -> Result<(), StoreError> {
        let mut vendors = self.vendors.lock().unwrap();
        if vendors.contains_key(&vendor.username) {
            return Err(StoreError::Conflict(Conflict::UsernameTaken));
        }
        vendors.insert(vendor.username.clone(), (vendor.clone(), password_hash.to_owned()));
        Ok(())
    }
    async fn vendor_login(&self, username: &str) -> Result<Option<VendorLogin>, StoreError> {
        Ok(self
            .vendors
            .lock()
            .unwrap()
            .get(username)
            .map(|(vendor, hash)| VendorLogin { vendor: vendor.clone(), password_hash: hash.clone() }))
    }
    async fn list_vendors(&self) -> Result<Vec<Vendor>, StoreError> {
        let mut list: Vec<Vendor> = self.vendors.lock().unwrap().values().map(|(v, _)| v.clone()).collect();
        list.sort_by(|a, b| (a.created_at, &a.vendor_id).cmp(&(b.created_at, &b.vendor_id)));
        Ok(list)
    }
    async fn vendor_by_id(&self, vendor_id: &str) -> Result<Option<Vendor>, StoreError> {
        Ok(self.vendors.lock().unwrap().values().map(|(v, _)| v).find(|v| v.vendor_id == vendor_id).cloned())
    }
}

impl TokenStore for MemoryStore {
    async fn create_token(&self, token: &ApiToken, hash: &str) -> Result<(), StoreError> {
        self.add_token(token.clone(), hash);
        Ok(())
    }
    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(self.tokens.lock().unwrap().get(hash).cloned())
    }
    async fn list_tokens(&self, vendor_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let mut list: Vec<ApiToken> = self
            .tokens
            .lock()
            .unwrap()
            .values()
            .filter(|t| t.vendor.vendor_id == vendor_id)
            .cloned()
            .collect();
        list.sort_by(|a, b| (a.created_at, &a.token_id).cmp(&(b.created_at, &b.token_id)));
        Ok(list)
    }
    async fn revoke_token(&self, token_id: &str) -> Result<bool, StoreError> {
        let mut tokens = self.tokens.lock().unwrap();
        let before = tokens.len();
        tokens.retain(|_, t| t.token_id != token_id);
        Ok(tokens.len() < before)
    }
}

impl AttemptLog for MemoryStore {
    async fn record_attempt(&self, _: &AttemptRecord) -> Result<(), StoreError> {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn record_attempts(&self, records: &[AttemptRecord]) -> Result<(), StoreError> {
        self.attempts.fetch_add(records.len() as u64, Ordering::Relaxed);
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
    async fn attempted_since(&self, _: u64, _: i64) -> Result<HashMap<String, bool>, StoreError> {
        Ok(Default::default())
    }
    async fn list_attempts(&self, _: u64, _: i32) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(Vec::new())
    }
    async fn get_attempt(&self, _: u64, _: &str) -> Result<Option<AttemptRecord>, StoreError> {
        Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventType, WebhookSpec};

    fn webhook(id: u64, url: &str) -> Webhook {
        let spec = WebhookSpec {
            event_type: EventType::NewOrder,
            url: url.into(),
            authentication: None,
            max_in_flight: None,
            options: Default::default(),
        };
        Webhook::new(id, "ven_a", spec, "whsec_x".into(), 1)
    }

    #[tokio::test]
    async fn writes_keep_the_dynamodb_adapters_contract() {
        let store = MemoryStore::default();
        store.insert_webhook(&webhook(1, "https://a.example/")).await.unwrap();
        let taken = store.insert_webhook(&webhook(1, "https://b.example/")).await;
        assert!(matches!(taken, Err(StoreError::Conflict(Conflict::IdTaken))));
        let duplicate = store.insert_webhook(&webhook(2, "https://a.example/")).await;
        assert!(matches!(duplicate, Err(StoreError::Conflict(Conflict::DuplicateEndpoint))));

        let read = store.get_webhook("ven_a", 1).await.unwrap().unwrap();
        let next = Webhook { version: 2, url: "https://c.example/".into(), ..read.clone() };
        store.replace_webhook(&read, &next).await.unwrap();
        // A writer that read version 1 lost the race: neither its replace nor its delete applies.
        let stale = Webhook { version: 2, ..read.clone() };
        assert!(matches!(
            store.replace_webhook(&read, &stale).await,
            Err(StoreError::Conflict(Conflict::Concurrent))
        ));
        assert!(matches!(store.delete_webhook(&read).await, Err(StoreError::Conflict(Conflict::Concurrent))));
        store.insert_webhook(&webhook(2, "https://a.example/")).await.unwrap();
        let onto_other = Webhook { version: 3, url: "https://a.example/".into(), ..next.clone() };
        let r = store.replace_webhook(&next, &onto_other).await;
        assert!(matches!(r, Err(StoreError::Conflict(Conflict::DuplicateEndpoint))));
        store.delete_webhook(&next).await.unwrap();
        assert_eq!(store.list_webhooks("ven_a").await.unwrap().len(), 1);
    }
}
