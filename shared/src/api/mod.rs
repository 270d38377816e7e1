//! The HTTP API: one entry point per function, routing, authentication, and the dialects.
use lambda_http::{Body, Request, RequestExt, Response};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::{
    auth,
    config::Config,
    domain::{Dialect, Vendor, Webhook, WebhookSpec},
    error::ApiError,
    ids,
    queue::{DeliveryQueue, SqsQueue},
    store::{
        AttemptLog, Conflict, DynamoStore, EventLog, NotifyStore, StoreError, TokenStore, VendorStore,
        WebhookStore,
    },
    urls::TargetPolicy,
};

mod ecomnow;
mod operate;
mod publish;
pub mod request;
pub mod routes;
mod ventiapp;

pub use routes::{Operation, Route, ROUTES};

/// What every function holds for its lifetime: settings, the store and (for publishing) the
/// deliveries queue, built once at start-up.
pub struct App<S = DynamoStore, Q = SqsQueue> {
    pub config: Config,
    pub store: S,
    pub queue: Option<Q>,
    /// The HTTP client of test deliveries, built on the first one (only `test-webhook` sends).
    deliverer: std::sync::OnceLock<crate::delivery::HttpDeliverer>,
}

impl App<DynamoStore> {
    /// Reads the settings and builds the AWS clients (`AWS_ENDPOINT_URL` points them at an
    /// emulator locally).
    pub async fn from_env() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let config = Config::from_env()?;
        let aws = crate::aws::sdk_config().await;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name);
        let queue = std::env::var("DELIVERIES_QUEUE_URL")
            .ok()
            .map(|url| SqsQueue::new(aws_sdk_sqs::Client::new(&aws), url));
        Ok(Self { config, store, queue, deliverer: Default::default() })
    }
}

impl<S: VendorStore + WebhookStore + TokenStore + EventLog + AttemptLog + NotifyStore, Q: DeliveryQueue>
    App<S, Q>
{
    /// Builds an app over any store (tests use the emulator or an in-memory one).
    pub fn new(config: Config, store: S) -> Self {
        Self { config, store, queue: None, deliverer: Default::default() }
    }

    /// Serves one request for the function `op`; never fails, every error is a JSON answer.
    pub async fn handle(&self, op: Operation, req: Request) -> Response<Body> {
        let request_id = req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
        let span = tracing::info_span!(
            "request",
            function = op.function_name(),
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %request_id,
            vendor = tracing::field::Empty,
        );
        async move {
            let response = self.dispatch(op, &req).await.unwrap_or_else(ApiError::into_response);
            tracing::info!(status = response.status().as_u16(), "answered");
            response
        }
        .instrument(span)
        .await
    }

    async fn dispatch(&self, op: Operation, req: &Request) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path().to_owned();
        let (route, param) = match routes::resolve(req.method().as_str(), &path) {
            routes::Resolved::Route(route, param) => (route, param),
            routes::Resolved::MethodNotAllowed(allow) => return Err(ApiError::method_not_allowed(&allow)),
            routes::Resolved::NotFound => return Err(ApiError::not_found("route")),
        };
        if route.operation != op {
            // The template routed this request to the wrong function: a deployment bug.
            tracing::error!(
                expected = route.operation.function_name(),
                "request routed to the wrong function"
            );
            return Err(ApiError::new(
                lambda_http::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error, please retry later",
            ));
        }
        match route.dialect {
            Dialect::Ecomnow => {
                let vendor = self.authenticate_basic(req).await?;
                tracing::Span::current().record("vendor", vendor.vendor_id.as_str());
                ecomnow::serve(self, op, &vendor, param, req).await
            }
            Dialect::Platform => publish::serve(self, req).await,
            Dialect::Ventiapp => {
                let vendor = self.authenticate_bearer(req).await?;
                tracing::Span::current().record("vendor", vendor.vendor_id.as_str());
                ventiapp::serve(self, op, &vendor, req).await
            }
        }
    }

    /// eComNow authentication: `Username`/`Password` headers or HTTP Basic.
    async fn authenticate_basic(&self, req: &Request) -> Result<Vendor, ApiError> {
        const CHALLENGE: &str = "Basic realm=\"webhooks\", charset=\"UTF-8\"";
        let creds = auth::credentials_from_headers(req.headers()).ok_or(ApiError::unauthorized(CHALLENGE))?;
        let login = match auth::normalize_username(&creds.username) {
            Ok(username) => self.store.vendor_login(&username).await?,
            Err(_) => None,
        };
        match login {
            Some(login) if auth::verify_password(&creds.password, &login.password_hash) => Ok(login.vendor),
            Some(_) => Err(ApiError::unauthorized(CHALLENGE)),
            None => {
                auth::verify_against_dummy(&creds.password);
                Err(ApiError::unauthorized(CHALLENGE))
            }
        }
    }

    /// Ventiapp authentication: `Authorization: Bearer <token>`, looked up by its SHA-256 and
    /// compared in constant time.
    async fn authenticate_bearer(&self, req: &Request) -> Result<Vendor, ApiError> {
        const CHALLENGE: &str = "Bearer realm=\"webhooks\"";
        let token = auth::bearer_token(req.headers()).ok_or(ApiError::unauthorized(CHALLENGE))?;
        let hash = auth::token_hash(token);
        match self.store.token_by_hash(&hash).await? {
            Some((record, stored)) if auth::hashes_match(&hash, &stored) => Ok(record.vendor),
            _ => Err(ApiError::unauthorized(CHALLENGE)),
        }
    }

    /// The target policy for a dialect: Ventiapp requires https always, as its document says.
    pub fn target_policy(&self, dialect: Dialect) -> TargetPolicy {
        let local = self.config.allow_private_targets;
        TargetPolicy { allow_private: local, allow_http: local && dialect == Dialect::Ecomnow }
    }
}

/// The whole life of an API function: logging, settings and clients built once, then requests
/// served until the runtime stops. Each function's `main` is this with its operation.
pub async fn run_function(op: Operation) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let app = App::from_env().await?;
    let app = &app;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(app.handle(op, req).await)
    }))
    .await
}

/// Unix seconds in RFC 3339, UTC (`Z`).
pub fn rfc3339(unix: i64) -> String {
    rfc3339_nanos(unix as i128 * 1_000_000_000)
}

/// RFC 3339 in UTC (`Z`), with fractions only where the time has them.
pub fn rfc3339_nanos(nanos: i128) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The current time in unix seconds.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// How many times a write is retried after losing a race (id collision, concurrent update).
const WRITE_ATTEMPTS: usize = 5;

impl<S: WebhookStore, Q> App<S, Q> {
    /// Registers a webhook with a fresh id and signing secret.
    pub async fn create_webhook(&self, vendor: &Vendor, spec: WebhookSpec) -> Result<Webhook, ApiError> {
        let now = now();
        let mut webhook = Webhook::new(0, &vendor.vendor_id, spec, ids::signing_secret(), now);
        for _ in 0..WRITE_ATTEMPTS {
            webhook.id = ids::webhook_id();
            match self.store.insert_webhook(&webhook).await {
                Ok(()) => {
                    tracing::info!(webhook_id = webhook.id, event_type = %webhook.event_type, "webhook created");
                    return Ok(webhook);
                }
                Err(StoreError::Conflict(Conflict::IdTaken)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(Conflict::IdTaken).into())
    }

    /// One of the vendor's webhooks; another vendor's is "not found".
    pub async fn find_webhook(&self, vendor: &Vendor, id: u64) -> Result<Webhook, ApiError> {
        self.store.get_webhook(&vendor.vendor_id, id).await?.ok_or_else(|| ApiError::not_found("webhook"))
    }

    /// Replaces a webhook's type, URL and authentication; id, secret and creation time stay.
    pub async fn update_webhook(
        &self,
        vendor: &Vendor,
        id: u64,
        spec: WebhookSpec,
    ) -> Result<Webhook, ApiError> {
        let w = self
            .modify_webhook(vendor, id, |c| Webhook {
                event_type: spec.event_type,
                url: spec.url.clone(),
                authentication: spec.authentication.clone(),
                ..c.clone()
            })
            .await?;
        tracing::info!(webhook_id = id, "webhook updated");
        Ok(w)
    }

    /// Applies `change` to the current webhook, retrying if another writer got there first.
    pub(super) async fn modify_webhook(
        &self,
        vendor: &Vendor,
        id: u64,
        change: impl Fn(&Webhook) -> Webhook,
    ) -> Result<Webhook, ApiError> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.find_webhook(vendor, id).await?;
            let next = Webhook { updated_at: now(), version: current.version + 1, ..change(&current) };
            match self.store.replace_webhook(&current, &next).await {
                Ok(()) => return Ok(next),
                Err(StoreError::Conflict(Conflict::Concurrent)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(Conflict::Concurrent).into())
    }

    /// Deletes a webhook and answers what it was.
    pub async fn delete_webhook(&self, vendor: &Vendor, id: u64) -> Result<Webhook, ApiError> {
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.find_webhook(vendor, id).await?;
            match self.store.delete_webhook(&current).await {
                Ok(()) => {
                    tracing::info!(webhook_id = id, "webhook deleted");
                    return Ok(current);
                }
                Err(StoreError::Conflict(Conflict::Concurrent)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict(Conflict::Concurrent).into())
    }
}
