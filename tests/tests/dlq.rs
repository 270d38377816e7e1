//! The dead-letter queue from the operator's side: a receiver down for every attempt parks its
//! deliveries; once it is back, `webhooks-admin dlq replay` delivers each parked one once.
use std::{process::Command, time::Duration};

use reqwest::Method;
use serde_json::{json, Value};
use tests::{
    fixture, new_vendor,
    receiver::{Receiver, Reply},
    store, target_bin, Api,
};

fn admin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(target_bin("webhooks-admin")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test]
async fn parked_deliveries_are_listed_and_replayed_once_the_receiver_is_back() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    // Down for all eight attempts of each of two events, then back.
    let receiver = Receiver::start(vec![Reply::Status(503); 16], Reply::Status(200)).await;
    let body = json!({"webhookType": "new_order", "url": receiver.url});
    let created = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.json();
    let webhook = created["webhookId"].as_u64().unwrap().to_string();
    let payload = fixture("ecomnow/new-order.json");
    let mut events = Vec::new();
    for _ in 0..2 {
        let e = format!(
            r#"{{"vendorId": "{}", "type": "new_order", "payload": {}}}"#,
            v.vendor.vendor_id,
            payload.trim_end()
        );
        let a = api
            .send(Method::POST, "/events", &[("Content-Type", "application/json")], Some(e.into_bytes()))
            .await;
        events.push(a.json()["eventId"].as_str().unwrap().to_owned());
    }
    assert_eq!(receiver.wait_for(16, Duration::from_secs(90)).await.len(), 16, "eight attempts each");

    // Both reach the DLQ; the operator sees them, with their attempts and last error.
    let mut listing = String::new();
    for _ in 0..60 {
        let (ok, out, err) = admin(&["dlq", "list", "--webhook", &webhook]);
        assert!(ok, "{err}");
        listing = out;
        if events.iter().all(|e| listing.contains(e.as_str())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(events.iter().all(|e| listing.contains(e.as_str())), "{listing}");
    assert!(listing.contains("rejected 503"), "{listing}");
    assert!(listing.contains(&v.vendor.vendor_id));

    // Replay: each parked delivery is delivered once, and the DLQ no longer holds them.
    let (ok, out, err) = admin(&["dlq", "replay", "--webhook", &webhook]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"replayed": 2}));
    let got = receiver.wait_for(18, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 18);
    let replayed: Vec<_> = got[16..].iter().map(|r| r.header("webhook-id").unwrap().to_owned()).collect();
    let mut expected = events.clone();
    expected.sort();
    let mut replayed_sorted = replayed.clone();
    replayed_sorted.sort();
    assert_eq!(replayed_sorted, expected, "each event once, with its own webhook-id");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 18, "nothing twice");
    let (_, out, _) = admin(&["dlq", "list", "--webhook", &webhook]);
    assert!(events.iter().all(|e| !out.contains(e.as_str())), "{out}");
    let (ok, out, _) = admin(&["dlq", "replay", "--webhook", &webhook]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"replayed": 0}));

    // Purging asks first: a wrong answer purges nothing.
    let mut child = Command::new(target_bin("webhooks-admin"))
        .args(["dlq", "purge"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"no\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not purged"));
}

/// A queue pair of this test's own in the emulator: (deliveries URL, dead-letter URL).
async fn own_queues(sqs: &aws_sdk_sqs::Client) -> (String, String) {
    let name = tests::unique("replay");
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap();
    let deliveries = sqs.create_queue().queue_name(name).send().await.unwrap();
    (deliveries.queue_url.unwrap(), dlq.queue_url.unwrap())
}

/// Every message body in a queue, read until it shows nothing more (and deleted).
async fn drain(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    loop {
        let out = sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for m in messages {
            bodies.push(m.body.unwrap());
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn an_interrupted_replay_loses_nothing_and_the_next_one_finishes_it() {
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    let (deliveries, dead_letters) = own_queues(&sqs).await;
    let payload: Value = serde_json::from_str(&fixture("ecomnow/new-order.json")).unwrap();
    let ids: Vec<String> = (0..150).map(|i| format!("evt_interrupted-{i:03}")).collect();
    for chunk in ids.chunks(10) {
        let mut batch = sqs.send_message_batch().queue_url(&dead_letters);
        for (i, id) in chunk.iter().enumerate() {
            let body = json!({"v": 1, "eventId": id, "eventType": "new_order", "vendorId": "ven_x",
                "webhookId": 7, "publishedAt": 1, "payload": payload});
            batch = batch.entries(
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body.to_string())
                    .build()
                    .unwrap(),
            );
        }
        batch.send().await.unwrap();
    }
    let replay = || {
        Command::new(target_bin("webhooks-admin"))
            .args(["dlq", "--dlq-url", &dead_letters, "--queue-url", &deliveries, "replay"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    // Killed (SIGKILL: no clean-up) as soon as it reports progress.
    let mut child = replay();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    use std::io::Read;
    while !String::from_utf8_lossy(&seen).contains("replayed 2") {
        let n = stderr.read(&mut buf).unwrap();
        assert!(n > 0, "replay ended before it was interrupted: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not finished");
    let mut delivered = drain(&sqs, &deliveries).await;
    assert!(delivered.len() < ids.len(), "interrupted part way: {} moved", delivered.len());

    // What it held comes back after the hold; the next replay moves the rest.
    tokio::time::sleep(Duration::from_secs(31)).await;
    let out = replay().wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    delivered.extend(drain(&sqs, &deliveries).await);
    assert!(drain(&sqs, &dead_letters).await.is_empty(), "the dead-letter queue is empty");
    let mut got: Vec<String> = delivered
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap()["eventId"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let before = got.len();
    got.dedup();
    assert_eq!(got, ids, "every parked delivery is back, body intact");
    assert!(before - got.len() <= 1, "at most the one in flight at the kill twice: {}", before - got.len());
    for b in &delivered {
        let m: shared::delivery::DeliveryMessage = serde_json::from_str(b).unwrap();
        assert_eq!(m.payload.get(), payload.to_string());
    }
}

/// What SQS parked from the grouped lane (a message that kept failing without an attempt):
/// `dlq --grouped` lists it, and its replay goes through the deliveries queue back to its
/// webhook's group, delivered once at a fresh first attempt.
#[tokio::test]
async fn the_grouped_lanes_parked_deliveries_are_replayed_to_their_group() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::ok().await;
    let body = json!({"webhookType": "new_order", "url": receiver.url});
    let created = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.json();
    let id = created["webhookId"].as_u64().unwrap();
    let event_id = tests::unique("grouped");
    let parked = shared::delivery::DeliveryMessage {
        attempt: 3,
        ..shared::delivery::DeliveryMessage::first(
            event_id.clone(),
            shared::domain::EventType::NewOrder,
            v.vendor.vendor_id.clone(),
            id,
            1,
            serde_json::value::RawValue::from_string(fixture("ecomnow/new-order.json").trim_end().into())
                .unwrap(),
        )
    };
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    sqs.send_message()
        .queue_url(tests::stack_var("GROUPED_DEAD_LETTER_QUEUE_URL"))
        .message_body(parked.to_body())
        .message_group_id(id.to_string())
        .message_deduplication_id(&event_id)
        .send()
        .await
        .unwrap();

    let webhook = id.to_string();
    let (ok, out, err) = admin(&["dlq", "--grouped", "list", "--webhook", &webhook]);
    assert!(ok && out.contains(&event_id), "{out}{err}");
    let (ok, out, err) = admin(&["dlq", "--grouped", "replay", "--webhook", &webhook]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"replayed": 1}));
    let got = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), Some(event_id.as_str()));
    let logged = tests::attempts_of(&store, id, 1).await;
    assert_eq!((logged.len(), logged[0].attempt), (1, 1), "a fresh first attempt");
    let (_, out, _) = admin(&["dlq", "--grouped", "list", "--webhook", &webhook]);
    assert!(!out.contains(&event_id), "{out}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 1, "once");
}
