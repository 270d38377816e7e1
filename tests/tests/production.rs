//! Traffic as a marketplace sends it in its first week, end to end on the local stack: big
//! orders, payloads that cannot be queued, receivers that ask to be left alone.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use shared::{
    config::DEFAULT_MAX_WEBHOOKS_PER_VENDOR,
    queue::MAX_MESSAGE_BYTES,
    store::{AttemptLog, WebhookStore},
};
use tests::{
    deliveries::{ecomnow_webhook, event, publish, WAIT},
    new_vendor,
    receiver::{Receiver, Reply},
    store, unique, Api,
};

/// A new order of exactly `bytes` bytes (of 200 or more): lines of about 170 bytes, and an
/// order number long enough to make up the rest.
fn order_of(bytes: usize) -> String {
    let order = lines((bytes - 100) / 170, "");
    let padded = lines((bytes - 100) / 170, &"0".repeat(bytes - order.len()));
    assert_eq!(padded.len(), bytes);
    padded
}

fn lines(items: usize, padding: &str) -> String {
    let lines: Vec<Value> = (0..items)
        .map(|i| {
            json!({
                "skuNr": format!("NHCBDFSJ&P2{i:04}-1"),
                "itemName": format!("NutraHemp CBD Full Spectrum Joint and Pain Balm, jar {i} of a large order"),
                "itemQuantity": 1,
                "itemPrice": 60.0,
                "itemTotal": 60.0
            })
        })
        .collect();
    json!({"orderNo": format!("big-{padding}"), "type": "new_order", "items": lines}).to_string()
}

#[tokio::test]
async fn a_200_kib_order_to_ten_webhooks_with_its_email_reaches_all_ten() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let to = format!("{}@vendors.example", unique("v"));
    let a = api
        .vendor(&v, Method::PUT, "/basic/notifications", Some(&json!({"email": to, "notify": ["new_order"]})))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut receivers = Vec::new();
    for _ in 0..10 {
        let r = Receiver::ok().await;
        ecomnow_webhook(&api, &v, "new_order", &r.url, None).await;
        receivers.push(r);
    }
    let order = order_of(200 * 1024);

    // Ten messages of 200 KiB are twice what one SendMessageBatch may carry.
    let a = publish(&api, &event(&v, None, "new_order", &order)).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.json()["deliveries"], 10);
    for (i, r) in receivers.iter().enumerate() {
        let got = r.wait_for(1, WAIT).await;
        assert_eq!(got.len(), 1, "receiver {i}");
        assert_eq!(got[0].body.as_ref(), order.as_bytes(), "receiver {i} got the order intact");
    }
}

#[tokio::test]
async fn a_payload_no_queue_message_can_hold_is_refused_with_413_naming_the_limit() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let r = Receiver::ok().await;
    let (webhook_id, _) = ecomnow_webhook(&api, &v, "new_order", &r.url, None).await;
    // With its request envelope under the 256 KiB a request may carry; with a delivery
    // message's envelope over what one queue message holds.
    let order = order_of(MAX_MESSAGE_BYTES - 140);
    let key = unique("evt");
    for _ in 0..2 {
        let a = publish(&api, &event(&v, Some(&key), "new_order", &order)).await;
        let e = a.expect_error(413, "payload_too_large");
        let message = e["message"].as_str().unwrap();
        assert!(message.contains(&MAX_MESSAGE_BYTES.to_string()), "{message}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(r.received().is_empty(), "nothing was queued");
    assert!(store.list_attempts(webhook_id, 10).await.unwrap().is_empty());
    // A smaller one under the same id is a new event, not a repeat of the refused one.
    let a = publish(&api, &event(&v, Some(&key), "new_order", &order_of(500))).await;
    assert_eq!((a.status.as_u16(), a.json()["deliveries"].clone()), (202, json!(1)));
    assert_eq!(r.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_left_alone_that_long() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    // The test stack retries a second apart; this receiver asks for four.
    let r = Receiver::start(vec![Reply::RetryAfter(429, 4)], Reply::Status(200)).await;
    let (webhook_id, _) = ecomnow_webhook(&api, &v, "new_order", &r.url, None).await;
    assert_eq!(publish(&api, &event(&v, None, "new_order", &order_of(500))).await.status, 202);
    let got = r.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    let waited = got[1].at - got[0].at;
    assert!(waited >= Duration::from_secs(4), "retried after {waited:?}");
    let mut attempts = tests::attempts_of(&store, webhook_id, 2).await;
    attempts.sort_by_key(|a| a.attempt);
    let seen: Vec<(u32, Option<u16>)> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    assert_eq!(seen, [(1, Some(429)), (2, Some(200))]);
}

#[tokio::test]
async fn a_vendor_at_its_webhook_limit_gets_409_and_an_event_fans_out_to_all_of_them() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let r = Receiver::ok().await;
    let limit = DEFAULT_MAX_WEBHOOKS_PER_VENDOR;
    for i in 0..limit - 1 {
        tests::insert_webhook(&store, &v.vendor, format!("{}?n={i}", r.url)).await;
    }
    let last = format!("{}?n=last", r.url);
    let body = json!({"webhookType": "new_order", "url": last});
    assert_eq!(
        api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.status,
        201,
        "the limit itself"
    );
    let body = json!({"webhookType": "new_order", "url": format!("{}?n=over", r.url)});
    let over = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await;
    let e = over.expect_error(409, "webhook_limit");
    assert!(e["message"].as_str().unwrap().contains(&format!("at most {limit} webhooks")), "{e}");
    assert_eq!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().len(), limit, "nothing created");

    // The publish function is stopped after 10 s on AWS: fanning out to the limit fits within.
    let started = std::time::Instant::now();
    let a = publish(&api, &event(&v, None, "new_order", &order_of(500))).await;
    let took = started.elapsed();
    assert_eq!((a.status.as_u16(), a.json()["deliveries"].as_u64()), (202, Some(limit as u64)), "{}", a.text);
    assert!(took < Duration::from_secs(10), "fan-out to {limit} webhooks took {took:?}");
    assert_eq!(r.wait_for(limit, WAIT).await.len(), limit, "every webhook got the event");
}

#[tokio::test]
async fn a_webhooks_cap_of_deliveries_in_flight_holds_across_a_batch() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let slow = Duration::from_millis(1500);
    let r = Receiver::start(Vec::new(), Reply::Slow(slow, 200)).await;
    let body = json!({"webhookType": "new_order", "url": r.url, "maxInFlight": 0});
    let bad = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await;
    assert_eq!(bad.expect_error(400, "invalid_field")["field"], "maxInFlight");
    let body = json!({"webhookType": "new_order", "url": r.url, "maxInFlight": 1});
    let a = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await;
    assert_eq!((a.status.as_u16(), a.json()["maxInFlight"].as_u64()), (201, Some(1)), "{}", a.text);
    let webhook_id = a.json()["webhookId"].as_u64().unwrap();

    // Three events at once: one batch, but one delivery in flight at a time.
    for _ in 0..3 {
        assert_eq!(publish(&api, &event(&v, None, "new_order", &order_of(500))).await.status, 202);
    }
    let got = r.wait_for(3, WAIT).await;
    assert_eq!(got.len(), 3);
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= slow - Duration::from_millis(100), "two deliveries in flight at once: {gap:?} apart");
    }
    let attempts = tests::attempts_of(&store, webhook_id, 3).await;
    assert_eq!(attempts.len(), 3, "waiting for a slot is no attempt");
    assert!(attempts.iter().all(|a| a.attempt == 1 && a.status == Some(200)), "{attempts:?}");
}

/// The grouped lane: a healthy webhook at the default cap (ten) gets its deliveries through its
/// message group of the FIFO queue, so SQS keeps the cap, and no slot is written for them.
#[tokio::test]
async fn a_healthy_webhook_at_the_default_cap_has_at_most_ten_in_flight_and_no_slot_written() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let slow = Duration::from_millis(1500);
    let r = Receiver::start(Vec::new(), Reply::Slow(slow, 200)).await;
    let (webhook_id, _) = ecomnow_webhook(&api, &v, "new_order", &r.url, None).await;

    // Twenty-five events published in one batch: more than a group's ten at once.
    let events: Vec<Value> = (0..25)
        .map(|_| serde_json::from_str(&event(&v, None, "new_order", &order_of(500))).unwrap())
        .collect();
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    let a =
        api.send(Method::POST, "/events/batch", &[("Content-Type", "application/json")], Some(body)).await;
    assert_eq!(a.status.as_u16(), 200, "{}", a.text);
    let queued = a.json()["results"].as_array().unwrap().iter().filter(|r| r["deliveries"] == 1).count();
    assert_eq!(queued, 25, "{}", a.text);
    let got = r.wait_for(25, WAIT * 2).await;
    let mut ids: Vec<&str> = got.iter().filter_map(|g| g.header("webhook-id")).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (25, 25), "each event delivered once");
    // A request is in flight from its arrival for `slow`: at no arrival were more than ten so.
    let most =
        got.iter().map(|g| got.iter().filter(|o| o.at <= g.at && g.at < o.at + slow).count()).max().unwrap();
    assert!(most <= 10, "{most} deliveries in flight at once");
    assert!(most >= 2, "the group's deliveries go in parallel: at most {most} at once");

    let attempts = tests::attempts_of(&store, webhook_id, 25).await;
    assert_eq!(attempts.len(), 25);
    assert!(attempts.iter().all(|a| a.attempt == 1 && a.status == Some(200)), "{attempts:?}");
    let sdk = shared::aws::sdk_config().await;
    let slots = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(tests::stack_var("TABLE_NAME"))
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("INFLIGHT#{webhook_id}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("#".into()))
        .send()
        .await
        .unwrap();
    assert!(slots.item.is_none(), "no slot was ever written for it: {:?}", slots.item);
}
