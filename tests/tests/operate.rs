//! What vendors do when something goes wrong, end to end through the eComNow routes: rotate a
//! signing secret, re-enable a disabled webhook, send an event again, send a test event; and a
//! webhook that keeps failing disabled on its own. The test stack's rotation grace period is
//! 4 s, its auto-disable window 30 s.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use shared::store::WebhookStore;
use tests::{
    deliveries::{ecomnow_webhook, event, payload, publish, verify, verify_with_reference_library, WAIT},
    new_vendor,
    receiver::{Receiver, Reply},
    store, Api,
};

/// (webhook-id, webhook-timestamp, webhook-signature) of a delivery.
fn signed(r: &tests::receiver::Received) -> (&str, &str, &str) {
    (
        r.header("webhook-id").unwrap(),
        r.header("webhook-timestamp").unwrap(),
        r.header("webhook-signature").unwrap(),
    )
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_until_its_grace_period_ends() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::ok().await;
    let (id, old) = ecomnow_webhook(&api, &v, "new_order", &receiver.url, None).await;

    let a = api.vendor(&v, Method::POST, &format!("/basic/webhooks/{id}/rotate-secret"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let rotated = a.json();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert_eq!(rotated["webhookId"], id);
    let expires = rotated["previousSecretExpiresAt"].as_str().unwrap();
    assert!(expires.ends_with('Z'), "{expires}");
    let shown = api.vendor(&v, Method::GET, &format!("/basic/webhooks/{id}"), None).await.json();
    assert_eq!(shown.get("secret"), None, "GET never shows a secret");

    publish(&api, &event(&v, None, "new_order", &payload("ecomnow/new-order.json"))).await;
    let got = receiver.wait_for(1, WAIT).await;
    let (msg_id, ts, signature) = signed(&got[0]);
    assert_eq!(signature.split(' ').count(), 2, "two signatures during the grace period: {signature}");
    assert!(verify(&new, msg_id, ts, &got[0].body, signature), "the new secret verifies");
    assert!(verify(&old, msg_id, ts, &got[0].body, signature), "and so does the old one");
    assert!(verify_with_reference_library(&new, &got[0]));
    assert!(verify_with_reference_library(&old, &got[0]));

    tokio::time::sleep(Duration::from_secs(5)).await;
    publish(&api, &event(&v, None, "new_order", &payload("ecomnow/new-order.json"))).await;
    let got = receiver.wait_for(2, WAIT).await;
    let (msg_id, ts, signature) = signed(&got[1]);
    assert_eq!(signature.split(' ').count(), 1, "one signature after it: {signature}");
    assert!(verify(&new, msg_id, ts, &got[1].body, signature));
    assert!(!verify(&old, msg_id, ts, &got[1].body, signature), "the old secret no longer verifies");
    assert!(!verify_with_reference_library(&old, &got[1]));
}

#[tokio::test]
async fn rotating_twice_strands_no_receiver_and_a_repeated_rotation_gets_the_same_secret() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::ok().await;
    let (id, first) = ecomnow_webhook(&api, &v, "new_order", &receiver.url, None).await;
    let path = format!("/basic/webhooks/{id}/rotate-secret");
    let rotate = |key: &'static str| {
        let (api, v, path) = (&api, &v, &path);
        async move {
            let a = api
                .send(
                    Method::POST,
                    path,
                    &[
                        ("Username", v.username.as_str()),
                        ("Password", v.password.as_str()),
                        ("Idempotency-Key", key),
                    ],
                    None,
                )
                .await;
            assert_eq!(a.status, 200, "{}", a.text);
            a.json()["secret"].as_str().unwrap().to_owned()
        }
    };
    let second = rotate("rotation-1").await;
    assert_eq!(rotate("rotation-1").await, second, "the same key: the same new secret");
    let third = rotate("rotation-2").await;
    assert!(second != third && first != second);
    // Without a key, a request seconds after the last rotation is that rotation's retry.
    let retried = api.vendor(&v, Method::POST, &path, None).await;
    assert_eq!(retried.json()["secret"].as_str(), Some(third.as_str()));

    publish(&api, &event(&v, None, "new_order", &payload("ecomnow/new-order.json"))).await;
    let got = receiver.wait_for(1, WAIT).await;
    let (msg_id, ts, signature) = signed(&got[0]);
    assert_eq!(signature.split(' ').count(), 3, "the new secret and both former ones: {signature}");
    for secret in [&first, &second, &third] {
        assert!(verify(secret, msg_id, ts, &got[0].body, signature), "each secret verifies");
        assert!(verify_with_reference_library(secret, &got[0]));
    }
    let bad = api
        .send(
            Method::POST,
            &path,
            &[
                ("Username", v.username.as_str()),
                ("Password", v.password.as_str()),
                ("Idempotency-Key", "a key"),
            ],
            None,
        )
        .await;
    assert_eq!(bad.expect_error(400, "invalid_field")["field"], "Idempotency-Key");
}

#[tokio::test]
async fn a_webhook_disabled_by_410_gets_nothing_until_enabled() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::start(vec![Reply::Status(410)], Reply::Status(200)).await;
    let (id, _) = ecomnow_webhook(&api, &v, "new_order", &receiver.url, None).await;
    let order = payload("ecomnow/new-order.json");
    publish(&api, &event(&v, None, "new_order", &order)).await;
    receiver.wait_for(1, WAIT).await;
    let mut status = Value::Null;
    for _ in 0..50 {
        status = api.vendor(&v, Method::GET, &format!("/basic/webhooks/{id}"), None).await.json()["status"]
            .clone();
        if status == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, "disabled");
    assert_eq!(publish(&api, &event(&v, None, "new_order", &order)).await.json()["deliveries"], 0);

    let a = api.vendor(&v, Method::POST, &format!("/basic/webhooks/{id}/enable"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let enabled = a.json();
    assert_eq!(enabled["status"], "active");
    assert_eq!(enabled.get("disabledReason"), None);
    assert_eq!(enabled.get("secret"), None, "enabling shows no secret");
    assert!(store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap().disabled.is_none());
    // Enabling an active webhook is a no-op that answers alike.
    let again = api.vendor(&v, Method::POST, &format!("/basic/webhooks/{id}/enable"), None).await;
    assert_eq!((again.status.as_u16(), &again.json()["status"]), (200, &json!("active")));

    assert_eq!(publish(&api, &event(&v, None, "new_order", &order)).await.json()["deliveries"], 1);
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2, "delivered again after enabling");
    assert_eq!(got[1].body.as_ref(), order.as_bytes());
}

#[tokio::test]
async fn another_vendors_webhook_cannot_be_rotated_or_enabled() {
    let (api, store) = (Api::new(), store().await);
    let (owner, other) = (new_vendor(&store).await, new_vendor(&store).await);
    let receiver = Receiver::ok().await;
    let (id, _) = ecomnow_webhook(&api, &owner, "new_order", &receiver.url, None).await;
    let before = store.get_webhook(&owner.vendor.vendor_id, id).await.unwrap().unwrap();
    for action in ["rotate-secret", "enable"] {
        let path = format!("/basic/webhooks/{id}/{action}");
        api.vendor(&other, Method::POST, &path, None).await.expect_error(404, "not_found");
        let a = api.send(Method::POST, &path, &[], None).await;
        assert_eq!(a.status, 401, "{action} without credentials: {}", a.text);
        let a = api.vendor(&owner, Method::GET, &path, None).await;
        a.expect_error(405, "method_not_allowed");
        assert_eq!(a.header("allow"), Some("POST"));
        let a = api.vendor(&owner, Method::POST, &format!("/basic/webhooks/abc/{action}"), None).await;
        a.expect_error(400, "invalid_id");
    }
    let after = store.get_webhook(&owner.vendor.vendor_id, id).await.unwrap().unwrap();
    assert_eq!((after.version, after.secret), (before.version, before.secret), "nothing changed");
}

#[tokio::test]
async fn a_past_event_is_delivered_again_on_request() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::ok().await;
    let (id, secret) = ecomnow_webhook(&api, &v, "new_order", &receiver.url, None).await;
    let order = payload("ecomnow/new-order.json");
    let event_id = publish(&api, &event(&v, None, "new_order", &order)).await.json()["eventId"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.wait_for(1, WAIT).await;

    let path = format!("/basic/webhooks/{id}/redeliver");
    let a = api.vendor(&v, Method::POST, &path, Some(&json!({"eventId": event_id}))).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.json(), json!({"webhookId": id, "eventId": event_id, "status": "queued"}));
    let got = receiver.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body.as_ref(), order.as_bytes(), "the payload bytes as first published");
    let (msg_id, ts, signature) = signed(&got[1]);
    assert_eq!(msg_id, event_id, "the event's own id: receivers can deduplicate");
    assert!(verify(&secret, msg_id, ts, &got[1].body, signature));
    let log = tests::attempts_of(&store, id, 2).await;
    assert_eq!(log.iter().filter(|a| a.event_id == event_id && a.outcome == "delivered").count(), 2);

    // What cannot be redelivered is refused, and nothing is sent.
    let cancels = Receiver::ok().await;
    let (cancel_id, _) = ecomnow_webhook(&api, &v, "order_cancellation", &cancels.url, None).await;
    let e = api
        .vendor(
            &v,
            Method::POST,
            &format!("/basic/webhooks/{cancel_id}/redeliver"),
            Some(&json!({"eventId": event_id})),
        )
        .await
        .expect_error(422, "not_allowed");
    assert_eq!(e["field"], "eventId");
    assert!(e["message"].as_str().unwrap().contains("new_order"), "{e}");
    api.vendor(&v, Method::POST, &path, Some(&json!({"eventId": "evt_nothing"})))
        .await
        .expect_error(404, "not_found");
    let other = new_vendor(&store).await;
    api.vendor(&other, Method::POST, &path, Some(&json!({"eventId": event_id})))
        .await
        .expect_error(404, "not_found");
    for (body, field) in [
        (json!({}), "eventId"),
        (json!({"eventId": 5}), "eventId"),
        (json!({"eventId": ""}), "eventId"),
        (json!({"eventId": "e".repeat(257)}), "eventId"),
        (json!({"eventId": event_id, "x": 1}), "x"),
    ] {
        let e = api.vendor(&v, Method::POST, &path, Some(&body)).await.expect_error(400, "invalid_field");
        assert_eq!(e["field"], field, "{body}");
    }
    let a =
        api.send(Method::POST, &path, &[("Username", &v.username), ("Password", &v.password)], None).await;
    assert_eq!(a.status, 400, "{}", a.text);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 2, "nothing more");
    assert!(cancels.received().is_empty());
}

#[tokio::test]
async fn a_test_event_is_sent_signed_and_the_answer_says_what_the_receiver_did() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::start(vec![Reply::Status(200)], Reply::Status(503)).await;
    let (id, secret) =
        ecomnow_webhook(&api, &v, "order_cancellation", &receiver.url, Some("Basic dGVzdDp0ZXN0")).await;
    let path = format!("/basic/webhooks/{id}/test");

    let a = api.vendor(&v, Method::POST, &path, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let answer = a.json();
    assert_eq!(
        (&answer["delivered"], &answer["status"], &answer["outcome"]),
        (&json!(true), &json!(200), &json!("delivered"))
    );
    assert_eq!(answer["response"], "{\"received\": true}");
    let got = receiver.received();
    assert_eq!(got.len(), 1, "sent before the answer");
    let (msg_id, ts, signature) = signed(&got[0]);
    assert_eq!(msg_id, answer["eventId"].as_str().unwrap());
    assert!(msg_id.starts_with("test_"));
    assert!(verify(&secret, msg_id, ts, &got[0].body, signature));
    assert_eq!(got[0].header("authorization"), Some("Basic dGVzdDp0ZXN0"));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "order_cancellation", "a payload of the webhook's type");
    assert_eq!(body["orderNo"], "TEST-0000");

    let answer = api.vendor(&v, Method::POST, &path, None).await.json();
    assert_eq!(
        (&answer["delivered"], &answer["status"], &answer["outcome"]),
        (&json!(false), &json!(503), &json!("rejected"))
    );
    let log = api.vendor(&v, Method::GET, &format!("/basic/webhooks/{id}/deliveries"), None).await.json();
    let statuses: Vec<&Value> = log["deliveries"].as_array().unwrap().iter().map(|d| &d["status"]).collect();
    assert_eq!(statuses, [&json!(503), &json!(200)], "both tests are in the delivery log, newest first");
    let other = new_vendor(&store).await;
    api.vendor(&other, Method::POST, &path, None).await.expect_error(404, "not_found");
    assert_eq!(receiver.received().len(), 2, "another vendor sent nothing");
}

#[tokio::test]
async fn a_webhook_failing_past_the_window_is_disabled_and_gets_nothing_until_enabled() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::start(Vec::new(), Reply::Status(500)).await;
    let (id, _) = ecomnow_webhook(&api, &v, "new_order", &receiver.url, None).await;
    let order = payload("ecomnow/new-order.json");
    let started = std::time::Instant::now();
    publish(&api, &event(&v, None, "new_order", &order)).await;
    receiver.wait_for(1, WAIT).await;
    // dispatch writes it once the attempt has ended, a moment after the receiver saw it.
    let mut since = None;
    for _ in 0..50 {
        since = store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap().failing_since;
        if since.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(since.is_some(), "the first failure is remembered");
    // The first event's eight attempts end in the DLQ well inside the 30 s window; a second event
    // published after it fails past the window, and its first failure there disables the webhook.
    tokio::time::sleep(Duration::from_secs(31).saturating_sub(started.elapsed())).await;
    assert_eq!(store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap().disabled, None);
    let before = receiver.received().len();
    publish(&api, &event(&v, None, "new_order", &order)).await;
    let mut shown = Value::Null;
    for _ in 0..100 {
        shown = api.vendor(&v, Method::GET, &format!("/basic/webhooks/{id}"), None).await.json();
        if shown["status"] == "disabled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(shown["status"], "disabled", "{shown}");
    assert!(shown["disabledReason"].as_str().unwrap().contains("every delivery has failed since"), "{shown}");
    assert_eq!(receiver.received().len(), before + 1, "disabled at the first failure past the window");
    assert_eq!(publish(&api, &event(&v, None, "new_order", &order)).await.json()["deliveries"], 0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), before + 1, "the second event's retries were dropped");

    api.vendor(&v, Method::POST, &format!("/basic/webhooks/{id}/enable"), None).await;
    let enabled = store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap();
    assert_eq!((enabled.disabled, enabled.failing_since), (None, None), "a clean record");
    assert_eq!(publish(&api, &event(&v, None, "new_order", &order)).await.json()["deliveries"], 1);
    let got = receiver.wait_for(before + 2, WAIT).await;
    assert!(got.len() > before + 1, "delivered again after enabling");
}
