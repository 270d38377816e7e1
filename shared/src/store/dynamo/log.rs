//! Published events, publishers' idempotency keys and the attempt log.
use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
};

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::{kept::EventRecord, records::*, *};

/// Sends `pending` with `send`, which answers what DynamoDB left unprocessed, again after a
/// growing pause, until nothing is left, six times at most.
async fn until_processed<T, F, Fut>(what: &str, mut pending: Vec<T>, mut send: F) -> Result<(), StoreError>
where
    F: FnMut(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    for pause_ms in [0, 50, 100, 200, 400, 800] {
        if pending.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
        pending = send(pending).await?;
    }
    match pending.len() {
        0 => Ok(()),
        left => Err(StoreError::Backend(format!("DynamoDB left {left} {what} after six tries").into())),
    }
}

impl EventLog for DynamoStore {
    async fn store_events(&self, events: &[StoredEvent]) -> Result<(), StoreError> {
        let items = events.iter().map(|e| to_item(EventRecord::of(e))).collect::<Result<Vec<_>, _>>()?;
        self.put_all("events unwritten", items).await
    }

    async fn events_between(
        &self,
        vendor_id: &str,
        event_type: EventType,
        since: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        // The index holds keys only (an index write of one unit per event, not a second copy
        // of its payload): the window's keys from it, then the events by BatchGetItem.
        let mut keys = Vec::new();
        let mut start = None;
        while keys.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(EVENTS_BY_TIME)
                .key_condition_expression("timeline = :t AND publishedAt BETWEEN :since AND :until")
                .expression_attribute_values(":t", s(timeline_pk(vendor_id, event_type)))
                .expression_attribute_values(":since", n(since))
                .expression_attribute_values(":until", n(until))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            keys.extend(out.items.unwrap_or_default().into_iter().filter_map(|mut k| k.remove("pk")));
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        keys.truncate(limit);
        let mut found: HashMap<String, StoredEvent> = self
            .kept_events(vendor_id, keys.iter().filter_map(|pk| pk.as_s().ok().cloned()).collect())
            .await?
            .into_iter()
            .map(|e| (event_pk(vendor_id, &e.event_id), e))
            .collect();
        Ok(keys.iter().filter_map(|pk| found.remove(pk.as_s().ok()?)).collect())
    }

    async fn events_by_id(
        &self,
        vendor_id: &str,
        event_ids: &[String],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let keys: HashSet<String> = event_ids.iter().map(|id| event_pk(vendor_id, id)).collect();
        self.kept_events(vendor_id, keys.into_iter().collect()).await
    }

    async fn get_event(&self, vendor_id: &str, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let Some(item) = self.get_item(event_pk(vendor_id, event_id), "#".into()).await? else {
            return Ok(None);
        };
        let r: EventRecord = from_item(item)?;
        if r.expires_at < crate::clock::now() {
            return Ok(None); // expired; TTL deletes lazily
        }
        r.event(vendor_id).map(Some)
    }

    async fn begin_event(&self, c: &EventClaim<'_>) -> Result<EventStart, StoreError> {
        let pk = key_pk(c.vendor_id, c.key);
        let item = to_item(KeyRecord {
            pk: pk.clone(),
            sk: "#".into(),
            event_id: c.event_id.to_owned(),
            state: "pending".into(),
            created_at: c.now,
            expires_at: c.expires_at,
            deliveries: None,
            fingerprint: Some(c.fingerprint.to_owned()),
            lease_until: Some(c.lease_until),
        })?;
        // The key is free if absent or expired (TTL deletes lazily); a pending fan-out of the
        // same event whose lease ran out (or that had none) is taken over.
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR expiresAt < :now OR (#state = :pending AND \
                 (attribute_not_exists(fingerprint) OR fingerprint = :fp) AND \
                 (attribute_not_exists(leaseUntil) OR leaseUntil < :now))",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":now", n(c.now))
            .expression_attribute_values(":pending", s("pending"))
            .expression_attribute_values(":fp", s(c.fingerprint))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let old = match put {
            Ok(out) => {
                // Replaced: a pending fan-out taken over, unless the record had expired.
                let replaced = out.attributes.map(from_item::<KeyRecord>).transpose()?;
                return Ok(match replaced {
                    Some(r) if r.expires_at >= c.now => EventStart::Resumed { event_id: r.event_id },
                    _ => EventStart::New,
                });
            }
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                PutItemError::ConditionalCheckFailedException(failed) => failed.item,
                other => return Err(backend(other)),
            },
            Err(e) => return Err(backend(e)),
        };
        let old = match old {
            Some(item) => item,
            // Not every backend returns the item it compared with.
            None => self.get_item(pk, "#".into()).await?.ok_or(StoreError::Conflict(Conflict::Concurrent))?,
        };
        let r: KeyRecord = from_item(old)?;
        if r.fingerprint.as_deref().is_some_and(|fp| fp != c.fingerprint) {
            return Ok(EventStart::Mismatch);
        }
        Ok(match (r.deliveries, r.lease_until) {
            (Some(deliveries), _) => EventStart::Done { event_id: r.event_id, deliveries },
            (None, Some(until)) if until >= c.now => {
                EventStart::InProgress { retry_after_secs: (until - c.now).max(1) as u64 }
            }
            // Free a moment ago, taken by another caller since: it is in progress.
            (None, _) => EventStart::InProgress { retry_after_secs: 1 },
        })
    }

    async fn release_event(&self, vendor_id: &str, key: &str) -> Result<(), StoreError> {
        let released = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key_pk(vendor_id, key)))
            .key("sk", s("#"))
            .update_expression("SET leaseUntil = :zero")
            .condition_expression("#state = :pending")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":pending", s("pending"))
            .send()
            .await;
        match released {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(backend(e)),
        }
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

impl DynamoStore {
    /// Puts `items` with BatchWriteItem, 25 requests a call; what DynamoDB leaves unprocessed
    /// (`what`, in the error when it stays so) is sent again.
    async fn put_all(&self, what: &str, items: Vec<Item>) -> Result<(), StoreError> {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let requests = items
                .by_ref()
                .take(25)
                .map(|item| {
                    let put = PutRequest::builder().set_item(Some(item)).build().map_err(backend)?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            until_processed(what, requests, |requests| async move {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .send()
                    .await
                    .map_err(backend)?;
                Ok(out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default())
            })
            .await?;
        }
        Ok(())
    }

    /// The items of these keys (`(pk, sk)`, distinct), in no particular order, read
    /// consistently or not: BatchGetItem, 100 keys at a time, what DynamoDB leaves unprocessed
    /// (`what`, in the error when it stays so) asked for again.
    pub(super) async fn get_all(
        &self,
        what: &str,
        keys: impl IntoIterator<Item = (String, String)>,
        consistent: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let wanted: Vec<Item> = keys
            .into_iter()
            .map(|(pk, sk)| Item::from([("pk".into(), s(pk)), ("sk".into(), s(sk))]))
            .collect();
        // Filled by each BatchGetItem round, the lock taken only between awaits.
        let found: std::sync::Mutex<Vec<Item>> = Default::default();
        let mut wanted = wanted.into_iter().peekable();
        while wanted.peek().is_some() {
            let chunk: Vec<Item> = wanted.by_ref().take(100).collect();
            let found = &found;
            until_processed(what, chunk, |wanted| async move {
                let batch = KeysAndAttributes::builder()
                    .set_keys(Some(wanted))
                    .consistent_read(consistent)
                    .build()
                    .map_err(backend)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, batch)
                    .send()
                    .await
                    .map_err(backend)?;
                let items = out.responses.and_then(|mut r| r.remove(&self.table)).unwrap_or_default();
                found.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(items);
                Ok(out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default())
            })
            .await?;
        }
        Ok(found.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The kept events of these keys (`EVT#…`), unexpired, in no particular order.
    async fn kept_events(&self, vendor_id: &str, keys: Vec<String>) -> Result<Vec<StoredEvent>, StoreError> {
        let items = self.get_all("events unread", keys.into_iter().map(|pk| (pk, "#".into())), false).await?;
        let now = crate::clock::now();
        let mut events = Vec::with_capacity(items.len());
        for item in items {
            let r: EventRecord = from_item(item)?;
            // Expired: TTL deletes lazily.
            if r.expires_at >= now {
                events.push(r.event(vendor_id)?);
            }
        }
        Ok(events)
    }
}

/// An attempt record as the log keeps it: its text borrowed, not copied.
fn attempt_item(r: &AttemptRecord) -> Result<Item, StoreError> {
    to_item(AttemptItem {
        pk: format!("ATTEMPTS#{}", r.webhook_id),
        sk: super::super::attempt_key(r),
        webhook_id: r.webhook_id,
        vendor_id: Cow::Borrowed(&r.vendor_id),
        event_id: Cow::Borrowed(&r.event_id),
        attempt: r.attempt,
        outcome: Cow::Borrowed(&r.outcome),
        duration_ms: r.duration_ms,
        at: r.at_ms,
        expires_at: r.at_ms / 1000 + ATTEMPT_TTL_SECS,
        status: r.status,
        response: Some(Cow::Borrowed(r.response_excerpt.as_str())).filter(|e| !e.is_empty()),
        signed_at: r.signed_at,
    })
}

impl AttemptLog for DynamoStore {
    async fn record_attempt(&self, r: &AttemptRecord) -> Result<(), StoreError> {
        let item = attempt_item(r)?;
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }

    async fn record_attempts(&self, records: &[AttemptRecord]) -> Result<(), StoreError> {
        // BatchWriteItem refuses a request that names one key twice: the last record of a
        // place in the log is kept, as its PutItem would have left it.
        let mut places = HashSet::new();
        let mut last_first: Vec<&AttemptRecord> = records
            .iter()
            .rev()
            .filter(|r| places.insert((r.webhook_id, super::super::attempt_key(r))))
            .collect();
        last_first.reverse();
        let items = last_first.into_iter().map(attempt_item).collect::<Result<Vec<_>, _>>()?;
        self.put_all("attempt records unwritten", items).await
    }

    async fn attempted_since(
        &self,
        webhook_id: u64,
        since_ms: i64,
    ) -> Result<HashMap<String, bool>, StoreError> {
        let mut attempted: HashMap<String, bool> = HashMap::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk >= :since")
                .projection_expression("eventId, outcome")
                .expression_attribute_values(":pk", s(format!("ATTEMPTS#{webhook_id}")))
                .expression_attribute_values(":since", s(format!("{:013}", since_ms.max(0))))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(backend)?;
            for item in out.items.unwrap_or_default() {
                if let Some(AttributeValue::S(id)) = item.get("eventId") {
                    let delivered =
                        matches!(item.get("outcome"), Some(AttributeValue::S(o)) if o == "delivered");
                    *attempted.entry(id.clone()).or_default() |= delivered;
                }
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(attempted);
            }
        }
    }

    async fn list_attempts(&self, webhook_id: u64, limit: i32) -> Result<Vec<AttemptRecord>, StoreError> {
        Ok(self.attempts_page(webhook_id, limit, None).await?.0)
    }

    async fn get_attempt(&self, webhook_id: u64, key: &str) -> Result<Option<AttemptRecord>, StoreError> {
        self.get_item(format!("ATTEMPTS#{webhook_id}"), key.to_owned()).await?.map(attempt_record).transpose()
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
        let records =
            out.items.unwrap_or_default().into_iter().map(attempt_record).collect::<Result<Vec<_>, _>>()?;
        Ok((records, next))
    }
}

fn attempt_record(item: Item) -> Result<AttemptRecord, StoreError> {
    let a: AttemptItem = from_item(item)?;
    Ok(AttemptRecord {
        webhook_id: a.webhook_id,
        vendor_id: a.vendor_id.into_owned(),
        event_id: a.event_id.into_owned(),
        attempt: a.attempt,
        status: a.status,
        outcome: a.outcome.into_owned(),
        duration_ms: a.duration_ms,
        at_ms: a.at,
        response_excerpt: a.response.map(Cow::into_owned).unwrap_or_default(),
        signed_at: a.signed_at,
    })
}
