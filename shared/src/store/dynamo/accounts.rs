//! Vendor accounts and bearer tokens.
use super::{records::*, *};

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
        let r: VendorRecord = from_item(item)?;
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
            .into_iter()
            .map(vendor_from)
            .collect::<Result<Vec<_>, _>>()?;
        vendors.sort_by(|a, b| (a.created_at, &a.username).cmp(&(b.created_at, &b.username)));
        Ok(vendors)
    }

    async fn vendor_by_id(&self, vendor_id: &str) -> Result<Option<Vendor>, StoreError> {
        self.get_item("VENDORS".into(), format!("VENDOR#{vendor_id}")).await?.map(vendor_from).transpose()
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
        Ok(Some(token_from(item)?))
    }

    async fn list_tokens(&self, vendor_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let mut tokens = self
            .query_all(vendor_pk(vendor_id), "TOKEN#")
            .await?
            .into_iter()
            .map(token_from)
            .collect::<Result<Vec<_>, _>>()?;
        tokens.sort_by(|a, b| (a.created_at, &a.token_id).cmp(&(b.created_at, &b.token_id)));
        Ok(tokens)
    }

    async fn revoke_token(&self, token_id: &str) -> Result<bool, StoreError> {
        let Some(item) = self.get_item(format!("TOKENID#{token_id}"), "#".into()).await? else {
            return Ok(false);
        };
        let TokenRecord { token_hash: hash, vendor_id, .. } = from_item(item)?;
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
