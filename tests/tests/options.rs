//! Delivery options end to end on the local stack: payload filters and headers of a vendor's own.
use std::time::Duration;

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
