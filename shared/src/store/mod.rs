//! Storage ports, split the way the functions' permissions are, and their DynamoDB adapter.
use std::future::Future;

use crate::domain::{EventType, Vendor, Webhook};

mod dynamo;
mod memory;
mod sessions;
pub use dynamo::{item_bytes, kept_event_write_units, DynamoStore, ATTEMPT_TTL_SECS};
pub use memory::MemoryStore;
pub use sessions::{PortalSession, SessionStore, SignedInWith};

/// A boxed cause from a storage backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a conditional write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Another vendor already has this username.
    UsernameTaken,
    /// The generated webhook id is in use (the caller draws another).
    IdTaken,
    /// This vendor already has a webhook for this event type and URL.
    DuplicateEndpoint,
    /// The webhook changed or vanished between read and write.
    Concurrent,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflicting write: {0:?}")]
    Conflict(Conflict),
    #[error("stored item is malformed: {0}")]
    Corrupt(String),
    #[error("storage backend failed")]
    Backend(#[source] BoxError),
}

/// A vendor account with the hash its password is checked against.
#[derive(Clone)]
pub struct VendorLogin {
    pub vendor: Vendor,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// An API token of the Ventiapp dialect, as stored: never the token, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// `tok_…`: what operators list and revoke tokens by.
    pub token_id: String,
    pub vendor: Vendor,
    pub label: Option<String>,
    pub created_at: i64,
}

/// Vendor accounts: created by operators, read on every authenticated request.
pub trait VendorStore: Send + Sync {
    /// Creates an account; `Conflict(UsernameTaken)` if the username is in use.
    fn create_vendor(
        &self,
        vendor: &Vendor,
        password_hash: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Looks an account up by its normalised username.
    fn vendor_login(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<VendorLogin>, StoreError>> + Send;

    /// Every vendor account, oldest first.
    fn list_vendors(&self) -> impl Future<Output = Result<Vec<Vendor>, StoreError>> + Send;

    /// Looks an account up by its id.
    fn vendor_by_id(
        &self,
        vendor_id: &str,
    ) -> impl Future<Output = Result<Option<Vendor>, StoreError>> + Send;
}

/// Bearer tokens: issued and revoked by operators, read on every Ventiapp request.
pub trait TokenStore: Send + Sync {
    /// Stores a token's record under the SHA-256 of the token.
    fn create_token(
        &self,
        token: &ApiToken,
        hash: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The token whose SHA-256 is `hash`, read consistently so that a revoked token stops
    /// working at once.
    fn token_by_hash(&self, hash: &str) -> impl Future<Output = Result<Option<ApiToken>, StoreError>> + Send;

    /// A vendor's tokens, oldest first.
    fn list_tokens(&self, vendor_id: &str) -> impl Future<Output = Result<Vec<ApiToken>, StoreError>> + Send;

    /// Deletes a token; false if there was none with that id.
    fn revoke_token(&self, token_id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A vendor's webhooks. Every method is scoped to one vendor: no call reaches another's.
pub trait WebhookStore: Send + Sync {
    /// Inserts a new webhook; `Conflict(IdTaken)` or `Conflict(DuplicateEndpoint)`.
    fn insert_webhook(&self, webhook: &Webhook) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One webhook of a vendor, read consistently.
    fn get_webhook(
        &self,
        vendor_id: &str,
        id: u64,
    ) -> impl Future<Output = Result<Option<Webhook>, StoreError>> + Send;

    /// Webhooks by (vendor, id), read consistently and together (DynamoDB: one `BatchGetItem`
    /// for up to 100 keys, billed as a read per webhook), answered in the order of `keys`:
    /// `None` where there is none. The keys are distinct.
    fn get_webhooks(
        &self,
        keys: &[(&str, u64)],
    ) -> impl Future<Output = Result<Vec<Option<Webhook>>, StoreError>> + Send;

    /// All of a vendor's webhooks, by id.
    fn list_webhooks(&self, vendor_id: &str)
        -> impl Future<Output = Result<Vec<Webhook>, StoreError>> + Send;

    /// Replaces `current` with `next` (same id and vendor) if `current` is still what is stored;
    /// `Conflict(Concurrent)` if it is not, `Conflict(DuplicateEndpoint)` if `next` would
    /// duplicate another webhook.
    fn replace_webhook(
        &self,
        current: &Webhook,
        next: &Webhook,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes `current` if it is still what is stored; `Conflict(Concurrent)` if not.
    fn delete_webhook(&self, current: &Webhook) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What a publisher's idempotency key says about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventStart {
    /// First time seen: fan it out, under a lease.
    New,
    /// Seen, but its fan-out stopped (a crash, or an error that released the lease): this
    /// caller holds the lease now and fans it out again.
    Resumed { event_id: String },
    /// Being fanned out by another request, whose lease runs this much longer.
    InProgress { retry_after_secs: u64 },
    /// Seen and fanned out: answer as the first time, enqueue nothing.
    Done { event_id: String, deliveries: u32 },
    /// Seen with another type or payload: the key is already taken.
    Mismatch,
}

/// A request to fan out an event under an idempotency key.
#[derive(Debug, Clone, Copy)]
pub struct EventClaim<'a> {
    pub vendor_id: &'a str,
    pub key: &'a str,
    pub event_id: &'a str,
    /// What makes two publishes the same event: a digest of its type and payload.
    pub fingerprint: &'a str,
    /// Unix seconds.
    pub now: i64,
    /// Until when this caller may fan it out alone (Unix seconds): longer than the function
    /// may run, so that a lease past its time is a fan-out that died.
    pub lease_until: i64,
    /// When the key is forgotten (Unix seconds).
    pub expires_at: i64,
}

/// A published event as kept for redelivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub event_id: String,
    pub vendor_id: String,
    pub event_type: EventType,
    /// The payload exactly as published.
    pub payload: String,
    /// Unix seconds.
    pub published_at: i64,
    /// Whether the event is in its vendor's timeline, where recovery finds events by time:
    /// only one that a webhook of its type got no delivery of (disabled, or its filter said
    /// no). Recovery finds the others through the webhook's attempt log.
    pub in_timeline: bool,
}

/// Published events: their idempotency keys, kept for a day, and the events themselves, kept
/// as long as the attempt log so that any delivery a vendor sees can be sent again.
pub trait EventLog: Send + Sync {
    /// Keeps published events.
    fn store_events(&self, events: &[StoredEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A vendor's kept events of one type in its timeline published from `since` to `until`
    /// (Unix seconds, both included), oldest first, at most `limit` of them.
    fn events_between(
        &self,
        vendor_id: &str,
        event_type: EventType,
        since: i64,
        until: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// A vendor's event by id, if it is still kept.
    fn get_event(
        &self,
        vendor_id: &str,
        event_id: &str,
    ) -> impl Future<Output = Result<Option<StoredEvent>, StoreError>> + Send;

    /// Those of a vendor's events by id that are still kept, in no particular order.
    fn events_by_id(
        &self,
        vendor_id: &str,
        event_ids: &[String],
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Records the key and takes its lease, unless a live record exists: then what it says.
    fn begin_event(
        &self,
        claim: &EventClaim<'_>,
    ) -> impl Future<Output = Result<EventStart, StoreError>> + Send;

    /// Gives up the lease of a fan-out that failed, so that a retry need not wait for it.
    fn release_event(
        &self,
        vendor_id: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Marks the event fanned out to `deliveries` webhooks.
    fn finish_event(
        &self,
        vendor_id: &str,
        key: &str,
        deliveries: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The deliveries in flight to each webhook, shared by every dispatch instance: a slot is taken
/// before an attempt and given back after it (a batch's several for one webhook together). A
/// slot not given back (a crashed instance) frees itself at its expiry.
pub trait DeliverySlots: Send + Sync {
    /// Takes a slot for each of `leases`, until `expires_ms` (Unix milliseconds), or for as many
    /// of the first of them as fit under `cap` beside the slots held; how many were taken (0:
    /// the webhook has `cap` deliveries in flight).
    fn take_slots(
        &self,
        webhook_id: u64,
        leases: &[String],
        now_ms: i64,
        expires_ms: i64,
        cap: u32,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Gives slots back.
    fn give_slots(
        &self,
        webhook_id: u64,
        leases: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// One delivery attempt, as the log keeps it for 30 days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub webhook_id: u64,
    pub vendor_id: String,
    pub event_id: String,
    /// 1-based.
    pub attempt: u32,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    /// `delivered`, `rejected`, or why there was no answer (`timeout`, `connect`, …).
    pub outcome: String,
    pub duration_ms: u64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The first KiB of the response body.
    pub response_excerpt: String,
    /// The request's `webhook-timestamp`, the time it was signed at (Unix seconds): `None` for
    /// a delivery dropped unsent, and for attempts recorded before it was kept.
    pub signed_at: Option<i64>,
}

/// Where an attempt is in its webhook's log: its time, event and number, which sort as the log
/// does (oldest first).
pub fn attempt_key(r: &AttemptRecord) -> String {
    format!("{:013}#{}#{:02}", r.at_ms, r.event_id, r.attempt)
}

/// The delivery attempt log.
pub trait AttemptLog: Send + Sync {
    /// Appends an attempt.
    fn record_attempt(&self, record: &AttemptRecord) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends attempts together (DynamoDB: one `BatchWriteItem` for up to 25); of records with
    /// the same place in the log ([`attempt_key`]), one is kept.
    fn record_attempts(
        &self,
        records: &[AttemptRecord],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A page of a webhook's attempts, newest first, after the cursor of a previous page; and the
    /// cursor of the next page, if there is one.
    fn attempts_page(
        &self,
        webhook_id: u64,
        limit: i32,
        after: Option<&str>,
    ) -> impl Future<Output = Result<(Vec<AttemptRecord>, Option<String>), StoreError>> + Send;

    /// The events of a webhook's attempts made since `since_ms` (Unix ms), each with whether
    /// one of them got a 2xx.
    fn attempted_since(
        &self,
        webhook_id: u64,
        since_ms: i64,
    ) -> impl Future<Output = Result<std::collections::HashMap<String, bool>, StoreError>> + Send;

    /// One attempt, by its [`attempt_key`]; `None` if the log has no such attempt.
    fn get_attempt(
        &self,
        webhook_id: u64,
        key: &str,
    ) -> impl Future<Output = Result<Option<AttemptRecord>, StoreError>> + Send;

    /// A webhook's latest attempts, newest first.
    fn list_attempts(
        &self,
        webhook_id: u64,
        limit: i32,
    ) -> impl Future<Output = Result<Vec<AttemptRecord>, StoreError>> + Send;
}

/// What a claim on an email says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailClaim {
    /// Ours: send it, then settle the claim.
    Claimed,
    /// Sent (or refused for good) already: nothing to do.
    Settled,
    /// Another sender holds a live claim: try again later.
    Busy,
}

/// Vendors' notification settings, and what keeps emails from going out twice or in storms.
pub trait NotifyStore: Send + Sync {
    /// A vendor's settings; `None` if it never set any.
    fn get_notifications(
        &self,
        vendor_id: &str,
    ) -> impl Future<Output = Result<Option<crate::notify::Notifications>, StoreError>> + Send;

    /// Replaces a vendor's settings.
    fn put_notifications(
        &self,
        vendor_id: &str,
        settings: &crate::notify::Notifications,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that SES refused `email`, unless the vendor has changed its address since.
    fn refuse_email(
        &self,
        vendor_id: &str,
        email: &str,
        at: i64,
        reason: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims the email `key` for `token`: granted if nobody did, or if the last claim is
    /// unsettled and older than `lease_secs` (its sender died).
    fn claim_mail(
        &self,
        key: &str,
        token: &str,
        now: i64,
        lease_secs: i64,
    ) -> impl Future<Output = Result<MailClaim, StoreError>> + Send;

    /// Settles a claim held by `token`: `sent` keeps the email from ever going out again (for
    /// 30 days); otherwise the claim is released for a later attempt.
    fn settle_mail(
        &self,
        key: &str,
        token: &str,
        sent: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Opens a failure alert of `kind` about a webhook, at most one per webhook per
    /// `interval_secs` and each kind once per incident (`incident`: when the failures began, if
    /// known). True if the caller is to send it; it is then recorded as sent.
    fn open_alert(
        &self,
        webhook_id: u64,
        kind: &str,
        incident: Option<i64>,
        now: i64,
        interval_secs: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Takes back an alert opened at `opened_at` that could not be sent.
    fn cancel_alert(
        &self,
        webhook_id: u64,
        opened_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
