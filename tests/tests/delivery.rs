//! Publish and deliver, end to end: `POST /events` through `cargo lambda watch`, SQS in the
//! emulator, the bridge, `dispatch`, and real receivers on 127.0.0.1. The test stack's retry
//! schedule is eight attempts a second apart, its delivery timeout 2 s.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use shared::{
    delivery::DeliveryMessage,
    store::{AttemptLog, WebhookStore},
};
use tests::{
    deliveries::{
        ecomnow_webhook, event, now, payload, publish, verify, verify_with_reference_library, WAIT,
    },
    new_token, new_vendor,
    receiver::{Receiver, Reply},
    stack_var, store, Api,
};

#[tokio::test]
async fn ecomnow_events_arrive_signed_with_the_stored_authorization() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let orders = Receiver::ok().await;
    let cancels = Receiver::ok().await;
    let (order_hook, order_secret) =
        ecomnow_webhook(&api, &v, "new_order", &orders.url, Some("Basic XxxXxxXX")).await;
    let (_, cancel_secret) = ecomnow_webhook(&api, &v, "order_cancellation", &cancels.url, None).await;

    let payload = payload("ecomnow/new-order.json");
    let a = publish(&api, &event(&v, None, "new_order", &payload)).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let accepted = a.json();
    assert_eq!(accepted["deliveries"], 1);
    let event_id = accepted["eventId"].as_str().unwrap().to_owned();

    let got = orders.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1, "one delivery");
    let r = &got[0];
    assert_eq!(r.body.as_ref(), payload.as_bytes(), "the payload bytes exactly as published");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("user-agent").unwrap().starts_with("order-webhooks/"));
    assert_eq!(r.header("authorization"), Some("Basic XxxXxxXX"));
    assert_eq!(r.header("webhook-id"), Some(event_id.as_str()));
    let ts = r.header("webhook-timestamp").unwrap();
    assert!((ts.parse::<i64>().unwrap() - now()).abs() < 60);
    let logged = tests::attempts_of(&store, order_hook, 1).await;
    assert_eq!(logged[0].signed_at, ts.parse().ok(), "the attempt log keeps the signing time sent");
    assert!(verify(&order_secret, &event_id, ts, &r.body, r.header("webhook-signature").unwrap()));
    assert!(!verify(&cancel_secret, &event_id, ts, &r.body, r.header("webhook-signature").unwrap()));
    assert!(verify_with_reference_library(&order_secret, r), "the reference library verifies it");
    assert!(!verify_with_reference_library(&cancel_secret, r), "and refuses another secret");

    let cancellation = payload.replace("\"new_order\"", "\"order_cancellation\"");
    let a = publish(&api, &event(&v, None, "order_cancellation", &cancellation)).await;
    assert_eq!(a.json()["deliveries"], 1);
    let got = cancels.wait_for(1, WAIT).await;
    assert_eq!(got[0].body.as_ref(), cancellation.as_bytes());
    assert_eq!(got[0].header("authorization"), None, "no authentication stored, no header");
    let ts = got[0].header("webhook-timestamp").unwrap();
    let id = got[0].header("webhook-id").unwrap();
    assert!(verify(&cancel_secret, id, ts, &got[0].body, got[0].header("webhook-signature").unwrap()));
    assert_eq!(orders.received().len(), 1, "the order receiver got no cancellation");
}

#[tokio::test]
async fn ventiapp_events_arrive_over_https_with_the_documents_bodies() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;
    let receiver = Receiver::start_tls(Vec::new(), Reply::Status(200)).await;
    let cases = [("orders/created", "order"), ("bills/created", "bill"), ("products/deleted", "product")];
    let mut secrets = std::collections::HashMap::new();
    for (topic, _) in cases {
        let address = format!("{}?topic={topic}", receiver.url);
        let body = json!({"webhook": {"topic": topic, "address": address}}).to_string();
        let a = api.bearer(&token, Method::POST, "/api/webhooks/create", Some(&body)).await;
        assert_eq!(a.status, 201, "{}", a.text);
        secrets.insert(
            format!("/hook?topic={topic}"),
            a.json()["webhook"]["secret"].as_str().unwrap().to_owned(),
        );
    }
    for (topic, file) in cases {
        let a = publish(&api, &event(&v, None, topic, &payload(&format!("ventiapp/{file}.json")))).await;
        assert_eq!((a.status.as_u16(), &a.json()["deliveries"]), (202, &json!(1)), "{topic}: {}", a.text);
    }
    let got = receiver.wait_for(3, WAIT).await;
    assert_eq!(got.len(), 3);
    for (topic, file) in cases {
        let expected = payload(&format!("ventiapp/{file}.json"));
        let r = got
            .iter()
            .find(|r| r.body.as_ref() == expected.as_bytes())
            .unwrap_or_else(|| panic!("{topic} arrived verbatim"));
        let secret = &secrets[&format!("/hook?topic={topic}")];
        let (id, ts) = (r.header("webhook-id").unwrap(), r.header("webhook-timestamp").unwrap());
        assert!(verify(secret, id, ts, &r.body, r.header("webhook-signature").unwrap()), "{topic} signed");
    }
}

#[tokio::test]
async fn a_failing_receiver_is_retried_alone_until_it_answers() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let flaky = Receiver::start(vec![Reply::Status(500), Reply::Status(503)], Reply::Status(200)).await;
    let steady = Receiver::ok().await;
    let (flaky_id, _) = ecomnow_webhook(&api, &v, "new_order", &flaky.url, None).await;
    let (steady_id, _) = ecomnow_webhook(&api, &v, "new_order", &steady.url, None).await;

    let a = publish(&api, &event(&v, None, "new_order", &payload("ecomnow/new-order.json"))).await;
    assert_eq!(a.json()["deliveries"], 2, "{}", a.text);
    let got = flaky.wait_for(3, WAIT).await;
    assert_eq!(got.len(), 3);
    let ids: Vec<_> = got.iter().map(|r| r.header("webhook-id").unwrap().to_owned()).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one webhook-id on every attempt");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(flaky.received().len(), 3, "no attempt after the success");
    assert_eq!(steady.received().len(), 1, "the other receiver got it exactly once");

    let attempts = store.list_attempts(flaky_id, 10).await.unwrap();
    let mut statuses: Vec<(u32, Option<u16>)> = attempts.iter().map(|a| (a.attempt, a.status)).collect();
    statuses.sort();
    assert_eq!(statuses, [(1, Some(500)), (2, Some(503)), (3, Some(200))]);
    assert!(attempts.iter().all(|a| a.webhook_id == flaky_id && a.event_id == ids[0]));
    assert_eq!(store.list_attempts(steady_id, 10).await.unwrap().len(), 1);

    // The vendor sees the same log, newest first, a page at a time.
    let path = format!("/basic/webhooks/{flaky_id}/deliveries");
    let page = api.vendor(&v, Method::GET, &path, None).await.json();
    let log = page["deliveries"].as_array().unwrap();
    let seen: Vec<(u64, Value, &str)> = log
        .iter()
        .map(|d| (d["attempt"].as_u64().unwrap(), d["status"].clone(), d["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [(3, json!(200), "delivered"), (2, json!(503), "rejected"), (1, json!(500), "rejected")]
    );
    assert_eq!(log[0]["eventId"], ids[0].as_str());
    assert_eq!(log[0]["response"], "{\"received\": true}");
    assert!(log[0]["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(page["next"], Value::Null);
    let first = api.vendor(&v, Method::GET, &format!("{path}?limit=2"), None).await.json();
    assert_eq!(first["deliveries"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().expect("a next page").to_owned();
    let second = api.vendor(&v, Method::GET, &format!("{path}?limit=2&after={next}"), None).await.json();
    assert_eq!(second["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(second["deliveries"][0]["attempt"], 1);
    let a = api.vendor(&v, Method::GET, &format!("{path}?limit=0"), None).await;
    assert_eq!(a.expect_error(400, "invalid_field")["field"], "limit");
    let a = api.vendor(&v, Method::GET, &format!("{path}?after=bm90LWEtY3Vyc29y"), None).await;
    assert_eq!(a.expect_error(400, "invalid_field")["field"], "after");
    let other = new_vendor(&store).await;
    api.vendor(&other, Method::GET, &path, None).await.expect_error(404, "not_found");
}

#[tokio::test]
async fn a_receiver_that_never_answers_2xx_parks_the_delivery_in_the_dlq_intact() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let down = Receiver::start(Vec::new(), Reply::Status(500)).await;
    let (webhook_id, _) = ecomnow_webhook(&api, &v, "new_order", &down.url, None).await;
    let body = payload("ecomnow/new-order.json");
    let a = publish(&api, &event(&v, None, "new_order", &body)).await;
    let event_id = a.json()["eventId"].as_str().unwrap().to_owned();

    let got = down.wait_for(8, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 8, "eight attempts");
    let message = find_in_dlq(&event_id, webhook_id, Duration::from_secs(30))
        .await
        .expect("the delivery is in the DLQ");
    assert_eq!(message.payload.get(), body, "body intact");
    assert_eq!(message.vendor_id, v.vendor.vendor_id);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(down.received().len(), 8, "nothing after the last attempt");
    assert_eq!(store.list_attempts(webhook_id, 20).await.unwrap().len(), 8);
}

/// Reads the DLQ until it finds the message of (event, webhook), deletes and returns it.
async fn find_in_dlq(event_id: &str, webhook_id: u64, timeout: Duration) -> Option<DeliveryMessage> {
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    let url = stack_var("DEAD_LETTER_QUEUE_URL");
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .visibility_timeout(1)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages.unwrap_or_default() {
            let msg: DeliveryMessage = serde_json::from_str(m.body().unwrap()).unwrap();
            if msg.event_id == event_id && msg.webhook_id == webhook_id {
                sqs.delete_message()
                    .queue_url(&url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                return Some(msg);
            }
        }
    }
    None
}

#[tokio::test]
async fn slow_and_redirecting_receivers_count_as_failures() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let target = Receiver::ok().await;
    let slow = Receiver::start(vec![Reply::Slow(Duration::from_secs(4), 200)], Reply::Status(200)).await;
    let redirect = Receiver::start(vec![Reply::Redirect(target.url.clone())], Reply::Status(200)).await;
    let (slow_id, _) = ecomnow_webhook(&api, &v, "new_order", &slow.url, None).await;
    let (redirect_id, _) = ecomnow_webhook(&api, &v, "new_order", &redirect.url, None).await;
    publish(&api, &event(&v, None, "new_order", &payload("ecomnow/new-order.json"))).await;

    assert_eq!(slow.wait_for(2, WAIT).await.len(), 2, "the slow answer was a failure, retried");
    assert_eq!(redirect.wait_for(2, WAIT).await.len(), 2, "the redirect was a failure, retried");
    assert!(target.received().is_empty(), "redirects are not followed");
    let outcomes = |id| {
        let store = store.clone();
        async move {
            let mut a = tests::attempts_of(&store, id, 2).await;
            a.sort_by_key(|a| a.attempt);
            a.into_iter().map(|a| (a.outcome, a.status)).collect::<Vec<_>>()
        }
    };
    assert_eq!(outcomes(slow_id).await, [("timeout".to_owned(), None), ("delivered".to_owned(), Some(200))]);
    assert_eq!(
        outcomes(redirect_id).await,
        [("rejected".to_owned(), Some(302)), ("delivered".to_owned(), Some(200))]
    );
}

#[tokio::test]
async fn one_failure_in_a_batch_of_ten_is_the_only_retry() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let mut receivers = Vec::new();
    for i in 0..10 {
        let r = if i == 3 {
            Receiver::start(vec![Reply::Status(500)], Reply::Status(200)).await
        } else {
            Receiver::ok().await
        };
        ecomnow_webhook(&api, &v, "new_order", &r.url, None).await;
        receivers.push(r);
    }
    let a = publish(&api, &event(&v, None, "new_order", &payload("ecomnow/new-order.json"))).await;
    assert_eq!(a.json()["deliveries"], 10);
    assert_eq!(receivers[3].wait_for(2, WAIT).await.len(), 2);
    for (i, r) in receivers.iter().enumerate() {
        assert_eq!(r.wait_for(1, WAIT).await.len(), if i == 3 { 2 } else { 1 }, "receiver {i}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, r) in receivers.iter().enumerate() {
        assert_eq!(r.received().len(), if i == 3 { 2 } else { 1 }, "receiver {i}, later");
    }
}

#[tokio::test]
async fn a_repeated_event_id_delivers_once_and_answers_alike() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let a = Receiver::ok().await;
    let b = Receiver::ok().await;
    ecomnow_webhook(&api, &v, "new_order", &a.url, None).await;
    ecomnow_webhook(&api, &v, "new_order", &b.url, None).await;
    let body = event(&v, Some("order-1000-4612"), "new_order", &payload("ecomnow/new-order.json"));
    let first = publish(&api, &body).await;
    assert_eq!(first.status, 202);
    assert_eq!(first.json(), json!({"eventId": "order-1000-4612", "deliveries": 2}));
    let again = publish(&api, &body).await;
    assert_eq!((again.status, again.json()), (first.status, first.json()));
    a.wait_for(1, WAIT).await;
    b.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!((a.received().len(), b.received().len()), (1, 1), "each webhook exactly once");
}

#[tokio::test]
async fn deleted_webhooks_receive_nothing_and_gone_disables() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let deleted = Receiver::ok().await;
    let gone = Receiver::start(Vec::new(), Reply::Status(410)).await;
    let (deleted_id, _) = ecomnow_webhook(&api, &v, "new_order", &deleted.url, None).await;
    let (gone_id, _) = ecomnow_webhook(&api, &v, "new_order", &gone.url, None).await;
    let a = api.vendor(&v, Method::DELETE, &format!("/basic/webhooks/{deleted_id}"), None).await;
    assert_eq!(a.status, 200);

    let a = publish(&api, &event(&v, None, "new_order", &payload("ecomnow/new-order.json"))).await;
    assert_eq!(a.json()["deliveries"], 1, "only the webhook that still exists");
    assert_eq!(gone.wait_for(1, WAIT).await.len(), 1);
    // 410 Gone: not retried, and the webhook is disabled.
    let mut disabled = None;
    for _ in 0..50 {
        disabled = store.get_webhook(&v.vendor.vendor_id, gone_id).await.unwrap().unwrap().disabled;
        if disabled.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(disabled.unwrap().1.contains("410"));
    let shown = api.vendor(&v, Method::GET, &format!("/basic/webhooks/{gone_id}"), None).await.json();
    assert_eq!(shown["status"], "disabled");
    assert!(shown["disabledReason"].as_str().unwrap().contains("410 Gone"));
    assert!(shown["disabledAt"].as_str().unwrap().ends_with('Z'));
    let (_, token) = new_token(&store, &v.vendor).await;
    let listed = api.bearer(&token, Method::GET, "/api/webhooks/list", None).await.json();
    assert_eq!(listed, json!({"webhooks": []}), "Ventiapp lists the active webhooks only");
    let a = publish(&api, &event(&v, None, "new_order", &payload("ecomnow/new-order.json"))).await;
    assert_eq!(a.json()["deliveries"], 0, "a disabled webhook gets nothing");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gone.received().len(), 1);
    assert!(deleted.received().is_empty());
}

#[tokio::test]
async fn invalid_events_are_refused_with_the_field_named() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::ok().await;
    ecomnow_webhook(&api, &v, "new_order", &receiver.url, None).await;
    let good = payload("ecomnow/new-order.json");
    for (payload, field) in [
        (good.replace("\"1000-4612\"", "1000"), "payload.orderNo"),
        (good.replace("\"itemQuantity\": 1", "\"itemQuantity\": 0"), "payload.items[0].itemQuantity"),
        (good.replace("\"itemPrice\": 60.0", "\"itemPrice\": -60.0"), "payload.items[0].itemPrice"),
        (good.replace("\"type\": \"new_order\"", "\"type\": \"order_cancellation\""), "payload.type"),
    ] {
        let a = publish(&api, &event(&v, None, "new_order", &payload)).await;
        assert_eq!(a.expect_error(400, "invalid_field")["field"], field);
    }
    let twice =
        good.replacen("\"orderNo\": \"1000-4612\",", "\"orderNo\": \"1000-4612\", \"orderNo\": \"1-1\",", 1);
    assert_ne!(twice, good);
    let e = publish(&api, &event(&v, None, "new_order", &twice)).await.expect_error(400, "invalid_json");
    assert!(e["message"].as_str().unwrap().contains("duplicate key \"orderNo\""), "{e}");
    let verbatim = payload("ecomnow/new-order.verbatim.txt");
    publish(&api, &event(&v, None, "new_order", &verbatim)).await.expect_error(400, "invalid_json");
    let a = publish(&api, &event(&v, None, "orders/create", &good)).await;
    assert!(a.expect_error(400, "invalid_field")["message"].as_str().unwrap().contains("orders/created"));
    let nobody = json!({"vendorId": "ven_nobody", "type": "new_order", "payload": serde_json::from_str::<Value>(&good).unwrap()});
    assert_eq!(
        publish(&api, &nobody.to_string()).await.expect_error(422, "not_allowed")["field"],
        "vendorId"
    );
    let huge = good.replace("\"NutraHemp", &format!("\"{}", "x".repeat(300 * 1024)));
    publish(&api, &event(&v, None, "new_order", &huge)).await.expect_error(413, "payload_too_large");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.received().is_empty(), "nothing refused was delivered");
}
