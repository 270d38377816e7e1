//! The items, as records `serde_dynamo` maps: one struct per kind of item, with the attribute
//! names and types the table holds (numbers as `N`; an optional part is an absent attribute).
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::*;
use crate::options::{DeliveryOptions, Filter, Ordering};

/// A webhook as its item stores it (`VENDOR#<vendorId>` / `WEBHOOK#<id>`). Optional parts are
/// absent attributes, never nulls.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct WebhookRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) webhook_id: u64,
    pub(super) vendor_id: String,
    pub(super) event_type: EventType,
    pub(super) url: String,
    pub(super) secret: String,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) authentication: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) disabled_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) disabled_reason: Option<String>,
    /// Former secrets that still sign, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) previous_secrets: Vec<PreviousSecret>,
    /// The one former secret of items written before the list (read, never written).
    #[serde(default, skip_serializing)]
    pub(super) previous_secret: Option<String>,
    #[serde(default, skip_serializing)]
    pub(super) previous_secret_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rotated_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) rotation_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) failing_since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) max_in_flight: Option<u32>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(super) consecutive_failures: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) circuit_open_until: Option<i64>,
    /// The payload filter, as the vendor's JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) filter: Option<String>,
    /// `per_order`; absent for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) ordering: Option<String>,
    /// Headers of the vendor's own, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) headers: Vec<HeaderRecord>,
}

/// A header a webhook sends.
#[derive(Serialize, Deserialize)]
pub(super) struct HeaderRecord {
    pub(super) name: String,
    pub(super) value: String,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A former signing secret and until when it signs.
#[derive(Serialize, Deserialize)]
pub(super) struct PreviousSecret {
    pub(super) secret: String,
    pub(super) until: i64,
}

pub(super) fn webhook_item(w: &Webhook) -> Result<Item, StoreError> {
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
        previous_secrets: w
            .previous_secrets
            .iter()
            .map(|(secret, until)| PreviousSecret { secret: secret.clone(), until: *until })
            .collect(),
        previous_secret: None,
        previous_secret_until: None,
        rotated_at: w.last_rotation.as_ref().map(|r| r.at),
        rotation_key: w.last_rotation.as_ref().and_then(|r| r.key_digest.clone()),
        failing_since: w.failing_since,
        max_in_flight: w.max_in_flight,
        consecutive_failures: w.consecutive_failures,
        circuit_open_until: w.circuit_open_until,
        filter: w.options.filter.as_ref().map(|f| f.to_value().to_string()),
        ordering: (w.options.ordering != Ordering::None).then(|| w.options.ordering.as_str().to_owned()),
        headers: w
            .options
            .headers
            .iter()
            .map(|(name, value)| HeaderRecord { name: name.clone(), value: value.clone() })
            .collect(),
    })
}

pub(super) fn endpoint_item(w: &Webhook) -> Item {
    Item::from([
        ("pk".into(), s(vendor_pk(&w.vendor_id))),
        ("sk".into(), s(endpoint_sk(w))),
        ("webhookId".into(), n(w.id)),
    ])
}

pub(super) fn webhook_from(item: Item) -> Result<Webhook, StoreError> {
    let r: WebhookRecord = from_item(item)?;
    fn both<A, B>(a: Option<A>, b: Option<B>, what: &str) -> Result<Option<(A, B)>, StoreError> {
        match (a, b) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            (None, None) => Ok(None),
            _ => Err(StoreError::Corrupt(format!("a webhook item has half of its {what}"))),
        }
    }
    let mut previous_secrets: Vec<(String, i64)> =
        r.previous_secrets.into_iter().map(|p| (p.secret, p.until)).collect();
    previous_secrets.extend(both(r.previous_secret, r.previous_secret_until, "previous secret")?);
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("a webhook's {what}: {e}"));
    let filter = match r.filter {
        Some(json) => {
            let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| corrupt("filter", &e))?;
            Some(Filter::parse(&value).map_err(|e| corrupt("filter", &e))?)
        }
        None => None,
    };
    let ordering = match r.ordering.as_deref() {
        Some(name) => Ordering::parse(name).ok_or_else(|| corrupt("ordering", &name))?,
        None => Ordering::None,
    };
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
        previous_secrets,
        last_rotation: r.rotated_at.map(|at| crate::domain::Rotation { at, key_digest: r.rotation_key }),
        failing_since: r.failing_since,
        max_in_flight: r.max_in_flight,
        consecutive_failures: r.consecutive_failures,
        circuit_open_until: r.circuit_open_until,
        options: DeliveryOptions {
            filter,
            ordering,
            headers: r.headers.into_iter().map(|h| (h.name, h.value)).collect(),
        },
    })
}

/// A vendor account as its items store it: the login (`USERNAME#<username>`, with the password
/// hash) and the listing (`VENDORS` / `VENDOR#<vendorId>`, without it).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct VendorRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) vendor_id: String,
    pub(super) username: String,
    pub(super) created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) password_hash: Option<String>,
}

pub(super) fn vendor_item(
    pk: String,
    sk: String,
    v: &Vendor,
    password_hash: Option<&str>,
) -> Result<Item, StoreError> {
    to_item(VendorRecord {
        pk,
        sk,
        vendor_id: v.vendor_id.clone(),
        username: v.username.clone(),
        created_at: v.created_at,
        password_hash: password_hash.map(str::to_owned),
    })
}

pub(super) fn vendor_from(item: Item) -> Result<Vendor, StoreError> {
    let r: VendorRecord = from_item(item)?;
    Ok(Vendor { vendor_id: r.vendor_id, username: r.username, created_at: r.created_at })
}

/// A bearer token as its three items store it (by hash, by id, and in its vendor's partition):
/// never the token, only its hash.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) token_id: String,
    pub(super) token_hash: String,
    pub(super) vendor_id: String,
    pub(super) username: String,
    pub(super) vendor_created_at: i64,
    pub(super) created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) label: Option<String>,
}

pub(super) fn token_from(item: Item) -> Result<ApiToken, StoreError> {
    let r: TokenRecord = from_item(item)?;
    Ok(ApiToken {
        token_id: r.token_id,
        vendor: Vendor { vendor_id: r.vendor_id, username: r.username, created_at: r.vendor_created_at },
        label: r.label,
        created_at: r.created_at,
    })
}

/// A publisher's idempotency key (`KEY#…`, a day): `pending` while its fan-out runs, then
/// `done` with the number of deliveries.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) event_id: String,
    pub(super) state: String,
    pub(super) created_at: i64,
    pub(super) expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) deliveries: Option<u32>,
    /// A digest of the event's type and payload (absent on records older than it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) fingerprint: Option<String>,
    /// Until when the fan-out in progress holds the key (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) lease_until: Option<i64>,
}

/// One delivery attempt in its webhook's log (`ATTEMPTS#<webhookId>`, 30 days). Its text is
/// borrowed from the attempt when written (dispatch writes one per attempt), owned when read.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AttemptItem<'a> {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) webhook_id: u64,
    pub(super) vendor_id: Cow<'a, str>,
    pub(super) event_id: Cow<'a, str>,
    pub(super) attempt: u32,
    pub(super) outcome: Cow<'a, str>,
    pub(super) duration_ms: u64,
    /// Unix milliseconds.
    pub(super) at: i64,
    pub(super) expires_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) response: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) signed_at: Option<i64>,
}

/// A vendor's notification settings (`VENDOR#<vendorId>` / `NOTIFY`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NotifyRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    #[serde(default)]
    pub(super) topics: Vec<String>,
    pub(super) updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) refused_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) refused_reason: Option<String>,
}

/// An order email's claim, then its record (`MAIL#…`, 30 days): `sending` under a token, `sent`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct MailRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) state: String,
    pub(super) token: String,
    pub(super) claimed_at: i64,
    pub(super) expires_at: i64,
}

/// The last failure email about a webhook (`ALERT#<webhookId>`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AlertItem {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) sent_at: i64,
    /// When the incident began; 0 when unknown.
    pub(super) incident: i64,
    #[serde(default)]
    pub(super) kinds: Vec<String>,
    pub(super) expires_at: i64,
}

/// A portal session (`SESSION#<sha256(id)>`, 12 hours, TTL).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) vendor_id: String,
    pub(super) username: String,
    pub(super) vendor_created_at: i64,
    pub(super) signed_in_with: SignedInWith,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) token_hash: Option<String>,
    pub(super) csrf: String,
    pub(super) expires_at: i64,
}

/// Failed portal sign-ins under one key (`SIGNIN#<sha256(kind:value)>`), in a window (TTL).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignInFailuresRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    pub(super) failures: u32,
    pub(super) window_ends: i64,
    pub(super) expires_at: i64,
}

pub(super) fn to_item<T: Serialize>(record: T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(record).map_err(|e| StoreError::Corrupt(format!("cannot write an item: {e}")))
}

pub(super) fn from_item<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("malformed item: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The items keep the layout tables already hold: numbers as `N`, optional parts absent.
    #[test]
    fn webhook_items_keep_their_layout_and_read_back() {
        let mut w = crate::domain::tests::webhook();
        w.previous_secrets.clear();
        w.failing_since = Some(7);
        let item = webhook_item(&w).unwrap();
        assert_eq!(item["webhookId"], AttributeValue::N(w.id.to_string()));
        assert_eq!(item["eventType"], AttributeValue::S(w.event_type.as_str().into()));
        assert_eq!(item["version"], AttributeValue::N(w.version.to_string()));
        assert_eq!(item["failingSince"], AttributeValue::N("7".into()));
        for absent in ["previousSecrets", "previousSecret", "rotatedAt", "disabledAt", "disabledReason"] {
            assert!(!item.contains_key(absent), "{absent}");
        }
        assert_eq!(webhook_from(item.clone()).unwrap(), w);
        let mut half = item.clone();
        half.insert("disabledAt".into(), AttributeValue::N("1".into()));
        assert!(matches!(webhook_from(half), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn vendor_and_token_items_read_back() {
        let v = Vendor { vendor_id: "ven_a".into(), username: "acme".into(), created_at: 3 };
        let login = vendor_item("USERNAME#acme".into(), "#".into(), &v, Some("$argon2id$x")).unwrap();
        assert_eq!(login["passwordHash"], AttributeValue::S("$argon2id$x".into()));
        assert_eq!(login["createdAt"], AttributeValue::N("3".into()));
        assert_eq!(vendor_from(login.clone()).unwrap(), v);
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
        let read = token_from(token.clone()).unwrap();
        assert_eq!((read.vendor, read.created_at, read.label), (v, 4, None));
    }
}
