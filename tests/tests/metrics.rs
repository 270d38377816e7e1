//! Publish and dispatch write CloudWatch Embedded Metric Format lines that CloudWatch can read:
//! every metric declared has a value, every dimension is present. And their log lines tell an
//! event's path by its id: one line for a request's events, one for a batch's deliveries.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tests::{fixture, new_vendor, receiver::Receiver, stack_var, store, Api};

/// The functions' JSON log lines so far.
fn log_lines() -> Vec<Value> {
    let log = std::fs::read_to_string(format!("{}/watch.log", stack_var("STACK_DIR"))).unwrap_or_default();
    log.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn emf_lines() -> Vec<Value> {
    log_lines().into_iter().filter(|l| l.get("_aws").is_some()).collect()
}

#[tokio::test]
async fn metric_lines_parse_as_embedded_metric_format() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::ok().await;
    let body = json!({"webhookType": "new_order", "url": receiver.url});
    assert_eq!(api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.status, 201);
    let event = format!(
        r#"{{"vendorId": "{}", "type": "new_order", "payload": {}}}"#,
        v.vendor.vendor_id,
        fixture("ecomnow/new-order.json").trim_end()
    );
    let a = api
        .send(Method::POST, "/events", &[("Content-Type", "application/json")], Some(event.into_bytes()))
        .await;
    assert_eq!(a.status, 202);
    assert_eq!(receiver.wait_for(1, Duration::from_secs(30)).await.len(), 1);

    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = emf_lines();
        let has = |f: &str, m: &str| {
            lines.iter().any(|l| l["Function"] == f && l[m].as_u64().is_some_and(|n| n > 0))
        };
        if has("dispatch", "Delivered") && has("publish-event", "Published") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(lines.iter().any(|l| l["Function"] == "dispatch" && l["Delivered"].as_u64() > Some(0)));
    assert!(lines.iter().any(|l| l["Function"] == "publish-event" && l["FannedOut"].as_u64() > Some(0)));
    for line in &lines {
        let aws = &line["_aws"];
        assert!(aws["Timestamp"].as_u64().is_some(), "{line}");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics");
        for d in directives {
            assert_eq!(d["Namespace"], "OrderWebhooks");
            for dims in d["Dimensions"].as_array().unwrap() {
                for dim in dims.as_array().unwrap() {
                    assert!(line[dim.as_str().unwrap()].is_string(), "dimension {dim} present: {line}");
                }
            }
            for m in d["Metrics"].as_array().unwrap() {
                let name = m["Name"].as_str().unwrap();
                let value = &line[name];
                assert!(
                    value.is_number() || value.as_array().is_some_and(|a| a.iter().all(Value::is_number)),
                    "{name}: {line}"
                );
                assert!(["Count", "Milliseconds"].contains(&m["Unit"].as_str().unwrap()));
            }
        }
    }
}

/// The item of a listing line's field (`a/b/c d/e/f`) that is `id`'s.
fn item_of<'a>(list: &'a str, id: &str) -> Option<&'a str> {
    list.split(' ').find(|e| e.strip_prefix(id).is_some_and(|rest| rest.starts_with('/')))
}

/// The lines whose `fields.message` is `message` and whose field `list` names `id`.
fn lines_naming(lines: &[Value], message: &str, list: &str, id: &str) -> Vec<Value> {
    let names = |l: &&Value| l["fields"][list].as_str().is_some_and(|s| item_of(s, id).is_some());
    lines.iter().filter(|l| l["fields"]["message"] == message).filter(names).cloned().collect()
}

#[tokio::test]
async fn a_requests_events_and_a_batchs_deliveries_are_logged_one_line_each_by_id() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let receiver = Receiver::ok().await;
    let body = json!({"webhookType": "new_order", "url": receiver.url});
    let created = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await;
    assert_eq!(created.status, 201);
    let webhook_id = created.json()["webhookId"].as_u64().unwrap();
    let payload: Value = serde_json::from_str(&fixture("ecomnow/new-order.json")).unwrap();
    let events: Vec<Value> = (0..3)
        .map(|_| json!({"vendorId": v.vendor.vendor_id, "type": "new_order", "payload": payload}))
        .collect();
    let bytes = serde_json::to_vec(&json!({ "events": events })).unwrap();
    let a =
        api.send(Method::POST, "/events/batch", &[("Content-Type", "application/json")], Some(bytes)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let ids: Vec<String> = a.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["eventId"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3, "{}", a.text);
    assert_eq!(receiver.wait_for(3, Duration::from_secs(30)).await.len(), 3);

    // dispatch writes its batch's line once its deliveries are done: wait for it.
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = log_lines();
        if ids.iter().all(|id| !lines_naming(&lines, "delivered", "deliveries", id).is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The request's three events in one line, each with its type, vendor and deliveries.
    let published = lines_naming(&lines, "published", "events", &ids[0]);
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0]["fields"]["count"], 3);
    let listed = published[0]["fields"]["events"].as_str().unwrap();
    for id in &ids {
        assert!(listed.contains(&format!("{id}/new_order/{}/1", v.vendor.vendor_id)), "{listed}");
    }
    // Each delivery in its batch's line, with its webhook, attempt and status; every line
    // carries its invocation's trace.
    for id in &ids {
        let delivered = lines_naming(&lines, "delivered", "deliveries", id);
        assert_eq!(delivered.len(), 1, "{id}: {delivered:?}");
        let entry = item_of(delivered[0]["fields"]["deliveries"].as_str().unwrap(), id);
        let parts: Vec<&str> = entry.unwrap().split('/').collect();
        assert_eq!(parts[1..4], [webhook_id.to_string().as_str(), "1", "200"], "{entry:?}");
    }
    for line in published.iter().chain(&lines_naming(&lines, "delivered", "deliveries", &ids[0])) {
        let spans = line["spans"].as_array().unwrap();
        assert!(
            spans.iter().any(|s| s["xrayTraceId"].as_str().is_some_and(|t| t.starts_with("Root="))),
            "{line}"
        );
    }
}
