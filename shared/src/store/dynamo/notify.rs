//! Vendors' email settings, order emails' claims and failure-email records.
use super::{records::*, *};

impl NotifyStore for DynamoStore {
    async fn get_notifications(&self, vendor_id: &str) -> Result<Option<Notifications>, StoreError> {
        let Some(item) = self.get_item(vendor_pk(vendor_id), "NOTIFY".into()).await? else {
            return Ok(None);
        };
        let r: NotifyRecord = from_item(item)?;
        let topics = crate::notify::parse_topics("topics", r.topics.iter().map(String::as_str))
            .map_err(|e| StoreError::Corrupt(e.message))?;
        let refused = match (r.refused_at, r.refused_reason) {
            (Some(at), Some(why)) => Some((at, why)),
            (None, None) => None,
            _ => return Err(StoreError::Corrupt("a refusal without its time or reason".into())),
        };
        Ok(Some(Notifications { email: r.email, topics, refused, updated_at: r.updated_at }))
    }

    async fn put_notifications(&self, vendor_id: &str, settings: &Notifications) -> Result<(), StoreError> {
        let item = to_item(NotifyRecord {
            pk: vendor_pk(vendor_id),
            sk: "NOTIFY".into(),
            topics: settings.topics.iter().map(|t| t.as_str().to_owned()).collect(),
            updated_at: settings.updated_at,
            email: settings.email.clone(),
            refused_at: settings.refused.as_ref().map(|r| r.0),
            refused_reason: settings.refused.as_ref().map(|r| r.1.clone()),
        })?;
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
        let item = to_item(MailRecord {
            pk: format!("MAIL#{key}"),
            sk: "#".into(),
            state: "sending".into(),
            token: token.to_owned(),
            claimed_at: now,
            expires_at: now + MAIL_RECORD_TTL_SECS,
        })?;
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
        let r: MailRecord = from_item(item)?;
        Ok(if r.state == "sent" { MailClaim::Settled } else { MailClaim::Busy })
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
            Some(item) => {
                let r: AlertItem = from_item(item)?;
                // The incident is stored as 0 when unknown.
                Some(AlertRecord {
                    sent_at: r.sent_at,
                    incident: Some(r.incident).filter(|i| *i != 0),
                    kinds: r.kinds,
                })
            }
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
        let item = to_item(AlertItem {
            pk,
            sk: "#".into(),
            sent_at: next.sent_at,
            incident: next.incident.unwrap_or(0),
            kinds: next.kinds,
            expires_at: now + MAIL_RECORD_TTL_SECS,
        })?;
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
