//! The circuit breaker, end to end: a receiver that fails three times in a row opens its
//! webhook's circuit; the vendor sees it in `GET`; the deliveries that come up meanwhile wait
//! without an attempt; a probe that succeeds closes it, and every delivery arrives with no
//! attempt spent on waiting. The test stack runs with the breaker off (its other tests' failing
//! receivers would wait longer than they do), so this runs the real `dispatch` binary of its
//! own, with the breaker on, under a local Lambda, on queues of its own.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use shared::{
    delivery::DeliveryMessage,
    domain::EventType,
    queue::{DeliveryQueue, SqsQueue},
    store::AttemptLog,
};
use tests::{
    fixture, new_vendor,
    receiver::{Receiver, Reply},
    store, unique, Api,
};

#[tokio::test]
async fn an_open_circuit_holds_deliveries_back_until_a_probe_succeeds() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    let name = unique("circuit");
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url.unwrap();
    let queue_url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();

    let receiver = Receiver::start(vec![Reply::Status(500); 3], Reply::Status(200)).await;
    let w = tests::insert_webhook(&store, &v.vendor, receiver.url.clone()).await;
    let payload = fixture("ecomnow/new-order.json").trim_end().to_owned();
    let events: Vec<String> = (0..3).map(|_| unique("evt")).collect();
    let bodies = events
        .iter()
        .map(|e| {
            DeliveryMessage::first(
                e.clone(),
                EventType::NewOrder,
                v.vendor.vendor_id.clone(),
                w.id,
                0,
                serde_json::value::RawValue::from_string(payload.clone()).unwrap(),
            )
            .to_body()
        })
        .collect();

    let settings = [("CIRCUIT_BREAKER_AFTER", "3"), ("CIRCUIT_PROBE_AFTER", "3s")];
    let (lambda, bridge) = tests::own_dispatch(&sqs, &queue_url, &dlq, &settings).await;
    SqsQueue::new(sqs.clone(), &queue_url).send_all(bodies).await.unwrap();

    // Three failures in a row: the vendor sees the circuit open.
    let path = format!("/basic/webhooks/{}", w.id);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut shown = Value::Null;
    while Instant::now() < deadline {
        shown = api.vendor(&v, Method::GET, &path, None).await.json();
        if shown["circuit"] == "open" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shown["circuit"], "open", "{shown}");
    assert_eq!(shown["consecutiveFailures"], 3, "{shown}");
    assert!(shown["circuitOpenUntil"].as_str().is_some(), "{shown}");
    assert_eq!(receiver.received().len(), 3, "nothing is attempted while it is open");

    // The second attempts come up a second later and wait; after 3 s one probes, succeeds, and
    // closes the circuit; the others follow.
    let got = receiver.wait_for(6, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 6, "three failures, then each event once");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 6, "nothing more");
    let waited = got[3].at - got[2].at;
    let seen: Vec<(String, u128)> = got
        .iter()
        .map(|r| (format!("{:?}", r.headers.get("webhook-id")), (r.at - got[0].at).as_millis()))
        .collect();
    assert!(waited >= Duration::from_secs(2), "the probe came after the circuit's time: {waited:?} {seen:?}");
    let shown = api.vendor(&v, Method::GET, &path, None).await.json();
    assert_eq!((shown.get("circuit"), shown.get("consecutiveFailures")), (None, None), "closed: {shown}");

    let attempts = store.list_attempts(w.id, 20).await.unwrap();
    for e in &events {
        let mut mine: Vec<(u32, Option<u16>)> =
            attempts.iter().filter(|a| &a.event_id == e).map(|a| (a.attempt, a.status)).collect();
        mine.sort();
        assert_eq!(mine, [(1, Some(500)), (2, Some(200))], "{e}: waiting used no attempt");
    }
    bridge.abort();
    drop(lambda);
}
