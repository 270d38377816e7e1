//! The dispatcher's unit tests, over the in-memory store and stand-in receivers.
use std::sync::atomic::Ordering;

use super::*;
use crate::{
    delivery::DeliveryMessage,
    domain::EventType,
    notify,
    queue::QueueError,
    store::{DeliverySlots, MailClaim, MemoryStore, StoreError, WebhookStore},
};

struct Answers200;
impl Deliverer for Answers200 {
    async fn deliver(&self, _: &DeliveryRequest<'_>) -> Attempt {
        Attempt {
            outcome: Outcome::Delivered { status: 200 },
            duration: Duration::ZERO,
            response_excerpt: String::new(),
        }
    }
}

/// A queue that keeps what is sent to it (what is sent with a group, apart).
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>, std::sync::Mutex<Vec<crate::queue::Grouped>>);
impl DeliveryQueue for &Recorder {
    async fn send_grouped(&self, messages: Vec<crate::queue::Grouped>) -> Result<(), QueueError> {
        self.1.lock().unwrap().extend(messages);
        Ok(())
    }
    async fn send_all(&self, bodies: Vec<String>) -> Result<(), QueueError> {
        self.0.lock().unwrap().extend(bodies);
        Ok(())
    }
    async fn send_later(&self, body: String, _: Duration) -> Result<(), QueueError> {
        self.0.lock().unwrap().push(body);
        Ok(())
    }
    async fn delay(&self, _: &str, _: Duration) -> Result<(), QueueError> {
        Ok(())
    }
}

impl Recorder {
    fn bodies(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn messages(&self) -> Vec<DeliveryMessage> {
        self.bodies().iter().map(|b| serde_json::from_str(b).unwrap()).collect()
    }
}

/// A dispatcher over `store` whose receivers all answer 200, without auto-disable.
fn dispatcher<S: WebhookStore + AttemptLog>(store: S) -> Dispatcher<S, &'static Recorder, Answers200> {
    with_emails(store, Answers200, None)
}

/// A dispatcher whose deliveries queue and dead-letter queue are recorders of its own.
fn with_emails<S, D>(store: S, deliverer: D, emails: Option<&Recorder>) -> Dispatcher<S, &Recorder, D> {
    Dispatcher {
        store,
        queue: Box::leak(Box::default()),
        dead_letters: Box::leak(Box::default()),
        deliverer,
        attempt_budget: Duration::from_secs(12),
        schedule: RetrySchedule::standard(),
        auto_disable_after: None,
        circuit: None,
        max_in_flight: 10,
        emails,
        slow_lane: None,
        grouped: None,
        ordered: None,
    }
}

/// [`with_emails`] with the default circuit breaker: five failures, a minute.
fn with_circuit<S, D>(store: S, deliverer: D) -> Dispatcher<S, &'static Recorder, D> {
    let mut d = with_emails(store, deliverer, None);
    d.circuit = Some(CircuitBreaker::new(5, Duration::from_secs(60)).unwrap());
    d
}

struct Answers500;
impl Deliverer for Answers500 {
    async fn deliver(&self, _: &DeliveryRequest<'_>) -> Attempt {
        Attempt {
            outcome: Outcome::Rejected { status: 500, retry_after: None },
            duration: Duration::ZERO,
            response_excerpt: "upstream down".into(),
        }
    }
}

async fn run<S, Q, D>(d: &Dispatcher<S, Q, D>, records: Vec<SqsMessage>) -> Vec<String>
where
    S: WebhookStore + AttemptLog + NotifyStore + DeliverySlots,
    Q: DeliveryQueue,
    D: Deliverer,
{
    let event = SqsEvent { records };
    let answer = d.handle(&event, None).await.unwrap();
    answer.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
}

#[tokio::test]
async fn a_failure_storm_asks_for_one_email_per_webhook() {
    let emails = Recorder::default();
    let store = MemoryStore::default();
    store.notifications.lock().unwrap().insert(
        "ven_x".into(),
        crate::notify::Notifications {
            email: Some("vendor@example.com".into()),
            topics: vec![crate::notify::Topic::Failures],
            ..Default::default()
        },
    );
    let mut w = crate::domain::tests::webhook();
    w.vendor_id = "ven_x".into();
    w.event_type = EventType::NewOrder;
    w.previous_secrets.clear();
    store.insert_webhook(&w).await.unwrap();
    let d = with_emails(store, Answers500, Some(&emails));
    let at = |i: usize, attempt: u32| with_attempt(message(i, w.id), attempt, None);
    // Attempts 1 to 3 tell nobody; the fourth of many deliveries tells the vendor once; the
    // last attempts (the dead-letter queue) are held back within the hour.
    assert!(run(&d, (0..5).map(|i| at(i, 3)).collect()).await.is_empty(), "each next attempt is queued");
    assert!(emails.0.lock().unwrap().is_empty());
    run(&d, (0..5).map(|i| at(i, 4)).collect()).await;
    run(&d, (0..5).map(|i| at(i, RetrySchedule::standard().max_attempts())).collect()).await;
    let queued = emails.0.lock().unwrap().clone();
    assert_eq!(queued.len(), 1, "{queued:?}");
    match serde_json::from_str::<crate::emails::EmailMessage>(&queued[0]).unwrap() {
        crate::emails::EmailMessage::Alert(a) => {
            assert_eq!((a.webhook_id, a.alert, a.attempts), (w.id, Alert::Failing, 4));
            assert_eq!(a.last_error, "the endpoint answered HTTP 500: upstream down");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_vendor_who_did_not_ask_is_not_told() {
    let emails = Recorder::default();
    let mut w = crate::domain::tests::webhook();
    w.event_type = EventType::NewOrder;
    w.previous_secrets.clear();
    let store = MemoryStore::default();
    store.insert_webhook(&w).await.unwrap();
    let d = with_emails(store, Answers500, Some(&emails));
    assert!(run(&d, vec![with_attempt(message(1, w.id), 4, None)]).await.is_empty());
    assert!(emails.0.lock().unwrap().is_empty());
}

/// The message for attempt `attempt`, due at `not_before_ms`.
fn with_attempt(mut m: SqsMessage, attempt: u32, not_before_ms: Option<i64>) -> SqsMessage {
    let mut body: DeliveryMessage = serde_json::from_str(m.body.as_deref().unwrap()).unwrap();
    (body.attempt, body.not_before_ms) = (attempt, not_before_ms);
    m.body = Some(body.to_body());
    m
}

/// A webhook of vendor `ven_x` for new orders, in a fresh store.
async fn store_with_webhook() -> (MemoryStore, Webhook) {
    let mut w = crate::domain::tests::webhook();
    w.vendor_id = "ven_x".into();
    w.event_type = EventType::NewOrder;
    w.previous_secrets.clear();
    let store = MemoryStore::default();
    store.insert_webhook(&w).await.unwrap();
    (store, w)
}

/// [`store_with_webhook`], the webhook's last `failures` attempts failed.
async fn store_with_failing_webhook(failures: u32) -> (MemoryStore, Webhook) {
    let (store, w) = store_with_webhook().await;
    let failing = Webhook { consecutive_failures: failures, version: w.version + 1, ..w.clone() };
    store.replace_webhook(&w, &failing).await.unwrap();
    (store, failing)
}

/// Receivers that answer this status, with this `Retry-After`, and are counted.
struct Answers(u16, Option<Duration>, std::sync::atomic::AtomicU32);
impl Deliverer for Answers {
    async fn deliver(&self, _: &DeliveryRequest<'_>) -> Attempt {
        self.2.fetch_add(1, Ordering::Relaxed);
        let outcome = match self.0 {
            200..=299 => Outcome::Delivered { status: self.0 },
            status => Outcome::Rejected { status, retry_after: self.1 },
        };
        Attempt { outcome, duration: Duration::ZERO, response_excerpt: String::new() }
    }
}

fn answers(status: u16, retry_after: Option<u64>) -> Answers {
    Answers(status, retry_after.map(Duration::from_secs), Default::default())
}

#[tokio::test]
async fn a_failed_attempt_queues_the_next_one_with_its_backoff_and_is_done() {
    let (store, w) = store_with_webhook().await;
    let d = with_emails(store, answers(500, None), None);
    let before = clock::now_ms();
    // SQS has received it seven times (crashes, timeouts): it is still the first attempt.
    let mut m = serde_json::to_value(message(1, w.id)).unwrap();
    m["attributes"]["ApproximateReceiveCount"] = "7".into();
    assert!(run(&d, vec![serde_json::from_value(m).unwrap()]).await.is_empty());
    let next = d.queue.messages();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].attempt, next[0].event_id.as_str()), (2, "evt_1"));
    assert_eq!(next[0].payload.get(), r#"{"orderNo":"1"}"#, "the payload intact");
    let wait = next[0].not_before_ms.unwrap() - before;
    assert!((4_000..=6_100).contains(&wait), "the first backoff, 5 s with jitter: {wait} ms");
    assert!(d.dead_letters.bodies().is_empty());
}

#[tokio::test]
async fn the_last_failed_attempt_parks_the_message_as_received() {
    let (store, w) = store_with_webhook().await;
    let d = with_emails(store, answers(500, None), None);
    let last = with_attempt(message(1, w.id), RetrySchedule::standard().max_attempts(), None);
    let body = last.body.clone().unwrap();
    assert!(run(&d, vec![last]).await.is_empty());
    assert_eq!(d.dead_letters.bodies(), [body], "the body intact in the dead-letter queue");
    assert!(d.queue.bodies().is_empty(), "no attempt after the last");
}

#[tokio::test]
async fn a_message_not_due_yet_waits_without_an_attempt() {
    let (store, w) = store_with_webhook().await;
    let d = with_emails(store, answers(500, None), None);
    let later = with_attempt(message(1, w.id), 3, Some(clock::now_ms() + 3_600_000));
    assert_eq!(run(&d, vec![later]).await, ["m1"], "kept, hidden until due");
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 0, "no attempt");
    assert!(d.queue.bodies().is_empty() && d.dead_letters.bodies().is_empty());
    let due = with_attempt(message(2, w.id), 3, Some(clock::now_ms() - 1));
    assert!(run(&d, vec![due]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 1, "a due message is attempted");
}

#[tokio::test]
async fn no_attempt_starts_too_close_to_the_deadline() {
    let (store, w) = store_with_webhook().await;
    let d = with_emails(store, answers(200, None), None);
    let event = SqsEvent { records: vec![message(1, w.id)] };
    let answer = d.handle(&event, Some(clock::now_ms() + 5_000)).await.unwrap();
    assert!(answer.batch_item_failures.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 0, "12 s of budget do not fit in 5 s");
    let handed_back = d.queue.messages();
    assert_eq!((handed_back.len(), handed_back[0].attempt), (1, 1), "queued again, the same attempt");
    d.handle(&event, Some(clock::now_ms() + 60_000)).await.unwrap();
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 1);
    d.handle(&event, Some(0)).await.unwrap();
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 2, "a deadline already past is none");
}

#[tokio::test]
async fn retry_after_is_honoured_on_429_and_503_only() {
    for (status, honoured) in [(429, true), (503, true), (500, false)] {
        let (store, w) = store_with_webhook().await;
        let d = with_emails(store, answers(status, Some(60)), None);
        let before = clock::now_ms();
        run(&d, vec![message(1, w.id)]).await;
        let wait = d.queue.messages()[0].not_before_ms.unwrap() - before;
        if honoured {
            assert!((60_000..61_000).contains(&wait), "{status}: {wait} ms");
        } else {
            assert!(wait < 7_000, "{status}: the schedule, {wait} ms");
        }
    }
}

fn message(i: usize, webhook_id: u64) -> SqsMessage {
    let body = format!(
        r#"{{"v":1,"eventId":"evt_{i}","eventType":"new_order","vendorId":"ven_x","webhookId":{webhook_id},"publishedAt":1,"payload":{{"orderNo":"1"}}}}"#
    );
    SqsMessage {
        message_id: Some(format!("m{i}")),
        receipt_handle: Some(format!("r{i}")),
        body: Some(body),
        ..SqsMessage::default()
    }
}

/// The memory store with an attempt log of its own: down (every write fails), or up, each
/// write taking a few milliseconds, as a call to DynamoDB does, and noted (its records, when it
/// ended). Its webhook reads are noted too (`GetItem` or `BatchGetItem`, and the webhooks each
/// asked for), and reading several together may be made to fail.
struct Log {
    inner: MemoryStore,
    down: bool,
    writes: std::sync::Mutex<Vec<(usize, std::time::Instant)>>,
    reads: std::sync::Mutex<Vec<(&'static str, usize)>>,
    batch_reads_fail: bool,
}

impl Log {
    fn down(inner: MemoryStore) -> Self {
        Self {
            inner,
            down: true,
            writes: Default::default(),
            reads: Default::default(),
            batch_reads_fail: false,
        }
    }

    fn up(inner: MemoryStore) -> Self {
        Self { down: false, ..Self::down(inner) }
    }

    async fn write(&self, records: usize) -> Result<(), StoreError> {
        if self.down {
            return Err(StoreError::Backend("the emulator is away".into()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.writes.lock().unwrap().push((records, std::time::Instant::now()));
        Ok(())
    }
}
impl WebhookStore for Log {
    async fn insert_webhook(&self, w: &Webhook) -> Result<(), crate::store::StoreError> {
        self.inner.insert_webhook(w).await
    }
    async fn get_webhook(&self, v: &str, id: u64) -> Result<Option<Webhook>, crate::store::StoreError> {
        self.reads.lock().unwrap().push(("GetItem", 1));
        self.inner.get_webhook(v, id).await
    }
    async fn get_webhooks(
        &self,
        keys: &[(&str, u64)],
    ) -> Result<Vec<Option<Webhook>>, crate::store::StoreError> {
        if self.batch_reads_fail {
            return Err(StoreError::Backend("throttled".into()));
        }
        self.reads.lock().unwrap().push(("BatchGetItem", keys.len()));
        self.inner.get_webhooks(keys).await
    }
    async fn list_webhooks(&self, v: &str) -> Result<Vec<Webhook>, crate::store::StoreError> {
        self.inner.list_webhooks(v).await
    }
    async fn replace_webhook(&self, c: &Webhook, n: &Webhook) -> Result<(), crate::store::StoreError> {
        self.inner.replace_webhook(c, n).await
    }
    async fn delete_webhook(&self, w: &Webhook) -> Result<(), crate::store::StoreError> {
        self.inner.delete_webhook(w).await
    }
}
impl NotifyStore for Log {
    async fn get_notifications(&self, v: &str) -> Result<Option<notify::Notifications>, StoreError> {
        self.inner.get_notifications(v).await
    }
    async fn put_notifications(&self, v: &str, n: &notify::Notifications) -> Result<(), StoreError> {
        self.inner.put_notifications(v, n).await
    }
    async fn refuse_email(&self, v: &str, e: &str, at: i64, why: &str) -> Result<(), StoreError> {
        self.inner.refuse_email(v, e, at, why).await
    }
    async fn claim_mail(&self, k: &str, t: &str, now: i64, lease: i64) -> Result<MailClaim, StoreError> {
        self.inner.claim_mail(k, t, now, lease).await
    }
    async fn settle_mail(&self, k: &str, t: &str, sent: bool) -> Result<(), StoreError> {
        self.inner.settle_mail(k, t, sent).await
    }
    async fn open_alert(
        &self,
        id: u64,
        kind: &str,
        incident: Option<i64>,
        now: i64,
        interval: i64,
    ) -> Result<bool, StoreError> {
        self.inner.open_alert(id, kind, incident, now, interval).await
    }
    async fn cancel_alert(&self, id: u64, at: i64) -> Result<(), StoreError> {
        self.inner.cancel_alert(id, at).await
    }
}
impl DeliverySlots for Log {
    async fn take_slots(
        &self,
        id: u64,
        leases: &[String],
        now: i64,
        until: i64,
        cap: u32,
    ) -> Result<usize, StoreError> {
        self.inner.take_slots(id, leases, now, until, cap).await
    }
    async fn give_slots(&self, id: u64, leases: &[String]) -> Result<(), StoreError> {
        self.inner.give_slots(id, leases).await
    }
}
impl AttemptLog for Log {
    async fn record_attempt(&self, _: &AttemptRecord) -> Result<(), crate::store::StoreError> {
        self.write(1).await
    }
    async fn record_attempts(&self, records: &[AttemptRecord]) -> Result<(), crate::store::StoreError> {
        self.write(records.len()).await
    }
    async fn attempts_page(
        &self,
        _: u64,
        _: i32,
        _: Option<&str>,
    ) -> Result<(Vec<AttemptRecord>, Option<String>), crate::store::StoreError> {
        Ok((Vec::new(), None))
    }
    async fn attempted_since(
        &self,
        _: u64,
        _: i64,
    ) -> Result<std::collections::HashMap<String, bool>, crate::store::StoreError> {
        Ok(Default::default())
    }
    async fn list_attempts(&self, _: u64, _: i32) -> Result<Vec<AttemptRecord>, crate::store::StoreError> {
        Ok(Vec::new())
    }
    async fn get_attempt(&self, _: u64, _: &str) -> Result<Option<AttemptRecord>, crate::store::StoreError> {
        Ok(None)
    }
}

/// Found by the soak: a drop must be recorded before the message is let go.
#[tokio::test]
async fn a_drop_that_cannot_be_recorded_keeps_its_message() {
    let mut w = crate::domain::tests::webhook();
    w.disabled = Some((1, "the receiver answered 410 Gone".into()));
    let store = Log::down(MemoryStore::default());
    store.insert_webhook(&w).await.unwrap();
    let dispatcher = dispatcher(store);
    let event = SqsEvent { records: vec![message(1, w.id), message(2, 424242)] };
    let answer = dispatcher.handle(&event, None).await.unwrap();
    let retried: Vec<&str> = answer.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(retried, ["m1", "m2"], "both drops (disabled, deleted) come back until recorded");
}

#[tokio::test]
async fn a_batch_reads_each_distinct_webhook_once() {
    let mut w = crate::domain::tests::webhook();
    w.previous_secrets.clear();
    w.event_type = EventType::NewOrder;
    let store = MemoryStore::default();
    store.insert_webhook(&w).await.unwrap();
    let dispatcher = dispatcher(store);
    let mut event = SqsEvent { records: (0..9).map(|i| message(i, w.id)).collect() };
    event.records.push(message(9, 424242));
    let answer = dispatcher.handle(&event, None).await.unwrap();
    assert!(answer.batch_item_failures.is_empty(), "delivered, or dropped (the unknown webhook)");
    assert_eq!(dispatcher.store.reads.load(Ordering::Relaxed), 2, "two distinct webhooks, two reads");
    assert_eq!(dispatcher.store.attempts.load(Ordering::Relaxed), 10, "nine delivered, one dropped");
}

#[tokio::test]
async fn a_batchs_attempt_records_are_written_together() {
    let mut w = crate::domain::tests::webhook();
    w.previous_secrets.clear();
    w.event_type = EventType::NewOrder;
    let store = Log::up(MemoryStore::default());
    store.insert_webhook(&w).await.unwrap();
    let dispatcher = dispatcher(store);
    assert!(run(&dispatcher, (0..10).map(|i| message(i, w.id)).collect()).await.is_empty());
    let writes: Vec<usize> = dispatcher.store.writes.lock().unwrap().iter().map(|w| w.0).collect();
    // The first record ended alone and was written at once; the nine others queued meanwhile.
    assert_eq!(writes, [1, 9], "ten records in two writes");
    // One webhook: read by its first delivery, the others sharing the answer.
    assert_eq!(*dispatcher.store.reads.lock().unwrap(), [("GetItem", 1)]);
}

/// Ten webhooks of two vendors, each with a message in one batch, and one message for a
/// webhook since deleted.
async fn ten_webhooks_batch(store: &Log) -> SqsEvent {
    let mut event = SqsEvent::default();
    for i in 0..10 {
        let mut w = crate::domain::tests::webhook();
        (w.id, w.vendor_id) = (100 + i, format!("vendor-{}", i % 2));
        w.url = format!("https://hooks{i}.example.com/");
        w.previous_secrets.clear();
        w.event_type = EventType::NewOrder;
        store.insert_webhook(&w).await.unwrap();
        let mut record = message(i as usize, w.id);
        let mut m: DeliveryMessage = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
        m.vendor_id = w.vendor_id.clone();
        record.body = Some(serde_json::to_string(&m).unwrap());
        event.records.push(record);
    }
    event.records.push(message(10, 424242));
    event
}

#[tokio::test]
async fn a_batchs_webhooks_are_read_together() {
    let store = Log::up(MemoryStore::default());
    let event = ten_webhooks_batch(&store).await;
    let dispatcher = dispatcher(store);
    let answer = dispatcher.handle(&event, None).await.unwrap();
    assert!(answer.batch_item_failures.is_empty(), "ten delivered, one dropped (its webhook deleted)");
    assert_eq!(
        *dispatcher.store.reads.lock().unwrap(),
        [("BatchGetItem", 11)],
        "eleven webhooks in one read"
    );
    let recorded: usize = dispatcher.store.writes.lock().unwrap().iter().map(|w| w.0).sum();
    assert_eq!(recorded, 11, "ten attempts and a drop recorded");
}

#[tokio::test]
async fn when_the_batch_read_fails_each_delivery_reads_its_own_webhook() {
    let mut store = Log::up(MemoryStore::default());
    store.batch_reads_fail = true;
    let event = ten_webhooks_batch(&store).await;
    let dispatcher = dispatcher(store);
    let answer = dispatcher.handle(&event, None).await.unwrap();
    assert!(answer.batch_item_failures.is_empty(), "ten delivered, one dropped (its webhook deleted)");
    assert_eq!(*dispatcher.store.reads.lock().unwrap(), [("GetItem", 1); 11], "a read per delivery");
    let recorded: usize = dispatcher.store.writes.lock().unwrap().iter().map(|w| w.0).sum();
    assert_eq!(recorded, 11, "ten attempts and a drop recorded");
}

/// Answers 200, after `slow` for requests to `slow_url` and at once for the others.
struct SlowFor {
    slow_url: String,
    slow: Duration,
    answered: std::sync::Mutex<Option<std::time::Instant>>,
}
impl Deliverer for SlowFor {
    async fn deliver(&self, r: &DeliveryRequest<'_>) -> Attempt {
        if r.url == self.slow_url {
            tokio::time::sleep(self.slow).await;
            *self.answered.lock().unwrap() = Some(std::time::Instant::now());
        }
        Attempt {
            outcome: Outcome::Delivered { status: 200 },
            duration: Duration::ZERO,
            response_excerpt: String::new(),
        }
    }
}

#[tokio::test]
async fn an_attempt_record_does_not_wait_for_the_batchs_slowest_delivery() {
    let store = Log::up(MemoryStore::default());
    let (mut fast, mut slow) = (crate::domain::tests::webhook(), crate::domain::tests::webhook());
    for (w, id, url) in
        [(&mut fast, 1, "https://fast.example.com/"), (&mut slow, 2, "https://slow.example.com/")]
    {
        w.id = id;
        w.url = url.into();
        w.previous_secrets.clear();
        w.event_type = EventType::NewOrder;
        store.insert_webhook(w).await.unwrap();
    }
    let deliverer = SlowFor {
        slow_url: slow.url.clone(),
        slow: Duration::from_millis(300),
        answered: Default::default(),
    };
    let dispatcher = with_emails(store, deliverer, None);
    let mut records: Vec<SqsMessage> = (0..9).map(|i| message(i, fast.id)).collect();
    records.push(message(9, slow.id));
    assert!(run(&dispatcher, records).await.is_empty());
    let writes = dispatcher.store.writes.lock().unwrap().clone();
    let slow_answered = dispatcher.deliverer.answered.lock().unwrap().unwrap();
    assert_eq!(writes.iter().map(|w| w.0).sum::<usize>(), 10, "every attempt recorded: {writes:?}");
    let (before, after): (Vec<&(usize, std::time::Instant)>, Vec<_>) =
        writes.iter().partition(|w| w.1 < slow_answered);
    assert_eq!(before.iter().map(|w| w.0).sum::<usize>(), 9, "the fast ones, before the slow one answered");
    assert_eq!(after.iter().map(|w| w.0).collect::<Vec<_>>(), [1], "the slow one's, alone");
}

#[tokio::test]
async fn five_failures_in_a_row_open_the_circuit_and_hold_the_rest_without_an_attempt() {
    let (store, w) = store_with_webhook().await;
    let d = with_circuit(store, answers(500, None));
    for i in 0..5 {
        assert!(run(&d, vec![message(i, w.id)]).await.is_empty());
    }
    let stored = d.store.get_webhook("ven_x", w.id).await.unwrap().unwrap();
    assert_eq!(stored.consecutive_failures, 5);
    let until = stored.circuit_open_until.expect("the circuit is open");
    assert!((59..=61).contains(&(until - clock::now())), "a minute: {until}");

    // A sixth delivery, its third attempt: held, not attempted, its attempt not used up.
    assert!(run(&d, vec![with_attempt(message(9, w.id), 3, None)]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 5, "no attempt while the circuit is open");
    let held = d.queue.messages().into_iter().find(|m| m.event_id == "evt_9").expect("held on the queue");
    assert_eq!(held.attempt, 3, "the same attempt");
    assert!(held.not_before_ms.unwrap() >= until * 1000 - 1000, "until the circuit's time");
}

#[tokio::test]
async fn once_its_time_is_past_one_delivery_probes_and_a_success_closes_the_circuit() {
    for (status, probes_and_deliveries) in [(500, 1), (200, 3)] {
        let (store, mut w) = store_with_webhook().await;
        (w.consecutive_failures, w.circuit_open_until) = (5, Some(clock::now() - 1));
        let current = store.get_webhook("ven_x", w.id).await.unwrap().unwrap();
        store
            .replace_webhook(&current, &Webhook { version: current.version + 1, ..w.clone() })
            .await
            .unwrap();
        let d = with_circuit(store, answers(status, None));
        run(&d, (0..3).map(|i| message(i, w.id)).collect()).await;
        assert_eq!(d.deliverer.2.load(Ordering::Relaxed), probes_and_deliveries, "status {status}");
        let after = d.store.get_webhook("ven_x", w.id).await.unwrap().unwrap();
        if status == 200 {
            assert_eq!((after.circuit_open_until, after.consecutive_failures), (None, 0), "closed");
        } else {
            let until = after.circuit_open_until.unwrap();
            assert!(until - clock::now() >= 110, "open again, for longer: {}", until - clock::now());
            assert_eq!(after.consecutive_failures, 6);
        }
    }
}

#[tokio::test]
async fn a_webhook_with_its_cap_in_flight_holds_the_next_delivery_without_an_attempt() {
    let (store, mut w) = store_with_webhook().await;
    w.max_in_flight = Some(2);
    let current = store.get_webhook("ven_x", w.id).await.unwrap().unwrap();
    store.replace_webhook(&current, &Webhook { version: current.version + 1, ..w.clone() }).await.unwrap();
    let now = clock::now_ms();
    // Two deliveries in flight elsewhere (another instance), one of them with a lease of a
    // crashed instance that runs out in a moment.
    let lease = |name: &str| [name.to_owned()];
    assert_eq!(store.take_slots(w.id, &lease("other"), now, now + 60_000, 2).await.unwrap(), 1);
    assert_eq!(store.take_slots(w.id, &lease("crashed"), now, now + 300, 2).await.unwrap(), 1);
    let d = with_circuit(store, answers(200, None));

    assert!(run(&d, vec![with_attempt(message(1, w.id), 2, None)]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 0, "held: the cap is in flight");
    let held = d.queue.messages();
    assert_eq!((held.len(), held[0].attempt), (1, 2), "queued again for the same attempt");
    let wait = held[0].not_before_ms.unwrap() - clock::now_ms();
    assert!((0..=3_000).contains(&wait), "a moment later: {wait} ms");

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(run(&d, vec![message(2, w.id)]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 1, "the crashed instance's slot freed itself");
    // The attempt gave its slot back: one more fits beside "other".
    let now = clock::now_ms();
    assert_eq!(d.store.take_slots(w.id, &lease("next"), now, now + 1_000, 2).await.unwrap(), 1);
}

#[tokio::test]
async fn a_batch_takes_its_slots_for_a_webhook_in_one_write_and_gives_them_back_in_one() {
    let (store, mut w) = store_with_webhook().await;
    w.max_in_flight = Some(4);
    let current = store.get_webhook("ven_x", w.id).await.unwrap().unwrap();
    store.replace_webhook(&current, &Webhook { version: current.version + 1, ..w.clone() }).await.unwrap();
    let other = Webhook { id: w.id + 1, url: format!("{}/other", w.url), max_in_flight: None, ..w.clone() };
    store.insert_webhook(&other).await.unwrap();
    let single = Webhook { id: w.id + 2, url: format!("{}/single", w.url), ..other.clone() };
    store.insert_webhook(&single).await.unwrap();
    let now = clock::now_ms();
    // One delivery in flight elsewhere: three of the cap of four are free.
    assert_eq!(store.take_slots(w.id, &["elsewhere".to_owned()], now, now + 60_000, 4).await.unwrap(), 1);
    let before = store.slot_writes.load(Ordering::Relaxed);
    let d = with_circuit(store, answers(200, None));

    let mut batch: Vec<SqsMessage> = (1..=5).map(|i| message(i, w.id)).collect();
    batch.extend((6..=7).map(|i| message(i, other.id)));
    batch.push(message(8, single.id));
    assert!(run(&d, batch).await.is_empty());
    assert_eq!(
        d.deliverer.2.load(Ordering::Relaxed),
        3 + 2 + 1,
        "three of w's five, other's two, single's one"
    );
    let held = d.queue.messages();
    assert_eq!(held.len(), 2, "w's other two held by its cap");
    assert!(held.iter().all(|m| m.webhook_id == w.id && m.attempt == 1 && m.not_before_ms.is_some()));
    assert_eq!(
        d.store.slot_writes.load(Ordering::Relaxed) - before,
        6,
        "each webhook's slots taken in one write and given back in one"
    );
    // All given back: only the slot held elsewhere is left.
    let now = clock::now_ms();
    let four: Vec<String> = (0..4).map(|i| format!("after{i}")).collect();
    assert_eq!(d.store.take_slots(w.id, &four, now, now + 1_000, 4).await.unwrap(), 3);
    assert_eq!(d.store.take_slots(other.id, &four, now, now + 1_000, 10).await.unwrap(), 4);
    assert_eq!(d.store.take_slots(single.id, &four[..1], now, now + 1_000, 1).await.unwrap(), 1);
}

/// [`with_emails`] with a slow lane of its own, `slow`.
fn with_slow_lane<S, D>(store: S, deliverer: D) -> Dispatcher<S, &'static Recorder, D> {
    let mut d = with_emails(store, deliverer, None);
    d.slow_lane = Some(Lane { queue: Box::leak(Box::default()), name: "webhooks-slow-deliveries".into() });
    d
}

/// `m` as the slow lane's event source hands it over.
fn from_slow_lane(mut m: SqsMessage) -> SqsMessage {
    m.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:webhooks-slow-deliveries".into());
    m
}

#[tokio::test]
async fn a_failed_attempt_is_retried_in_the_slow_lane() {
    let (store, w) = store_with_webhook().await;
    let d = with_slow_lane(store, answers(500, None));
    assert!(run(&d, vec![message(1, w.id)]).await.is_empty());
    assert!(d.queue.bodies().is_empty(), "nothing back in the deliveries queue");
    let next = d.slow_lane.as_ref().unwrap().queue.messages();
    assert_eq!((next.len(), next[0].attempt), (1, 2));
    let stored = d.store.get_webhook("ven_x", w.id).await.unwrap().unwrap();
    assert_eq!(stored.consecutive_failures, 1, "failures in a row are counted for the lanes");
}

#[tokio::test]
async fn a_failing_webhooks_first_attempts_move_to_the_slow_lane_unattempted() {
    let (store, w) = store_with_failing_webhook(1).await;
    let d = with_slow_lane(store, answers(200, None));
    assert!(run(&d, vec![message(1, w.id), message(2, w.id)]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 0, "not attempted in the deliveries queue");
    let moved = d.slow_lane.as_ref().unwrap().queue.messages();
    assert_eq!(
        moved.iter().map(|m| (m.attempt, m.event_id.as_str())).collect::<Vec<_>>(),
        [(1, "evt_1"), (1, "evt_2")]
    );
    assert_eq!(moved[0].payload.get(), r#"{"orderNo":"1"}"#);
    assert_eq!(d.store.attempts.load(Ordering::Relaxed), 0, "no attempt used up or logged");

    // In the slow lane they are attempted, and a 2xx makes the webhook healthy: its next
    // deliveries stay in the deliveries queue.
    let slow: Vec<_> = (1..=2).map(|i| from_slow_lane(message(i, w.id))).collect();
    assert!(run(&d, slow).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 2);
    let stored = d.store.get_webhook("ven_x", w.id).await.unwrap().unwrap();
    assert!(!stored.failing());
    assert!(run(&d, vec![message(3, w.id)]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 3);
    assert_eq!(d.slow_lane.as_ref().unwrap().queue.bodies().len(), 2, "nothing more moved");
}

#[tokio::test]
async fn without_a_slow_lane_a_failing_webhook_is_attempted_where_it_is() {
    let (store, w) = store_with_failing_webhook(3).await;
    let d = with_emails(store, answers(200, None), None);
    assert!(run(&d, vec![message(1, w.id)]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 1);
}

/// [`with_slow_lane`] with a grouped lane of its own.
fn with_grouped_lane<S, D>(store: S, deliverer: D) -> Dispatcher<S, &'static Recorder, D> {
    let mut d = with_slow_lane(store, deliverer);
    d.grouped = Some(Lane { queue: Box::leak(Box::default()), name: "webhooks-grouped.fifo".into() });
    d
}

/// `m` as the grouped lane's event source hands it over.
fn from_grouped_lane(mut m: SqsMessage, group: &str) -> SqsMessage {
    m.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:webhooks-grouped.fifo".into());
    m.attributes.message_group_id = Some(group.into());
    m
}

#[tokio::test]
async fn in_the_grouped_lane_sqs_keeps_the_cap_and_no_slot_is_written() {
    let (store, w) = store_with_webhook().await;
    let d = with_grouped_lane(store, answers(200, None));
    let group = w.id.to_string();
    let records = (0..10).map(|i| from_grouped_lane(message(i, w.id), &group)).collect();
    assert!(run(&d, records).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 10, "all ten delivered");
    assert_eq!(d.store.slot_writes.load(Ordering::Relaxed), 0, "no slot taken or given back");
    assert_eq!(d.store.attempts.load(Ordering::Relaxed), 10, "each attempt recorded");
}

#[tokio::test]
async fn a_healthy_webhooks_delivery_elsewhere_moves_to_its_group() {
    let (store, w) = store_with_webhook().await;
    let d = with_grouped_lane(store, answers(200, None));
    let mut redelivered = message(1, w.id);
    redelivered.message_id = Some("0b6f6c4e-6a1e-4c1a-9a8e-3c1f1f1f1f1f".into());
    // A redelivery in the deliveries queue and a retry due in the slow lane, the webhook healthy.
    let retry = from_slow_lane(with_attempt(message(2, w.id), 3, None));
    assert!(run(&d, vec![redelivered, retry]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 0, "not attempted where they were");
    let moved = d.grouped.as_ref().unwrap().queue.1.lock().unwrap().clone();
    assert_eq!(moved.len(), 2);
    let group = w.id.to_string();
    assert!(moved.iter().all(|g| g.group == group), "{moved:?}");
    assert_eq!(moved[0].dedup, "0b6f6c4e-6a1e-4c1a-9a8e-3c1f1f1f1f1f", "a repeated move is dropped by SQS");
    let attempts: Vec<u32> =
        moved.iter().map(|g| serde_json::from_str::<DeliveryMessage>(&g.body).unwrap().attempt).collect();
    assert_eq!(attempts, [1, 3], "the attempt count travels with the delivery");
    assert_eq!(d.store.slot_writes.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_failing_webhooks_delivery_leaves_its_group_for_the_slow_lane() {
    let (store, w) = store_with_failing_webhook(1).await;
    let d = with_grouped_lane(store, answers(200, None));
    assert!(run(&d, vec![from_grouped_lane(message(1, w.id), &w.id.to_string())]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 0);
    let moved = d.slow_lane.as_ref().unwrap().queue.messages();
    assert_eq!(moved.iter().map(|m| m.attempt).collect::<Vec<_>>(), [1]);
    assert!(d.grouped.as_ref().unwrap().queue.1.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_attempt_in_the_grouped_lane_is_retried_in_the_slow_lane() {
    let (store, w) = store_with_webhook().await;
    let d = with_grouped_lane(store, answers(500, None));
    assert!(run(&d, vec![from_grouped_lane(message(1, w.id), &w.id.to_string())]).await.is_empty());
    let next = d.slow_lane.as_ref().unwrap().queue.messages();
    assert_eq!((next.len(), next[0].attempt), (1, 2), "the group is not held by the retry");
}

#[tokio::test]
async fn a_webhook_with_a_cap_under_a_batch_keeps_its_counted_slots() {
    let (store, w) = store_with_webhook().await;
    let capped = Webhook { max_in_flight: Some(2), version: w.version + 1, ..w.clone() };
    store.replace_webhook(&w, &capped).await.unwrap();
    let d = with_grouped_lane(store, answers(200, None));
    assert!(run(&d, vec![message(1, w.id)]).await.is_empty());
    assert_eq!(d.deliverer.2.load(Ordering::Relaxed), 1, "delivered where it was");
    assert!(d.grouped.as_ref().unwrap().queue.1.lock().unwrap().is_empty());
    assert_eq!(d.store.slot_writes.load(Ordering::Relaxed), 2, "its slot taken and given back");
}

/// Receivers that answer 500 to one event, and 200 to the others.
struct FailsEvent(&'static str);
impl Deliverer for FailsEvent {
    async fn deliver(&self, r: &DeliveryRequest<'_>) -> Attempt {
        let outcome = match r.event_id == self.0 {
            true => Outcome::Rejected { status: 500, retry_after: None },
            false => Outcome::Delivered { status: 200 },
        };
        Attempt { outcome, duration: Duration::from_millis(3), response_excerpt: String::new() }
    }
}

/// What the functions log, as JSON lines, kept for a test to read.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);
impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// What this thread logs from now until the guard is dropped, as JSON lines.
    fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt().json().with_writer(captured.clone()).finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<serde_json::Value> {
        let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

#[tokio::test]
async fn a_batchs_deliveries_that_reached_a_2xx_are_logged_in_one_line() {
    let (store, w) = store_with_webhook().await;
    let d = with_emails(store, FailsEvent("evt_3"), None);
    let (captured, _default) = Captured::start();
    let records = vec![message(1, w.id), with_attempt(message(2, w.id), 2, None), message(3, w.id)];
    assert!(run(&d, records).await.is_empty(), "the failure's next attempt is queued");
    let lines = captured.lines();
    let delivered: Vec<_> = lines.iter().filter(|l| l["fields"]["message"] == "delivered").collect();
    assert_eq!(delivered.len(), 1, "{lines:?}");
    assert_eq!(delivered[0]["level"], "INFO");
    assert_eq!(delivered[0]["fields"]["count"], 2);
    let list = delivered[0]["fields"]["deliveries"].as_str().unwrap();
    let mut entries: Vec<&str> = list.split(' ').collect();
    entries.sort_unstable();
    assert_eq!(entries, [format!("evt_1/{}/1/200/3", w.id), format!("evt_2/{}/2/200/3", w.id)]);
    // The failure keeps a line of its own, in its delivery's span.
    let rejected: Vec<_> = lines.iter().filter(|l| l["fields"]["message"] == "delivery rejected").collect();
    assert_eq!(rejected.len(), 1, "{lines:?}");
    assert_eq!(rejected[0]["span"]["event_id"], "evt_3");
    assert_eq!(rejected[0]["fields"]["status"], 500);
    // One span per delivery, its SQS message's id in it.
    assert_eq!(rejected[0]["span"]["message_id"], "m3");
    assert_eq!(rejected[0]["spans"].as_array().map(Vec::len), Some(1), "{:?}", rejected[0]);
}

#[tokio::test]
async fn a_batch_with_no_delivery_reaching_a_2xx_logs_no_delivered_line() {
    let (store, w) = store_with_webhook().await;
    let d = with_emails(store, FailsEvent("evt_1"), None);
    let (captured, _default) = Captured::start();
    run(&d, vec![message(1, w.id)]).await;
    let lines = captured.lines();
    assert!(lines.iter().all(|l| l["fields"]["message"] != "delivered"), "{lines:?}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "delivery rejected"), "{lines:?}");
}
