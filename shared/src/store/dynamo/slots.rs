//! Deliveries in flight per webhook: one item per webhook (`INFLIGHT#<webhookId>`) whose
//! `leases` map holds each slot taken, by lease id, with its expiry. Taking slots, one or a
//! batch's several, is one conditional update (`size(leases) <= cap - taken`); a full map is
//! swept of expired leases first.
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;

use super::*;

/// How long the item outlives its last slot (TTL).
const SLOTS_TTL_SECS: i64 = 24 * 3600;

fn slots_pk(webhook_id: u64) -> String {
    format!("INFLIGHT#{webhook_id}")
}

/// The most leases one write takes or gives back (each is an expression attribute name).
const MAX_LEASES_PER_WRITE: usize = 50;

impl DeliverySlots for DynamoStore {
    async fn take_slots(
        &self,
        webhook_id: u64,
        leases: &[String],
        now_ms: i64,
        expires_ms: i64,
        cap: u32,
    ) -> Result<usize, StoreError> {
        let mut want = leases.len().min(cap as usize).min(MAX_LEASES_PER_WRITE);
        for _ in 0..4 {
            if want == 0 {
                return Ok(0);
            }
            // All `want` leases in one update, if the map leaves room for them.
            let (update, paths) = self.slots_update(webhook_id, leases[..want].iter());
            let mut sets: Vec<String> = paths.iter().map(|p| format!("{p} = :until")).collect();
            sets.push("expiresAt = :ttl".to_owned());
            let taken = update
                .update_expression(format!("SET {}", sets.join(", ")))
                .condition_expression("attribute_exists(leases) AND size(leases) <= :room")
                .expression_attribute_values(":until", n(expires_ms))
                .expression_attribute_values(":ttl", n(now_ms / 1000 + SLOTS_TTL_SECS))
                .expression_attribute_values(":room", n(cap as usize - want))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let held = match taken {
                Ok(_) => return Ok(want),
                Err(SdkError::ServiceError(e)) => match e.into_err() {
                    UpdateItemError::ConditionalCheckFailedException(full) => full.item,
                    other => return Err(backend(other)),
                },
                Err(e) => return Err(backend(e)),
            };
            let Some(held) = held.and_then(|mut item| item.remove("leases")) else {
                // No item yet: make it, then take.
                self.create_slots(webhook_id, now_ms).await?;
                continue;
            };
            let held = held.as_m().cloned().unwrap_or_default();
            let expired: Vec<(String, String)> = held
                .iter()
                .filter_map(|(id, until)| {
                    let until = until.as_n().ok()?;
                    (until.parse::<i64>().ok()? <= now_ms).then(|| (id.clone(), until.clone()))
                })
                .collect();
            // As many as the slots still held leave room for; the expired swept first.
            want = want.min((cap as usize).saturating_sub(held.len() - expired.len()));
            if !expired.is_empty() && want > 0 {
                self.sweep(webhook_id, &expired).await?;
            }
        }
        Ok(0)
    }

    async fn give_slots(&self, webhook_id: u64, leases: &[String]) -> Result<(), StoreError> {
        for chunk in leases.chunks(MAX_LEASES_PER_WRITE) {
            let (update, paths) = self.slots_update(webhook_id, chunk.iter());
            let given = update
                .update_expression(format!("REMOVE {}", paths.join(", ")))
                .condition_expression("attribute_exists(pk)")
                .send()
                .await;
            match given {
                Ok(_) => {}
                Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {}
                Err(e) => return Err(backend(e)),
            }
        }
        Ok(())
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

    /// An update of the webhook's slots item that names `leases` `#l0`, `#l1`, …; and their
    /// paths in the item, `leases.#l0`, `leases.#l1`, …, for its expressions.
    fn slots_update<'a>(
        &self,
        webhook_id: u64,
        leases: impl Iterator<Item = &'a String>,
    ) -> (UpdateItemFluentBuilder, Vec<String>) {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(slots_pk(webhook_id)))
            .key("sk", s("#"));
        let mut paths = Vec::new();
        for (i, lease) in leases.enumerate() {
            update = update.expression_attribute_names(format!("#l{i}"), lease);
            paths.push(format!("leases.#l{i}"));
        }
        (update, paths)
    }

    /// Removes expired leases, each only if it still has the expiry that was read.
    async fn sweep(&self, webhook_id: u64, expired: &[(String, String)]) -> Result<(), StoreError> {
        let expired = &expired[..expired.len().min(MAX_LEASES_PER_WRITE)];
        let (mut update, paths) = self.slots_update(webhook_id, expired.iter().map(|(id, _)| id));
        let mut conditions = Vec::with_capacity(paths.len());
        for (i, ((_, until), path)) in expired.iter().zip(&paths).enumerate() {
            update = update.expression_attribute_values(format!(":u{i}"), AttributeValue::N(until.clone()));
            conditions.push(format!("{path} = :u{i}"));
        }
        let swept = update
            .update_expression(format!("REMOVE {}", paths.join(", ")))
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
