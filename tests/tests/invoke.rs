//! Every function through `cargo lambda invoke --data-file events/<function>.json`.
use std::process::Command;

use serde_json::Value;
use shared::store::{Conflict, NotifyStore, StoreError, VendorStore, WebhookStore};
use tests::{repo_root, stack_var, store};

/// Invokes a function with a sample event; returns its answer as JSON.
fn invoke_raw(function: &str, event: &str) -> Value {
    let api = stack_var("WEBHOOKS_API_URL");
    let port = api.rsplit(':').next().unwrap().to_owned();
    let out = Command::new("cargo")
        .current_dir(repo_root())
        .args([
            "lambda",
            "invoke",
            function,
            "--data-file",
            event,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port,
        ])
        .output()
        .expect("cargo lambda is on PATH (make test puts .venv/bin there)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "invoke {function} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Invokes an HTTP function with a sample event; returns (statusCode, body as JSON).
fn invoke(function: &str, event: &str) -> (u64, Value) {
    let response = invoke_raw(function, event);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(response["headers"]["content-type"], "application/json");
    (response["statusCode"].as_u64().unwrap(), body)
}

#[tokio::test]
async fn each_function_answers_its_sample_event() {
    let store = store().await;
    let demo = store
        .vendor_login(&std::env::var("DEMO_USERNAME").unwrap_or_else(|_| "demo".into()))
        .await
        .unwrap()
        .expect("the stack created the demo vendor")
        .vendor;
    // Start from the state the stack starts in: demo webhook 1000, no webhook of the create events.
    for w in store.list_webhooks(&demo.vendor_id).await.unwrap() {
        let samples = ["https://example.com/webhooks/invoke-example", "https://whatever.hostname.com/"];
        if samples.contains(&w.url.as_str()) || w.id == devstack::DEMO_WEBHOOK_ID {
            store.delete_webhook(&w).await.unwrap();
        }
    }
    devstack::ensure_demo_webhook(&store, &demo).await.unwrap();
    devstack::ensure_demo_token(&store, &demo).await.unwrap();

    let (status, body) = invoke("list-webhooks", "events/list-webhooks.json");
    assert_eq!(status, 200, "{body}");
    assert!(body["webhooks"].as_array().unwrap().iter().any(|w| w["webhookId"] == 1000), "{body}");

    let (status, body) = invoke("create-webhook", "events/create-webhook.json");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["url"], "https://example.com/webhooks/invoke-example");
    let (status, body) = invoke("create-webhook", "events/create-webhook.json");
    assert_eq!((status, &body["error"]["code"]), (409, &Value::from("duplicate")), "{body}");

    let (status, body) = invoke("get-webhook", "events/get-webhook.json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["webhookId"], 1000);
    let (status, body) = invoke("list-deliveries", "events/list-deliveries.json");
    assert_eq!(status, 200, "{body}");
    assert!(body["deliveries"].is_array(), "{body}");

    let (status, body) = invoke("update-webhook", "events/update-webhook.json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["webhookType"], "order_cancellation");
    let stored = store.get_webhook(&demo.vendor_id, 1000).await.unwrap().unwrap();
    assert_eq!(stored.event_type.as_str(), "order_cancellation");

    let (status, body) = invoke("delete-webhook", "events/delete-webhook.json");
    assert_eq!(status, 200, "{body}");
    assert!(store.get_webhook(&demo.vendor_id, 1000).await.unwrap().is_none());
    let (status, body) = invoke("get-webhook", "events/get-webhook.json");
    assert_eq!(status, 404, "{body}");

    // The Ventiapp routes, with the demo token.
    devstack::ensure_demo_webhook(&store, &demo).await.unwrap();
    let (status, body) = invoke("list-webhooks", "events/ventiapp-list.json");
    assert_eq!(status, 200, "{body}");
    assert!(body["webhooks"].as_array().unwrap().iter().any(|w| w["id"] == 1000), "{body}");
    let (status, body) = invoke("create-webhook", "events/ventiapp-create.json");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["webhook"]["message"], "Webhook created");
    let (status, body) = invoke("delete-webhook", "events/ventiapp-delete.json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["webhook"]["id"], 1000);
    assert!(store.get_webhook(&demo.vendor_id, 1000).await.unwrap().is_none());

    // The publishing and delivery samples: the demo order goes to webhook 1000, whose URL
    // (example.com) this closed network cannot reach, so dispatch queues its second attempt; the
    // batch's other message names a webhook that does not exist and is dropped. Neither is left
    // for SQS to retry.
    devstack::ensure_demo_webhook(&store, &demo).await.unwrap();
    let (status, body) = invoke("publish-event", "events/publish-event.json");
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["eventId"], "demo-order-1000-4612");
    let (status, body) = invoke("publish-event", "events/publish-events.json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["eventId"], "demo-order-1000-4613", "{body}");
    assert!(body["results"][0]["deliveries"].as_u64() >= Some(1), "webhook 1000 at least: {body}");
    assert_eq!(body["results"][1]["error"]["field"], "type", "{body}");
    let batch = invoke_raw("dispatch", "events/dispatch-batch.json");
    assert_eq!(batch, serde_json::json!({"batchItemFailures": []}));
    // The emails queue's sample: the demo vendor asked for no email, so the order and failure
    // emails are let go; the message of an unknown version is kept for the dead-letter queue.
    let batch = invoke_raw("send-email", "events/send-email-batch.json");
    assert_eq!(
        batch,
        serde_json::json!({"batchItemFailures": [{"itemIdentifier": "6a4b2d3f-2e3c-4f60-9bac-1d2e3f4a5b62"}]})
    );

    // What vendors do when deliveries fail: the published sample event again, a test event
    // (example.com is out of reach here: the answer says so), a new secret, enabling.
    let (status, body) = invoke("redeliver-event", "events/redeliver-event.json");
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"webhookId": 1000, "eventId": "demo-order-1000-4612", "status": "queued"})
    );
    let (status, body) = invoke("test-webhook", "events/test-webhook.json");
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["webhookId"], &body["delivered"]), (&Value::from(1000), &Value::from(false)), "{body}");
    assert!(body["eventId"].as_str().unwrap().starts_with("test_evt_"), "{body}");
    let before = store.get_webhook(&demo.vendor_id, 1000).await.unwrap().unwrap().secret;
    let (status, body) = invoke("rotate-secret", "events/rotate-secret.json");
    assert_eq!(status, 200, "{body}");
    let after = store.get_webhook(&demo.vendor_id, 1000).await.unwrap().unwrap();
    assert_eq!(body["secret"].as_str(), Some(after.secret.as_str()));
    assert_eq!(after.previous_secrets.first().map(|(s, _)| s.clone()), Some(before));
    let (status, body) = invoke("enable-webhook", "events/enable-webhook.json");
    assert_eq!((status, &body["status"]), (200, &Value::from("active")), "{body}");
    let (status, body) = invoke("update-notifications", "events/update-notifications.json");
    assert_eq!((status, &body["email"]), (200, &Value::from("demo@vendors.example")), "{body}");
    let (status, body) = invoke("get-notifications", "events/get-notifications.json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["notify"], serde_json::json!(["new_order", "order_cancellation", "failures"]), "{body}");
    // SES reports that address bounced: it is refused from now on.
    let answer = invoke_raw("email-events", "events/email-bounce.json");
    assert_eq!(answer, serde_json::json!({"refused": 1}));
    let (status, body) = invoke("get-notifications", "events/get-notifications.json");
    assert_eq!((status, &body["emailStatus"]), (200, &Value::from("refused")), "{body}");
    assert!(body["refusedReason"].as_str().unwrap().contains("550 5.1.1 user unknown"), "{body}");
    store.put_notifications(&demo.vendor_id, &Default::default()).await.unwrap();

    // Leave the demo data as the stack made it, for whoever uses the stack next. The dispatcher
    // may still be recording the test event's failure on webhook 1000 (a new version of it): a
    // delete that meets a newer version reads the webhook again.
    for _ in 0..20 {
        let mut concurrent = false;
        for w in store.list_webhooks(&demo.vendor_id).await.unwrap() {
            if w.url == "https://whatever.hostname.com/" || w.id == devstack::DEMO_WEBHOOK_ID {
                match store.delete_webhook(&w).await {
                    Err(StoreError::Conflict(Conflict::Concurrent)) => concurrent = true,
                    other => other.unwrap(),
                }
            }
        }
        if !concurrent {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let left = store.list_webhooks(&demo.vendor_id).await.unwrap();
    assert!(left.iter().all(|w| w.id != devstack::DEMO_WEBHOOK_ID), "webhook 1000 could not be deleted");
    devstack::ensure_demo_webhook(&store, &demo).await.unwrap();
}

/// A body that is not UTF-8 reaches a function as API Gateway sends it, base64-encoded (the local
/// `cargo lambda watch` gateway refuses such bodies itself, with a 500, before any function runs).
#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_400_on_every_route_that_reads_one() {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    let store = store().await;
    let demo = store.vendor_login("demo").await.unwrap().expect("the demo vendor").vendor;
    let bodies: [&[u8]; 3] =
        [b"\xff\xfe{}", b"{\"webhookType\": \"new_order\", \"url\": \"https://a.example/\xc3\"}", b"\x80"];
    for (function, sample) in [
        ("create-webhook", "events/create-webhook.json"),
        ("update-webhook", "events/update-webhook.json"),
        ("create-webhook", "events/ventiapp-create.json"),
        ("delete-webhook", "events/ventiapp-delete.json"),
        ("redeliver-event", "events/redeliver-event.json"),
        ("publish-event", "events/publish-event.json"),
        ("update-notifications", "events/update-notifications.json"),
    ] {
        for body in bodies {
            let mut event: Value =
                serde_json::from_str(&std::fs::read_to_string(repo_root().join(sample)).unwrap()).unwrap();
            event["body"] = STANDARD.encode(body).into();
            event["isBase64Encoded"] = true.into();
            let file = std::env::temp_dir().join(format!(
                "not-utf8-{}-{}.json",
                std::process::id(),
                tests::unique("e")
            ));
            std::fs::write(&file, event.to_string()).unwrap();
            let (status, answer) = invoke(function, file.to_str().unwrap());
            std::fs::remove_file(&file).ok();
            assert_eq!(
                (status, &answer["error"]["code"]),
                (400, &Value::from("invalid_json")),
                "{sample}: {answer}"
            );
        }
    }
    let webhooks = store.list_webhooks(&demo.vendor_id).await.unwrap();
    assert!(webhooks.iter().all(|w| !w.url.starts_with("https://a.example")), "nothing was created");
}
