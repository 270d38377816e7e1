//! Deliveries in flight per webhook: one item per webhook (`INFLIGHT#<webhookId>`) whose
//! `leases` map holds each slot taken, by lease id, with its expiry. Taking a slot is one
//! conditional update (`size(leases) < cap`); a full map is swept of expired leases once.
use super::*;

/// How long the item outlives its last slot (TTL).
const SLOTS_TTL_SECS: i64 = 24 * 3600;

fn slots_pk(webhook_id: u64) -> String {
    format!("INFLIGHT#{webhook_id}")
}

impl DeliverySlots for DynamoStore {
    async fn take_slot(
        &self,
        webhook_id: u64,
        lease: &str,
        now_ms: i64,
        expires_ms: i64,
        cap: u32,
    ) -> Result<bool, StoreError> {
        for _ in 0..3 {
            let taken = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(slots_pk(webhook_id)))
                .key("sk", s("#"))
                .update_expression("SET leases.#lease = :until, expiresAt = :ttl")
                .condition_expression("attribute_exists(leases) AND size(leases) < :cap")
                .expression_attribute_names("#lease", lease)
                .expression_attribute_values(":until", n(expires_ms))
                .expression_attribute_values(":ttl", n(now_ms / 1000 + SLOTS_TTL_SECS))
                .expression_attribute_values(":cap", n(cap))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let held = match taken {
                Ok(_) => return Ok(true),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(full) => full.item,
                    other => return Err(backend(other)),
                },
                Err(e) => return Err(backend(e)),
            };
            let Some(leases) = held.and_then(|mut item| item.remove("leases")) else {
                // No item yet: make it, then take.
                self.create_slots(webhook_id, now_ms).await?;
                continue;
            };
            let expired: Vec<(String, String)> = leases
                .as_m()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(id, until)| {
                    let until = until.as_n().ok()?.to_owned();
                    (until.parse::<i64>().ok()? <= now_ms).then_some((id, until))
                })
                .collect();
            if expired.is_empty() {
                return Ok(false);
            }
            self.sweep(webhook_id, &expired).await?;
        }
        Ok(false)
    }

    async fn give_slot(&self, webhook_id: u64, lease: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(slots_pk(webhook_id)))
            .key("sk", s("#"))
            .update_expression("REMOVE leases.#lease")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#lease", lease)
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match e {
                SdkError::ServiceError(e) if e.err().is_conditional_check_failed_exception() => Ok(()),
                e => Err(backend(e)),
            })
    }
}

impl DynamoStore {
    /// The webhook's slots item, empty, unless another instance made it first.
    async fn create_slots(&self, webhook_id: u64, now_ms: i64) -> Result<(), StoreError> {
        let made = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(slots_pk(webhook_id)))
            .item("sk", s("#"))
            .item("leases", AttributeValue::M(HashMap::new()))
            .item("expiresAt", n(now_ms / 1000 + SLOTS_TTL_SECS))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match made {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    /// Removes expired leases, each only if it still has the expiry that was read.
    async fn sweep(&self, webhook_id: u64, expired: &[(String, String)]) -> Result<(), StoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(slots_pk(webhook_id)))
            .key("sk", s("#"));
        let mut removes = Vec::new();
        let mut conditions = Vec::new();
        for (i, (id, until)) in expired.iter().take(50).enumerate() {
            update = update
                .expression_attribute_names(format!("#l{i}"), id)
                .expression_attribute_values(format!(":u{i}"), AttributeValue::N(until.clone()));
            removes.push(format!("leases.#l{i}"));
            conditions.push(format!("leases.#l{i} = :u{i}"));
        }
        let swept = update
            .update_expression(format!("REMOVE {}", removes.join(", ")))
            .condition_expression(conditions.join(" AND "))
            .send()
            .await;
        match swept {
            Ok(_) => Ok(()),
            // Another instance swept or renewed them first: the next try sees what is left.
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }
}
