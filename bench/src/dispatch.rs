//! Dispatch against the ceiling: the same deliveries to the same receiver, first with a bare
//! hyper client, then through the dispatch handler as Lambda calls it (SQS batches of ten).
use std::{
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use shared::{
    delivery::{Deliverer, DeliveryMessage, DeliverySettings, HttpDeliverer, RetrySchedule},
    dispatch::{Dispatcher, Lane},
    domain::{EventType, Webhook, WebhookSpec},
    store::{AttemptLog, NotifyStore, WebhookStore},
};

use crate::doubles::{Counting, CountingQueue, Timed};

/// What one measured run did.
pub struct Run {
    pub name: &'static str,
    pub deliveries: usize,
    pub wall: Duration,
    pub cpu: Duration,
    pub latencies: Vec<Duration>,
    /// (store reads, store writes, queue calls), for the runs that go through dispatch.
    pub requests: Option<(u64, u64, u64)>,
    pub batches: usize,
    /// Heap allocations made during the run, every thread's.
    pub allocations: u64,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.deliveries as f64 / self.wall.as_secs_f64()
    }
    pub fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
    }
    pub fn cpu_per_delivery(&self) -> Duration {
        self.cpu / self.deliveries.max(1) as u32
    }
    pub fn allocations_per_delivery(&self) -> f64 {
        self.allocations as f64 / self.deliveries.max(1) as f64
    }
}

/// A run's clocks, read at its start: the wall clock, this process's CPU time, its allocations.
struct Meter {
    t0: Instant,
    cpu0: Duration,
    allocations0: u64,
}

impl Meter {
    fn start() -> Self {
        Self { t0: Instant::now(), cpu0: cpu_time(), allocations0: crate::allocs::so_far() }
    }

    /// Wall time, CPU time and allocations since the start.
    fn read(&self) -> (Duration, Duration, u64) {
        (self.t0.elapsed(), cpu_time() - self.cpu0, crate::allocs::so_far() - self.allocations0)
    }
}

/// This process's user and system CPU time so far.
pub fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A 1 KiB JSON order payload, its items as varied as a real order's (what it compresses to,
/// when kept, depends on it).
pub fn payload() -> String {
    const NAMES: [&str; 6] = [
        "NutraHemp CBD Balm",
        "Organic Green Tea, 50 bags",
        "Stainless Steel Water Bottle 750 ml",
        "Merino Wool Socks (2 pairs)",
        "USB-C Charging Cable, 2 m",
        "Lavender Soap Bar",
    ];
    let mut p = String::from(r#"{"orderNo":"1000-4612","type":"new_order","items":["#);
    let mut seed = 0x2545_f491_u32;
    for i in 0.. {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let (quantity, cents) = (1 + seed % 4, 199 + (seed >> 8) % 9_800);
        let item = format!(
            r#"{{"skuNr":"{:08X}-{}","itemName":"{}","itemQuantity":{quantity},"itemPrice":{}.{:02},"itemTotal":{}.{:02}}}"#,
            seed,
            i + 1,
            NAMES[(seed >> 16) as usize % NAMES.len()],
            cents / 100,
            cents % 100,
            cents * quantity / 100,
            cents * quantity % 100,
        );
        if p.len() + item.len() + 3 > 1024 {
            break;
        }
        if i > 0 {
            p.push(',');
        }
        p.push_str(&item);
    }
    p.push_str("]}");
    while p.len() < 1024 {
        p.insert(p.len() - 2, ' ');
    }
    p
}

/// `n` requests made by `send`, `concurrency` at a time: each timed, and the whole run's wall
/// and CPU time.
async fn closed_loop<F, Fut>(name: &'static str, n: usize, concurrency: usize, send: F) -> Run
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let send = Arc::new(send);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let meter = Meter::start();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (send, next, latencies) = (send.clone(), next.clone(), latencies.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let started = Instant::now();
                    send().await;
                    latencies.lock().unwrap().push(started.elapsed());
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let (wall, cpu, allocations) = meter.read();
    let latencies = std::mem::take(&mut *latencies.lock().unwrap());
    Run { name, deliveries: n, wall, cpu, latencies, requests: None, batches: 0, allocations }
}

/// The bare client: hyper-util's pooled HTTP/1.1 client as it comes, the same POSTs with the
/// same headers, `concurrency` at a time.
pub async fn ceiling(port: u16, n: usize, concurrency: usize) -> Run {
    let client: Arc<BareClient> = Arc::new(Client::builder(TokioExecutor::new()).build_http());
    let (body, url) = (Bytes::from(payload()), bare_url(port));
    closed_loop("a. bare hyper client (ceiling)", n, concurrency, move || {
        let (client, body, url) = (client.clone(), body.clone(), url.clone());
        async move { bare_post(&client, url, body).await }
    })
    .await
}

/// The bare client shaped as dispatch is deployed, as b2 is: `concurrency / 10` instances, each
/// a thread of its own with a single-threaded runtime and a client of its own, sending ten
/// requests at once and waiting for all ten before the next ten (as an invocation answers for
/// its batch). b2's like-for-like baseline: what is left between them is the handler.
pub fn ceiling_in_instances(port: u16, n: usize, concurrency: usize) -> Run {
    let batches = n / 10;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(n));
    let (body, url) = (Bytes::from(payload()), bare_url(port));
    let meter = Meter::start();
    on_instance_threads((concurrency / 10).max(1), |_| async {
        let client: BareClient = Client::builder(TokioExecutor::new()).build_http();
        while next.fetch_add(1, Ordering::Relaxed) < batches {
            let timed = (0..10).map(|_| async {
                let started = Instant::now();
                bare_post(&client, url.clone(), body.clone()).await;
                started.elapsed()
            });
            let taken = futures_util::future::join_all(timed).await;
            latencies.lock().unwrap().extend(taken);
        }
    });
    let (wall, cpu, allocations) = meter.read();
    let name = "a4. as a, each ten an instance on a thread of its own (b2's shape)";
    let latencies = latencies.into_inner().unwrap();
    Run { name, deliveries: batches * 10, wall, cpu, latencies, requests: None, batches, allocations }
}

type BareClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn bare_url(port: u16) -> hyper::Uri {
    format!("http://127.0.0.1:{port}/hook").parse().unwrap()
}

/// One POST of `body` by the bare client, with the headers a delivery carries, read to its end.
async fn bare_post(client: &BareClient, url: hyper::Uri, body: Bytes) {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("webhook-id", "evt_bench")
        .header("webhook-timestamp", "1795510800")
        .header("webhook-signature", "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=")
        .body(Full::new(body))
        .unwrap();
    let resp = client.request(req).await.expect("the receiver answers");
    let _ = resp.into_body().collect().await;
}

/// dispatch's own sender (`HttpDeliverer`: hyper's HTTP/1.1 connections, each driven by the
/// delivery using it, the address guard, the timeout, the response cap) alone, the same
/// requests: where the gap between a and b goes.
pub async fn sender_alone(port: u16, n: usize, concurrency: usize) -> Run {
    let poster = Arc::new(Poster::new(port));
    closed_loop("a2. dispatch's sender alone", n, concurrency, move || {
        let poster = poster.clone();
        async move { poster.post().await }
    })
    .await
}

/// As [`sender_alone`], in batches of ten, each sent at once and waited for to its slowest, by
/// `concurrency / 10` senders at a time: what waiting for a whole batch costs without the
/// handler (a Lambda invocation answers for its SQS batch once every delivery in it is done).
/// Latencies are per batch.
pub async fn sender_in_batches(port: u16, n: usize, concurrency: usize) -> Run {
    let poster = Arc::new(Poster::new(port));
    let name = "a3. as a2, in batches of ten (each waits for its slowest)";
    let mut run = closed_loop(name, n / 10, (concurrency / 10).max(1), move || {
        let poster = poster.clone();
        async move {
            futures_util::future::join_all((0..10).map(|_| poster.post())).await;
        }
    })
    .await;
    run.deliveries = n / 10 * 10;
    run
}

/// POSTs of the payload by dispatch's sender, each of which must be answered with a 2xx.
struct Poster {
    sender: HttpDeliverer,
    body: Vec<u8>,
    url: String,
}

impl Poster {
    fn new(port: u16) -> Self {
        let settings = DeliverySettings { allow_private_targets: true, ..DeliverySettings::default() };
        Self {
            sender: HttpDeliverer::new(&settings).unwrap(),
            body: payload().into_bytes(),
            url: format!("http://127.0.0.1:{port}/hook"),
        }
    }

    async fn post(&self) {
        use shared::delivery::{DeliveryRequest, Outcome};
        let attempt = self
            .sender
            .deliver(&DeliveryRequest {
                url: &self.url,
                authentication: None,
                headers: &[],
                event_id: "evt_bench",
                timestamp: 1_795_510_800,
                signature: "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
                body: &self.body,
            })
            .await;
        assert!(matches!(attempt.outcome, Outcome::Delivered { .. }));
    }
}

/// `webhooks` webhooks of one vendor, all at the receiver, ids from `first_id` (ids are unique
/// table-wide).
pub fn webhooks(port: u16, count: usize, vendor: &str, first_id: u64) -> Vec<Webhook> {
    (0..count as u64)
        .map(|i| {
            let spec = WebhookSpec {
                event_type: EventType::NewOrder,
                url: format!("http://127.0.0.1:{port}/hook/{i}"),
                authentication: Some("Basic YmVuY2g6YmVuY2g=".into()),
                max_in_flight: None,
                options: Default::default(),
            };
            Webhook::new(first_id + i, vendor, spec, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(), 0)
        })
        .collect()
}

/// `hooks` in the DynamoDB table as they are given: inserted, or in place of what an earlier
/// run on the same table left under their ids (ids are unique table-wide), whose URL was its own
/// receiver's port, long closed, and whose health its deliveries there changed.
pub async fn stored(store: &shared::store::DynamoStore, hooks: &[Webhook]) -> anyhow::Result<()> {
    let failed = |e: shared::store::StoreError| anyhow::anyhow!("{}", shared::error::chain(&e));
    for w in hooks {
        match store.get_webhook(&w.vendor_id, w.id).await? {
            None => store.insert_webhook(w).await.map_err(failed)?,
            Some(old) if old != *w => store.replace_webhook(&old, w).await.map_err(failed)?,
            Some(_) => {}
        }
    }
    Ok(())
}

/// The SQS batches of `n` deliveries over the webhooks in turn, ten messages each (ten
/// webhooks in each), as the event source mapping hands them to dispatch.
pub fn batches(hooks: &[Webhook], n: usize) -> Vec<SqsEvent> {
    batches_with(hooks, n, |i| i % hooks.len())
}

/// As [`batches`], the `i`th delivery to `hooks[webhook(i)]`.
pub fn batches_with(hooks: &[Webhook], n: usize, webhook: impl Fn(usize) -> usize) -> Vec<SqsEvent> {
    let payload = payload();
    let records: Vec<SqsMessage> = (0..n)
        .map(|i| {
            let w = &hooks[webhook(i)];
            // Ids as long as real ones (an event id of 28 characters, an SQS message id a
            // UUID): dispatch's log lines carry them.
            let body = DeliveryMessage::first(
                format!("evt_bench{i:019}"),
                EventType::NewOrder,
                w.vendor_id.clone(),
                w.id,
                1_795_510_800,
                serde_json::value::RawValue::from_string(payload.clone()).unwrap(),
            )
            .to_body();
            // Every field Lambda's event source mapping sends, as long as SQS's.
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("00000000-0000-4000-8000-{i:012}"));
            m.receipt_handle = Some(format!("{RECEIPT_HANDLE}{i:012}"));
            m.md5_of_body = Some(format!("{:032x}", i as u128 * 0x9e37_79b9_7f4a_7c15));
            m.body = Some(body);
            m.attributes.insert("ApproximateReceiveCount".into(), "1".into());
            m.attributes.insert("SentTimestamp".into(), "1795510800123".into());
            m.attributes.insert("SenderId".into(), "AROAIWPX5BD2BHG722MW4:webhooks-publish".into());
            m.attributes.insert("ApproximateFirstReceiveTimestamp".into(), "1795510800147".into());
            m.event_source = Some("aws:sqs".into());
            m.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:webhooks-bench-deliveries".into());
            m.aws_region = Some("us-east-1".into());
            m
        })
        .collect();
    records
        .chunks(10)
        .map(|c| {
            let mut e = SqsEvent::default();
            e.records = c.to_vec();
            e
        })
        .collect()
}

/// The first 340 characters of a receipt handle (SQS's are opaque, and this long or longer).
const RECEIPT_HANDLE: &str = "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a/ItWJdb+F3H+3iLpI4HJbIyvKkE/KbYbxe0VKaSGLBFEPsh7pT6C8Wc3oP9ioBlBCdlxkMOfbk9CvIXIcFAnGHbMu9n6AYmQlMbhJnXi5uxxbPnDEG0gLSXt6c0k2/UZyklSnxVJ8t4lAfzyJ8zMl8dEGF6CCB5TY5VhBVJmSW0PavFN/IJT1StEAkUP7dKk8fASW8pZY4ueMwiYhTRqTzWrmLEaSXPPw2CWiuvK/zf8bl8Kl0lD11a5fz3/ChdgsyHVa1X63DQ9oJM+3rYzxbmW/i3ZgcbjuMZWW3rnNAsl/4+N3w";

/// The grouped lane's name in the bench: records whose event source ARN ends in it came from it.
pub const GROUPED_LANE: &str = "webhooks-bench-grouped.fifo";

/// `events` as the grouped lane's event source hands them over: each record with the lane's
/// ARN and its webhook's message group (`shared::grouped`, at the default cap of ten).
pub fn in_grouped_lane(events: Vec<SqsEvent>) -> Vec<SqsEvent> {
    in_lane(events, GROUPED_LANE)
}

/// As [`in_grouped_lane`], from the grouped lane of the queue named `lane`.
pub fn in_lane(mut events: Vec<SqsEvent>, lane: &str) -> Vec<SqsEvent> {
    for r in events.iter_mut().flat_map(|e| e.records.iter_mut()) {
        let m: DeliveryMessage = serde_json::from_str(r.body.as_deref().unwrap_or_default()).unwrap();
        let group = shared::grouped::group(m.webhook_id, &m.event_id, shared::grouped::groups(10));
        r.event_source_arn = Some(format!("arn:aws:sqs:us-east-1:123456789012:{lane}"));
        r.attributes.insert("MessageGroupId".into(), group);
        r.attributes.insert("MessageDeduplicationId".into(), format!("{}-{}", m.event_id, m.webhook_id));
        r.attributes.insert("SequenceNumber".into(), "18876598763574378752".into());
    }
    events
}

/// The dispatch handler over `store`, `concurrency / 10` invocations at a time (each a batch of
/// ten, delivered concurrently, as in Lambda), sending with dispatch's own sender. Each
/// invocation's event comes as the JSON Lambda sends, decoded as the runtime decodes it.
pub async fn through_dispatch<
    S: WebhookStore + AttemptLog + NotifyStore + shared::store::DeliverySlots + 'static,
>(
    name: &'static str,
    store: S,
    events: Vec<SqsEvent>,
    concurrency: usize,
) -> Run {
    let settings = DeliverySettings { allow_private_targets: true, ..DeliverySettings::default() };
    through_dispatch_with(name, store, HttpDeliverer::new(&settings).unwrap(), events, concurrency).await
}

/// As [`through_dispatch`], sending with `deliverer`.
pub async fn through_dispatch_with<
    S: WebhookStore + AttemptLog + NotifyStore + shared::store::DeliverySlots + 'static,
    D: Deliverer + 'static,
>(
    name: &'static str,
    store: S,
    deliverer: D,
    events: Vec<SqsEvent>,
    concurrency: usize,
) -> Run {
    let dispatcher = Arc::new(dispatcher(store, deliverer, &events));
    let n: usize = events.iter().map(|e| e.records.len()).sum();
    let batches = events.len();
    let invocations = Arc::new(Mutex::new(invocations(&events)));
    let meter = Meter::start();
    let lambdas: Vec<_> = (0..(concurrency / 10).max(1))
        .map(|_| {
            let (dispatcher, invocations) = (dispatcher.clone(), invocations.clone());
            tokio::spawn(async move { invoke_until_empty(&dispatcher, &invocations).await })
        })
        .collect();
    for l in lambdas {
        l.await.unwrap();
    }
    let (wall, cpu, allocations) = meter.read();
    let (latencies, requests) = taken(std::slice::from_ref(&*dispatcher));
    Run { name, deliveries: n, wall, cpu, latencies, requests: Some(requests), batches, allocations }
}

/// The dispatcher the bench runs: `store` and `deliverer` counted and timed, queues that count
/// their calls, and a grouped lane if `events` come from one (otherwise dispatch would move
/// their records there).
fn dispatcher<S, D>(
    store: S,
    deliverer: D,
    events: &[SqsEvent],
) -> Dispatcher<Counting<S>, CountingQueue, Timed<D>> {
    let grouped = events
        .iter()
        .flat_map(|e| &e.records)
        .any(|r| r.event_source_arn.as_deref().is_some_and(|a| a.ends_with(GROUPED_LANE)));
    Dispatcher {
        store: Counting::new(store),
        queue: CountingQueue::default(),
        dead_letters: CountingQueue::default(),
        attempt_budget: DeliverySettings::default().timeout,
        deliverer: Timed { inner: deliverer, latencies: Mutex::new(Vec::new()) },
        schedule: RetrySchedule::standard(),
        auto_disable_after: Some(Duration::from_secs(5 * 86400)),
        circuit: None,
        max_in_flight: 10,
        // Every receiver answers 2xx: no failure email would be asked for.
        emails: None,
        slow_lane: None,
        grouped: grouped.then(|| Lane { queue: CountingQueue::default(), name: GROUPED_LANE.into() }),
        ordered: None,
    }
}

/// As [`through_dispatch`], shaped as dispatch is deployed: `concurrency / 10` instances, each
/// a thread of its own with a single-threaded runtime (as dispatch's `main` builds it), its own
/// sender and connections, taking one batch at a time. Each instance's store is its own copy
/// of `hooks` (records from the grouped lane take no slot, so nothing needs to be shared).
pub fn through_instances(
    name: &'static str,
    hooks: &[Webhook],
    events: Vec<SqsEvent>,
    concurrency: usize,
) -> Run {
    let settings = DeliverySettings { allow_private_targets: true, ..DeliverySettings::default() };
    through_instances_with(name, hooks, || HttpDeliverer::new(&settings).unwrap(), events, concurrency)
}

/// As [`through_instances`], each instance sending with a deliverer of `deliverer`'s.
pub fn through_instances_with<D: Deliverer + Send + Sync>(
    name: &'static str,
    hooks: &[Webhook],
    deliverer: impl Fn() -> D,
    events: Vec<SqsEvent>,
    concurrency: usize,
) -> Run {
    let n: usize = events.iter().map(|e| e.records.len()).sum();
    let batches = events.len();
    let instances: Vec<_> = (0..(concurrency / 10).max(1))
        .map(|_| {
            let store = shared::store::MemoryStore::with(hooks);
            dispatcher(store, deliverer(), &events)
        })
        .collect();
    let queue = Mutex::new(invocations(&events));
    let meter = Meter::start();
    on_instance_threads(instances.len(), |i| invoke_until_empty(&instances[i], &queue));
    let (wall, cpu, allocations) = meter.read();
    let (latencies, requests) = taken(&instances);
    Run { name, deliveries: n, wall, cpu, latencies, requests: Some(requests), batches, allocations }
}

/// Each batch as the Lambda runtime receives it: the JSON the event source mapping sends.
fn invocations(events: &[SqsEvent]) -> Vec<Vec<u8>> {
    events.iter().map(|e| serde_json::to_vec(e).unwrap()).collect()
}

/// An invocation's event decoded for the handler as the Lambda runtime decodes it
/// (`lambda_runtime`'s `deserializer::deserialize`: serde_json through `serde_path_to_error`).
fn lambda_event(invocation: &[u8]) -> shared::sqs_batch::SqsEvent {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(invocation)).unwrap()
}

/// What one Lambda instance of dispatch does: takes invocations off `queue` until none is left,
/// each decoded as the runtime decodes it and handled, every delivery succeeding.
async fn invoke_until_empty<S, D>(
    dispatcher: &Dispatcher<Counting<S>, CountingQueue, Timed<D>>,
    queue: &Mutex<Vec<Vec<u8>>>,
) where
    S: WebhookStore + AttemptLog + NotifyStore + shared::store::DeliverySlots,
    D: Deliverer,
{
    loop {
        let Some(invocation) = queue.lock().unwrap().pop() else { return };
        let response = dispatcher.handle(&lambda_event(&invocation), None).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "every delivery succeeds");
    }
}

/// Runs `work(i)` for each of `count` instances, each on a thread of its own with tokio's
/// single-threaded runtime (as dispatch's `main` builds it), and returns when all are done.
fn on_instance_threads<F, Fut>(count: usize, work: F)
where
    F: Fn(usize) -> Fut + Sync,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::scope(|scope| {
        for i in 0..count {
            let work = &work;
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(work(i))
            });
        }
    });
}

/// What `dispatchers` did between them: each attempt's latency, and (store reads, store writes,
/// queue calls).
fn taken<S, D>(
    dispatchers: &[Dispatcher<Counting<S>, CountingQueue, Timed<D>>],
) -> (Vec<Duration>, (u64, u64, u64)) {
    let mut latencies = Vec::new();
    let mut requests = (0, 0, 0);
    for d in dispatchers {
        latencies.append(&mut d.deliverer.latencies.lock().unwrap());
        requests.0 += d.store.reads.load(Ordering::Relaxed);
        requests.1 += d.store.writes.load(Ordering::Relaxed);
        requests.2 += d.queue.calls.load(Ordering::Relaxed);
    }
    (latencies, requests)
}
