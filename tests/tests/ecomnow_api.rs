//! The eComNow dialect end to end: HTTP through `cargo lambda watch`, DynamoDB in the emulator.
use base64::{engine::general_purpose::STANDARD, Engine as _};
use reqwest::Method;
use serde_json::{json, Value};
use shared::{login_guard::GuardSettings, store::WebhookStore};
use tests::{new_vendor, stack_var, store, Api, TestVendor};

const SEED_BODY: &str = r#"{
  "authentication": "Basic XxxXxxXX",
  "webhookType": "new_order",
  "url": "https://vendor.example.com/hooks/orders"
}"#;

async fn create(api: &Api, v: &TestVendor, body: Value) -> Value {
    let a = api.vendor(v, Method::POST, "/basic/webhooks", Some(&body)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    a.json()
}

fn id_of(w: &Value) -> u64 {
    w["webhookId"].as_u64().expect("webhookId is an integer")
}

#[tokio::test]
async fn register_read_update_list_delete_with_the_documents_bodies() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;

    // Register, with the seed's body verbatim.
    let headers = [
        ("Username", v.username.as_str()),
        ("Password", v.password.as_str()),
        ("Content-Type", "application/json"),
    ];
    let a = api.send(Method::POST, "/basic/webhooks", &headers, Some(SEED_BODY.into())).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let created = a.json();
    let id = id_of(&created);
    assert!(id > 0 && id < (1 << 53));
    assert_eq!(a.header("location"), Some(format!("/basic/webhooks/{id}").as_str()));
    assert_eq!(created["vendorId"], v.vendor.vendor_id);
    assert_eq!(created["webhookType"], "new_order");
    assert_eq!(created["url"], "https://vendor.example.com/hooks/orders");
    assert_eq!(created["method"], "POST");
    assert_eq!(created["status"], "active");
    assert!(created.get("disabledReason").is_none());
    assert_eq!(created["authentication"], "Basic XxxXxxXX");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(created["createdAt"].as_str().unwrap().ends_with('Z'));

    // What DynamoDB holds.
    let stored = store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().expect("stored");
    assert_eq!(stored.secret, secret);
    assert_eq!(stored.authentication.as_deref(), Some("Basic XxxXxxXX"));

    // Read: everything but the secret, which is shown once.
    let a = api.vendor(&v, Method::GET, &format!("/basic/webhooks/{id}"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let read = a.json();
    assert_eq!(read["webhookId"], id);
    assert_eq!(read["authentication"], "Basic XxxXxxXX");
    assert!(read.get("secret").is_none());
    assert!(!a.text.contains(secret));

    // Update with the seed's update body.
    let update = json!({"authentication": "Basic YyyYyyYY", "webhookType": "order_cancellation", "url": "https://vendor.example.com/hooks/cancel"});
    let a = api.vendor(&v, Method::PUT, &format!("/basic/webhooks/{id}"), Some(&update)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let updated = a.json();
    assert_eq!(updated["webhookId"], id);
    assert_eq!(updated["webhookType"], "order_cancellation");
    assert_eq!(updated["url"], "https://vendor.example.com/hooks/cancel");
    assert_eq!(updated["createdAt"], created["createdAt"]);
    let stored = store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap();
    assert_eq!(stored.authentication.as_deref(), Some("Basic YyyYyyYY"));
    assert_eq!(stored.secret, secret, "an update keeps the signing secret");
    assert_eq!(stored.version, 2);

    // List.
    let second =
        create(&api, &v, json!({"webhookType": "new_order", "url": "https://vendor.example.com/b"})).await;
    let a = api.vendor(&v, Method::GET, "/basic/webhooks", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut ids: Vec<u64> = a.json()["webhooks"].as_array().unwrap().iter().map(id_of).collect();
    ids.sort();
    let mut expected = vec![id, id_of(&second)];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(!a.text.contains("whsec_"));

    // Delete answers the deleted webhook; then it is gone everywhere.
    let a = api.vendor(&v, Method::DELETE, &format!("/basic/webhooks/{id}"), None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["webhookId"], id);
    api.vendor(&v, Method::GET, &format!("/basic/webhooks/{id}"), None).await.expect_error(404, "not_found");
    api.vendor(&v, Method::DELETE, &format!("/basic/webhooks/{id}"), None)
        .await
        .expect_error(404, "not_found");
    assert!(store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().is_none());
    let left = store.list_webhooks(&v.vendor.vendor_id).await.unwrap();
    assert_eq!(left.iter().map(|w| w.id).collect::<Vec<_>>(), vec![id_of(&second)]);

    // The deleted endpoint can be registered again (its duplicate guard went with it).
    create(
        &api,
        &v,
        json!({"webhookType": "order_cancellation", "url": "https://vendor.example.com/hooks/cancel"}),
    )
    .await;
}

#[tokio::test]
async fn http_basic_authorization_is_accepted_too() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let basic = format!("Basic {}", STANDARD.encode(format!("{}:{}", v.username, v.password)));
    let a = api.send(Method::GET, "/basic/webhooks", &[("Authorization", &basic)], None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json(), json!({"webhooks": []}));
    // Usernames are not case-sensitive.
    let upper = v.username.to_uppercase();
    let a = api
        .send(Method::GET, "/basic/webhooks", &[("Username", &upper), ("Password", &v.password)], None)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_401_with_a_basic_challenge_and_change_nothing() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let body = Some(SEED_BODY.as_bytes().to_vec());
    let wrong_basic = format!("Basic {}", STANDARD.encode(format!("{}:nope", v.username)));
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![],
        vec![("Username", &v.username)],
        vec![("Username", &v.username), ("Password", "wrong-password")],
        vec![("Username", "no-such-vendor"), ("Password", &v.password)],
        vec![("Authorization", &wrong_basic)],
        vec![("Authorization", "Bearer abc")],
        vec![("Authorization", "Basic %%%")],
    ];
    for headers in cases {
        for (method, path) in [
            (Method::POST, "/basic/webhooks"),
            (Method::GET, "/basic/webhooks"),
            (Method::GET, "/basic/webhooks/1"),
            (Method::PUT, "/basic/webhooks/1"),
            (Method::DELETE, "/basic/webhooks/1"),
        ] {
            let mut h = headers.clone();
            h.push(("Content-Type", "application/json"));
            let a = api.send(method.clone(), path, &h, body.clone()).await;
            a.expect_error(401, "unauthorized");
            assert!(
                a.header("www-authenticate").unwrap().starts_with("Basic"),
                "{method} {path} {headers:?}"
            );
            assert!(!a.text.contains(&v.password));
        }
    }
    assert!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn another_vendors_webhook_is_404_and_untouched() {
    let (api, store) = (Api::new(), store().await);
    let (owner, other) = (new_vendor(&store).await, new_vendor(&store).await);
    let id = id_of(
        &create(&api, &owner, json!({"webhookType": "new_order", "url": "https://owner.example.com/"})).await,
    );
    let path = format!("/basic/webhooks/{id}");
    let before = store.get_webhook(&owner.vendor.vendor_id, id).await.unwrap().unwrap();

    let unknown = api.vendor(&other, Method::GET, "/basic/webhooks/12345", None).await;
    let err = unknown.expect_error(404, "not_found");
    let foreign = api.vendor(&other, Method::GET, &path, None).await;
    assert_eq!(foreign.expect_error(404, "not_found"), err, "another vendor's id looks exactly like no id");
    let body = json!({"webhookType": "order_cancellation", "url": "https://thief.example.com/"});
    api.vendor(&other, Method::PUT, &path, Some(&body)).await.expect_error(404, "not_found");
    api.vendor(&other, Method::DELETE, &path, None).await.expect_error(404, "not_found");
    let list = api.vendor(&other, Method::GET, "/basic/webhooks", None).await;
    assert_eq!(list.json(), json!({"webhooks": []}));

    let after = store.get_webhook(&owner.vendor.vendor_id, id).await.unwrap().unwrap();
    assert!(before == after, "another vendor changed nothing");
}

#[tokio::test]
async fn invalid_bodies_are_400_naming_the_field_and_change_nothing() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let id =
        id_of(&create(&api, &v, json!({"webhookType": "new_order", "url": "https://a.example.com/"})).await);
    let before = store.get_webhook(&v.vendor.vendor_id, id).await.unwrap().unwrap();

    let deep: Vec<u8> = [b"{\"a\":".repeat(1000), b"1".to_vec(), b"}".repeat(1000)].concat();

    let raw_cases: &[(&[u8], &str)] = &[
        (br#"{"webhookType": "new_order", "webhookType": "order_cancellation", "url": "https://a.example.com/"}"#, "invalid_json"),
        (&deep, "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1,2]", "invalid_json"),
        (b"\"new_order\"", "invalid_json"),
        (b"{\"webhookType\": \"new_order\", \"url\": \"https://a.example.com/\"", "invalid_json"),
    ];
    for (method, path) in
        [(Method::POST, "/basic/webhooks".to_string()), (Method::PUT, format!("/basic/webhooks/{id}"))]
    {
        for (body, code) in raw_cases {
            let h = [
                ("Username", v.username.as_str()),
                ("Password", v.password.as_str()),
                ("Content-Type", "application/json"),
            ];
            api.send(method.clone(), &path, &h, Some(body.to_vec())).await.expect_error(400, code);
        }
        let field_cases = [
            (
                json!({"webhookType": "order_created", "url": "https://b.example.com/"}),
                "webhookType",
                "new_order, order_cancellation",
            ),
            (
                json!({"webhookType": "orders/created", "url": "https://b.example.com/"}),
                "webhookType",
                "new_order, order_cancellation",
            ),
            (json!({"url": "https://b.example.com/"}), "webhookType", "required"),
            (json!({"webhookType": 1, "url": "https://b.example.com/"}), "webhookType", "string"),
            (json!({"webhookType": "new_order"}), "url", "required"),
            (json!({"webhookType": "new_order", "url": "not a url"}), "url", "absolute"),
            (json!({"webhookType": "new_order", "url": "ftp://b.example.com/"}), "url", "https"),
            (
                json!({"webhookType": "new_order", "url": "https://user:pw@b.example.com/"}),
                "url",
                "credentials",
            ),
            (
                json!({"webhookType": "new_order", "url": "https://b.example.com/", "authentication": 5}),
                "authentication",
                "string",
            ),
            (
                json!({"webhookType": "new_order", "url": "https://b.example.com/", "authentication": "Basic a\r\nX-Injected: 1"}),
                "authentication",
                "CR or LF",
            ),
            (
                json!({"webhookType": "new_order", "url": "https://b.example.com/", "extra": true}),
                "extra",
                "allowed",
            ),
        ];
        for (body, field, hint) in field_cases {
            let a = api.vendor(&v, method.clone(), &path, Some(&body)).await;
            let err = a.expect_error(400, "invalid_field");
            assert_eq!(err["field"], field, "{body}");
            let msg = err["message"].as_str().unwrap();
            assert!(msg.contains(field) && msg.contains(hint), "{body}: {msg}");
            assert!(!a.text.contains("X-Injected"), "the authentication value is never echoed");
        }
    }
    let after = store.list_webhooks(&v.vendor.vendor_id).await.unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0] == before);
}

#[tokio::test]
async fn bad_ids_are_400_and_unknown_ids_404() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    for bad in ["abc", "0", "-5", "1.5", "9007199254740992", "123456789012345678901"] {
        let a = api.vendor(&v, Method::GET, &format!("/basic/webhooks/{bad}"), None).await;
        assert_eq!(a.expect_error(400, "invalid_id")["field"], "webhookId");
    }
    api.vendor(&v, Method::GET, "/basic/webhooks/9007199254740991", None)
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn unsupported_methods_are_405_with_allow() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    for (method, path, allow) in [
        (Method::PATCH, "/basic/webhooks/1", "GET, PUT, DELETE"),
        (Method::POST, "/basic/webhooks/1", "GET, PUT, DELETE"),
        (Method::DELETE, "/basic/webhooks", "GET, POST"),
        (Method::PUT, "/basic/webhooks", "GET, POST"),
        (Method::PATCH, "/basic/webhooks", "GET, POST"),
    ] {
        let a = api.vendor(&v, method.clone(), path, None).await;
        a.expect_error(405, "method_not_allowed");
        assert_eq!(a.header("allow"), Some(allow), "{method} {path}");
    }
}

#[tokio::test]
async fn oversize_and_non_json_bodies_are_413_and_415() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let huge = json!({"webhookType": "new_order", "url": "https://a.example.com/", "authentication": "x".repeat(20_000)});
    let a = api.vendor(&v, Method::POST, "/basic/webhooks", Some(&huge)).await;
    assert!(a.expect_error(413, "payload_too_large")["message"].as_str().unwrap().contains("16384"));
    let h = [
        ("Username", v.username.as_str()),
        ("Password", v.password.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    api.send(Method::POST, "/basic/webhooks", &h, Some(b"webhookType=new_order".to_vec()))
        .await
        .expect_error(415, "unsupported_media_type");
    let h = [
        ("Username", v.username.as_str()),
        ("Password", v.password.as_str()),
        ("Content-Type", "text/plain"),
    ];
    api.send(Method::POST, "/basic/webhooks", &h, Some(SEED_BODY.into()))
        .await
        .expect_error(415, "unsupported_media_type");
    assert!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn duplicates_of_type_and_url_are_409() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let body = json!({"webhookType": "new_order", "url": "https://dup.example.com/in"});
    let first = id_of(&create(&api, &v, body.clone()).await);
    api.vendor(&v, Method::POST, "/basic/webhooks", Some(&body)).await.expect_error(409, "duplicate");
    // The same URL spelled differently is the same endpoint.
    let respelled = json!({"webhookType": "new_order", "url": "HTTPS://DUP.example.com:443/in"});
    api.vendor(&v, Method::POST, "/basic/webhooks", Some(&respelled)).await.expect_error(409, "duplicate");
    // Another type on the same URL is a different webhook; so is another vendor's.
    let other_type = id_of(
        &create(&api, &v, json!({"webhookType": "order_cancellation", "url": "https://dup.example.com/in"}))
            .await,
    );
    let w = new_vendor(&store).await;
    create(&api, &w, body.clone()).await;
    // Updating one webhook into the other is a duplicate too, and changes nothing.
    api.vendor(&v, Method::PUT, &format!("/basic/webhooks/{other_type}"), Some(&body))
        .await
        .expect_error(409, "duplicate");
    let stored = store.get_webhook(&v.vendor.vendor_id, other_type).await.unwrap().unwrap();
    assert_eq!(stored.event_type.as_str(), "order_cancellation");
    // Re-putting a webhook's own values is fine.
    let a = api.vendor(&v, Method::PUT, &format!("/basic/webhooks/{first}"), Some(&body)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(store.list_webhooks(&v.vendor.vendor_id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn local_stack_accepts_http_receivers_for_ecomnow() {
    let (api, store) = (Api::new(), store().await);
    let v = new_vendor(&store).await;
    let w = create(
        &api,
        &v,
        json!({"webhookType": "new_order", "url": "http://127.0.0.1:8080/hook", "authentication": null}),
    )
    .await;
    assert_eq!(w["url"], "http://127.0.0.1:8080/hook");
    assert_eq!(w["authentication"], Value::Null);
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let api = Api::new();
    // Routed to a function by the router, but not one of ours: the function answers.
    let a = api.send(Method::GET, "/basic/webhooks/1/extra", &[], None).await;
    assert_eq!(a.status, 404, "{}", a.text);
}

/// A password check costs argon2 (about 37 ms of a core): repeated wrong passwords for one
/// username answer 429 with Retry-After before they cost a check each, for a username that does
/// not exist as for one that does, and other vendors sign in as before. Each function instance
/// counts on its own (five failures a minute by default), and `cargo lambda watch` runs up to
/// `WATCH_CONCURRENCY` instances of `list-webhooks`: one more try than five for each of them,
/// and one of them has seen six.
#[tokio::test]
async fn repeated_wrong_passwords_are_throttled_per_username() {
    let (api, store) = (Api::new(), store().await);
    let (v, other) = (new_vendor(&store).await, new_vendor(&store).await);
    let unknown = tests::unique("no-such-vendor");
    let allowed = GuardSettings::default().failures as usize;
    let instances: usize = stack_var("WATCH_CONCURRENCY").parse().expect("WATCH_CONCURRENCY");
    for username in [v.username.as_str(), unknown.as_str()] {
        let mut statuses = Vec::new();
        let mut throttled = None;
        for _ in 0..allowed * instances + 1 {
            let a = api
                .send(
                    Method::GET,
                    "/basic/webhooks",
                    &[("Username", username), ("Password", "wrong-password-1")],
                    None,
                )
                .await;
            statuses.push(a.status.as_u16());
            if a.status == 429 {
                throttled = Some(a);
                break;
            }
            a.expect_error(401, "unauthorized");
        }
        let a = throttled.unwrap_or_else(|| panic!("{username}: never throttled: {statuses:?}"));
        assert!(statuses.len() > allowed, "{username}: throttled after {} tries", statuses.len() - 1);
        let e = a.expect_error(429, "too_many_sign_ins");
        let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(!a.text.contains("wrong-password-1") && !a.text.contains(username), "{e}");
    }
    let a = api.vendor(&other, Method::GET, "/basic/webhooks", None).await;
    assert_eq!(a.status, 200, "{}", a.text);
}
