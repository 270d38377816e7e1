//! `webhooks-admin` as an operator runs it, against the emulator.
use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use reqwest::Method;
use serde_json::Value;
use tests::{stack_var, target_bin, unique, Api, TestVendor};

fn admin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(target_bin("webhooks-admin"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("webhooks-admin is built (make test builds the workspace)");
    child.stdin.take().unwrap().write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn vendor_create_makes_an_account_that_can_use_the_api() {
    let username = unique("cli");
    let password = "a-long-enough-password";
    let out = admin(&["vendor", "create", "--username", &username, "--password", password], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let vendor_id = created["vendorId"].as_str().unwrap().to_owned();
    assert!(vendor_id.starts_with("ven_"));
    assert!(!text(&out.stdout).contains(password) && !text(&out.stderr).contains(password));

    let v = TestVendor {
        vendor: shared::domain::Vendor {
            vendor_id: vendor_id.clone(),
            username: username.clone(),
            created_at: 0,
        },
        username: username.clone(),
        password: password.into(),
    };
    let a = Api::new().vendor(&v, Method::GET, "/basic/webhooks", None).await;
    assert_eq!(a.status, 200, "{}", a.text);

    // The username is taken now, in any case.
    let out =
        admin(&["vendor", "create", "--username", &username.to_uppercase(), "--password", password], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("taken"), "{}", text(&out.stderr));

    let out = admin(&["vendor", "list"], None);
    assert!(out.status.success());
    let listed: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(listed.iter().filter(|v| v["username"] == username.as_str()).count(), 1);
    assert!(listed.iter().any(|v| v["vendorId"] == vendor_id.as_str()));
    assert!(!text(&out.stdout).contains("argon2"), "no hashes in the listing");
}

#[tokio::test]
async fn password_stdin_is_read_and_weak_passwords_refused() {
    let username = unique("stdin");
    let out = admin(
        &["vendor", "create", "--username", &username, "--password-stdin"],
        Some("from-stdin-password\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let tv = TestVendor {
        vendor: shared::domain::Vendor {
            vendor_id: v["vendorId"].as_str().unwrap().into(),
            username: username.clone(),
            created_at: 0,
        },
        username: username.clone(),
        password: "from-stdin-password".into(),
    };
    assert_eq!(Api::new().vendor(&tv, Method::GET, "/basic/webhooks", None).await.status, 200);

    let weak = unique("weak");
    let out = admin(&["vendor", "create", "--username", &weak, "--password", "short"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("12-256"), "{}", text(&out.stderr));
    let out =
        admin(&["vendor", "create", "--username", "bad name", "--password", "long-enough-password"], None);
    assert!(!out.status.success());
    let listed = text(&admin(&["vendor", "list"], None).stdout);
    assert!(!listed.contains(&weak));
}

#[test]
fn without_table_name_it_finds_the_running_local_stack() {
    let dir = std::env::temp_dir().join(unique("stackdir"));
    std::fs::create_dir_all(dir.join(".stack")).unwrap();
    std::fs::create_dir_all(dir.join("sub/dir")).unwrap();
    let mut env_file = String::new();
    for k in ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TABLE_NAME"] {
        env_file.push_str(&format!("{k}={}\n", stack_var(k)));
    }
    std::fs::write(dir.join(".stack/env"), env_file).unwrap();
    let run = |cwd: &std::path::Path| {
        let mut cmd = Command::new(target_bin("webhooks-admin"));
        cmd.args(["vendor", "list"]).current_dir(cwd);
        for k in
            ["AWS_ENDPOINT_URL", "TABLE_NAME", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        {
            cmd.env_remove(k);
        }
        cmd.output().unwrap()
    };
    let out = run(&dir.join("sub/dir"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("using the local stack"));
    std::fs::remove_file(dir.join(".stack/env")).unwrap();
    let out = run(&dir.join("sub/dir"));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("TABLE_NAME is not set"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn tokens_are_issued_listed_without_their_value_and_revoked() {
    let username = unique("tok");
    let out =
        admin(&["vendor", "create", "--username", &username, "--password", "a-long-enough-password"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let vendor_id =
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["vendorId"].as_str().unwrap().to_owned();

    let out = admin(&["token", "create", "--vendor", &vendor_id, "--label", "shop integration"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let issued: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (token_id, token) = (issued["tokenId"].as_str().unwrap(), issued["token"].as_str().unwrap());
    assert!(token_id.starts_with("tok_") && token.starts_with("vwt_"));

    let out = admin(&["token", "list", "--vendor", &username], None);
    assert!(out.status.success());
    let listing = text(&out.stdout);
    assert!(listing.contains(token_id) && listing.contains("shop integration"));
    assert!(!listing.contains(&token[4..]), "the token is shown only at creation");
    let stored_hash = shared::auth::token_hash(token);
    assert!(!listing.contains(&stored_hash));

    let out = admin(&["token", "revoke", "--token-id", token_id], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = admin(&["token", "revoke", "--token-id", token_id], None);
    assert!(!out.status.success(), "a second revoke finds nothing");
    assert!(text(&admin(&["token", "list", "--vendor", &username], None).stdout).trim().is_empty());

    let out = admin(&["token", "create", "--vendor", "ven_doesnotexist"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no vendor"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn vendor_email_and_notifications_are_set_checked_and_shown() {
    let username = unique("mail");
    let email = format!("{username}@vendors.example");
    let create = |extra: &[&str]| {
        let mut args =
            vec!["vendor", "create", "--username", &username, "--password", "a-long-enough-password"];
        args.extend_from_slice(extra);
        admin(&args, None)
    };
    // A bad address creates nothing.
    let out = create(&["--email", "nope"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("not a valid email address"), "{}", text(&out.stderr));
    assert!(!text(&admin(&["vendor", "list"], None).stdout).contains(&username), "no account was made");

    let out = create(&["--email", &email, "--notify", "new_order"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["notifications"]["email"], email.as_str());
    assert_eq!(created["notifications"]["notify"], serde_json::json!(["new_order"]));

    let out =
        admin(&["vendor", "update", "--vendor", &username, "--notify", "failures,order_cancellation"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for bad in [&["--email", "a@b"][..], &["--notify", "new_order,spam"][..], &[][..]] {
        let mut args = vec!["vendor", "update", "--vendor", &username];
        args.extend_from_slice(bad);
        let out = admin(&args, None);
        assert!(!out.status.success(), "{bad:?} accepted");
    }
    let out = admin(&["vendor", "show", "--vendor", &username], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["notifications"]["email"], email.as_str(), "the refused changes changed nothing");
    assert_eq!(shown["notifications"]["notify"], serde_json::json!(["order_cancellation", "failures"]));

    // Removing the address removes the notifications with it.
    let out = admin(&["vendor", "update", "--vendor", &username, "--email", ""], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let updated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(updated["notifications"]["email"], Value::Null);
    assert_eq!(updated["notifications"]["notify"], serde_json::json!([]));
}

// Several threads: `admin` waits for the CLI synchronously while this test's receivers answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_signs_the_event_with_sigv4_and_the_api_takes_it() {
    // A stand-in for API Gateway: the request as the IAM authorizer would check it.
    let gateway = tests::receiver::Receiver::start(Vec::new(), tests::receiver::Reply::Status(202)).await;
    let event = r#"{"vendorId": "ven_demo", "type": "new_order", "payload": {"orderNo": "1"}}"#;
    let out = admin(&["publish", "--api", &gateway.url], Some(event));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = gateway.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.path.ends_with("/events"), "{}", r.path);
    assert_eq!(r.body.as_ref(), event.as_bytes(), "the body as given");
    let auth = r.header("authorization").expect("a SigV4 Authorization header");
    let scope = format!("/{}/execute-api/aws4_request", stack_var("AWS_REGION"));
    assert!(
        auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={}/", stack_var("AWS_ACCESS_KEY_ID")))
            && auth.contains(&scope)
            && auth.contains("SignedHeaders=content-type;host;x-amz-date")
            && auth.contains("Signature="),
        "{auth}"
    );
    assert!(r.header("x-amz-date").is_some());

    // And the stack's API takes it: a vendor's webhook gets the event.
    let store = tests::store().await;
    let v = tests::new_vendor(&store).await;
    let receiver = tests::receiver::Receiver::ok().await;
    tests::insert_webhook(&store, &v.vendor, receiver.url.clone()).await;
    let event = format!(
        r#"{{"vendorId": "{}", "type": "new_order", "payload": {}}}"#,
        v.vendor.vendor_id,
        tests::fixture("ecomnow/new-order.json").trim_end()
    );
    let out = admin(&["publish", "--api", &stack_var("WEBHOOKS_API_URL")], Some(&event));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(r#""deliveries":1"#), "{}", text(&out.stdout));
    assert_eq!(receiver.wait_for(1, std::time::Duration::from_secs(30)).await.len(), 1);
    // An error from the API is the command's failure, with the API's answer.
    let out = admin(&["publish", "--api", &stack_var("WEBHOOKS_API_URL")], Some("{}"));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("400"), "{}", text(&out.stderr));
}
