//! One vendor can never see or touch another's webhooks: every route of the route table, in both
//! dialects, asked by another vendor about a webhook that exists, answers what it answers for a
//! webhook that does not exist, and changes nothing. Walking `ROUTES` means a new route is in
//! this matrix the day it is added.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use shared::{
    api::{Operation, Route, ROUTES},
    domain::Dialect,
    store::{AttemptLog, WebhookStore},
};
use tests::{
    deliveries::{ecomnow_webhook, event, payload, publish, WAIT},
    new_token, new_vendor,
    receiver::Receiver,
    store, Answer, Api, TestVendor,
};

/// Sends `route` as `who` (a vendor and its bearer token) about webhook `id`, in the path or in
/// the body, as the route takes it.
async fn ask(api: &Api, who: &(TestVendor, String), route: &Route, id: u64, event_id: &str) -> Answer {
    let (path, op) = (route.path, route.operation);
    let path = path.replace("{webhookId}", &id.to_string());
    let body = match op {
        Operation::UpdateWebhook => {
            Some(json!({"webhookType": "order_cancellation", "url": "http://127.0.0.1:9/x"}))
        }
        Operation::RedeliverEvent if path.ends_with("/recover") => {
            Some(json!({"since": shared::clock::rfc3339(shared::clock::now() - 3600)}))
        }
        Operation::RedeliverEvent => Some(json!({"eventId": event_id})),
        Operation::DeleteWebhook if path.starts_with("/api/") => Some(json!({"webhook": {"id": id}})),
        _ => None,
    };
    let method = Method::from_bytes(route.method.as_bytes()).unwrap();
    if path.starts_with("/api/") {
        api.bearer(&who.1, method, &path, body.map(|b| b.to_string()).as_deref()).await
    } else {
        api.vendor(&who.0, method, &path, body.as_ref()).await
    }
}

#[tokio::test]
async fn another_vendors_webhook_is_not_found_on_every_route_and_nothing_changes() {
    let (api, store) = (Api::new(), store().await);
    let owner = new_vendor(&store).await;
    let intruder = new_vendor(&store).await;
    let intruder = (intruder.clone(), new_token(&store, &intruder.vendor).await.1);
    let receiver = Receiver::ok().await;
    let (id, _) = ecomnow_webhook(&api, &owner, "new_order", &receiver.url, None).await;
    let event_id = publish(&api, &event(&owner, None, "new_order", &payload("ecomnow/new-order.json")))
        .await
        .json()["eventId"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.wait_for(1, WAIT).await;
    let before = store.get_webhook(&owner.vendor.vendor_id, id).await.unwrap().unwrap();
    let attempts_before = store.list_attempts(id, 100).await.unwrap().len();

    let mut asked = 0;
    for route in ROUTES.iter().filter(|r| r.dialect != Dialect::Platform) {
        let takes_an_id = route.path.contains("{webhookId}") || route.operation == Operation::DeleteWebhook;
        let a = ask(&api, &intruder, route, id, &event_id).await;
        let context = format!("{} {}: {}", route.method, route.path, a.text);
        if takes_an_id {
            asked += 1;
            assert_eq!(a.status, 404, "{context}");
            // Alike to a webhook that does not exist: nothing tells the two apart.
            let missing = ask(&api, &intruder, route, 1, &event_id).await;
            assert_eq!((a.status, a.json()), (missing.status, missing.json()), "{context}");
        } else if route.operation == Operation::ListWebhooks {
            assert_eq!(a.status, 200, "{context}");
            assert!(!a.text.contains(&id.to_string()), "a list shows only the vendor's own: {context}");
        }
    }
    assert_eq!(asked, 10, "every route that names a webhook was asked");

    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = store.get_webhook(&owner.vendor.vendor_id, id).await.unwrap().unwrap();
    assert_eq!(
        (after.version, &after.secret, &after.url, after.event_type, &after.disabled),
        (before.version, &before.secret, &before.url, before.event_type, &before.disabled),
        "nothing changed"
    );
    assert_eq!(store.list_attempts(id, 100).await.unwrap().len(), attempts_before, "nothing was sent");
    assert_eq!(receiver.received().len(), 1);
    let owner_view: Value =
        api.vendor(&owner, Method::GET, &format!("/basic/webhooks/{id}"), None).await.json();
    assert_eq!(owner_view["status"], "active");
}
