//! The portal's sessions and its count of failed sign-ins.
use super::{records::*, *};

fn session_pk(id_hash: &str) -> String {
    format!("SESSION#{id_hash}")
}

fn sign_in_pk(key: &str) -> String {
    format!("SIGNIN#{key}")
}

impl SessionStore for DynamoStore {
    async fn put_session(&self, id_hash: &str, session: &PortalSession) -> Result<(), StoreError> {
        let item = to_item(SessionRecord {
            pk: session_pk(id_hash),
            sk: "#".into(),
            vendor_id: session.vendor.vendor_id.clone(),
            username: session.vendor.username.clone(),
            vendor_created_at: session.vendor.created_at,
            signed_in_with: session.signed_in_with,
            token_hash: session.token_hash.clone(),
            csrf: session.csrf.clone(),
            expires_at: session.expires_at,
        })?;
        // A fresh 256-bit id never collides; the condition makes sure of it.
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match conditional(sent)? {
            true => Ok(()),
            false => Err(StoreError::Corrupt("a new session's id is taken".into())),
        }
    }

    async fn get_session(&self, id_hash: &str, now: i64) -> Result<Option<PortalSession>, StoreError> {
        let Some(item) = self.get_item(session_pk(id_hash), "#".into()).await? else { return Ok(None) };
        let r: SessionRecord = from_item(item)?;
        // The TTL deletes expired items within days, not at once: expiry is checked here.
        if r.expires_at <= now {
            return Ok(None);
        }
        Ok(Some(PortalSession {
            vendor: Vendor { vendor_id: r.vendor_id, username: r.username, created_at: r.vendor_created_at },
            signed_in_with: r.signed_in_with,
            token_hash: r.token_hash,
            csrf: r.csrf,
            expires_at: r.expires_at,
        }))
    }

    async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(session_pk(id_hash)))
            .key("sk", s("#"))
            .send()
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn sign_in_failures(&self, key: &str, now: i64) -> Result<(u32, i64), StoreError> {
        let Some(item) = self.get_item(sign_in_pk(key), "#".into()).await? else { return Ok((0, now)) };
        let r: SignInFailuresRecord = from_item(item)?;
        Ok(if r.window_ends > now { (r.failures, r.window_ends) } else { (0, now) })
    }

    async fn count_sign_in_failure(&self, key: &str, now: i64, window_secs: i64) -> Result<(), StoreError> {
        // One more in the open window; if there is none, this failure opens one.
        let added = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(sign_in_pk(key)))
            .key("sk", s("#"))
            .update_expression("ADD failures :one")
            .condition_expression("windowEnds > :now")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        if conditional(added)? {
            return Ok(());
        }
        let item = to_item(SignInFailuresRecord {
            pk: sign_in_pk(key),
            sk: "#".into(),
            failures: 1,
            window_ends: now + window_secs,
            expires_at: now + window_secs,
        })?;
        // Two first failures racing: the later one's window wins, counting one where there were two.
        self.client.put_item().table_name(&self.table).set_item(Some(item)).send().await.map_err(backend)?;
        Ok(())
    }
}
