//! Publishing events and checking what receivers got: the helpers of the end-to-end delivery tests.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::{fixture, receiver::Received, Answer, Api, TestVendor};

/// How long a test waits for deliveries that should come.
pub const WAIT: Duration = Duration::from_secs(30);

pub async fn publish(api: &Api, body: &str) -> Answer {
    api.send(Method::POST, "/events", &[("Content-Type", "application/json")], Some(body.as_bytes().to_vec()))
        .await
}

/// A publish body around a payload (given as text, so that its bytes are what is published).
pub fn event(vendor: &TestVendor, id: Option<&str>, event_type: &str, payload: &str) -> String {
    let id = id.map(|i| format!(r#""id": "{i}", "#)).unwrap_or_default();
    let vendor_id = &vendor.vendor.vendor_id;
    format!(r#"{{{id}"vendorId": "{vendor_id}", "type": "{event_type}", "payload": {payload}}}"#)
}

/// A fixture's JSON text, without its final newline: the bytes a publisher sends as `payload`.
pub fn payload(name: &str) -> String {
    fixture(name).trim_end().to_owned()
}

/// Registers an eComNow webhook; returns (id, secret).
pub async fn ecomnow_webhook(
    api: &Api,
    v: &TestVendor,
    kind: &str,
    url: &str,
    auth: Option<&str>,
) -> (u64, String) {
    let body = json!({"webhookType": kind, "url": url, "authentication": auth});
    let a = api.vendor(v, Method::POST, "/basic/webhooks", Some(&body)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let w = a.json();
    (w["webhookId"].as_u64().unwrap(), w["secret"].as_str().unwrap().to_owned())
}

/// Checks a Standard Webhooks signature with code of its own (not the service's).
pub fn verify(secret: &str, id: &str, ts: &str, body: &[u8], header: &str) -> bool {
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header.split(' ').any(|s| s == expected)
}

/// Checks a delivery with the Standard Webhooks reference library (PyPI `standardwebhooks`,
/// installed in the venv by `make test`).
pub fn verify_with_reference_library(secret: &str, r: &Received) -> bool {
    let headers: serde_json::Map<String, Value> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .iter()
        .map(|h| (h.to_string(), json!(r.header(h).unwrap())))
        .collect();
    let script = "import json, sys\nfrom standardwebhooks.webhooks import Webhook\n\
        Webhook(sys.argv[1]).verify(sys.stdin.buffer.read(), json.loads(sys.argv[2]))\nprint('verified')";
    let mut child = std::process::Command::new("python")
        .args(["-c", script, secret, &Value::Object(headers).to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the venv's python is on PATH");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&r.body).unwrap();
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success() && out.stdout.starts_with(b"verified")
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}
