//! What the dispatch benchmark puts behind dispatch's ports besides the in-memory store
//! (`shared::store::MemoryStore`): a counting wrapper for any store (the AWS requests a delivery
//! costs), a queue that only counts, and a deliverer wrapper that times each HTTP attempt.
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use shared::{
    delivery::{Attempt, Deliverer, DeliveryRequest},
    domain::Webhook,
    notify::Notifications,
    queue::{DeliveryQueue, QueueError},
    store::{AttemptLog, AttemptRecord, DeliverySlots, MailClaim, NotifyStore, StoreError, WebhookStore},
};

/// Counts the store requests dispatch makes: reads and writes, as DynamoDB bills them.
pub struct Counting<S> {
    pub inner: S,
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, reads: AtomicU64::new(0), writes: AtomicU64::new(0) }
    }
    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

impl<S: WebhookStore> WebhookStore for Counting<S> {
    async fn insert_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        self.write();
        self.inner.insert_webhook(w).await
    }
    async fn get_webhook(&self, vendor_id: &str, id: u64) -> Result<Option<Webhook>, StoreError> {
        self.read();
        self.inner.get_webhook(vendor_id, id).await
    }
    /// A read per webhook: DynamoDB bills a batch's items as single reads.
    async fn get_webhooks(&self, keys: &[(&str, u64)]) -> Result<Vec<Option<Webhook>>, StoreError> {
        keys.iter().for_each(|_| self.read());
        self.inner.get_webhooks(keys).await
    }
    async fn list_webhooks(&self, vendor_id: &str) -> Result<Vec<Webhook>, StoreError> {
        self.read();
        self.inner.list_webhooks(vendor_id).await
    }
    async fn replace_webhook(&self, current: &Webhook, next: &Webhook) -> Result<(), StoreError> {
        self.write();
        self.inner.replace_webhook(current, next).await
    }
    async fn delete_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        self.write();
        self.inner.delete_webhook(w).await
    }
}

impl<S: NotifyStore> NotifyStore for Counting<S> {
    async fn get_notifications(&self, vendor_id: &str) -> Result<Option<Notifications>, StoreError> {
        self.read();
        self.inner.get_notifications(vendor_id).await
    }
    async fn put_notifications(&self, vendor_id: &str, n: &Notifications) -> Result<(), StoreError> {
        self.write();
        self.inner.put_notifications(vendor_id, n).await
    }
    async fn refuse_email(&self, vendor_id: &str, email: &str, at: i64, why: &str) -> Result<(), StoreError> {
        self.write();
        self.inner.refuse_email(vendor_id, email, at, why).await
    }
    async fn claim_mail(
        &self,
        key: &str,
        token: &str,
        now: i64,
        lease: i64,
    ) -> Result<MailClaim, StoreError> {
        self.write();
        self.inner.claim_mail(key, token, now, lease).await
    }
    async fn settle_mail(&self, key: &str, token: &str, sent: bool) -> Result<(), StoreError> {
        self.write();
        self.inner.settle_mail(key, token, sent).await
    }
    async fn open_alert(
        &self,
        id: u64,
        kind: &str,
        incident: Option<i64>,
        now: i64,
        interval: i64,
    ) -> Result<bool, StoreError> {
        self.read();
        self.write();
        self.inner.open_alert(id, kind, incident, now, interval).await
    }
    async fn cancel_alert(&self, id: u64, at: i64) -> Result<(), StoreError> {
        self.write();
        self.inner.cancel_alert(id, at).await
    }
}

impl<S: DeliverySlots> DeliverySlots for Counting<S> {
    async fn take_slots(
        &self,
        id: u64,
        leases: &[String],
        now: i64,
        until: i64,
        cap: u32,
    ) -> Result<usize, StoreError> {
        self.write();
        self.inner.take_slots(id, leases, now, until, cap).await
    }
    async fn give_slots(&self, id: u64, leases: &[String]) -> Result<(), StoreError> {
        self.write();
        self.inner.give_slots(id, leases).await
    }
}

impl<S: AttemptLog> AttemptLog for Counting<S> {
    async fn record_attempt(&self, r: &AttemptRecord) -> Result<(), StoreError> {
        self.write();
        self.inner.record_attempt(r).await
    }
    /// A write per record: DynamoDB bills a batch's items as single writes.
    async fn record_attempts(&self, records: &[AttemptRecord]) -> Result<(), StoreError> {
        records.iter().for_each(|_| self.write());
        self.inner.record_attempts(records).await
    }
    async fn attempts_page(
        &self,
        id: u64,
        limit: i32,
        after: Option<&str>,
    ) -> Result<(Vec<AttemptRecord>, Option<String>), StoreError> {
        self.read();
        self.inner.attempts_page(id, limit, after).await
    }
    async fn attempted_since(
        &self,
        id: u64,
        since_ms: i64,
    ) -> Result<std::collections::HashMap<String, bool>, StoreError> {
        self.read();
        self.inner.attempted_since(id, since_ms).await
    }
    async fn list_attempts(&self, id: u64, limit: i32) -> Result<Vec<AttemptRecord>, StoreError> {
        self.read();
        self.inner.list_attempts(id, limit).await
    }
    async fn get_attempt(&self, id: u64, key: &str) -> Result<Option<AttemptRecord>, StoreError> {
        self.read();
        self.inner.get_attempt(id, key).await
    }
}

/// The deliveries queue as dispatch uses it (only to delay retries): counted.
#[derive(Default)]
pub struct CountingQueue {
    pub calls: AtomicU64,
}

impl DeliveryQueue for CountingQueue {
    async fn send_all(&self, bodies: Vec<String>) -> Result<(), QueueError> {
        self.calls.fetch_add(bodies.len().div_ceil(10) as u64, Ordering::Relaxed);
        Ok(())
    }
    async fn send_later(&self, _: String, _: Duration) -> Result<(), QueueError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    async fn delay(&self, _: &str, _: Duration) -> Result<(), QueueError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Times every attempt of the wrapped deliverer.
pub struct Timed<D> {
    pub inner: D,
    pub latencies: Mutex<Vec<Duration>>,
}

impl<D: Deliverer> Deliverer for Timed<D> {
    async fn deliver(&self, req: &DeliveryRequest<'_>) -> Attempt {
        let started = Instant::now();
        let attempt = self.inner.deliver(req).await;
        self.latencies.lock().unwrap().push(started.elapsed());
        attempt
    }
}

/// A receiver that answers 200 at once, without a network: what the dispatch handler costs
/// around its sender.
pub struct Answers200;

impl Deliverer for Answers200 {
    async fn deliver(&self, _: &DeliveryRequest<'_>) -> Attempt {
        tokio::task::yield_now().await;
        Attempt {
            outcome: shared::delivery::Outcome::Delivered { status: 200 },
            duration: Duration::from_micros(1),
            response_excerpt: String::new(),
        }
    }
}
