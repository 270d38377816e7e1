//! The DynamoDB store against the emulator: conditional writes, concurrency, scoping.
use shared::{
    api::App,
    clock::now,
    config::Config,
    domain::{EventType, Vendor, WebhookSpec},
    ids,
    store::{Conflict, EventLog, StoreError, StoredEvent, VendorStore, WebhookStore},
};
use tests::{new_vendor, store, unique};

fn webhook(vendor: &Vendor, id: u64, url: &str) -> shared::domain::Webhook {
    let spec = shared::domain::WebhookSpec {
        event_type: EventType::NewOrder,
        url: url.into(),
        authentication: Some("Basic abc".into()),
        max_in_flight: None,
        options: Default::default(),
    };
    shared::domain::Webhook::new(id, &vendor.vendor_id, spec, ids::signing_secret(), now())
}

fn app(store: shared::store::DynamoStore) -> App {
    let mut config = Config { rotation_grace_secs: 60, ..Config::for_table("") };
    config.delivery.allow_private_targets = true;
    App::new(config, store)
}

/// A batch's webhooks are read together: over 100 keys (two `BatchGetItem` calls), answered in
/// the order asked, each as stored, scoped to its vendor, `None` where there is none.
#[tokio::test]
async fn webhooks_read_together_answer_in_the_order_asked() {
    let store = store().await;
    let (a, b) = (new_vendor(&store).await.vendor, new_vendor(&store).await.vendor);
    let wa = webhook(&a, ids::webhook_id(), "https://a.example.com/");
    let wb = webhook(&b, ids::webhook_id(), "https://b.example.com/");
    for w in [&wa, &wb] {
        store.insert_webhook(w).await.unwrap();
    }
    let missing: Vec<u64> = (0..110).map(|_| ids::webhook_id()).collect();
    let mut keys: Vec<(&str, u64)> = missing.iter().map(|&id| (a.vendor_id.as_str(), id)).collect();
    keys.insert(3, (&a.vendor_id, wa.id));
    keys.insert(105, (&b.vendor_id, wb.id));
    keys.push((&b.vendor_id, wa.id));
    let read = store.get_webhooks(&keys).await.unwrap();
    assert_eq!(read.len(), keys.len());
    assert!(read[3].as_ref() == Some(&wa), "a's webhook, as stored");
    assert!(read[105].as_ref() == Some(&wb), "b's webhook, past the first hundred keys");
    let found: Vec<usize> = read.iter().enumerate().filter(|(_, w)| w.is_some()).map(|(i, _)| i).collect();
    assert_eq!(found, [3, 105], "none where there is no webhook, nor for b asking for a's");
    assert!(store.get_webhooks(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn webhooks_round_trip_and_are_scoped_to_their_vendor() {
    let store = store().await;
    let (a, b) = (new_vendor(&store).await.vendor, new_vendor(&store).await.vendor);
    let w = webhook(&a, ids::webhook_id(), "https://a.example.com/");
    store.insert_webhook(&w).await.unwrap();
    let read = store.get_webhook(&a.vendor_id, w.id).await.unwrap().unwrap();
    assert!(read == w);
    assert!(store.get_webhook(&b.vendor_id, w.id).await.unwrap().is_none(), "b cannot read a's webhook");
    assert!(store.list_webhooks(&b.vendor_id).await.unwrap().is_empty());
    assert_eq!(store.list_webhooks(&a.vendor_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_id_in_use_is_refused_even_for_another_vendor() {
    let store = store().await;
    let (a, b) = (new_vendor(&store).await.vendor, new_vendor(&store).await.vendor);
    let id = ids::webhook_id();
    store.insert_webhook(&webhook(&a, id, "https://a.example.com/")).await.unwrap();
    let err = store.insert_webhook(&webhook(&b, id, "https://b.example.com/")).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::IdTaken)), "{err:?}");
    assert!(
        store.list_webhooks(&b.vendor_id).await.unwrap().is_empty(),
        "the failed transaction wrote nothing"
    );
}

#[tokio::test]
async fn duplicate_endpoints_are_refused_atomically() {
    let store = store().await;
    let a = new_vendor(&store).await.vendor;
    store.insert_webhook(&webhook(&a, ids::webhook_id(), "https://dup.example.com/")).await.unwrap();
    let second = webhook(&a, ids::webhook_id(), "https://dup.example.com/");
    let err = store.insert_webhook(&second).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::DuplicateEndpoint)), "{err:?}");
    // Its id guard was not left behind: the id is still free.
    store.insert_webhook(&webhook(&a, second.id, "https://other.example.com/")).await.unwrap();
}

#[tokio::test]
async fn a_create_written_by_a_try_that_timed_out_is_not_refused_by_its_retry() {
    let store = store().await;
    let a = new_vendor(&store).await.vendor;
    let w = webhook(&a, ids::webhook_id(), "https://retried.example.com/");
    store.insert_webhook(&w).await.unwrap();
    // The same write again, as the SDK retries a try whose answer did not come in time.
    store.insert_webhook(&w).await.expect("the retry finds its own webhook");
    // Another webhook at that address is still a duplicate.
    let other = webhook(&a, ids::webhook_id(), "https://retried.example.com/");
    let err = store.insert_webhook(&other).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::DuplicateEndpoint)), "{err:?}");
}

#[tokio::test]
async fn stale_writes_are_refused() {
    let store = store().await;
    let a = new_vendor(&store).await.vendor;
    let w = webhook(&a, ids::webhook_id(), "https://a.example.com/v1");
    store.insert_webhook(&w).await.unwrap();
    let v2 = shared::domain::Webhook { url: "https://a.example.com/v2".into(), version: 2, ..w.clone() };
    store.replace_webhook(&w, &v2).await.unwrap();
    // A writer still holding version 1 loses, for an update and for a delete.
    let v2b = shared::domain::Webhook { url: "https://a.example.com/v2b".into(), version: 2, ..w.clone() };
    let err = store.replace_webhook(&w, &v2b).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::Concurrent)), "{err:?}");
    let err = store.delete_webhook(&w).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(Conflict::Concurrent)), "{err:?}");
    let stored = store.get_webhook(&a.vendor_id, w.id).await.unwrap().unwrap();
    assert_eq!(stored.url, "https://a.example.com/v2");
    // The old URL's duplicate guard moved with the update: v1 can be registered again.
    store.insert_webhook(&webhook(&a, ids::webhook_id(), "https://a.example.com/v1")).await.unwrap();
    store.delete_webhook(&stored).await.unwrap();
    assert!(store.get_webhook(&a.vendor_id, w.id).await.unwrap().is_none());
}

#[tokio::test]
async fn twenty_parallel_creates_get_twenty_distinct_ids() {
    let store = store().await;
    let vendor = new_vendor(&store).await.vendor;
    let app = std::sync::Arc::new(app(store.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (app, vendor) = (app.clone(), vendor.clone());
        tasks.spawn(async move {
            let spec = WebhookSpec {
                event_type: EventType::OrderCancellation,
                url: format!("https://parallel.example.com/{i}"),
                authentication: None,
                max_in_flight: None,
                options: Default::default(),
            };
            app.create_webhook(&vendor, spec).await.map(|w| w.id).map_err(|e| e.message)
        });
    }
    let mut ids: Vec<u64> = tasks.join_all().await.into_iter().map(Result::unwrap).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20);
    let mut listed: Vec<u64> =
        store.list_webhooks(&vendor.vendor_id).await.unwrap().iter().map(|w| w.id).collect();
    listed.sort();
    assert_eq!(listed, ids);
}

#[tokio::test]
async fn parallel_creates_of_one_endpoint_make_exactly_one_webhook() {
    let store = store().await;
    let vendor = new_vendor(&store).await.vendor;
    let app = std::sync::Arc::new(app(store.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (app, vendor) = (app.clone(), vendor.clone());
        tasks.spawn(async move {
            let spec = WebhookSpec {
                event_type: EventType::NewOrder,
                url: "https://race.example.com/".into(),
                authentication: None,
                max_in_flight: None,
                options: Default::default(),
            };
            app.create_webhook(&vendor, spec).await.map_err(|e| e.status.as_u16())
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|s| *s == 409));
    assert_eq!(store.list_webhooks(&vendor.vendor_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn usernames_are_unique_even_under_concurrency() {
    let store = store().await;
    let username = unique("taken");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (store, username) = (store.clone(), username.clone());
        tasks.spawn(async move {
            let vendor = Vendor { vendor_id: ids::vendor_id(), username, created_at: now() };
            store.create_vendor(&vendor, "$argon2id$placeholder").await
        });
    }
    let results = tasks.join_all().await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(r, StoreError::Conflict(Conflict::UsernameTaken)), "{r:?}");
    }
    let listed = store.list_vendors().await.unwrap();
    assert_eq!(listed.iter().filter(|v| v.username == username).count(), 1);
    let login = store.vendor_login(&username).await.unwrap().unwrap();
    assert_eq!(login.vendor.username, username);
    assert!(store.vendor_login(&unique("nobody")).await.unwrap().is_none());
}

/// From the 10,000-event soak: kept events and idempotency keys once sat in their vendor's
/// partition, so every query for the vendor's webhooks walked past them (and a busy vendor's
/// publishing shared one partition key). They are found by their own keys and are not in it.
#[tokio::test]
async fn published_events_stay_out_of_their_vendors_partition() {
    use shared::store::{EventClaim, EventLog, EventStart, StoredEvent};
    let store = store().await;
    let v = new_vendor(&store).await;
    let event_id = ids::event_id();
    let key = unique("key");
    let t = now();
    let claim = EventClaim {
        vendor_id: &v.vendor.vendor_id,
        key: &key,
        event_id: &event_id,
        fingerprint: "fp",
        now: t,
        lease_until: t + 30,
        expires_at: t + 3600,
    };
    assert!(matches!(store.begin_event(&claim).await.unwrap(), EventStart::New));
    store.finish_event(&v.vendor.vendor_id, &key, 1).await.unwrap();
    let event = StoredEvent {
        event_id: event_id.clone(),
        vendor_id: v.vendor.vendor_id.clone(),
        event_type: EventType::NewOrder,
        payload: r#"{"orderId":1}"#.into(),
        published_at: t,
        in_timeline: false,
    };
    store.store_events(std::slice::from_ref(&event)).await.unwrap();
    let spec = WebhookSpec {
        event_type: EventType::NewOrder,
        url: "https://a.example/h".into(),
        authentication: None,
        max_in_flight: None,
        options: Default::default(),
    };
    app(store.clone()).create_webhook(&v.vendor, spec).await.unwrap();

    let got = store.get_event(&v.vendor.vendor_id, &event_id).await.unwrap().unwrap();
    assert_eq!((got.payload.as_str(), got.event_type), (event.payload.as_str(), EventType::NewOrder));
    match store.begin_event(&EventClaim { event_id: "evt_other", ..claim }).await.unwrap() {
        EventStart::Done { event_id: first, deliveries } => assert_eq!((first, deliveries), (event_id, 1)),
        other => panic!("the key's first event was forgotten: {other:?}"),
    }

    let items = tests::dynamo()
        .await
        .query()
        .table_name(tests::stack_var("TABLE_NAME"))
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("VENDOR#{}", v.vendor.vendor_id)),
        )
        .send()
        .await
        .unwrap();
    let sks: Vec<String> = items.items().iter().filter_map(|i| i.get("sk")?.as_s().ok().cloned()).collect();
    assert!(
        !sks.is_empty() && sks.iter().all(|sk| !sk.starts_with("EVT#") && !sk.starts_with("EVENT#")),
        "{sks:?}"
    );
}

/// An idempotency key is leased while its fan-out runs: a repeat waits, a different event under
/// the key is refused, and a fan-out that died (its lease past) or gave up is taken over.
#[tokio::test]
async fn an_idempotency_key_is_leased_fingerprinted_and_taken_over_when_its_lease_ends() {
    use shared::store::{EventClaim, EventLog, EventStart};
    let store = store().await;
    let v = new_vendor(&store).await;
    let key = unique("key");
    let t = now();
    let first = EventClaim {
        vendor_id: &v.vendor.vendor_id,
        key: &key,
        event_id: &key,
        fingerprint: "fp-a",
        now: t,
        lease_until: t + 30,
        expires_at: t + 3600,
    };
    assert_eq!(store.begin_event(&first).await.unwrap(), EventStart::New);
    let later = |secs: i64| EventClaim { now: t + secs, lease_until: t + secs + 30, ..first };
    assert_eq!(store.begin_event(&later(10)).await.unwrap(), EventStart::InProgress { retry_after_secs: 20 });
    assert_eq!(
        store.begin_event(&EventClaim { fingerprint: "fp-b", ..later(10) }).await.unwrap(),
        EventStart::Mismatch
    );
    // The first fan-out died: 31 s on, its lease is past, and the next publish takes it over.
    assert_eq!(store.begin_event(&later(31)).await.unwrap(), EventStart::Resumed { event_id: key.clone() });
    assert!(matches!(store.begin_event(&later(32)).await.unwrap(), EventStart::InProgress { .. }));
    // A fan-out that failed gives its lease up: the next publish need not wait.
    store.release_event(&v.vendor.vendor_id, &key).await.unwrap();
    assert_eq!(store.begin_event(&later(33)).await.unwrap(), EventStart::Resumed { event_id: key.clone() });
    store.finish_event(&v.vendor.vendor_id, &key, 3).await.unwrap();
    assert_eq!(
        store.begin_event(&later(40)).await.unwrap(),
        EventStart::Done { event_id: key.clone(), deliveries: 3 }
    );
    assert_eq!(
        store.begin_event(&EventClaim { fingerprint: "fp-b", ..later(40) }).await.unwrap(),
        EventStart::Mismatch,
        "a finished key refuses another event too"
    );
}

/// Deliveries in flight per webhook, on DynamoDB: at most the cap, a batch's several taken in
/// one write (as many as fit), slots given back free them, and one whose holder died frees
/// itself at its expiry.
#[tokio::test]
async fn delivery_slots_hold_the_cap_and_free_themselves_at_their_expiry() {
    use shared::store::DeliverySlots;
    let store = store().await;
    let id = shared::ids::webhook_id();
    let now = shared::clock::now_ms();
    let leases = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let take = |names: &'static [&'static str], now: i64, until: i64| {
        let (store, leases) = (&store, leases(names));
        async move { store.take_slots(id, &leases, now, until, 5).await.unwrap() }
    };
    assert_eq!(take(&["a"], now, now + 60_000).await, 1, "the first makes the item");
    assert_eq!(take(&["b1", "b2"], now, now + 500).await, 2, "a batch's two in one write");
    assert_eq!(take(&["c1", "c2", "c3", "c4"], now, now + 60_000).await, 2, "two fit beside three");
    assert_eq!(take(&["c3"], now, now + 60_000).await, 0, "the cap is in flight");
    store.give_slots(id, &leases(&["a", "c1"])).await.unwrap();
    assert_eq!(take(&["d1", "d2", "d3"], now, now + 60_000).await, 2, "two given back");
    assert_eq!(take(&["e1", "e2"], now, now + 60_000).await, 0);
    assert_eq!(take(&["e1", "e2", "e3"], now + 1_000, now + 60_000).await, 2, "b1 and b2 expired");
    use aws_sdk_dynamodb::types::AttributeValue;
    let item = tests::dynamo()
        .await
        .get_item()
        .table_name(tests::stack_var("TABLE_NAME"))
        .key("pk", AttributeValue::S(format!("INFLIGHT#{id}")))
        .key("sk", AttributeValue::S("#".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the slots item");
    let mut held: Vec<&String> = item["leases"].as_m().unwrap().keys().collect();
    held.sort();
    assert_eq!(held, ["c2", "d1", "d2", "e1", "e2"], "exactly the slots taken and not given back");
    store.give_slots(id, &leases(&["never-taken"])).await.unwrap();
    store.give_slots(shared::ids::webhook_id(), &leases(&["x"])).await.unwrap();
}

/// A batch's attempt records are written together (over 25 at once here, so in two calls), each
/// in its webhook's log; of two with one place in the log (a message SQS handed over twice in one
/// batch), which a single `BatchWriteItem` refuses, the last is kept, as its `PutItem` would leave.
#[tokio::test]
async fn attempt_records_written_together_are_each_in_their_webhooks_log() {
    use shared::store::{AttemptLog, AttemptRecord};
    let store = store().await;
    let (a, b) = (shared::ids::webhook_id(), shared::ids::webhook_id());
    let at = shared::clock::now_ms();
    let record = |webhook_id: u64, i: i64, outcome: &str| AttemptRecord {
        webhook_id,
        vendor_id: "ven_journal".into(),
        event_id: format!("evt_{i:02}"),
        attempt: 1,
        status: Some(200),
        outcome: outcome.into(),
        duration_ms: 12,
        at_ms: at + i,
        response_excerpt: format!("{{\"i\":{i}}}"),
        signed_at: Some(at / 1000),
    };
    let mut records: Vec<AttemptRecord> = (0..27).map(|i| record(a, i, "delivered")).collect();
    records.extend((0..3).map(|i| record(b, i, "delivered")));
    records.push(record(a, 5, "rejected"));
    store.record_attempts(&records).await.unwrap();
    let log_a = store.list_attempts(a, 100).await.unwrap();
    assert_eq!(log_a.len(), 27, "every record of a, the repeated one once");
    let fifth = log_a.iter().find(|r| r.event_id == "evt_05").unwrap();
    assert_eq!(fifth.outcome, "rejected", "the last record of a place is kept");
    let sixth = log_a.iter().find(|r| r.event_id == "evt_06").unwrap();
    assert_eq!(sixth, &records[6], "a record reads back as it was written");
    assert_eq!(store.list_attempts(b, 100).await.unwrap().len(), 3);
    store.record_attempts(&[]).await.unwrap();
}

/// Events are kept in batch writes (over 25 at once here) and read back by vendor, type and time
/// from the `EventsByTime` index, those in the vendor's timeline: one vendor's window, oldest
/// first. The others are read by id.
#[tokio::test]
async fn kept_events_are_read_back_by_vendor_type_and_window() {
    let store = store().await;
    let (v, other) = (new_vendor(&store).await, new_vendor(&store).await);
    let t = tests::deliveries::now() - 1000;
    let event = |vendor: &str, i: i64, event_type| StoredEvent {
        event_id: format!("evt-{i}"),
        vendor_id: vendor.to_owned(),
        event_type,
        payload: format!(r#"{{"orderNo":"{i}"}}"#),
        published_at: t + i,
        in_timeline: true,
    };
    let mut events: Vec<StoredEvent> =
        (0..30).map(|i| event(&v.vendor.vendor_id, i, EventType::NewOrder)).collect();
    // Out of the timeline: every webhook of its type was sent it.
    events
        .push(StoredEvent { in_timeline: false, ..event(&v.vendor.vendor_id, 10_000, EventType::NewOrder) });
    events.extend((0..3).map(|i| event(&v.vendor.vendor_id, 100 + i, EventType::OrderCancellation)));
    events.extend((0..3).map(|i| event(&other.vendor.vendor_id, i, EventType::NewOrder)));
    store.store_events(&events).await.unwrap();

    let got =
        store.events_between(&v.vendor.vendor_id, EventType::NewOrder, t + 5, t + 26, 100).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|e| e.event_id.as_str()).collect();
    let expected: Vec<String> = (5..=26).map(|i| format!("evt-{i}")).collect();
    assert_eq!(ids, expected);
    assert_eq!(got[0].payload, r#"{"orderNo":"5"}"#);
    let cancelled = store
        .events_between(&v.vendor.vendor_id, EventType::OrderCancellation, t, t + 1000, 100)
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 3);
    let none =
        store.events_between(&v.vendor.vendor_id, EventType::NewOrder, t + 31, t + 99, 100).await.unwrap();
    assert!(none.is_empty());
    let first = store.events_between(&v.vendor.vendor_id, EventType::NewOrder, t, t + 99, 4).await.unwrap();
    let offsets: Vec<i64> = first.iter().map(|e| e.published_at - t).collect();
    assert_eq!(offsets, [0, 1, 2, 3], "the oldest, at most the limit");
    let late =
        store.events_between(&v.vendor.vendor_id, EventType::NewOrder, t, t + 20_000, 100).await.unwrap();
    assert_eq!(late.len(), 30, "the event out of the timeline is not in it");

    let ids = ["evt-7", "evt-10000", "evt-none"].map(String::from);
    let mut by_id = store.events_by_id(&v.vendor.vendor_id, &ids).await.unwrap();
    by_id.sort_by_key(|e| e.published_at);
    assert_eq!(by_id, [events[7].clone(), events[30].clone()], "read by id, in the timeline or not");
    assert!(
        store.events_by_id(&other.vendor.vendor_id, &ids[..1]).await.unwrap().is_empty(),
        "another vendor's"
    );
}

/// A kept event's payload is deflated: a 1.5 KiB order, two write units as published, is kept in
/// one. An event kept before that (its payload as a string) still reads, by id and by time.
#[tokio::test]
async fn kept_payloads_are_deflated_into_one_write_unit_and_the_old_layout_still_reads() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let store = store().await;
    let v = new_vendor(&store).await;
    let vendor_id = v.vendor.vendor_id.clone();
    let payload = tests::fixture("ventiapp/order.json");
    assert!(payload.len() > 1400, "{}", payload.len());
    let t = tests::deliveries::now() - 100;
    let event = StoredEvent {
        event_id: unique("evt"),
        vendor_id: vendor_id.clone(),
        event_type: EventType::NewOrder,
        payload: payload.clone(),
        published_at: t,
        in_timeline: false,
    };
    store.store_events(std::slice::from_ref(&event)).await.unwrap();
    let db = tests::dynamo().await;
    let table = tests::stack_var("TABLE_NAME");
    let raw = db
        .get_item()
        .table_name(&table)
        .key("pk", AttributeValue::S(format!("EVT#{vendor_id}#{}", event.event_id)))
        .key("sk", AttributeValue::S("#".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(raw.contains_key("deflated") && !raw.contains_key("payload") && !raw.contains_key("timeline"));
    assert!(raw.values().all(|v| v.is_s() || v.is_n() || v.is_b()), "strings, numbers and bytes: {raw:?}");
    let size = shared::store::item_bytes(&raw);
    assert!(size <= 1024, "one write unit: {size} bytes");
    assert_eq!(shared::store::kept_event_write_units(&event).unwrap(), 1, "as the cost table counts it");
    let indexed = StoredEvent { in_timeline: true, ..event.clone() };
    assert_eq!(shared::store::kept_event_write_units(&indexed).unwrap(), 2, "and its index key");
    assert_eq!(store.get_event(&vendor_id, &event.event_id).await.unwrap(), Some(event));

    // As events were kept before: the payload a string, every event in the timeline.
    let old_id = unique("evt");
    db.put_item()
        .table_name(&table)
        .item("pk", AttributeValue::S(format!("EVT#{vendor_id}#{old_id}")))
        .item("sk", AttributeValue::S("#".into()))
        .item("timeline", AttributeValue::S(format!("EVTS#{vendor_id}#new_order")))
        .item("eventId", AttributeValue::S(old_id.clone()))
        .item("eventType", AttributeValue::S("new_order".into()))
        .item("payload", AttributeValue::S(r#"{"orderNo":"old"}"#.into()))
        .item("publishedAt", AttributeValue::N((t + 1).to_string()))
        .item("expiresAt", AttributeValue::N((t + 30 * 86_400).to_string()))
        .send()
        .await
        .unwrap();
    let old = store.get_event(&vendor_id, &old_id).await.unwrap().unwrap();
    assert_eq!((old.payload.as_str(), old.published_at), (r#"{"orderNo":"old"}"#, t + 1));
    let by_time = store.events_between(&vendor_id, EventType::NewOrder, t, t + 10, 10).await.unwrap();
    assert_eq!(by_time, [old]);
}

/// Portal sessions: kept under their id's hash until they expire, gone once deleted; failed
/// sign-ins counted in a window the first failure opens, and counted afresh once it is over.
#[tokio::test]
async fn portal_sessions_expire_and_end_and_sign_in_failures_count_in_their_window() {
    use shared::store::{PortalSession, SessionStore, SignedInWith};
    let store = store().await;
    let vendor = new_vendor(&store).await.vendor;
    let now = now();
    let (live, old) = (unique("session"), unique("session"));
    let session = PortalSession {
        vendor: vendor.clone(),
        signed_in_with: SignedInWith::Password,
        token_hash: None,
        csrf: unique("csrf"),
        expires_at: now + 3600,
    };
    store.put_session(&live, &session).await.unwrap();
    store.put_session(&old, &PortalSession { expires_at: now - 1, ..session.clone() }).await.unwrap();
    assert!(store.get_session(&live, now).await.unwrap() == Some(session.clone()));
    assert!(store.get_session(&old, now).await.unwrap().is_none(), "expired, though its item is still there");
    assert!(store.get_session(&live, now + 3600).await.unwrap().is_none(), "at its expiry");
    assert!(store.put_session(&live, &session).await.is_err(), "an id is never taken twice");
    store.delete_session(&live).await.unwrap();
    assert!(store.get_session(&live, now).await.unwrap().is_none(), "signed out");

    let key = unique("signin");
    assert_eq!(store.sign_in_failures(&key, now).await.unwrap(), (0, now));
    for i in 0..3 {
        store.count_sign_in_failure(&key, now + i, 900).await.unwrap();
    }
    assert_eq!(store.sign_in_failures(&key, now + 10).await.unwrap(), (3, now + 900), "one window");
    assert_eq!(store.sign_in_failures(&key, now + 900).await.unwrap(), (0, now + 900), "over");
    store.count_sign_in_failure(&key, now + 901, 900).await.unwrap();
    assert_eq!(store.sign_in_failures(&key, now + 902).await.unwrap(), (1, now + 1801), "a new window");
}
