//! The HTTP API: what every function holds ([`App`]), the operations' handlers, the middleware
//! around them, the route table and the two dialects' shapes.
use crate::{
    clock::now,
    config::Config,
    domain::{Dialect, Vendor, Webhook, WebhookSpec},
    error::ApiError,
    ids,
    queue::SqsQueue,
    store::{Conflict, DynamoStore, StoreError, WebhookStore},
    urls::TargetPolicy,
};

mod ecomnow;
pub mod handlers;
pub mod middleware;
mod operate;
pub mod publish;
pub mod recover;
pub mod request;
pub mod routes;
mod ventiapp;

pub use middleware::{run, Call};
pub use routes::{Operation, Route, ROUTES};

/// What every function holds for its lifetime: settings, the store and (for publishing) the
/// deliveries and emails queues, built once at start-up.
pub struct App<S = DynamoStore, Q = SqsQueue> {
    pub config: Config,
    pub store: S,
    pub queue: Option<Q>,
    /// The slow lane, where a failing webhook's deliveries go (for publishing; `None`: the
    /// deliveries queue).
    pub slow_lane: Option<Q>,
    /// The FIFO queue of ordered deliveries (`per_order` webhooks), when the stack has one.
    pub ordered: Option<Q>,
    /// The grouped lane (`shared::grouped`), where a healthy webhook's deliveries go when SQS
    /// can keep its cap, when the stack has one.
    pub grouped: Option<Q>,
    /// Where order emails are asked for (for publishing, with emails on).
    pub emails: Option<Q>,
    /// The HTTP client of test deliveries, built on the first one (only `test-webhook` sends).
    deliverer: std::sync::OnceLock<crate::delivery::HttpDeliverer>,
    /// What this instance remembers of password checks: credentials verified a moment ago, and
    /// usernames with too many failures.
    pub logins: crate::login_guard::LoginGuard,
}

type StartError = Box<dyn std::error::Error + Send + Sync>;

impl App<DynamoStore> {
    /// Reads the settings and builds the store's client (`AWS_ENDPOINT_URL` points it at an
    /// emulator locally).
    pub async fn from_env() -> Result<Self, StartError> {
        Ok(Self::from_parts(Config::from_env()?, &crate::aws::lambda_sdk_config()))
    }

    /// [`App::from_env`] with the deliveries queue of `DELIVERIES_QUEUE_URL`, which must be set,
    /// the slow lane of `SLOW_DELIVERIES_QUEUE_URL` if set, and with emails on the emails queue of
    /// `EMAILS_QUEUE_URL`: for the functions that queue deliveries.
    pub async fn from_env_with_queue() -> Result<Self, StartError> {
        let config = Config::from_env()?;
        let url = config.require_deliveries_queue()?.to_owned();
        let emails = config.emails_queue_url.clone();
        let slow_lane = config.slow_deliveries_queue_url.clone();
        let ordered = config.ordered_deliveries_queue_url.clone();
        let grouped = config.grouped_deliveries_queue_url.clone();
        let aws = crate::aws::lambda_sdk_config();
        let mut app = Self::from_parts(config, &aws);
        let sqs = aws_sdk_sqs::Client::new(&aws);
        app.emails = emails.map(|url| SqsQueue::new(sqs.clone(), url));
        app.slow_lane = slow_lane.map(|url| SqsQueue::new(sqs.clone(), url));
        app.ordered = ordered.map(|url| SqsQueue::new(sqs.clone(), url));
        app.grouped = grouped.map(|url| SqsQueue::new(sqs.clone(), url));
        app.queue = Some(SqsQueue::new(sqs, url));
        Ok(app)
    }

    fn from_parts(config: Config, aws: &aws_config::SdkConfig) -> Self {
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), &config.table_name);
        Self::new(config, store)
    }
}

impl<S, Q> App<S, Q> {
    /// Builds an app over any store (tests use the emulator or an in-memory one).
    pub fn new(config: Config, store: S) -> Self {
        let logins = crate::login_guard::LoginGuard::new(config.login);
        Self {
            config,
            store,
            queue: None,
            slow_lane: None,
            ordered: None,
            grouped: None,
            emails: None,
            deliverer: Default::default(),
            logins,
        }
    }

    /// The target policy for a dialect: Ventiapp requires https always, as its document says.
    pub fn target_policy(&self, dialect: Dialect) -> TargetPolicy {
        let local = self.config.delivery.allow_private_targets;
        TargetPolicy { allow_private: local, allow_http: local && dialect == Dialect::Ecomnow }
    }
}

/// How many times a write is retried after losing a race (id collision, concurrent update).
const WRITE_ATTEMPTS: usize = 5;

impl<S: WebhookStore, Q> App<S, Q> {
    /// Registers a webhook with a fresh id and signing secret, unless the vendor has its limit
    /// of webhooks already (`409 webhook_limit`). Two creations racing at the limit may both
    /// pass: the limit bounds what an event fans out to, it is not a quota to the unit.
    pub async fn create_webhook(&self, vendor: &Vendor, spec: WebhookSpec) -> Result<Webhook, ApiError> {
        let limit = self.config.max_webhooks_per_vendor;
        let existing = self.store.list_webhooks(&vendor.vendor_id).await?.len();
        if existing >= limit {
            return Err(ApiError::new(
                lambda_http::http::StatusCode::CONFLICT,
                "webhook_limit",
                format!("a vendor may have at most {limit} webhooks, and this one has {existing}: delete one first"),
            ));
        }
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
                max_in_flight: spec.max_in_flight,
                options: spec.options.apply(&c.options),
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
