//! Publish and dispatch write CloudWatch Embedded Metric Format lines that CloudWatch can read:
//! every metric declared has a value, every dimension is present.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tests::{fixture, new_vendor, receiver::Receiver, stack_var, store, Api};

fn emf_lines() -> Vec<Value> {
    let log = std::fs::read_to_string(format!("{}/watch.log", stack_var("STACK_DIR"))).unwrap_or_default();
    log.lines().filter(|l| l.contains("\"_aws\"")).filter_map(|l| serde_json::from_str(l).ok()).collect()
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
