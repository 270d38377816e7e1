//! Email notifications end to end: settings through `PUT /basic/notifications`, events through
//! `POST /events`, and what the emulator's SES sent, read back from its outbox
//! (`/moto-api/ses/outbox.json`, scripts/moto_server.py). The test stack's sender is `$EMAIL_SENDER`; it retries a second apart
//! (eight attempts) and disables webhooks after 30 s of failures.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use shared::{
    domain::EventType,
    mail::{MailError, Mailer, SesMailer},
    notify,
    store::{AttemptLog, NotifyStore},
};
use tests::{
    deliveries::{ecomnow_webhook, event, payload, publish, WAIT},
    new_vendor,
    receiver::{Receiver, Reply},
    stack_var, store, unique, Api, TestVendor,
};

/// An email as the emulator's SES outbox keeps it (the HTML part of the two, as moto does).
#[derive(Debug, Clone)]
struct Sent {
    source: String,
    subject: String,
    body: String,
}

/// Every email sent to `to` so far.
async fn outbox(to: &str) -> Vec<Sent> {
    let url = format!("{}/moto-api/ses/outbox.json", stack_var("AWS_ENDPOINT_URL"));
    let messages: Vec<Value> = reqwest::get(url).await.unwrap().json().await.unwrap();
    messages
        .iter()
        .filter(|m| m["destinations"]["ToAddresses"].as_array().is_some_and(|a| a.iter().any(|d| d == to)))
        .map(|m| Sent {
            source: m["source"].as_str().unwrap_or_default().to_owned(),
            subject: m["subject"].as_str().unwrap_or_default().to_owned(),
            body: m["body"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

/// Waits for `n` emails to `to` (fails after `WAIT`), then a while longer, and returns every email
/// sent to `to`: more than `n` would be a duplicate.
async fn wait_for_mail(to: &str, n: usize) -> Vec<Sent> {
    let start = Instant::now();
    while outbox(to).await.len() < n {
        assert!(start.elapsed() < WAIT, "{n} email(s) to {to} expected, got {:?}", outbox(to).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    outbox(to).await
}

fn address() -> String {
    format!("{}@vendors.example", unique("v"))
}

async fn set_notifications(api: &Api, v: &TestVendor, body: Value) -> tests::Answer {
    api.vendor(v, Method::PUT, "/basic/notifications", Some(&body)).await
}

#[tokio::test]
async fn a_new_order_is_emailed_once_to_the_vendor_who_asked() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let to = address();
    let a = set_notifications(&api, &v, json!({"email": to, "notify": ["new_order"]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let view = a.json();
    assert_eq!(view["email"], to.as_str());
    assert_eq!(view["notify"], json!(["new_order"]));
    assert_eq!(view["emailStatus"], "active");
    let shown = api.vendor(&v, Method::GET, "/basic/notifications", None).await;
    assert_eq!((shown.status.as_u16(), shown.json()["email"].clone()), (200, json!(to)));

    // Published, published again under the same id, and once more under another: one order.
    let order = payload("ecomnow/new-order.json");
    let key = unique("evt");
    for id in [Some(key.as_str()), Some(key.as_str()), None] {
        assert_eq!(publish(&api, &event(&v, id, "new_order", &order)).await.status, 202);
    }
    // A cancellation, which this vendor did not ask to hear of.
    let cancellation = order.replace("\"new_order\"", "\"order_cancellation\"");
    assert_eq!(publish(&api, &event(&v, None, "order_cancellation", &cancellation)).await.status, 202);

    let sent = wait_for_mail(&to, 1).await;
    assert_eq!(sent.len(), 1, "one email for one order: {sent:?}");
    let m = &sent[0];
    assert_eq!(m.source, stack_var("EMAIL_SENDER"));
    assert_eq!(m.subject, "New order 1000-4612");
    for part in
        ["1000-4612", "NHCBDFSJ&amp;P20027-1", "NutraHemp CBD Full Spectrum Joint and Pain Balm", "60.00"]
    {
        assert!(m.body.contains(part), "{part} missing from {}", m.body);
    }
}

#[tokio::test]
async fn a_cancellation_is_emailed_and_nothing_goes_to_vendors_who_did_not_opt_in() {
    let (api, store) = (Api::new(), store().await);
    let (asked, other, silent) =
        (new_vendor(&store).await, new_vendor(&store).await, new_vendor(&store).await);
    let (to_asked, to_other) = (address(), address());
    let a =
        set_notifications(&api, &asked, json!({"email": to_asked, "notify": ["order_cancellation"]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // An address, but only failures asked for.
    let a = set_notifications(&api, &other, json!({"email": to_other, "notify": ["failures"]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    // The silent vendor set nothing; a receiver shows when its event has gone through.
    let receiver = Receiver::ok().await;
    ecomnow_webhook(&api, &silent, "order_cancellation", &receiver.url, None).await;

    let order = payload("ecomnow/new-order.json").replace("\"new_order\"", "\"order_cancellation\"");
    for v in [&asked, &other, &silent] {
        assert_eq!(publish(&api, &event(v, None, "order_cancellation", &order)).await.status, 202);
    }
    receiver.wait_for(1, WAIT).await;
    let sent = wait_for_mail(&to_asked, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].subject, "Order 1000-4612 cancelled");
    assert!(outbox(&to_other).await.is_empty(), "the vendor who asked only for failures got an email");
}

#[tokio::test]
async fn a_failing_webhook_tells_its_vendor_once_not_once_per_delivery() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let to = address();
    assert_eq!(set_notifications(&api, &v, json!({"email": to, "notify": ["failures"]})).await.status, 200);
    let receiver = Receiver::start(vec![], Reply::Status(500)).await;
    let (id, _) = ecomnow_webhook(&api, &v, "new_order", &receiver.url, None).await;

    // Three deliveries, each failing all eight attempts into the dead-letter queue: the vendor
    // hears once (after the fourth attempt), not at every fourth attempt nor at the DLQ.
    let order = payload("ecomnow/new-order.json");
    for _ in 0..3 {
        assert_eq!(publish(&api, &event(&v, None, "new_order", &order)).await.status, 202);
    }
    let start = Instant::now();
    while store.list_attempts(id, 100).await.unwrap().len() < 24 {
        assert!(start.elapsed() < Duration::from_secs(60), "the 24 attempts did not all happen");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let sent = wait_for_mail(&to, 1).await;
    assert_eq!(sent.len(), 1, "one email per webhook within the hour: {sent:?}");
    let m = &sent[0];
    assert_eq!(m.subject, format!("Webhook {id} is failing"));
    assert!(m.body.contains(&receiver.url), "{}", m.body);
    assert!(m.body.contains("the endpoint answered HTTP 500"), "{}", m.body);
    assert!(m.body.contains(&format!("/basic/webhooks/{id}/deliveries")), "what to do: {}", m.body);
}

#[tokio::test]
async fn a_webhook_disabled_by_410_gone_tells_its_vendor() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let to = address();
    let body = json!({"email": to, "notify": ["failures", "new_order"]});
    assert_eq!(set_notifications(&api, &v, body).await.status, 200);
    let receiver = Receiver::start(vec![], Reply::Status(410)).await;
    let (id, _) = ecomnow_webhook(&api, &v, "order_cancellation", &receiver.url, None).await;
    let order = payload("ecomnow/new-order.json").replace("\"new_order\"", "\"order_cancellation\"");
    assert_eq!(publish(&api, &event(&v, None, "order_cancellation", &order)).await.status, 202);

    let sent = wait_for_mail(&to, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].subject, format!("Webhook {id} has been disabled"));
    assert!(sent[0].body.contains("410 Gone") && sent[0].body.contains("/enable"), "{}", sent[0].body);
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_clear_error_and_change_nothing() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let to = address();
    assert_eq!(set_notifications(&api, &v, json!({"email": to, "notify": ["new_order"]})).await.status, 200);
    let before = api.vendor(&v, Method::GET, "/basic/notifications", None).await.json();

    for (body, status, field) in [
        (json!({"email": "not-an-address", "notify": []}), 400, "email"),
        (json!({"email": "v@localhost", "notify": []}), 400, "email"),
        (json!({"email": "v@example.com\r\nBcc: x@example.com", "notify": []}), 400, "email"),
        (json!({"email": 5, "notify": []}), 400, "email"),
        (json!({"notify": ["new_order"]}), 400, "email"),
        (json!({"email": "v@example.com"}), 400, "notify"),
        (json!({"email": "v@example.com", "notify": ["spam"]}), 400, "notify"),
        (json!({"email": "v@example.com", "notify": "new_order"}), 400, "notify"),
        (json!({"email": null, "notify": ["failures"]}), 422, "notify"),
        (json!({"email": "v@example.com", "notify": [], "phone": "1"}), 400, "phone"),
    ] {
        let a = set_notifications(&api, &v, body.clone()).await;
        assert_eq!(a.status.as_u16(), status, "{body}: {}", a.text);
        assert_eq!(a.json()["error"]["field"], field, "{body}: {}", a.text);
    }
    assert_eq!(api.vendor(&v, Method::GET, "/basic/notifications", None).await.json(), before);

    // Removing the address (and so every notification) is a valid change.
    let a = set_notifications(&api, &v, json!({"email": null, "notify": []})).await;
    assert_eq!((a.status.as_u16(), a.json()["emailStatus"].clone()), (200, json!("none")));
}

#[tokio::test]
async fn an_unverified_sender_is_the_operators_error_not_a_refused_vendor_address() {
    // The emulator refuses any sender that is not a verified identity, as SES does; that is no
    // reason to stop emailing the vendor's address.
    let aws = shared::aws::sdk_config().await;
    let mailer = SesMailer::new(aws_sdk_sesv2::Client::new(&aws), "nobody@unverified.example");
    let mail = notify::order_mail(
        "ven_x",
        "v@vendors.example",
        EventType::NewOrder,
        &payload("ecomnow/new-order.json"),
    )
    .unwrap()
    .1;
    match mailer.send(&mail).await {
        Err(MailError::Misconfigured(why)) => assert!(why.contains("MessageRejected"), "{why}"),
        other => panic!("expected the operator's error, got {other:?}"),
    }
    let sender = SesMailer::new(aws_sdk_sesv2::Client::new(&aws), stack_var("EMAIL_SENDER"));
    assert!(sender.send(&mail).await.is_ok(), "the stack's sender is a verified identity");
}

#[tokio::test]
async fn a_refused_address_is_shown_to_the_vendor_until_it_sets_one_again() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let to = address();
    assert_eq!(set_notifications(&api, &v, json!({"email": to, "notify": ["new_order"]})).await.status, 200);
    // What dispatch records when SES refuses the address.
    store
        .refuse_email(&v.vendor.vendor_id, &to, 1_700_000_000, "MessageRejected: not verified")
        .await
        .unwrap();
    let shown = api.vendor(&v, Method::GET, "/basic/notifications", None).await.json();
    assert_eq!(shown["emailStatus"], "refused");
    assert_eq!(shown["refusedReason"], "MessageRejected: not verified");
    assert_eq!(shown["refusedAt"], "2023-11-14T22:13:20Z");

    // Nothing is sent to it meanwhile.
    let order = payload("ecomnow/new-order.json");
    assert_eq!(publish(&api, &event(&v, None, "new_order", &order)).await.status, 202);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(outbox(&to).await.is_empty());

    // Setting it again tries it again.
    let a = set_notifications(&api, &v, json!({"email": to, "notify": ["new_order"]})).await;
    assert_eq!(a.json()["emailStatus"], "active");
    let again = order.replace("1000-4612", "1000-4613");
    assert_eq!(publish(&api, &event(&v, None, "new_order", &again)).await.status, 202);
    assert_eq!(wait_for_mail(&to, 1).await[0].subject, "New order 1000-4613");
}

#[tokio::test]
async fn failure_emails_are_one_per_webhook_per_hour_and_each_kind_once_per_incident() {
    let store = store().await;
    let webhook = shared::ids::webhook_id();
    let (t0, incident) = (1_700_000_000, Some(1_699_999_990));
    let open = |kind: &'static str, incident: Option<i64>, at: i64| {
        let store = store.clone();
        async move { store.open_alert(webhook, kind, incident, at, notify::ALERT_INTERVAL_SECS).await.unwrap() }
    };
    assert!(open("failing", incident, t0).await, "the first is sent");
    assert!(!open("dead_lettered", incident, t0 + 10).await, "within the hour: held back");
    assert!(!open("disabled", incident, t0 + 3599).await, "still within the hour");
    assert!(open("dead_lettered", incident, t0 + 3600).await, "an hour on, another kind of the incident");
    assert!(!open("failing", incident, t0 + 9000).await, "told of that one already in this incident");
    assert!(open("failing", Some(t0 + 8000), t0 + 9000).await, "a new incident");
    // Two senders at once: one wins.
    let (a, b) = tokio::join!(open("disabled", None, t0 + 20000), open("disabled", None, t0 + 20000));
    assert!(a ^ b, "exactly one of two concurrent alerts is sent ({a}, {b})");
    // A send that failed is taken back, and the next attempt sends.
    store.cancel_alert(webhook, t0 + 20000).await.unwrap();
    assert!(open("disabled", None, t0 + 20001).await);
}

#[tokio::test]
async fn an_email_claim_lets_one_sender_through_and_a_dead_ones_lapses() {
    use shared::store::MailClaim::{Busy, Claimed, Settled};
    let store = store().await;
    let key = notify::order_mail_key(&unique("ven"), EventType::NewOrder, "1000-1");
    let t0 = 1_700_000_000;
    assert_eq!(store.claim_mail(&key, "a", t0, 30).await.unwrap(), Claimed);
    assert_eq!(store.claim_mail(&key, "b", t0 + 1, 30).await.unwrap(), Busy, "a is sending");
    // a died without settling: after the lease, b takes over; a's late settle changes nothing.
    assert_eq!(store.claim_mail(&key, "b", t0 + 31, 30).await.unwrap(), Claimed);
    store.settle_mail(&key, "a", false).await.unwrap();
    assert_eq!(store.claim_mail(&key, "c", t0 + 32, 30).await.unwrap(), Busy, "still b's");
    store.settle_mail(&key, "b", true).await.unwrap();
    assert_eq!(store.claim_mail(&key, "c", t0 + 10_000, 30).await.unwrap(), Settled, "sent: never again");

    // A send that failed releases the claim at once.
    let key = notify::order_mail_key(&unique("ven"), EventType::NewOrder, "1000-2");
    assert_eq!(store.claim_mail(&key, "a", t0, 30).await.unwrap(), Claimed);
    store.settle_mail(&key, "a", false).await.unwrap();
    assert_eq!(store.claim_mail(&key, "b", t0 + 1, 30).await.unwrap(), Claimed);
}

#[tokio::test]
async fn a_bounce_or_complaint_reported_later_refuses_the_address_it_was_sent_to() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (old, new) = (address(), address());
    assert_eq!(set_notifications(&api, &v, json!({"email": new, "notify": ["new_order"]})).await.status, 200);
    let sns = |ses: Value| -> aws_lambda_events::sns::SnsEvent {
        let mut event: Value = serde_json::from_str(
            &std::fs::read_to_string(tests::repo_root().join("events/email-bounce.json")).unwrap(),
        )
        .unwrap();
        event["Records"][0]["Sns"]["Message"] = ses.to_string().into();
        serde_json::from_value(event).unwrap()
    };
    let vendor = &v.vendor.vendor_id;
    // A bounce of the address the vendor had before: the new one is not refused for it.
    let bounce = |to: &str| {
        json!({"eventType": "Bounce", "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": to}]}, "mail": {"tags": {"vendor": [vendor]}}})
    };
    assert_eq!(shared::email_events::handle(&store, &sns(bounce(&old)), 1_700_000_000).await.unwrap(), 1);
    let shown = api.vendor(&v, Method::GET, "/basic/notifications", None).await.json();
    assert_eq!(shown["emailStatus"], "active", "{shown}");

    let complaint = json!({"eventType": "Complaint", "complaint": {"complainedRecipients": [{"emailAddress": new}],
        "complaintFeedbackType": "abuse"}, "mail": {"tags": {"vendor": [vendor]}}});
    assert_eq!(shared::email_events::handle(&store, &sns(complaint), 1_700_000_000).await.unwrap(), 1);
    let shown = api.vendor(&v, Method::GET, "/basic/notifications", None).await.json();
    assert_eq!(shown["emailStatus"], "refused", "{shown}");
    assert_eq!(shown["refusedReason"], "the recipient reported an email as unwanted (abuse)");
    // A transient bounce (a full mailbox) refuses nothing.
    let mut transient = bounce(&new);
    transient["bounce"]["bounceType"] = "Transient".into();
    assert_eq!(shared::email_events::handle(&store, &sns(transient), 1_700_000_000).await.unwrap(), 0);
}

/// An email SES never took waits in the emails' dead-letter queue; the operator sees it with
/// `webhooks-admin dlq --emails list` and puts it back with `replay`, and it goes out.
#[tokio::test]
async fn a_parked_email_is_listed_and_replayed_by_the_operator() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let to = address();
    let a = set_notifications(&api, &v, json!({"email": to, "notify": ["new_order"]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let event_id = unique("evt_parked");
    let order = payload("ecomnow/new-order.json").replace("1000-4612", "1000-7001");
    let raw = serde_json::value::RawValue::from_string(order).unwrap();
    let message =
        shared::emails::EmailMessage::order(&event_id, EventType::NewOrder, &v.vendor.vendor_id, 1, raw);
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    sqs.send_message()
        .queue_url(stack_var("EMAILS_DEAD_LETTER_QUEUE_URL"))
        .message_body(message.to_body())
        .send()
        .await
        .unwrap();

    let admin = |args: &[&str]| {
        let out =
            std::process::Command::new(tests::target_bin("webhooks-admin")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listing = admin(&["dlq", "--emails", "list", "--vendor", &v.vendor.vendor_id]);
    assert!(listing.contains(&event_id) && listing.contains("(order email)"), "{listing}");
    // The deliveries' dead-letter queue is another queue: the email is not there.
    let deliveries = admin(&["dlq", "list", "--vendor", &v.vendor.vendor_id]);
    assert!(!deliveries.contains(&event_id), "{deliveries}");

    let replayed = admin(&["dlq", "--emails", "replay", "--vendor", &v.vendor.vendor_id]);
    assert_eq!(serde_json::from_str::<Value>(&replayed).unwrap(), json!({"replayed": 1}));
    let sent = wait_for_mail(&to, 1).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].subject, "New order 1000-7001");
    let listing = admin(&["dlq", "--emails", "list", "--vendor", &v.vendor.vendor_id]);
    assert!(!listing.contains(&event_id), "{listing}");
}
