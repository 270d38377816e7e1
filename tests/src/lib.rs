//! The test harness: the local stack's coordinates, clients for the API and the emulator,
//! and fixtures. `make test` starts the stack and sets the environment read here.
pub mod deliveries;
pub mod receiver;

use std::{env, path::PathBuf, time::Duration};

use aws_sdk_dynamodb::Client as DynamoClient;
use reqwest::{header::HeaderMap, Method, StatusCode};
use serde_json::Value;
use shared::{
    auth,
    clock::now,
    domain::Vendor,
    ids,
    store::{ApiToken, DynamoStore, TokenStore, VendorStore},
};

/// Reads a variable the stack scripts export, with a message that says how to get it.
pub fn stack_var(name: &str) -> String {
    env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: these tests run against the local stack; use `make test`")
    })
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Where cargo puts the workspace's binaries.
pub fn target_bin(name: &str) -> PathBuf {
    let target =
        env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug").join(name)
}

/// A DynamoDB client on the emulator.
pub async fn dynamo() -> DynamoClient {
    stack_var("AWS_ENDPOINT_URL");
    let aws = shared::aws::sdk_config().await;
    DynamoClient::new(&aws)
}

/// The store on the emulator's table.
pub async fn store() -> DynamoStore {
    DynamoStore::new(dynamo().await, stack_var("TABLE_NAME"))
}

/// Notes a secret the tests used (a password, a token, a signing secret, an `authentication`
/// value) in `$SECRETS_FILE`, which `make test` then looks for in every log: none may appear.
pub fn record_secret(secret: &str) {
    use std::io::Write;
    if let Ok(path) = env::var("SECRETS_FILE") {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            // One write per line: concurrent tests append to the same file.
            let _ = f.write_all(format!("{secret}\n").as_bytes());
        }
    }
}

/// A unique name for this test run.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &ids::vendor_id()[4..14])
}

/// A vendor account with its credentials.
#[derive(Clone, Debug)]
pub struct TestVendor {
    pub vendor: Vendor,
    pub username: String,
    pub password: String,
}

/// Creates a fresh vendor directly in the store.
pub async fn new_vendor(store: &DynamoStore) -> TestVendor {
    let username = unique("vendor");
    let password = format!("pw-{}", ids::vendor_id());
    let vendor = Vendor { vendor_id: ids::vendor_id(), username: username.clone(), created_at: now() };
    let hash = auth::hash_password(&password).unwrap();
    store.create_vendor(&vendor, &hash).await.unwrap();
    record_secret(&password);
    TestVendor { vendor, username, password }
}

/// Issues a bearer token for a vendor directly in the store; returns (token id, token).
pub async fn new_token(store: &DynamoStore, vendor: &Vendor) -> (String, String) {
    let token = auth::new_token();
    let record = ApiToken { token_id: unique("tok"), vendor: vendor.clone(), label: None, created_at: now() };
    store.create_token(&record, &auth::token_hash(&token)).await.unwrap();
    record_secret(&token);
    (record.token_id, token)
}

/// Reads a fixture under `tests/fixtures/`.
pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures").join(path)).unwrap()
}

/// An answer of the API.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// The header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error answer: status, JSON `error.code`, and returns the error object.
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "body: {}", self.text);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        body["error"].clone()
    }
}

/// A client of the API on the local stack.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    pub base: String,
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

impl Api {
    /// The API of the running stack.
    pub fn new() -> Self {
        Self {
            // Generous: the first request to a function may wait for it to start.
            client: reqwest::Client::builder().timeout(Duration::from_secs(180)).build().unwrap(),
            base: stack_var("WEBHOOKS_API_URL"),
        }
    }

    /// Sends a request with the given headers and raw body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = req.send().await.expect("the API did not answer");
        let answer = Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap(),
        };
        // Every signing secret the API hands out goes on the list of what no log may contain.
        for part in answer.text.split("whsec_").skip(1) {
            let secret: String = part.chars().take_while(|c| *c != '"').collect();
            record_secret(&format!("whsec_{secret}"));
        }
        answer
    }

    /// Sends a raw JSON body with a bearer token (Ventiapp).
    pub async fn bearer(&self, token: &str, method: Method, path: &str, body: Option<&str>) -> Answer {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.send(method, path, &headers, body.map(|b| b.as_bytes().to_vec())).await
    }

    /// Sends JSON as a vendor (Username/Password headers).
    pub async fn vendor(&self, v: &TestVendor, method: Method, path: &str, body: Option<&Value>) -> Answer {
        let mut headers = vec![("Username", v.username.as_str()), ("Password", v.password.as_str())];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        self.send(method, path, &headers, body.map(|b| serde_json::to_vec(b).unwrap())).await
    }
}

/// A webhook's attempt log once it holds at least `n` records (dispatch writes each after the
/// receiver has answered, so a test that saw the request may read the log a moment too soon), or
/// what it holds after five seconds.
pub async fn attempts_of(
    store: &DynamoStore,
    webhook_id: u64,
    n: usize,
) -> Vec<shared::store::AttemptRecord> {
    use shared::store::AttemptLog;
    for _ in 0..50 {
        let attempts = store.list_attempts(webhook_id, 50).await.unwrap();
        if attempts.len() >= n {
            return attempts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.list_attempts(webhook_id, 50).await.unwrap()
}

/// A webhook for new orders to `url`, written to the store directly (faster than the API when a
/// test needs many).
pub async fn insert_webhook(store: &DynamoStore, vendor: &Vendor, url: String) -> shared::domain::Webhook {
    use shared::{
        domain::{EventType, Webhook, WebhookSpec},
        store::WebhookStore,
    };
    let spec = WebhookSpec {
        event_type: EventType::NewOrder,
        url,
        authentication: None,
        max_in_flight: None,
        options: Default::default(),
    };
    let w = Webhook::new(ids::webhook_id(), &vendor.vendor_id, spec, ids::signing_secret(), 0);
    store.insert_webhook(&w).await.unwrap();
    w
}

/// A dispatch of a test's own: the real binary under a local Lambda (which restarts it if it
/// dies, as Lambda does), fed from `queue_url` by a bridge, parking in `dead_letter_url` (no
/// other lane), with
/// the stack's AWS settings, a retry schedule a second apart, and `settings` on top. The bridge
/// runs until the returned task is aborted.
pub async fn own_dispatch(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    dead_letter_url: &str,
    settings: &[(&str, &str)],
) -> (devstack::runtime::LocalLambda, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let env: Vec<(String, String)> =
        ["AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TABLE_NAME"]
            .iter()
            .map(|k| (k.to_string(), stack_var(k)))
            .chain(
                [
                    ("DELIVERIES_QUEUE_URL", queue_url),
                    ("DEAD_LETTER_QUEUE_URL", dead_letter_url),
                    ("RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s,1s"),
                    ("RUST_LOG", "warn"),
                    ("ALLOW_PRIVATE_TARGETS", "true"),
                    // Its queues alone: not the stack's lanes, which this process's environment
                    // holds and a child inherits (the stack's dispatch would take what went there).
                    ("SLOW_DELIVERIES_QUEUE_URL", ""),
                    ("ORDERED_DELIVERIES_QUEUE_URL", ""),
                    ("GROUPED_DELIVERIES_QUEUE_URL", ""),
                ]
                .iter()
                .chain(settings)
                .map(|(k, v)| (k.to_string(), v.to_string())),
            )
            .collect();
    let lambda =
        devstack::runtime::LocalLambda::start("dispatch", target_bin("dispatch"), env).await.unwrap();
    let bridge =
        devstack::bridge::Bridge::for_queue(sqs.clone(), queue_url.to_owned(), lambda.invoke_url("dispatch"))
            .await
            .unwrap();
    let bridge = tokio::spawn(async move { bridge.run().await });
    (lambda, bridge)
}
