//! Publishing under an idempotency key while the same key is being fanned out: the publish
//! function's handler, run here in-process (several at once, which `cargo lambda watch` with one
//! instance per function cannot do) on the emulator's table and deliveries queue, with the
//! stack's dispatch delivering to real receivers.
use std::{sync::Arc, time::Duration};

use lambda_http::{http::StatusCode, Body, Request};
use serde_json::Value;
use shared::{
    api::{handlers::publish_event, middleware::serve, App, Operation},
    config::Config,
    queue::{DeliveryQueue, QueueError, SqsQueue},
    store::DynamoStore,
};
use tests::{
    deliveries::{ecomnow_webhook, event, payload, WAIT},
    new_vendor,
    receiver::Receiver,
    stack_var, store, unique, Api,
};
use tokio::sync::Semaphore;

/// The deliveries queue, but a fan-out waits at `gate` before it sends.
struct HeldQueue {
    inner: SqsQueue,
    gate: Arc<Semaphore>,
}

impl DeliveryQueue for HeldQueue {
    async fn send_all(&self, bodies: Vec<String>) -> Result<(), QueueError> {
        let _pass = self.gate.acquire().await.expect("the gate stays open");
        self.inner.send_all(bodies).await
    }
    async fn send_later(&self, body: String, delay: Duration) -> Result<(), QueueError> {
        self.inner.send_later(body, delay).await
    }
    async fn delay(&self, receipt: &str, delay: Duration) -> Result<(), QueueError> {
        self.inner.delay(receipt, delay).await
    }
}

/// The publish function's app on the stack's table and queue, its fan-outs held at `gate`.
async fn app(gate: Arc<Semaphore>) -> &'static App<DynamoStore, HeldQueue> {
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    let mut app = App::new(Config::for_table(stack_var("TABLE_NAME")), store().await);
    app.queue = Some(HeldQueue { inner: SqsQueue::new(sqs, stack_var("DELIVERIES_QUEUE_URL")), gate });
    Box::leak(Box::new(app))
}

async fn publish(
    app: &'static App<DynamoStore, HeldQueue>,
    body: String,
) -> (StatusCode, Option<String>, Value) {
    let request: Request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/events")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = serve(app, Operation::PublishEvent, &publish_event::handle, request).await;
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let json = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
    (response.status(), retry_after, json)
}

#[tokio::test]
async fn eight_concurrent_duplicates_give_one_delivery_per_webhook() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let mut receivers = Vec::new();
    for _ in 0..3 {
        let r = Receiver::ok().await;
        ecomnow_webhook(&api, &v, "new_order", &r.url, None).await;
        receivers.push(r);
    }
    let app = app(Arc::new(Semaphore::new(Semaphore::MAX_PERMITS))).await;
    let body = event(&v, Some(&unique("evt")), "new_order", &payload("ecomnow/new-order.json"));
    let answers =
        futures_util::future::join_all((0..8).map(|_| tokio::spawn(publish(app, body.clone())))).await;
    let statuses: Vec<u16> = answers.into_iter().map(|a| a.unwrap().0.as_u16()).collect();
    assert!(statuses.iter().all(|s| matches!(s, 202 | 409)), "{statuses:?}");
    assert!(statuses.contains(&202), "{statuses:?}");
    for (i, r) in receivers.iter().enumerate() {
        assert_eq!(r.wait_for(1, WAIT).await.len(), 1, "receiver {i}");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, r) in receivers.iter().enumerate() {
        assert_eq!(r.received().len(), 1, "receiver {i} got the event once: {statuses:?}");
    }
}

#[tokio::test]
async fn a_duplicate_during_a_fan_out_gets_409_and_a_changed_body_is_refused() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let r = Receiver::ok().await;
    ecomnow_webhook(&api, &v, "new_order", &r.url, None).await;
    let gate = Arc::new(Semaphore::new(0));
    let app = app(gate.clone()).await;
    let key = unique("evt");
    let order = payload("ecomnow/new-order.json");
    let body = event(&v, Some(&key), "new_order", &order);

    // The first publish is held in its fan-out; the same event meanwhile is told to come back.
    let first = tokio::spawn(publish(app, body.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, retry_after, json) = publish(app, body.clone()).await;
    assert_eq!((status.as_u16(), json["error"]["code"].as_str()), (409, Some("in_progress")), "{json}");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=shared::api::publish::FAN_OUT_LEASE_SECS as u64).contains(&secs), "{secs}");
    // The same id with another payload is another event: refused, whatever the first's state.
    let changed = event(&v, Some(&key), "new_order", &order.replace("1000-4612", "1000-4613"));
    let (status, _, json) = publish(app, changed.clone()).await;
    assert_eq!(
        (status.as_u16(), json["error"]["code"].as_str()),
        (409, Some("idempotency_mismatch")),
        "{json}"
    );

    gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let (status, _, json) = first.await.unwrap();
    assert_eq!((status.as_u16(), json["deliveries"].as_u64()), (202, Some(1)), "{json}");
    let (status, _, json) = publish(app, body).await;
    assert_eq!((status.as_u16(), json["deliveries"].as_u64()), (202, Some(1)), "a repeat after: {json}");
    let (status, _, json) = publish(app, changed).await;
    assert_eq!(status.as_u16(), 409, "{json}");
    assert_eq!(r.wait_for(1, WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(r.received().len(), 1, "one delivery");
}
