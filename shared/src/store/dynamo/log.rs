//! Published events, publishers' idempotency keys and the attempt log.
use super::{records::*, *};

impl EventLog for DynamoStore {
    async fn store_event(&self, e: &StoredEvent) -> Result<(), StoreError> {
        let item = to_item(EventRecord {
            pk: event_pk(&e.vendor_id, &e.event_id),
            sk: "#".into(),
            event_id: e.event_id.clone(),
            event_type: e.event_type,
            payload: e.payload.clone(),
            published_at: e.published_at,
            expires_at: e.published_at + ATTEMPT_TTL_SECS,
        })?;
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }

    async fn get_event(&self, vendor_id: &str, event_id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let Some(item) = self.get_item(event_pk(vendor_id, event_id), "#".into()).await? else {
            return Ok(None);
        };
        let r: EventRecord = from_item(item)?;
        if r.expires_at < crate::clock::now() {
            return Ok(None); // expired; TTL deletes lazily
        }
        Ok(Some(StoredEvent {
            event_id: r.event_id,
            vendor_id: vendor_id.to_owned(),
            event_type: r.event_type,
            payload: r.payload,
            published_at: r.published_at,
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
        let item = to_item(KeyRecord {
            pk: key_pk(vendor_id, key),
            sk: "#".into(),
            event_id: event_id.to_owned(),
            state: "pending".into(),
            created_at: now,
            expires_at,
            deliveries: None,
        })?;
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
        let r: KeyRecord = from_item(item)?;
        Ok(match r.deliveries {
            Some(deliveries) => EventStart::Done { event_id: r.event_id, deliveries },
            None => EventStart::Pending { event_id: r.event_id },
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
        let item = to_item(AttemptItem {
            pk: format!("ATTEMPTS#{}", r.webhook_id),
            sk: format!("{:013}#{}#{:02}", r.at_ms, r.event_id, r.attempt),
            webhook_id: r.webhook_id,
            vendor_id: r.vendor_id.clone(),
            event_id: r.event_id.clone(),
            attempt: r.attempt,
            outcome: r.outcome.clone(),
            duration_ms: r.duration_ms,
            at: r.at_ms,
            expires_at: r.at_ms / 1000 + ATTEMPT_TTL_SECS,
            status: r.status,
            response: Some(r.response_excerpt.clone()).filter(|e| !e.is_empty()),
        })?;
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
            .into_iter()
            .map(|item| {
                let a: AttemptItem = from_item(item)?;
                Ok(AttemptRecord {
                    webhook_id: a.webhook_id,
                    vendor_id: a.vendor_id,
                    event_id: a.event_id,
                    attempt: a.attempt,
                    status: a.status,
                    outcome: a.outcome,
                    duration_ms: a.duration_ms,
                    at_ms: a.at,
                    response_excerpt: a.response.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((records, next))
    }
}
