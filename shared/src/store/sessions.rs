//! The portal's port: its sessions and its count of failed sign-ins.
use std::future::Future;

use super::StoreError;
use crate::domain::Vendor;

/// How a portal session was opened: a vendor's password, or a Ventiapp API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedInWith {
    Password,
    Token,
}

/// A vendor's portal session, as the server keeps it: never its id, which only the browser
/// holds (the store has its SHA-256).
#[derive(Clone, PartialEq, Eq)]
pub struct PortalSession {
    pub vendor: Vendor,
    pub signed_in_with: SignedInWith,
    /// The SHA-256 of the token a token session was opened with: revoking the token ends it.
    pub token_hash: Option<String>,
    /// The token every form of the session carries.
    pub csrf: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for PortalSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortalSession")
            .field("vendor", &self.vendor.vendor_id)
            .field("signed_in_with", &self.signed_in_with)
            .field("token_hash", &self.token_hash.as_ref().map(|_| "<redacted>"))
            .field("csrf", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The portal's sessions, and its count of failed sign-ins per username and per address.
pub trait SessionStore: Send + Sync {
    /// Keeps a new session under the SHA-256 of its id (expired by the table's TTL too).
    fn put_session(
        &self,
        id_hash: &str,
        session: &PortalSession,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live session with this id hash; `None` once it has expired or ended.
    fn get_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<PortalSession>, StoreError>> + Send;

    /// Ends a session.
    fn delete_session(&self, id_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The failed sign-ins counted under `key` (a digest) in its current window, and when the
    /// window ends (Unix seconds); `(0, now)` when there is none.
    fn sign_in_failures(
        &self,
        key: &str,
        now: i64,
    ) -> impl Future<Output = Result<(u32, i64), StoreError>> + Send;

    /// Counts one more failed sign-in under `key`, in a window of `window_secs` that the first
    /// failure opens.
    fn count_sign_in_failure(
        &self,
        key: &str,
        now: i64,
        window_secs: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
