//! The Ventiapp dialect end to end, with the document's bodies, over `cargo lambda watch`.
use std::process::Command;

use reqwest::Method;
use serde_json::{json, Value};
use shared::store::WebhookStore;
use tests::{fixture, new_token, new_vendor, store, target_bin, Api};

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// RFC 3339 with a numeric offset and no fractions, as in `2020-03-04T12:36:24-05:00`.
fn is_document_time(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 25
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (b[19] == b'+' || b[19] == b'-')
        && b[22] == b':'
        && s.bytes().enumerate().all(|(i, c)| [4, 7, 10, 13, 16, 19, 22].contains(&i) || c.is_ascii_digit())
}

#[tokio::test]
async fn create_list_delete_with_the_documents_bodies_and_shapes() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;

    // The document's body as published has a trailing comma, which is not JSON.
    let a = api
        .bearer(
            &token,
            Method::POST,
            "/api/webhooks/create",
            Some(&fixture("ventiapp/create-body.verbatim.txt")),
        )
        .await;
    let err = a.expect_error(400, "invalid_json");
    assert!(err["message"].as_str().unwrap().contains("trailing comma"), "{err}");

    let a = api
        .bearer(&token, Method::POST, "/api/webhooks/create", Some(&fixture("ventiapp/create-body.json")))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let created = a.json();
    assert_eq!(keys(&created), ["webhook"]);
    let w = &created["webhook"];
    assert_eq!(keys(w), ["id", "address", "topic", "created_at", "api_version", "message", "secret"]);
    let id = w["id"].as_u64().expect("id is a JSON integer");
    assert_eq!(w["address"], "https://whatever.hostname.com/");
    assert_eq!(w["topic"], "orders/created");
    assert!(is_document_time(w["created_at"].as_str().unwrap()), "{}", w["created_at"]);
    assert_eq!(w["api_version"], "1.0.9");
    assert_eq!(w["message"], "Webhook created");
    assert!(w["secret"].as_str().unwrap().starts_with("whsec_"));
    let stored = store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap();
    assert_eq!(
        (stored.event_type.as_str(), stored.url.as_str()),
        ("orders/created", "https://whatever.hostname.com/")
    );

    let a = api.bearer(&token, Method::GET, "/api/webhooks/list", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let list = a.json();
    assert_eq!(keys(&list), ["webhooks"]);
    let listed = list["webhooks"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(keys(&listed[0]), ["id", "address", "topic", "created_at", "api_version"]);
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["created_at"], w["created_at"]);

    let delete = fixture("ventiapp/delete-body.json").replace("1047897671", &id.to_string());
    let a = api.bearer(&token, Method::POST, "/api/webhooks/delete", Some(&delete)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let deleted = &a.json()["webhook"];
    assert_eq!(keys(deleted), ["id", "address", "topic", "created_at", "api_version", "message"]);
    assert_eq!((deleted["id"].as_u64(), &deleted["message"]), (Some(id), &json!("Webhook deleted")));
    assert!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().is_empty());
    let a = api.bearer(&token, Method::POST, "/api/webhooks/delete", Some(&delete)).await;
    a.expect_error(404, "not_found");
    let a = api.bearer(&token, Method::GET, "/api/webhooks/list", None).await;
    assert_eq!(a.json(), json!({"webhooks": []}));
}

#[tokio::test]
async fn every_topic_of_the_document_is_accepted_and_others_are_400() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;
    let topics = [
        "orders/created",
        "orders/updated",
        "orders/cancelled",
        "bills/created",
        "products/created",
        "products/updated",
        "products/deleted",
    ];
    for topic in topics {
        let body = json!({"webhook": {"topic": topic, "address": "https://topics.example.com/"}}).to_string();
        let a = api.bearer(&token, Method::POST, "/api/webhooks/create", Some(&body)).await;
        assert_eq!(a.status, 201, "{topic}: {}", a.text);
    }
    for topic in ["orders/create", "new_order", "orders", "ORDERS/CREATED"] {
        let body =
            json!({"webhook": {"topic": topic, "address": "https://topics.example.com/x"}}).to_string();
        let a = api.bearer(&token, Method::POST, "/api/webhooks/create", Some(&body)).await;
        let err = a.expect_error(400, "invalid_field");
        assert_eq!(err["field"], "webhook.topic");
        assert!(err["message"].as_str().unwrap().contains(&topics.join(", ")), "{err}");
    }
    assert_eq!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().len(), 7);
}

#[tokio::test]
async fn addresses_must_be_https_whatever_the_local_setting() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;
    for (address, status, code) in [
        ("http://whatever.hostname.com/", 422, "not_allowed"),
        ("http://127.0.0.1:8080/", 422, "not_allowed"),
        ("ftp://whatever.hostname.com/", 400, "invalid_field"),
        ("whatever.hostname.com", 400, "invalid_field"),
    ] {
        let body = json!({"webhook": {"topic": "bills/created", "address": address}}).to_string();
        let a = api.bearer(&token, Method::POST, "/api/webhooks/create", Some(&body)).await;
        assert_eq!(a.expect_error(status, code)["field"], "webhook.address", "{address}");
    }
    // The local stack allows private targets, over https.
    let body =
        json!({"webhook": {"topic": "bills/created", "address": "https://127.0.0.1:8443/in"}}).to_string();
    assert_eq!(api.bearer(&token, Method::POST, "/api/webhooks/create", Some(&body)).await.status, 201);
    assert_eq!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn missing_malformed_unknown_or_password_credentials_are_401_bearer() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;
    let body = fixture("ventiapp/create-body.json");
    let unknown = format!("Bearer {}", shared::auth::new_token());
    let truncated = format!("Bearer {}", &token[..token.len() - 1]);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Authorization", "Bearer")],
        vec![("Authorization", "Bearer short")],
        vec![("Authorization", &unknown)],
        vec![("Authorization", &truncated)],
        vec![("Authorization", &token)], // no scheme
        vec![("Username", &v.username), ("Password", &v.password)],
    ];
    for headers in cases {
        for (method, path) in [
            (Method::GET, "/api/webhooks/list"),
            (Method::POST, "/api/webhooks/create"),
            (Method::POST, "/api/webhooks/delete"),
        ] {
            let mut h = headers.clone();
            h.push(("Content-Type", "application/json"));
            let a = api.send(method, path, &h, Some(body.clone().into_bytes())).await;
            a.expect_error(401, "unauthorized");
            assert!(a.header("www-authenticate").unwrap().starts_with("Bearer"), "{path} {headers:?}");
            assert!(!a.text.contains(&token));
        }
    }
    assert!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn deleting_another_vendors_id_is_404_and_deletes_nothing() {
    let (api, store) = (Api::new(), store().await);
    let (owner, thief) = (new_vendor(&store).await, new_vendor(&store).await);
    let (_, owner_token) = new_token(&store, &owner.vendor).await;
    let (_, thief_token) = new_token(&store, &thief.vendor).await;
    let a = api
        .bearer(
            &owner_token,
            Method::POST,
            "/api/webhooks/create",
            Some(&fixture("ventiapp/create-body.json")),
        )
        .await;
    let id = a.json()["webhook"]["id"].as_u64().unwrap();
    let body = json!({"webhook": {"id": id}}).to_string();
    let foreign = api.bearer(&thief_token, Method::POST, "/api/webhooks/delete", Some(&body)).await;
    let never = json!({"webhook": {"id": 12345}}).to_string();
    let missing = api.bearer(&thief_token, Method::POST, "/api/webhooks/delete", Some(&never)).await;
    assert_eq!(foreign.expect_error(404, "not_found"), missing.expect_error(404, "not_found"));
    assert!(store.get_webhook(&owner.vendor.vendor_id, id).await.unwrap().is_some());
    let list = api.bearer(&thief_token, Method::GET, "/api/webhooks/list", None).await;
    assert_eq!(list.json(), json!({"webhooks": []}));
}

#[tokio::test]
async fn bad_delete_bodies_are_400() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;
    for (body, field) in [
        (json!({"webhook": {"id": "7"}}), "webhook.id"),
        (json!({"webhook": {"id": -7}}), "webhook.id"),
        (json!({"webhook": {"id": 1.5}}), "webhook.id"),
        (json!({"webhook": {"id": 9007199254740992u64}}), "webhook.id"),
        (json!({"webhook": {}}), "webhook.id"),
        (json!({"id": 7}), "id"),
        (json!({"webhook": 7}), "webhook"),
    ] {
        let a = api.bearer(&token, Method::POST, "/api/webhooks/delete", Some(&body.to_string())).await;
        assert_eq!(a.expect_error(400, "invalid_field")["field"], field, "{body}");
    }
    api.bearer(&token, Method::POST, "/api/webhooks/delete", Some("{"))
        .await
        .expect_error(400, "invalid_json");
}

#[tokio::test]
async fn one_store_two_views_and_one_id() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;

    // Created by Ventiapp, read, listed and deleted by eComNow.
    let a = api
        .bearer(&token, Method::POST, "/api/webhooks/create", Some(&fixture("ventiapp/create-body.json")))
        .await;
    let venti_id = a.json()["webhook"]["id"].as_u64().unwrap();
    let a = api.vendor(&v, Method::GET, &format!("/basic/webhooks/{venti_id}"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.json()["webhookType"].clone(), a.json()["url"].clone()),
        (json!("orders/created"), json!("https://whatever.hostname.com/"))
    );

    // Created by eComNow, listed by Ventiapp in its own shape, deleted by Ventiapp.
    let body = json!({"webhookType": "new_order", "url": "https://ecomnow.example.com/", "authentication": "Basic abc"});
    let a = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await;
    let ecom_id = a.json()["webhookId"].as_u64().unwrap();
    let list = api.bearer(&token, Method::GET, "/api/webhooks/list", None).await.json();
    let mut listed: Vec<(u64, String)> = list["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_u64().unwrap(), w["topic"].as_str().unwrap().to_owned()))
        .collect();
    listed.sort();
    let mut expected = vec![(venti_id, "orders/created".to_owned()), (ecom_id, "new_order".to_owned())];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(!list.to_string().contains("Basic abc"), "Ventiapp's view has no authentication");
    let ecom_list = api.vendor(&v, Method::GET, "/basic/webhooks", None).await.json();
    assert_eq!(ecom_list["webhooks"].as_array().unwrap().len(), 2);

    let body = json!({"webhook": {"id": ecom_id}}).to_string();
    let a = api.bearer(&token, Method::POST, "/api/webhooks/delete", Some(&body)).await;
    assert_eq!((a.status.as_u16(), a.json()["webhook"]["topic"].clone()), (200, json!("new_order")));
    let a = api.vendor(&v, Method::DELETE, &format!("/basic/webhooks/{venti_id}"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_revoked_token_stops_working_at_once() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let admin = |args: &[&str]| {
        let out = Command::new(target_bin("webhooks-admin")).args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let issued = admin(&["token", "create", "--vendor", &v.username, "--label", "ci"]);
    let (token_id, token) = (issued["tokenId"].as_str().unwrap(), issued["token"].as_str().unwrap());
    let other = admin(&["token", "create", "--vendor", &v.vendor.vendor_id]);
    assert_eq!(api.bearer(token, Method::GET, "/api/webhooks/list", None).await.status, 200);

    let revoked = admin(&["token", "revoke", "--token-id", token_id]);
    assert_eq!(revoked["revoked"], true);
    api.bearer(token, Method::GET, "/api/webhooks/list", None).await.expect_error(401, "unauthorized");
    // The vendor's other token still works.
    assert_eq!(
        api.bearer(other["token"].as_str().unwrap(), Method::GET, "/api/webhooks/list", None).await.status,
        200
    );
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;
    for (method, path, allow) in [
        (Method::GET, "/api/webhooks/create", "POST"),
        (Method::DELETE, "/api/webhooks/delete", "POST"),
        (Method::GET, "/api/webhooks/delete", "POST"),
        (Method::POST, "/api/webhooks/list", "GET"),
    ] {
        let a = api.bearer(&token, method.clone(), path, None).await;
        a.expect_error(405, "method_not_allowed");
        assert_eq!(a.header("allow"), Some(allow), "{method} {path}");
    }
}

/// Ventiapp's list shows active webhooks only: creating a disabled webhook's topic and address
/// again enables it, rather than a 409 about a webhook the vendor cannot see.
#[tokio::test]
async fn creating_a_disabled_webhook_again_enables_it() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let (_, token) = new_token(&store, &v.vendor).await;
    let body = fixture("ventiapp/create-body.json");
    let created = api.bearer(&token, Method::POST, "/api/webhooks/create", Some(&body)).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["webhook"]["id"].as_u64().unwrap();
    let secret = created.json()["webhook"]["secret"].as_str().unwrap().to_owned();

    // An active duplicate is visible, and stays a 409.
    let again = api.bearer(&token, Method::POST, "/api/webhooks/create", Some(&body)).await;
    again.expect_error(409, "duplicate");

    // Disabled (as a 410 from the receiver does it), it leaves the list.
    let w = store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap();
    let disabled = shared::domain::Webhook {
        disabled: Some((1, "the receiver answered 410 Gone".into())),
        version: w.version + 1,
        ..w.clone()
    };
    store.replace_webhook(&w, &disabled).await.unwrap();
    let list = api.bearer(&token, Method::GET, "/api/webhooks/list", None).await.json();
    assert_eq!(list["webhooks"], json!([]));

    let again = api.bearer(&token, Method::POST, "/api/webhooks/create", Some(&body)).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let w = &again.json()["webhook"];
    assert_eq!((w["id"].as_u64(), w["message"].as_str()), (Some(id), Some("Webhook enabled")));
    assert!(w.get("secret").is_none(), "the secret is not shown again");
    let stored = store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap();
    assert_eq!((stored.disabled, stored.secret), (None, secret), "enabled, the same secret");
    let list = api.bearer(&token, Method::GET, "/api/webhooks/list", None).await.json();
    assert_eq!(list["webhooks"].as_array().map(Vec::len), Some(1));
    assert_eq!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().len(), 1, "no second webhook");
}
