//! `POST /events/batch` end to end: each event answered on its own, in order, idempotent on its
//! own; a bad one refuses none of the others.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use shared::store::EventLog;
use tests::{
    deliveries::{ecomnow_webhook, WAIT},
    new_vendor,
    receiver::Receiver,
    store, unique, Answer, Api,
};

async fn publish_batch(api: &Api, body: &Value) -> Answer {
    let bytes = serde_json::to_vec(body).unwrap();
    api.send(Method::POST, "/events/batch", &[("Content-Type", "application/json")], Some(bytes)).await
}

fn order(no: &str) -> Value {
    json!({"orderNo": no, "type": "new_order", "items": [
        {"skuNr": "SKU-1", "itemName": "Balm", "itemQuantity": 1, "itemPrice": 60.0, "itemTotal": 60.0}]})
}

#[tokio::test]
async fn a_batch_answers_each_event_in_order_and_a_bad_one_refuses_no_other() {
    let (api, store) = (Api::new(), store().await);
    let (a, b) = (new_vendor(&store).await, new_vendor(&store).await);
    let (a1, a2, b1) = (Receiver::ok().await, Receiver::ok().await, Receiver::ok().await);
    ecomnow_webhook(&api, &a, "new_order", &a1.url, None).await;
    ecomnow_webhook(&api, &a, "new_order", &a2.url, None).await;
    ecomnow_webhook(&api, &b, "new_order", &b1.url, None).await;
    let key = unique("batch");
    let (va, vb) = (&a.vendor.vendor_id, &b.vendor.vendor_id);
    let batch = json!({"events": [
        {"id": key, "vendorId": va, "type": "new_order", "payload": order("B-1")},
        {"vendorId": vb, "type": "new_order", "payload": order("B-2")},
        {"vendorId": va, "type": "new_orders", "payload": order("B-3")},
        {"vendorId": "ven_nobody", "type": "new_order", "payload": order("B-4")},
        {"id": key, "vendorId": va, "type": "new_order", "payload": order("B-1")},
        {"id": key, "vendorId": va, "type": "new_order", "payload": order("B-5")},
        "not an event",
    ]});
    let first = publish_batch(&api, &batch).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let results = first.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 7, "{}", first.text);
    assert_eq!(results[0], json!({"eventId": key, "deliveries": 2}));
    assert_eq!(results[1]["deliveries"], 1, "{}", first.text);
    let b_event = results[1]["eventId"].as_str().unwrap().to_owned();
    assert_eq!(
        (&results[2]["error"]["code"], &results[2]["error"]["field"]),
        (&json!("invalid_field"), &json!("type"))
    );
    assert_eq!(
        (&results[3]["error"]["code"], &results[3]["error"]["field"]),
        (&json!("not_allowed"), &json!("vendorId"))
    );
    assert_eq!(results[4], results[0], "the same event twice in a batch is queued once");
    assert_eq!(results[5]["error"]["code"], "idempotency_mismatch", "the same id with another payload");
    assert_eq!(results[6]["error"]["code"], "invalid_json", "{}", first.text);

    for (r, n) in [(&a1, 1), (&a2, 1), (&b1, 1)] {
        r.wait_for(n, WAIT).await;
    }
    assert_eq!(a1.received()[0].header("webhook-id"), Some(key.as_str()));
    assert_eq!(b1.received()[0].header("webhook-id"), Some(b_event.as_str()));
    // Kept for redelivery and recovery.
    assert!(store.get_event(va, &key).await.unwrap().is_some());
    assert!(store.get_event(vb, &b_event).await.unwrap().is_some());

    // The same batch again: the keyed event is answered as the first time and queued nowhere;
    // the event without an id is a new one.
    let again = publish_batch(&api, &batch).await;
    let results = again.json()["results"].as_array().unwrap().clone();
    assert_eq!(results[0], json!({"eventId": key, "deliveries": 2}), "{}", again.text);
    assert_ne!(results[1]["eventId"], json!(b_event));
    b1.wait_for(2, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!((a1.received().len(), a2.received().len()), (1, 1), "a repeat queues nothing");
}

#[tokio::test]
async fn a_batch_that_is_not_a_batch_is_refused_whole() {
    let api = Api::new();
    let event = json!({"vendorId": "ven_x", "type": "new_order", "payload": order("X")});
    for (body, code, message) in [
        (json!({"events": []}), "invalid_field", "events must hold 1 to 100 events; it holds 0"),
        (
            json!({"events": vec![event.clone(); 101]}),
            "invalid_field",
            "events must hold 1 to 100 events; it holds 101",
        ),
        (json!({"events": "x"}), "invalid_json", "request body must be {\"events\": [event, …]}"),
        (json!([event]), "invalid_json", "request body must be {\"events\": [event, …]}"),
        (json!({"events": [event], "more": 1}), "invalid_json", "unknown field `more`"),
    ] {
        let answer = publish_batch(&api, &body).await;
        let e = answer.expect_error(400, code);
        assert!(e["message"].as_str().unwrap().contains(message), "{e}");
    }
    let big = json!({"events": [{"vendorId": "ven_x", "type": "new_order", "payload": {"pad": "x".repeat(1 << 20)}}]});
    publish_batch(&api, &big).await.expect_error(413, "payload_too_large");
}
