//! The DynamoDB adapter: one table, `pk` (S) and `sk` (S), and these items:
//!
//! | pk                   | sk                               | what                                  |
//! |----------------------|----------------------------------|---------------------------------------|
//! | `USERNAME#<name>`    | `#`                              | login: vendor id, argon2id hash       |
//! | `VENDORS`            | `VENDOR#<vendorId>`              | the vendor list, one query            |
//! | `VENDOR#<vendorId>`  | `WEBHOOK#<id, 16 digits>`        | a webhook; a vendor's are one query   |
//! | `WEBHOOK#<id>`       | `#`                              | id guard: ids are unique table-wide   |
//! | `VENDOR#<vendorId>`  | `ENDPOINT#<type>#<sha256(url)>`  | duplicate guard: one per type and URL |
//! | `TOKEN#<sha256(tok)>`| `#`                              | bearer login: the token's vendor      |
//! | `TOKENID#<tokenId>`  | `#`                              | revocation by id: the token's hash    |
//! | `VENDOR#<vendorId>`  | `TOKEN#<tokenId>`                | a vendor's tokens, one query          |
//! | `KEY#<vendorId>#<idempotency key>` | `#`                | a publisher's key, for 24 h (TTL)     |
//! | `EVT#<vendorId>#<eventId>` | `#`                        | a published event, its payload deflated, for 30 days (TTL); if a webhook of its type got no delivery of it, in `EventsByTime` under `timeline` = `EVTS#<vendorId>#<type>`, `publishedAt` |
//! | `ATTEMPTS#<id>`      | `<at ms>#<eventId>#<attempt>`    | a delivery attempt, for 30 days (TTL) |
//! | `VENDOR#<vendorId>`  | `NOTIFY`                         | email address, topics, refusal        |
//! | `MAIL#<vendorId>#<type>#<sha256(orderNo)>` | `#`        | an order email's claim, then its record (30 days, TTL) |
//! | `ALERT#<webhookId>`  | `#`                              | the last failure email: when, incident, kinds |
//! | `SESSION#<sha256(id)>` | `#`                            | a portal session: vendor, CSRF token, for 12 h (TTL) |
//! | `SIGNIN#<sha256(kind:value)>` | `#`                     | failed portal sign-ins of a username or address in a window (TTL) |
//!
//! Events and idempotency keys have a partition each, not a place in their vendor's: a busy
//! vendor's publishing would otherwise share one partition key's write limit, and every query for
//! the vendor's webhooks would walk past its events.
//!
//! Each guard is written in the same transaction as the item it guards, conditioned on not
//! existing, so concurrent writers can never share a username, an id or an endpoint.
//!
//! Items are mapped with `serde_dynamo` from the records of `records.rs` (a kept event's in
//! `kept.rs`, with its deflated payload); the ports are implemented by kind: `accounts.rs`
//! (vendors, tokens), `webhooks.rs`, `log.rs` (events, idempotency keys, attempts),
//! `notify.rs` (email settings, claims, alerts).
use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::{ProvideErrorMetadata, SdkError},
    operation::{
        put_item::PutItemError, transact_write_items::TransactWriteItemsError, update_item::UpdateItemError,
    },
    types::{
        AttributeValue, Delete, Put, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure,
        TransactWriteItem, WriteRequest,
    },
    Client,
};

use super::{
    ApiToken, AttemptLog, AttemptRecord, Conflict, DeliverySlots, EventClaim, EventLog, EventStart,
    MailClaim, NotifyStore, PortalSession, SessionStore, SignedInWith, StoreError, StoredEvent, TokenStore,
    VendorLogin, VendorStore, WebhookStore,
};
use crate::{
    domain::{EventType, Vendor, Webhook},
    notify::{AlertRecord, Notifications},
};

mod accounts;
mod kept;
mod log;
mod notify;
mod records;
mod sessions;
mod slots;
mod webhooks;

pub use kept::{item_bytes, kept_event_write_units};

type Item = HashMap<String, AttributeValue>;

/// How long attempts stay in the log.
pub const ATTEMPT_TTL_SECS: i64 = 30 * 24 * 3600;

/// How long a sent email's record keeps it from going out again.
pub const MAIL_RECORD_TTL_SECS: i64 = 30 * 24 * 3600;

/// The DynamoDB implementation of every store port.
#[derive(Clone, Debug)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

/// A write of a transaction, with the conflict its condition failing means (`None`: it has no
/// condition). Conflicts are decoded by these names, never by an item's position.
type Write = (TransactWriteItem, Option<Conflict>);

impl DynamoStore {
    /// Wraps a client and the table name.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    fn put(
        &self,
        item: Item,
        condition: &str,
        values: Option<Item>,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_values(values)
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete(
        &self,
        pk: String,
        sk: String,
        condition: Option<(&str, Item)>,
    ) -> Result<TransactWriteItem, StoreError> {
        let (condition, values) = match condition {
            Some((c, v)) => (Some(c.to_owned()), Some(v).filter(|v| !v.is_empty())),
            None => (None, None),
        };
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .set_condition_expression(condition)
            .set_expression_attribute_values(values)
            .build()
            .map_err(backend)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Runs a transaction of writes, each with the conflict its condition failing would mean;
    /// on a condition failure, returns those conflicts, named, whatever the items' order.
    async fn transact(&self, writes: Vec<Write>) -> Result<Result<(), Vec<Conflict>>, StoreError> {
        let (items, conflicts): (Vec<TransactWriteItem>, Vec<Option<Conflict>>) = writes.into_iter().unzip();
        let named =
            |failed: &[usize]| -> Vec<Conflict> { failed.iter().filter_map(|&i| conflicts[i]).collect() };
        // One put needs no transaction: a conditional PutItem is as atomic, and costs half the
        // write units (DynamoDB bills transactional writes twice). Dispatch's webhook updates
        // (failing since, disabled) are such single puts.
        if let [only] = items.as_slice() {
            if let Some(put) = only.put() {
                let sent = self
                    .client
                    .put_item()
                    .table_name(put.table_name())
                    .set_item(Some(put.item().clone()))
                    .set_condition_expression(put.condition_expression().map(str::to_owned))
                    .set_expression_attribute_names(put.expression_attribute_names().cloned())
                    .set_expression_attribute_values(put.expression_attribute_values().cloned())
                    .send()
                    .await;
                return match sent {
                    Ok(_) => Ok(Ok(())),
                    Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                        Ok(Err(named(&[0])))
                    }
                    Err(e) => Err(backend(e)),
                };
            }
        }
        // One token for the call and the SDK's retries of it: DynamoDB applies a retried
        // transaction that already succeeded as a no-op, instead of failing its conditions.
        let token = format!("{:032x}", rand::random::<u128>());
        let sent =
            self.client.transact_write_items().set_transact_items(Some(items)).client_request_token(token);
        match sent.send().await {
            Ok(_) => Ok(Ok(())),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let failed: Vec<usize> = c
                        .cancellation_reasons()
                        .iter()
                        .enumerate()
                        .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
                        .map(|(i, _)| i)
                        .collect();
                    if failed.is_empty() {
                        Err(backend(TransactWriteItemsError::TransactionCanceledException(c)))
                    } else {
                        Ok(Err(named(&failed)))
                    }
                }
                other => Err(backend(other)),
            },
            Err(e) => Err(backend(e)),
        }
    }

    async fn query_all(&self, pk: String, sk_prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(sk_prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(backend)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    async fn get_item(&self, pk: String, sk: String) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(backend)?;
        Ok(out.item)
    }
}

fn vendor_pk(vendor_id: &str) -> String {
    format!("VENDOR#{vendor_id}")
}

/// A publisher's idempotency key, in a partition of its own.
fn key_pk(vendor_id: &str, key: &str) -> String {
    format!("KEY#{vendor_id}#{key}")
}

/// A published event, in a partition of its own.
fn event_pk(vendor_id: &str, event_id: &str) -> String {
    format!("EVT#{vendor_id}#{event_id}")
}

/// The index of a vendor's events of one type by time: `timeline` (S), `publishedAt` (N).
pub const EVENTS_BY_TIME: &str = "EventsByTime";

/// A vendor's events of one type, in [`EVENTS_BY_TIME`].
fn timeline_pk(vendor_id: &str, event_type: EventType) -> String {
    format!("EVTS#{vendor_id}#{}", event_type.as_str())
}

fn webhook_sk(id: u64) -> String {
    format!("WEBHOOK#{id:016}")
}

fn endpoint_sk(w: &Webhook) -> String {
    format!("ENDPOINT#{}#{}", w.event_type.as_str(), crate::digest::sha256_hex(&w.url))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn conditional<O, E, R>(result: Result<O, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(SdkError::ServiceError(e)) if e.err().code() == Some("ConditionalCheckFailedException") => {
            Ok(false)
        }
        Err(e) => Err(backend(e)),
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}
