//! Webhooks, with their id and endpoint guards.
use super::{records::*, *};

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
            // The SDK retries a try that timed out; if that try was written after all, the
            // retry finds its own items. The webhook as given (its secret is random) says so.
            Err(_) if self.get_webhook(&w.vendor_id, w.id).await?.as_ref() == Some(w) => Ok(()),
            Err(c) if c.contains(&Conflict::DuplicateEndpoint) => {
                Err(StoreError::Conflict(Conflict::DuplicateEndpoint))
            }
            Err(_) => Err(StoreError::Conflict(Conflict::IdTaken)),
        }
    }

    async fn get_webhook(&self, vendor_id: &str, id: u64) -> Result<Option<Webhook>, StoreError> {
        self.get_item(vendor_pk(vendor_id), webhook_sk(id)).await?.map(webhook_from).transpose()
    }

    async fn get_webhooks(&self, keys: &[(&str, u64)]) -> Result<Vec<Option<Webhook>>, StoreError> {
        let wanted = keys.iter().map(|&(vendor_id, id)| (vendor_pk(vendor_id), webhook_sk(id)));
        let mut found = HashMap::with_capacity(keys.len());
        for item in self.get_all("webhooks unread", wanted, true).await? {
            let w = webhook_from(item)?;
            found.insert((w.vendor_id.clone(), w.id), w);
        }
        Ok(keys.iter().map(|&(vendor_id, id)| found.remove(&(vendor_id.to_owned(), id))).collect())
    }

    async fn list_webhooks(&self, vendor_id: &str) -> Result<Vec<Webhook>, StoreError> {
        self.query_all(vendor_pk(vendor_id), "WEBHOOK#").await?.into_iter().map(webhook_from).collect()
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
