//! The store in memory, for benchmarks and unit tests.
use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use super::{AttemptLog, AttemptRecord, StoreError, WebhookStore};
use crate::domain::Webhook;

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
