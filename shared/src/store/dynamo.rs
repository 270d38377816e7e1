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
//! | `EVT#<vendorId>#<eventId>` | `#`                        | a published event, for 30 days (TTL)  |
//! | `ATTEMPTS#<id>`      | `<at ms>#<eventId>#<attempt>`    | a delivery attempt, for 30 days (TTL) |
//! | `VENDOR#<vendorId>`  | `NOTIFY`                         | email address, topics, refusal        |
//! | `MAIL#<vendorId>#<type>#<sha256(orderNo)>` | `#`        | an order email's claim, then its record (30 days, TTL) |
//! | `ALERT#<webhookId>`  | `#`                              | the last failure email: when, incident, kinds |
//!
//! Events and idempotency keys have a partition each, not a place in their vendor's: a busy
//! vendor's publishing would otherwise share one partition key's write limit, and every query for
//! the vendor's webhooks would walk past its events.
//!
//! Each guard is written in the same transaction as the item it guards, conditioned on not
//! existing, so concurrent writers can never share a username, an id or an endpoint.
use std::collections::HashMap;

use aws_sdk_dynamodb::{
    error::{ProvideErrorMetadata, SdkError},
    operation::transact_write_items::TransactWriteItemsError,
    types::{AttributeValue, Delete, Put, TransactWriteItem},
    Client,
};
use serde::{Deserialize, Serialize};

use super::{
    ApiToken, AttemptLog, AttemptRecord, Conflict, EventLog, EventStart, MailClaim, NotifyStore, StoreError,
    StoredEvent, TokenStore, VendorLogin, VendorStore, WebhookStore,
};
use crate::{
    domain::{EventType, Vendor, Webhook},
    notify::{AlertRecord, Notifications},
};

type Item = HashMap<String, AttributeValue>;

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
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
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

impl VendorStore for DynamoStore {
    async fn create_vendor(&self, vendor: &Vendor, password_hash: &str) -> Result<(), StoreError> {
        let login =
            vendor_item(format!("USERNAME#{}", vendor.username), "#".into(), vendor, Some(password_hash))?;
        let listed = vendor_item("VENDORS".into(), format!("VENDOR#{}", vendor.vendor_id), vendor, None)?;
        let items = vec![
            (self.put(login, "attribute_not_exists(pk)", None)?, Some(Conflict::UsernameTaken)),
            (self.put(listed, "attribute_not_exists(pk)", None)?, Some(Conflict::IdTaken)),
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(c) if c.contains(&Conflict::UsernameTaken) => {
                Err(StoreError::Conflict(Conflict::UsernameTaken))
            }
            Err(_) => Err(StoreError::Conflict(Conflict::IdTaken)),
        }
    }

    async fn vendor_login(&self, username: &str) -> Result<Option<VendorLogin>, StoreError> {
        let Some(item) = self.get_item(format!("USERNAME#{username}"), "#".into()).await? else {
            return Ok(None);
        };
        let r: VendorRecord = from_item(&item)?;
        let password_hash = r
            .password_hash
            .ok_or_else(|| StoreError::Corrupt("a login item without its password hash".into()))?;
        let vendor = Vendor { vendor_id: r.vendor_id, username: r.username, created_at: r.created_at };
        Ok(Some(VendorLogin { vendor, password_hash }))
    }

    async fn list_vendors(&self) -> Result<Vec<Vendor>, StoreError> {
        let mut vendors = self
            .query_all("VENDORS".into(), "VENDOR#")
            .await?
            .iter()
            .map(vendor_from)
            .collect::<Result<Vec<_>, _>>()?;
        vendors.sort_by(|a, b| (a.created_at, &a.username).cmp(&(b.created_at, &b.username)));
        Ok(vendors)
    }

    async fn vendor_by_id(&self, vendor_id: &str) -> Result<Option<Vendor>, StoreError> {
        self.get_item("VENDORS".into(), format!("VENDOR#{vendor_id}"))
            .await?
            .map(|item| vendor_from(&item))
            .transpose()
    }
}

impl TokenStore for DynamoStore {
    async fn create_token(&self, token: &ApiToken, hash: &str) -> Result<(), StoreError> {
        let record = |pk: String, sk: String| {
            to_item(TokenRecord {
                pk,
                sk,
                token_id: token.token_id.clone(),
                token_hash: hash.to_owned(),
                vendor_id: token.vendor.vendor_id.clone(),
                username: token.vendor.username.clone(),
                vendor_created_at: token.vendor.created_at,
                created_at: token.created_at,
                label: token.label.clone(),
            })
        };
        let taken = Some(Conflict::IdTaken);
        let items = vec![
            (
                self.put(record(format!("TOKEN#{hash}"), "#".into())?, "attribute_not_exists(pk)", None)?,
                taken,
            ),
            (
                self.put(
                    record(format!("TOKENID#{}", token.token_id), "#".into())?,
                    "attribute_not_exists(pk)",
                    None,
                )?,
                taken,
            ),
            (
                self.put(
                    record(vendor_pk(&token.vendor.vendor_id), format!("TOKEN#{}", token.token_id))?,
                    "attribute_not_exists(pk)",
                    None,
                )?,
                taken,
            ),
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Conflict(Conflict::IdTaken)),
        }
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let Some(item) = self.get_item(format!("TOKEN#{hash}"), "#".into()).await? else {
            return Ok(None);
        };
        Ok(Some(token_from(&item)?))
    }

    async fn list_tokens(&self, vendor_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let mut tokens = self
            .query_all(vendor_pk(vendor_id), "TOKEN#")
            .await?
            .iter()
            .map(token_from)
            .collect::<Result<Vec<_>, _>>()?;
        tokens.sort_by(|a, b| (a.created_at, &a.token_id).cmp(&(b.created_at, &b.token_id)));
        Ok(tokens)
    }

    async fn revoke_token(&self, token_id: &str) -> Result<bool, StoreError> {
        let Some(item) = self.get_item(format!("TOKENID#{token_id}"), "#".into()).await? else {
            return Ok(false);
        };
        let (hash, vendor_id) = (get_s(&item, "tokenHash")?, get_s(&item, "vendorId")?);
        let items = vec![
            (self.delete(format!("TOKEN#{hash}"), "#".into(), None)?, None),
            (self.delete(vendor_pk(&vendor_id), format!("TOKEN#{token_id}"), None)?, None),
            (
                self.delete(
                    format!("TOKENID#{token_id}"),
                    "#".into(),
                    Some(("attribute_exists(pk)", Item::new())),
                )?,
                Some(Conflict::Concurrent),
            ),
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(true),
            Err(_) => Ok(false),
        }
    }
}

impl WebhookStore for DynamoStore {
    async fn insert_webhook(&self, w: &Webhook) -> Result<(), StoreError> {
        let guard = Item::from([
            ("pk".into(), s(format!("WEBHOOK#{}", w.id))),
            ("sk".into(), s("#")),
            ("vendorId".into(), s(&w.vendor_id)),
        ]);
        let items = vec![
            (self.put(webhook_item(w)?, "attribute_not_exists(pk)", None)?, Some(Conflict::IdTaken)),
            (self.put(guard, "attribute_not_exists(pk)", None)?, Some(Conflict::IdTaken)),
            (
                self.put(endpoint_item(w), "attribute_not_exists(pk)", None)?,
                Some(Conflict::DuplicateEndpoint),
            ),
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(c) if c.contains(&Conflict::DuplicateEndpoint) => {
                Err(StoreError::Conflict(Conflict::DuplicateEndpoint))
            }
            Err(_) => Err(StoreError::Conflict(Conflict::IdTaken)),
        }
    }

    async fn get_webhook(&self, vendor_id: &str, id: u64) -> Result<Option<Webhook>, StoreError> {
        self.get_item(vendor_pk(vendor_id), webhook_sk(id)).await?.map(|item| webhook_from(&item)).transpose()
    }

    async fn list_webhooks(&self, vendor_id: &str) -> Result<Vec<Webhook>, StoreError> {
        self.query_all(vendor_pk(vendor_id), "WEBHOOK#").await?.iter().map(webhook_from).collect()
    }

    async fn replace_webhook(&self, current: &Webhook, next: &Webhook) -> Result<(), StoreError> {
        let version = Some(Item::from([(":v".into(), n(current.version))]));
        let mut items =
            vec![(self.put(webhook_item(next)?, "version = :v", version)?, Some(Conflict::Concurrent))];
        if endpoint_sk(current) != endpoint_sk(next) {
            items.push((self.delete(vendor_pk(&current.vendor_id), endpoint_sk(current), None)?, None));
            items.push((
                self.put(endpoint_item(next), "attribute_not_exists(pk)", None)?,
                Some(Conflict::DuplicateEndpoint),
            ));
        }
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            // A concurrent change first: the caller reads again, and may then find the duplicate.
            Err(c) if c.contains(&Conflict::Concurrent) => Err(StoreError::Conflict(Conflict::Concurrent)),
            Err(_) => Err(StoreError::Conflict(Conflict::DuplicateEndpoint)),
        }
    }

    async fn delete_webhook(&self, current: &Webhook) -> Result<(), StoreError> {
        let version = Some(("version = :v", Item::from([(":v".into(), n(current.version))])));
        let items = vec![
            (
                self.delete(vendor_pk(&current.vendor_id), webhook_sk(current.id), version)?,
                Some(Conflict::Concurrent),
            ),
            (self.delete(format!("WEBHOOK#{}", current.id), "#".into(), None)?, None),
            (self.delete(vendor_pk(&current.vendor_id), endpoint_sk(current), None)?, None),
        ];
        match self.transact(items).await? {
            Ok(()) => Ok(()),
            Err(_) => Err(StoreError::Conflict(Conflict::Concurrent)),
        }
    }
}

/// How long attempts stay in the log.
pub const ATTEMPT_TTL_SECS: i64 = 30 * 24 * 3600;

impl EventLog for DynamoStore {
    async fn store_event(&self, e: &StoredEvent) -> Result<(), StoreError> {
        let item = Item::from([
            ("pk".into(), s(event_pk(&e.vendor_id, &e.event_id))),
            ("sk".into(), s("#")),
            ("eventId".into(), s(&e.event_id)),
            ("eventType".into(), s(e.event_type.as_str())),
            ("payload".into(), s(&e.payload)),
            ("publishedAt".into(), n(e.published_at)),
            ("expiresAt".into(), n(e.published_at + ATTEMPT_TTL_SECS)),
        ]);
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }

    async fn get_event(&self, vendor_id: &str, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let Some(item) = self.get_item(event_pk(vendor_id, event_id), "#".into()).await? else {
            return Ok(None);
        };
        let published_at = get_n(&item, "publishedAt")?;
        if published_at + ATTEMPT_TTL_SECS < crate::clock::now() {
            return Ok(None); // expired; TTL deletes lazily
        }
        Ok(Some(StoredEvent {
            event_id: get_s(&item, "eventId")?,
            vendor_id: vendor_id.to_owned(),
            event_type: get_event_type(&item, "eventType")?,
            payload: get_s(&item, "payload")?,
            published_at,
        }))
    }

    async fn begin_event(
        &self,
        vendor_id: &str,
        key: &str,
        event_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<EventStart, StoreError> {
        let item = Item::from([
            ("pk".into(), s(key_pk(vendor_id, key))),
            ("sk".into(), s("#")),
            ("eventId".into(), s(event_id)),
            ("state".into(), s("pending")),
            ("createdAt".into(), n(now)),
            ("expiresAt".into(), n(expires_at)),
        ]);
        // TTL deletes lazily: an expired record counts as absent.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expiresAt < :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(EventStart::New),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
            Err(e) => return Err(backend(e)),
        }
        let item = self
            .get_item(key_pk(vendor_id, key), "#".into())
            .await?
            .ok_or_else(|| StoreError::Conflict(Conflict::Concurrent))?;
        let event_id = get_s(&item, "eventId")?;
        Ok(match item.get("deliveries") {
            Some(_) => EventStart::Done { event_id, deliveries: get_n(&item, "deliveries")? },
            None => EventStart::Pending { event_id },
        })
    }

    async fn finish_event(&self, vendor_id: &str, key: &str, deliveries: u32) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key_pk(vendor_id, key)))
            .key("sk", s("#"))
            .update_expression("SET #state = :done, deliveries = :n")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":done", s("done"))
            .expression_attribute_values(":n", n(deliveries))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }
}

impl AttemptLog for DynamoStore {
    async fn record_attempt(&self, r: &AttemptRecord) -> Result<(), StoreError> {
        let mut item = Item::from([
            ("pk".into(), s(format!("ATTEMPTS#{}", r.webhook_id))),
            ("sk".into(), s(format!("{:013}#{}#{:02}", r.at_ms, r.event_id, r.attempt))),
            ("webhookId".into(), n(r.webhook_id)),
            ("vendorId".into(), s(&r.vendor_id)),
            ("eventId".into(), s(&r.event_id)),
            ("attempt".into(), n(r.attempt)),
            ("outcome".into(), s(&r.outcome)),
            ("durationMs".into(), n(r.duration_ms)),
            ("at".into(), n(r.at_ms)),
            ("expiresAt".into(), n(r.at_ms / 1000 + ATTEMPT_TTL_SECS)),
        ]);
        if let Some(status) = r.status {
            item.insert("status".into(), n(status));
        }
        if !r.response_excerpt.is_empty() {
            item.insert("response".into(), s(&r.response_excerpt));
        }
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }

    async fn list_attempts(&self, webhook_id: u64, limit: i32) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(self.attempts_page(webhook_id, limit, None).await?.0)
    }

    async fn attempts_page(
        &self,
        webhook_id: u64,
        limit: i32,
        after: Option<&str>,
    ) -> Result<(Vec<AttemptRecord>, Option<String>), StoreError> {
        let pk = format!("ATTEMPTS#{webhook_id}");
        let start = after.map(|sk| Item::from([("pk".into(), s(&pk)), ("sk".into(), s(sk))]));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(&pk))
            .scan_index_forward(false)
            .limit(limit)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(backend)?;
        let next =
            out.last_evaluated_key.as_ref().and_then(|k| k.get("sk")).and_then(|v| v.as_s().ok()).cloned();
        let records = out
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Ok(AttemptRecord {
                    webhook_id: get_n(item, "webhookId")?,
                    vendor_id: get_s(item, "vendorId")?,
                    event_id: get_s(item, "eventId")?,
                    attempt: get_n(item, "attempt")?,
                    status: item.get("status").and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()),
                    outcome: get_s(item, "outcome")?,
                    duration_ms: get_n(item, "durationMs")?,
                    at_ms: get_n(item, "at")?,
                    response_excerpt: item
                        .get("response")
                        .and_then(|v| v.as_s().ok())
                        .cloned()
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((records, next))
    }
}

/// How long a sent email's record keeps it from going out again.
pub const MAIL_RECORD_TTL_SECS: i64 = 30 * 24 * 3600;

impl NotifyStore for DynamoStore {
    async fn get_notifications(&self, vendor_id: &str) -> Result<Option<Notifications>, StoreError> {
        let Some(item) = self.get_item(vendor_pk(vendor_id), "NOTIFY".into()).await? else {
            return Ok(None);
        };
        let email = item.get("email").and_then(|v| v.as_s().ok()).cloned();
        let names: Vec<&str> = match item.get("topics") {
            Some(AttributeValue::L(l)) => {
                l.iter().filter_map(|v| v.as_s().ok().map(String::as_str)).collect()
            }
            _ => Vec::new(),
        };
        let topics =
            crate::notify::parse_topics("topics", names).map_err(|e| StoreError::Corrupt(e.message))?;
        let refused = match item.get("refusedAt") {
            Some(_) => Some((get_n(&item, "refusedAt")?, get_s(&item, "refusedReason")?)),
            None => None,
        };
        Ok(Some(Notifications { email, topics, refused, updated_at: get_n(&item, "updatedAt")? }))
    }

    async fn put_notifications(&self, vendor_id: &str, settings: &Notifications) -> Result<(), StoreError> {
        let mut item = Item::from([
            ("pk".into(), s(vendor_pk(vendor_id))),
            ("sk".into(), s("NOTIFY")),
            ("topics".into(), AttributeValue::L(settings.topics.iter().map(|t| s(t.as_str())).collect())),
            ("updatedAt".into(), n(settings.updated_at)),
        ]);
        if let Some(email) = &settings.email {
            item.insert("email".into(), s(email));
        }
        if let Some((at, reason)) = &settings.refused {
            item.insert("refusedAt".into(), n(*at));
            item.insert("refusedReason".into(), s(reason));
        }
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }

    async fn refuse_email(
        &self,
        vendor_id: &str,
        email: &str,
        at: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let sent = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(vendor_pk(vendor_id)))
            .key("sk", s("NOTIFY"))
            .update_expression("SET refusedAt = :at, refusedReason = :why")
            .condition_expression("email = :email")
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":why", s(reason))
            .expression_attribute_values(":email", s(email))
            .send()
            .await;
        // Not written if the vendor changed its address meanwhile: the new one was not refused.
        conditional(sent).map(|_| ())
    }

    async fn claim_mail(
        &self,
        key: &str,
        token: &str,
        now: i64,
        lease_secs: i64,
    ) -> Result<MailClaim, StoreError> {
        let item = Item::from([
            ("pk".into(), s(format!("MAIL#{key}"))),
            ("sk".into(), s("#")),
            ("state".into(), s("sending")),
            ("token".into(), s(token)),
            ("claimedAt".into(), n(now)),
            ("expiresAt".into(), n(now + MAIL_RECORD_TTL_SECS)),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expiresAt < :now OR (#state = :sending AND claimedAt < :stale)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":sending", s("sending"))
            .expression_attribute_values(":stale", n(now - lease_secs))
            .send()
            .await;
        if conditional(put)? {
            return Ok(MailClaim::Claimed);
        }
        let Some(item) = self.get_item(format!("MAIL#{key}"), "#".into()).await? else {
            return Ok(MailClaim::Busy); // settled as unsent just now: the next attempt claims it
        };
        Ok(if get_s(&item, "state")? == "sent" { MailClaim::Settled } else { MailClaim::Busy })
    }

    async fn settle_mail(&self, key: &str, token: &str, sent: bool) -> Result<(), StoreError> {
        // Conditional on our token: if another sender took the claim over, it settles it.
        let (pk, sk) = (s(format!("MAIL#{key}")), s("#"));
        if sent {
            let r = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .update_expression("SET #state = :sent")
                .condition_expression("#token = :token")
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":sent", s("sent"))
                .expression_attribute_values(":token", s(token))
                .send()
                .await;
            conditional(r).map(|_| ())
        } else {
            let r = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .condition_expression("#token = :token")
                .expression_attribute_names("#token", "token")
                .expression_attribute_values(":token", s(token))
                .send()
                .await;
            conditional(r).map(|_| ())
        }
    }

    async fn open_alert(
        &self,
        webhook_id: u64,
        kind: &str,
        incident: Option<i64>,
        now: i64,
        interval_secs: i64,
    ) -> Result<bool, StoreError> {
        let pk = format!("ALERT#{webhook_id}");
        let previous = match self.get_item(pk.clone(), "#".into()).await? {
            Some(item) => Some(AlertRecord {
                sent_at: get_n(&item, "sentAt")?,
                // Stored as 0 when unknown.
                incident: get_n::<i64>(&item, "incident").ok().filter(|i| *i != 0),
                kinds: match item.get("kinds") {
                    Some(AttributeValue::L(l)) => l.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
                    _ => Vec::new(),
                },
            }),
            None => None,
        };
        let Some(next) = crate::notify::next_alert(previous.as_ref(), kind, incident, now, interval_secs)
        else {
            return Ok(false);
        };
        // Written only over what was read: of two senders at once, one wins.
        let put = match &previous {
            Some(p) => self
                .client
                .put_item()
                .condition_expression("sentAt = :prev")
                .expression_attribute_values(":prev", n(p.sent_at)),
            None => self.client.put_item().condition_expression("attribute_not_exists(pk)"),
        };
        let item = Item::from([
            ("pk".into(), s(pk)),
            ("sk".into(), s("#")),
            ("sentAt".into(), n(next.sent_at)),
            ("incident".into(), n(next.incident.unwrap_or(0))),
            ("kinds".into(), AttributeValue::L(next.kinds.into_iter().map(s).collect())),
            ("expiresAt".into(), n(now + MAIL_RECORD_TTL_SECS)),
        ]);
        let put = put.table_name(&self.table);
        conditional(put.set_item(Some(item)).send().await)
    }

    async fn cancel_alert(&self, webhook_id: u64, opened_at: i64) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("ALERT#{webhook_id}")))
            .key("sk", s("#"))
            .condition_expression("sentAt = :at")
            .expression_attribute_values(":at", n(opened_at))
            .send()
            .await;
        conditional(deleted).map(|_| ())
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

fn webhook_sk(id: u64) -> String {
    format!("WEBHOOK#{id:016}")
}

fn endpoint_sk(w: &Webhook) -> String {
    format!("ENDPOINT#{}#{}", w.event_type.as_str(), crate::digest::sha256_hex(&w.url))
}

/// A webhook as its item stores it (`VENDOR#<vendorId>` / `WEBHOOK#<id>`). Optional parts are
/// absent attributes, never nulls.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookRecord {
    pk: String,
    sk: String,
    webhook_id: u64,
    vendor_id: String,
    event_type: EventType,
    url: String,
    secret: String,
    created_at: i64,
    updated_at: i64,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authentication: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    previous_secret_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failing_since: Option<i64>,
}

fn webhook_item(w: &Webhook) -> Result<Item, StoreError> {
    to_item(WebhookRecord {
        pk: vendor_pk(&w.vendor_id),
        sk: webhook_sk(w.id),
        webhook_id: w.id,
        vendor_id: w.vendor_id.clone(),
        event_type: w.event_type,
        url: w.url.clone(),
        secret: w.secret.clone(),
        created_at: w.created_at,
        updated_at: w.updated_at,
        version: w.version,
        authentication: w.authentication.clone(),
        disabled_at: w.disabled.as_ref().map(|d| d.0),
        disabled_reason: w.disabled.as_ref().map(|d| d.1.clone()),
        previous_secret: w.previous_secret.as_ref().map(|p| p.0.clone()),
        previous_secret_until: w.previous_secret.as_ref().map(|p| p.1),
        failing_since: w.failing_since,
    })
}

fn endpoint_item(w: &Webhook) -> Item {
    Item::from([
        ("pk".into(), s(vendor_pk(&w.vendor_id))),
        ("sk".into(), s(endpoint_sk(w))),
        ("webhookId".into(), n(w.id)),
    ])
}

fn webhook_from(item: &Item) -> Result<Webhook, StoreError> {
    let r: WebhookRecord = from_item(item)?;
    fn both<A, B>(a: Option<A>, b: Option<B>, what: &str) -> Result<Option<(A, B)>, StoreError> {
        match (a, b) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            (None, None) => Ok(None),
            _ => Err(StoreError::Corrupt(format!("a webhook item has half of its {what}"))),
        }
    }
    Ok(Webhook {
        id: r.webhook_id,
        vendor_id: r.vendor_id,
        event_type: r.event_type,
        url: r.url,
        authentication: r.authentication,
        secret: r.secret,
        created_at: r.created_at,
        updated_at: r.updated_at,
        version: r.version,
        disabled: both(r.disabled_at, r.disabled_reason, "disabling")?,
        previous_secret: both(r.previous_secret, r.previous_secret_until, "previous secret")?,
        failing_since: r.failing_since,
    })
}

/// A vendor account as its items store it: the login (`USERNAME#<username>`, with the password
/// hash) and the listing (`VENDORS` / `VENDOR#<vendorId>`, without it).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VendorRecord {
    pk: String,
    sk: String,
    vendor_id: String,
    username: String,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
}

fn vendor_item(pk: String, sk: String, v: &Vendor, password_hash: Option<&str>) -> Result<Item, StoreError> {
    to_item(VendorRecord {
        pk,
        sk,
        vendor_id: v.vendor_id.clone(),
        username: v.username.clone(),
        created_at: v.created_at,
        password_hash: password_hash.map(str::to_owned),
    })
}

fn vendor_from(item: &Item) -> Result<Vendor, StoreError> {
    let r: VendorRecord = from_item(item)?;
    Ok(Vendor { vendor_id: r.vendor_id, username: r.username, created_at: r.created_at })
}

/// A bearer token as its three items store it (by hash, by id, and in its vendor's partition):
/// never the token, only its hash.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRecord {
    pk: String,
    sk: String,
    token_id: String,
    token_hash: String,
    vendor_id: String,
    username: String,
    vendor_created_at: i64,
    created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

fn token_from(item: &Item) -> Result<ApiToken, StoreError> {
    let r: TokenRecord = from_item(item)?;
    Ok(ApiToken {
        token_id: r.token_id,
        vendor: Vendor { vendor_id: r.vendor_id, username: r.username, created_at: r.vendor_created_at },
        label: r.label,
        created_at: r.created_at,
    })
}

fn to_item<T: Serialize>(record: T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(record).map_err(|e| StoreError::Corrupt(format!("cannot write an item: {e}")))
}

fn from_item<T: serde::de::DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item.clone()).map_err(|e| StoreError::Corrupt(format!("malformed item: {e}")))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_event_type(item: &Item, key: &str) -> Result<EventType, StoreError> {
    let t = get_s(item, key)?;
    EventType::parse(&t).ok_or_else(|| StoreError::Corrupt(format!("unknown {key} {t:?}")))
}

fn get_s(item: &Item, key: &str) -> Result<String, StoreError> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| StoreError::Corrupt(format!("missing string attribute {key}")))
}

fn get_n<T: std::str::FromStr>(item: &Item, key: &str) -> Result<T, StoreError> {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("missing number attribute {key}")))
}

/// A conditional write's outcome: `Ok(true)` written, `Ok(false)` its condition did not hold.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The items keep the layout tables already hold: numbers as `N`, optional parts absent.
    #[test]
    fn webhook_items_keep_their_layout_and_read_back() {
        let mut w = crate::domain::tests::webhook();
        w.previous_secret = None;
        w.failing_since = Some(7);
        let item = webhook_item(&w).unwrap();
        assert_eq!(item["webhookId"], AttributeValue::N(w.id.to_string()));
        assert_eq!(item["eventType"], AttributeValue::S(w.event_type.as_str().into()));
        assert_eq!(item["version"], AttributeValue::N(w.version.to_string()));
        assert_eq!(item["failingSince"], AttributeValue::N("7".into()));
        for absent in ["previousSecret", "previousSecretUntil", "disabledAt", "disabledReason"] {
            assert!(!item.contains_key(absent), "{absent}");
        }
        assert_eq!(webhook_from(&item).unwrap(), w);
        let mut half = item.clone();
        half.insert("disabledAt".into(), AttributeValue::N("1".into()));
        assert!(matches!(webhook_from(&half), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn vendor_and_token_items_read_back() {
        let v = Vendor { vendor_id: "ven_a".into(), username: "acme".into(), created_at: 3 };
        let login = vendor_item("USERNAME#acme".into(), "#".into(), &v, Some("$argon2id$x")).unwrap();
        assert_eq!(login["passwordHash"], AttributeValue::S("$argon2id$x".into()));
        assert_eq!(login["createdAt"], AttributeValue::N("3".into()));
        assert_eq!(vendor_from(&login).unwrap(), v);
        let listed = vendor_item("VENDORS".into(), "VENDOR#ven_a".into(), &v, None).unwrap();
        assert!(!listed.contains_key("passwordHash"), "the listing never holds the hash");
        let token = to_item(TokenRecord {
            pk: "TOKEN#h".into(),
            sk: "#".into(),
            token_id: "tok_1".into(),
            token_hash: "h".into(),
            vendor_id: "ven_a".into(),
            username: "acme".into(),
            vendor_created_at: 3,
            created_at: 4,
            label: None,
        })
        .unwrap();
        assert!(!token.contains_key("label"));
        let read = token_from(&token).unwrap();
        assert_eq!((read.vendor, read.created_at, read.label), (v, 4, None));
    }
}
