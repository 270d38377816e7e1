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
