//! A vendor whose receiver hangs cannot slow the others down, end to end on the local stack:
//! the same events go to a healthy receiver and to one that never answers within the delivery
//! timeout, in the same fan-outs and so the same queue batches, and the healthy receiver's
//! latency from publish to its 2xx is measured against a run without the hanging one.
use std::time::{Duration, Instant};

use lambda_http::{Body, Request};
use reqwest::Method;
use serde_json::{json, Value};
use shared::{
    api::{handlers::publish_event, middleware::serve, App, Operation},
    config::Config,
    domain::Webhook,
    queue::{DeliveryQueue, Grouped, QueueError},
    store::WebhookStore,
};
use tests::{
    deliveries::{ecomnow_webhook, event, payload, publish, WAIT},
    insert_webhook, new_vendor,
    receiver::{Receiver, Reply},
    stack_var, store, Api, TestVendor,
};

/// Events per run, and the pause between two publishes.
const EVENTS: usize = 100;
const GAP: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread")]
async fn a_hanging_receiver_leaves_a_healthy_ones_latency_alone() {
    let (api, store) = (Api::new(), store().await);

    // Without: one vendor, one healthy receiver.
    let alone = new_vendor(&store).await;
    let healthy = Receiver::ok().await;
    ecomnow_webhook(&api, &alone, "new_order", &healthy.url, None).await;
    let without = run(&api, &alone, &healthy, "alone").await;

    // With: each event to a healthy receiver and to one that hangs past the delivery timeout.
    let both = new_vendor(&store).await;
    let healthy = Receiver::ok().await;
    let hanging = Receiver::start(Vec::new(), Reply::Slow(Duration::from_secs(30), 200)).await;
    let (healthy_id, _) = ecomnow_webhook(&api, &both, "new_order", &healthy.url, None).await;
    let (hanging_id, _) = ecomnow_webhook(&api, &both, "new_order", &hanging.url, None).await;
    // A receiver that is down for good: its first deliveries time out (the first in the
    // deliveries queue, the others in the slow lane, where publish and dispatch put the
    // deliveries of a failing webhook) until its circuit opens. From then on its deliveries
    // wait in the slow lane, and the probes that try it there hang until the timeout.
    for i in 0..40 {
        let a = publish(&api, &event(&both, None, "new_order", &order(&format!("warm-up-{i}")))).await;
        assert_eq!(a.status, 202, "{}", a.text);
    }
    let deadline = Instant::now() + WAIT * 2;
    loop {
        let w = api.vendor(&both, Method::GET, &format!("/basic/webhooks/{hanging_id}"), None).await.json();
        if w["circuit"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "the hanging receiver's circuit never opened: {w}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let with = run(&api, &both, &healthy, "with").await;
    assert!(hanging.received().len() > 1, "the hanging receiver was sent the events too");

    // What is left for the hanging receiver goes nowhere once its webhook is deleted.
    for id in [healthy_id, hanging_id] {
        let a = api.vendor(&both, Method::DELETE, &format!("/basic/webhooks/{id}"), None).await;
        assert!(a.status.is_success(), "{}", a.text);
    }
    let (p50, p99) = (percentile(&without, 0.50), percentile(&without, 0.99));
    let (hp50, hp99) = (percentile(&with, 0.50), percentile(&with, 0.99));
    println!(
        "healthy receiver, publish to 2xx over {EVENTS} events: alone p50 {p50} ms, p99 {p99} ms; \
         beside a hanging receiver p50 {hp50} ms, p99 {hp99} ms"
    );
    // Were the two not kept apart, the healthy receiver's deliveries would wait behind attempts
    // that hang for the whole delivery timeout: its p99 would rise by about that timeout, and its
    // p50 with it if most of them waited. The margins below are the emulator's. Every AWS call of
    // the local stack goes through one moto_server process, which the hanging receiver's waiting
    // deliveries keep busy (AWS's queues and table do not slow down for one vendor's backlog),
    // and a busy emulator adds tens of milliseconds to each call.
    let timeout: u64 = stack_var("DELIVERY_TIMEOUT_MS").parse().expect("DELIVERY_TIMEOUT_MS");
    assert!(hp50 <= 2 * p50 + 50, "p50 {hp50} ms beside the hanging receiver, {p50} ms alone");
    assert!(
        hp99 <= p99 + timeout / 2,
        "p99 {hp99} ms beside the hanging receiver, {p99} ms alone (delivery timeout {timeout} ms)"
    );
}

/// Publishes [`EVENTS`] new orders for `vendor`, [`GAP`] apart after one to warm up, and waits
/// for `receiver` to get them all; each one's milliseconds from publish to its delivery.
async fn run(api: &Api, vendor: &TestVendor, receiver: &Receiver, label: &str) -> Vec<u64> {
    let before = receiver.received().len();
    let a = publish(api, &event(vendor, None, "new_order", &order("warm-up"))).await;
    assert_eq!(a.status, 202, "{}", a.text);
    receiver.wait_for(before + 1, WAIT).await;
    let mut sent = Vec::new();
    for i in 0..EVENTS {
        let at = Instant::now();
        let a = publish(api, &event(vendor, None, "new_order", &order(&format!("{label}-{i}")))).await;
        assert_eq!(a.status, 202, "{}", a.text);
        sent.push(at);
        tokio::time::sleep(GAP.saturating_sub(at.elapsed())).await;
    }
    // Each event's milliseconds from its publish to its delivery, by its number.
    let latencies = |got: &[tests::receiver::Received]| -> Vec<(usize, u64)> {
        got.iter()
            .filter_map(|r| {
                let order: Value = serde_json::from_slice(&r.body).ok()?;
                let i: usize = order["orderNo"].as_str()?.strip_prefix(&format!("{label}-"))?.parse().ok()?;
                Some((i, (r.at - sent[i]).as_millis() as u64))
            })
            .collect()
    };
    let deadline = Instant::now() + WAIT * 2;
    while latencies(&receiver.received()).len() < EVENTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut got = latencies(&receiver.received());
    got.sort_unstable();
    let numbers: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
    assert_eq!(
        numbers,
        (0..EVENTS).collect::<Vec<_>>(),
        "every event reached the healthy receiver, once ({label})"
    );
    got.into_iter().map(|(_, ms)| ms).collect()
}

/// The eComNow sample order, numbered `number`.
fn order(number: &str) -> String {
    let mut order: Value = serde_json::from_str(&payload("ecomnow/new-order.json")).unwrap();
    order["orderNo"] = json!(number);
    order.to_string()
}

/// The `q` quantile of `values`, nearest rank.
fn percentile(values: &[u64], q: f64) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
}

/// A queue that keeps what is sent to it (with its group, if any).
#[derive(Default)]
struct Kept(std::sync::Mutex<Vec<String>>, std::sync::Mutex<Vec<String>>);

impl DeliveryQueue for &Kept {
    async fn send_grouped(&self, messages: Vec<Grouped>) -> Result<(), QueueError> {
        for m in messages {
            self.0.lock().unwrap().push(m.body);
            self.1.lock().unwrap().push(m.group);
        }
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

impl Kept {
    fn webhook_ids(&self) -> Vec<u64> {
        let bodies = self.0.lock().unwrap().clone();
        bodies
            .iter()
            .map(|b| serde_json::from_str::<Value>(b).unwrap()["webhookId"].as_u64().unwrap())
            .collect()
    }
}

#[tokio::test]
async fn publish_puts_each_webhooks_delivery_in_its_lane() {
    let store = store().await;
    let v = new_vendor(&store).await;
    let healthy = insert_webhook(&store, &v.vendor, "http://127.0.0.1:9/healthy".into()).await;
    let w = insert_webhook(&store, &v.vendor, "http://127.0.0.1:9/failing".into()).await;
    let failing = Webhook { consecutive_failures: 1, version: w.version + 1, ..w.clone() };
    store.replace_webhook(&w, &failing).await.unwrap();
    let w = insert_webhook(&store, &v.vendor, "http://127.0.0.1:9/capped".into()).await;
    let capped = Webhook { max_in_flight: Some(2), version: w.version + 1, ..w.clone() };
    store.replace_webhook(&w, &capped).await.unwrap();

    // The publish function's handler, in-process, on the stack's table and queues of its own.
    let kept = || -> &'static Kept { Box::leak(Box::default()) };
    let (fast, slow, grouped) = (kept(), kept(), kept());
    let mut app = App::new(Config::for_table(stack_var("TABLE_NAME")), store);
    (app.queue, app.slow_lane, app.grouped) = (Some(fast), Some(slow), Some(grouped));
    let app: &'static App<_, &Kept> = Box::leak(Box::new(app));
    let request: Request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/events")
        .header("content-type", "application/json")
        .body(Body::from(event(&v, None, "new_order", &order("lanes"))))
        .unwrap();
    let response = serve(app, Operation::PublishEvent, &publish_event::handle, request).await;
    assert_eq!(response.status(), 202);
    let answer: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(answer["deliveries"], 3, "all three are deliveries: {answer}");
    assert_eq!(grouped.webhook_ids(), [healthy.id], "the healthy webhook's in the grouped lane");
    assert_eq!(*grouped.1.lock().unwrap(), [healthy.id.to_string()], "in its own message group");
    assert_eq!(slow.webhook_ids(), [failing.id], "the failing webhook's in the slow lane");
    assert_eq!(fast.webhook_ids(), [capped.id], "a cap under ten, counted: the deliveries queue");
}
