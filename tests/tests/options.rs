//! Delivery options end to end on the local stack: payload filters and headers of a vendor's own.
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::Method;
use serde_json::{json, Value};
use shared::store::WebhookStore;
use tests::{
    deliveries::{event, publish, WAIT},
    new_vendor,
    receiver::Receiver,
    record_secret, store, Api,
};

/// An eComNow order with these lines (SKU, quantity).
fn order(no: &str, lines: &[(&str, u32)]) -> String {
    let items: Vec<Value> = lines
        .iter()
        .map(|(sku, n)| {
            json!({"skuNr": sku, "itemName": "Balm", "itemQuantity": n, "itemPrice": 30.0, "itemTotal": 30.0 * *n as f64})
        })
        .collect();
    json!({"orderNo": no, "type": "new_order", "items": items}).to_string()
}

#[tokio::test]
async fn a_filter_delivers_only_the_events_that_pass_and_counts_only_those() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (all, filtered) = (Receiver::ok().await, Receiver::ok().await);
    let body = json!({"webhookType": "new_order", "url": all.url});
    assert_eq!(api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.status, 201);

    // Refused with the part at fault named, and nothing created.
    let bad = json!({"webhookType": "new_order", "url": filtered.url, "filter": {"items/*/skuNr": "A"}});
    let e =
        api.vendor(&v, Method::POST, "/basic/webhooks", Some(&bad)).await.expect_error(400, "invalid_field");
    assert_eq!(e["field"], "filter");
    assert_eq!(e["message"], "filter path \"items/*/skuNr\" is not a JSON Pointer: it must start with \"/\"");
    assert_eq!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().len(), 1, "nothing created");

    let filter =
        json!({"/items/*/skuNr": {"$in": ["NHCBDFSJ&P20027-1"]}, "/items/*/itemQuantity": {"$gte": 2}});
    let body = json!({"webhookType": "new_order", "url": filtered.url, "filter": filter});
    let created = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await;
    assert_eq!((created.status.as_u16(), &created.json()["filter"]), (201, &filter), "{}", created.text);
    let id = created.json()["webhookId"].as_u64().unwrap();
    let path = format!("/basic/webhooks/{id}");
    assert_eq!(api.vendor(&v, Method::GET, &path, None).await.json()["filter"], filter);
    let listed = api.vendor(&v, Method::GET, "/basic/webhooks", None).await.json();
    let mine = listed["webhooks"].as_array().unwrap().iter().find(|w| w["webhookId"] == id).unwrap().clone();
    assert_eq!(mine["filter"], filter);

    // The SKU, and on another line a quantity of 3: each condition holds on its own.
    let pass = order("F-1", &[("NHCBDFSJ&P20027-1", 1), ("SKU-2", 3)]);
    let fail = order("F-2", &[("SKU-2", 5)]);
    let a = publish(&api, &event(&v, None, "new_order", &pass)).await;
    assert_eq!((a.status.as_u16(), a.json()["deliveries"].as_u64()), (202, Some(2)), "{}", a.text);
    let b = publish(&api, &event(&v, None, "new_order", &fail)).await;
    assert_eq!(
        (b.status.as_u16(), b.json()["deliveries"].as_u64()),
        (202, Some(1)),
        "filtered out: {}",
        b.text
    );
    all.wait_for(2, WAIT).await;
    let got = filtered.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(filtered.received().len(), 1, "only the order that passes");
    assert_eq!(got[0].header("webhook-id"), a.json()["eventId"].as_str());

    // PUT without `filter` keeps it; `null` removes it.
    let put = json!({"webhookType": "new_order", "url": filtered.url});
    let kept = api.vendor(&v, Method::PUT, &path, Some(&put)).await;
    assert_eq!((kept.status.as_u16(), &kept.json()["filter"]), (200, &filter), "{}", kept.text);
    let put = json!({"webhookType": "new_order", "url": filtered.url, "filter": null});
    let removed = api.vendor(&v, Method::PUT, &path, Some(&put)).await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert!(removed.json().get("filter").is_none(), "{}", removed.text);
    let c = publish(&api, &event(&v, None, "new_order", &fail)).await;
    assert_eq!(c.json()["deliveries"].as_u64(), Some(2), "{}", c.text);
    filtered.wait_for(2, WAIT).await;
}

#[tokio::test]
async fn a_webhooks_own_headers_go_with_every_delivery_and_reserved_ones_are_refused() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let r = Receiver::ok().await;
    let shop = format!("shop-{}", tests::unique("h"));
    record_secret(&shop);
    for (headers, message) in [
        (json!({"Webhook-Id": "x"}), "headers name \"Webhook-Id\" is reserved: the service sets it"),
        (
            json!({"Authorization": "Bearer x"}),
            "headers name \"Authorization\" is reserved: the service sets it (use authentication)",
        ),
        (json!({"X-Shop": "a\nb"}), "headers [\"X-Shop\"] must be printable ASCII, at most 1024 bytes"),
    ] {
        let body = json!({"webhookType": "new_order", "url": r.url, "headers": headers});
        let e = api
            .vendor(&v, Method::POST, "/basic/webhooks", Some(&body))
            .await
            .expect_error(400, "invalid_field");
        assert_eq!((&e["field"], e["message"].as_str().unwrap()), (&json!("headers"), message));
    }
    let headers = json!({"X-Shop": shop, "X-Region": "eu"});
    let body =
        json!({"webhookType": "new_order", "url": r.url, "authentication": "Basic YTpi", "headers": headers});
    let created = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await;
    assert_eq!((created.status.as_u16(), &created.json()["headers"]), (201, &headers), "{}", created.text);
    let id = created.json()["webhookId"].as_u64().unwrap();
    let path = format!("/basic/webhooks/{id}");
    assert_eq!(api.vendor(&v, Method::GET, &path, None).await.json()["headers"], headers);

    let a = publish(&api, &event(&v, None, "new_order", &order("H-1", &[("SKU-1", 1)]))).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let got = r.wait_for(1, WAIT).await;
    assert_eq!(got[0].header("x-shop"), Some(shop.as_str()));
    assert_eq!(got[0].header("x-region"), Some("eu"));
    assert_eq!(got[0].header("authorization"), Some("Basic YTpi"), "authentication is still sent");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert!(got[0].header("webhook-signature").is_some());

    // The test event carries them too; `null` removes them.
    let t = api.vendor(&v, Method::POST, &format!("{path}/test"), None).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(r.wait_for(2, WAIT).await[1].header("x-shop"), Some(shop.as_str()));
    let put = json!({"webhookType": "new_order", "url": r.url, "headers": null});
    let removed = api.vendor(&v, Method::PUT, &path, Some(&put)).await;
    assert!(removed.json().get("headers").is_none(), "{}", removed.text);
    publish(&api, &event(&v, None, "new_order", &order("H-2", &[("SKU-1", 1)]))).await;
    assert_eq!(r.wait_for(3, WAIT).await[2].header("x-shop"), None);
}

#[tokio::test]
async fn a_webhook_without_options_looks_as_it_always_did() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let body = json!({"webhookType": "new_order", "url": "https://vendor.example.com/hooks"});
    let created = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.json();
    let mut keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "authentication",
            "createdAt",
            "method",
            "secret",
            "status",
            "updatedAt",
            "url",
            "vendorId",
            "webhookId",
            "webhookType"
        ]
    );
}

/// The sequence: a 410 disables the webhook; two events published meanwhile get no
/// delivery; after `enable`, `recover` from before the disable brings each once (with its own id
/// as `webhook-id`), and a second `recover` over the window queues nothing.
#[tokio::test]
async fn recover_brings_what_a_disabled_webhook_missed_once() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let r =
        Receiver::start(vec![tests::receiver::Reply::Status(410)], tests::receiver::Reply::Status(200)).await;
    let since = shared::clock::rfc3339(tests::deliveries::now() - 5);
    let body = json!({"webhookType": "new_order", "url": r.url});
    let created = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.json();
    let id = created["webhookId"].as_u64().unwrap();
    let path = format!("/basic/webhooks/{id}");

    let gone = publish(&api, &event(&v, None, "new_order", &order("R-0", &[("SKU-1", 1)]))).await;
    r.wait_for(1, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    while store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap().disabled.is_none() {
        assert!(std::time::Instant::now() < deadline, "the 410 did not disable the webhook");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut missed = Vec::new();
    for no in ["R-1", "R-2"] {
        let a = publish(&api, &event(&v, None, "new_order", &order(no, &[("SKU-1", 1)]))).await;
        assert_eq!(a.json()["deliveries"], 0, "{}", a.text);
        missed.push(a.json()["eventId"].as_str().unwrap().to_owned());
    }

    // Refusals first: disabled, a window outside the 30 days, a malformed time.
    let recover = format!("{path}/recover");
    let disabled = api.vendor(&v, Method::POST, &recover, Some(&json!({"since": since}))).await;
    disabled.expect_error(409, "webhook_disabled");
    assert_eq!(api.vendor(&v, Method::POST, &format!("{path}/enable"), None).await.status, 200);
    let old = shared::clock::rfc3339(tests::deliveries::now() - 31 * 86_400);
    let e = api
        .vendor(&v, Method::POST, &recover, Some(&json!({"since": old})))
        .await
        .expect_error(400, "invalid_field");
    assert_eq!(e["field"], "since");
    assert!(e["message"].as_str().unwrap().starts_with("events are kept 30 days"), "{e}");
    let e = api
        .vendor(&v, Method::POST, &recover, Some(&json!({"since": "today"})))
        .await
        .expect_error(400, "invalid_field");
    assert_eq!(e["field"], "since");

    let a = api.vendor(&v, Method::POST, &recover, Some(&json!({"since": since}))).await;
    // The 410'd event never got a 2xx either: it comes again with the two missed ones.
    assert_eq!((a.status.as_u16(), a.json()), (202, json!({"webhookId": id, "queued": 3})), "{}", a.text);
    let got = r.wait_for(4, WAIT).await;
    let mut ids: Vec<&str> = got[1..].iter().map(|g| g.header("webhook-id").unwrap()).collect();
    ids.sort();
    let mut expected = vec![gone.json()["eventId"].as_str().unwrap().to_owned()];
    expected.extend(missed.iter().cloned());
    expected.sort();
    assert_eq!(ids, expected, "each once, with its own id");

    // Once their attempts are logged as delivered, the window holds nothing to recover.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let delivered =
            tests::attempts_of(&store, id, 4).await.iter().filter(|a| a.outcome == "delivered").count();
        if delivered == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{delivered} delivered attempts logged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = api.vendor(&v, Method::POST, &recover, Some(&json!({"since": since}))).await;
    assert_eq!(again.json(), json!({"webhookId": id, "queued": 0}), "{}", again.text);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(r.received().len(), 4);

    // Only the two events no delivery was queued for are in the vendor's timeline; the 410'd
    // one was found through the attempt log.
    let db = tests::dynamo().await;
    let gone_id = gone.json()["eventId"].as_str().unwrap().to_owned();
    for (event_id, in_timeline) in [(&gone_id, false), (&missed[0], true), (&missed[1], true)] {
        let item = db
            .get_item()
            .table_name(tests::stack_var("TABLE_NAME"))
            .key("pk", AttributeValue::S(format!("EVT#{}#{event_id}", v.vendor.vendor_id)))
            .key("sk", AttributeValue::S("#".into()))
            .send()
            .await
            .unwrap()
            .item
            .expect("the event is kept");
        assert_eq!(item.contains_key("timeline"), in_timeline, "{event_id}");
    }
    // A webhook created since recovers nothing published before it existed.
    let r2 = Receiver::start(Vec::new(), tests::receiver::Reply::Status(200)).await;
    let body = json!({"webhookType": "new_order", "url": r2.url});
    let later = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.json();
    let recover = format!("/basic/webhooks/{}/recover", later["webhookId"]);
    let none = api.vendor(&v, Method::POST, &recover, Some(&json!({"since": since}))).await;
    assert_eq!(none.json()["queued"], 0, "{}", none.text);
}

/// The test: three events for one order published back to back, to a receiver that
/// fails the first one twice, arrive as 1, 1, 1, 2, 3; an event for another order, published
/// after them, is delivered while the first one waits.
#[tokio::test]
async fn per_order_deliveries_arrive_in_publish_order_and_other_orders_do_not_wait() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let first = tests::unique("ord-1");
    // A 503 with Retry-After: 3 s between the first's attempts, time for the other order.
    let r = Receiver::start(Vec::new(), tests::receiver::Reply::FailEvent(first.clone(), 2, 503, 3)).await;
    let body = json!({"webhookType": "new_order", "url": r.url, "ordering": "per_order"});
    let created = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await;
    assert_eq!(
        (created.status.as_u16(), &created.json()["ordering"]),
        (201, &json!("per_order")),
        "{}",
        created.text
    );
    let id = created.json()["webhookId"].as_u64().unwrap();

    let order_a = tests::unique("A");
    let ids = [first.clone(), tests::unique("ord-2"), tests::unique("ord-3")];
    for (i, event_id) in ids.iter().enumerate() {
        let payload = order(&order_a, &[("SKU-1", i as u32 + 1)]);
        let a = publish(&api, &event(&v, Some(event_id), "new_order", &payload)).await;
        assert_eq!((a.status.as_u16(), a.json()["deliveries"].as_u64()), (202, Some(1)), "{}", a.text);
    }
    let other = tests::unique("ord-b");
    let b =
        publish(&api, &event(&v, Some(&other), "new_order", &order(&tests::unique("B"), &[("SKU-9", 1)])))
            .await;
    assert_eq!(b.status, 202, "{}", b.text);

    let got = r.wait_for(6, WAIT).await;
    let seen: Vec<&str> = got.iter().map(|g| g.header("webhook-id").unwrap()).collect();
    let of_a: Vec<&str> = seen.iter().copied().filter(|s| *s != other).collect();
    assert_eq!(of_a, [&ids[0], &ids[0], &ids[0], &ids[1], &ids[2]].map(String::as_str), "{seen:?}");
    let b_at = seen.iter().position(|s| *s == other).unwrap();
    let first_done = seen.iter().rposition(|s| *s == ids[0]).unwrap();
    assert!(b_at < first_done, "the other order's event waited for the first order: {seen:?}");
    assert_eq!(got.iter().map(|g| g.status).filter(|s| *s == 503).count(), 2);

    // The attempt log numbers the ordered delivery's attempts by the schedule: 1, then later ones.
    let attempts = tests::attempts_of(&store, id, 6).await;
    let mut of_first: Vec<u32> =
        attempts.iter().filter(|a| a.event_id == ids[0]).map(|a| a.attempt).collect();
    of_first.sort();
    of_first.dedup();
    assert_eq!((of_first.len(), of_first[0]), (3, 1), "{of_first:?}");

    // GET shows the option; PUT with null turns it off.
    let path = format!("/basic/webhooks/{id}");
    assert_eq!(api.vendor(&v, Method::GET, &path, None).await.json()["ordering"], "per_order");
    let put = json!({"webhookType": "new_order", "url": r.url, "ordering": null});
    let off = api.vendor(&v, Method::PUT, &path, Some(&put)).await;
    assert!(off.json().get("ordering").is_none(), "{}", off.text);
}

/// An ordered delivery that never gets a 2xx holds its order back for its attempts, then is
/// parked, body intact, in the FIFO dead-letter queue, and the order's next delivery goes.
#[tokio::test]
async fn a_parked_ordered_delivery_lets_its_order_go_on() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let doomed = tests::unique("doomed");
    let r =
        Receiver::start(Vec::new(), tests::receiver::Reply::FailEvent(doomed.clone(), 1000, 503, 0)).await;
    let body = json!({"webhookType": "new_order", "url": r.url, "ordering": "per_order"});
    let id = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.json()["webhookId"]
        .as_u64()
        .unwrap();
    let (no, next) = (tests::unique("P"), tests::unique("next"));
    let doomed_payload = order(&no, &[("SKU-1", 1)]);
    publish(&api, &event(&v, Some(&doomed), "new_order", &doomed_payload)).await;
    publish(&api, &event(&v, Some(&next), "new_order", &order(&no, &[("SKU-2", 2)]))).await;

    let attempts = shared::delivery::RetrySchedule::parse(
        &std::env::var("RETRY_SCHEDULE").unwrap_or("1s,1s,1s,1s,1s,1s,1s".into()),
    )
    .unwrap()
    .max_attempts() as usize;
    // The next delivery of the order comes only after the first's last attempt. (An attempt
    // held up past the next one's time takes that one's number: the schedule's time is kept,
    // and under load a step of this compressed schedule can be skipped.)
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = r.received();
        if got.iter().any(|g| g.header("webhook-id") == Some(next.as_str())) {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "the order's next delivery never came");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seen: Vec<&str> = got.iter().map(|g| g.header("webhook-id").unwrap()).collect();
    let (last, tries) = (seen.len() - 1, seen.len() - 1);
    assert!(seen[..last].iter().all(|s| *s == doomed) && seen[last] == next, "{seen:?}");
    assert!(tries >= 2, "the first was tried again before it was parked: {seen:?}");
    let logged = tests::attempts_of(&store, id, tries).await;
    let mut numbers: Vec<u32> = logged.iter().filter(|a| a.event_id == doomed).map(|a| a.attempt).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(
        (numbers.len(), numbers.first(), numbers.last()),
        (tries, Some(&1), Some(&(attempts as u32))),
        "{numbers:?}"
    );

    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    let url = tests::stack_var("ORDERED_DEAD_LETTER_QUEUE_URL");
    let deadline = std::time::Instant::now() + WAIT;
    let parked = loop {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let found = out.messages.unwrap_or_default().into_iter().find_map(|m| {
            let d: shared::delivery::DeliveryMessage = serde_json::from_str(m.body()?).ok()?;
            (d.webhook_id == id).then_some((d, m))
        });
        if let Some(found) = found {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "nothing parked in the ordered dead-letter queue");
    };
    assert_eq!(
        (parked.0.event_id.as_str(), parked.0.payload.get()),
        (doomed.as_str(), doomed_payload.as_str()),
        "body intact"
    );
    let receipt = parked.1.receipt_handle().unwrap();
    sqs.delete_message().queue_url(&url).receipt_handle(receipt).send().await.unwrap();
}
