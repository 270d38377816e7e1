//! Signing in: a password or a Ventiapp token, checked once, throttled per username and per
//! source address before any check; then a session.
use lambda_http::http::StatusCode;

use super::{
    cookie, forbidden, pages, random_token, ApiError, Page, PageRequest, PortalStore, BASE, CSRF_COOKIE,
    SESSION_COOKIE, SESSION_SECS, SIGN_IN_FAILURES_PER_ADDRESS, SIGN_IN_FAILURES_PER_USERNAME,
    SIGN_IN_WINDOW_SECS,
};
use crate::{
    api::{middleware::login_named, App},
    auth,
    clock::now,
    digest,
    store::{PortalSession, SignedInWith, VendorLogin},
};

/// What a sign-in form carries.
enum Credential {
    /// A username, as looked up and throttled, and its account if it has one.
    Password { username: String, login: Option<VendorLogin> },
    /// The SHA-256 of an API token (`None`: the field was empty).
    Token { hash: Option<String> },
}

/// The sign-in page, with a fresh CSRF cookie its forms carry the double of.
pub(super) fn sign_in_form(r: &PageRequest, secure: bool, error: Option<(SignedInWith, &str)>) -> Page {
    let csrf = r.cookie(CSRF_COOKIE).map(str::to_owned).unwrap_or_else(random_token);
    let status = match error {
        Some(_) => StatusCode::UNAUTHORIZED,
        None => StatusCode::OK,
    };
    Page::html(status, pages::sign_in(&csrf, error, r.field("username").unwrap_or(""))).with_cookie(cookie(
        CSRF_COOKIE,
        &csrf,
        SESSION_SECS,
        secure,
    ))
}

/// Signs a vendor in with a password or a token, throttled per username and address.
pub(super) async fn sign_in<S: PortalStore, Q>(
    app: &App<S, Q>,
    r: &PageRequest,
    with: SignedInWith,
    secure: bool,
) -> Result<Page, ApiError> {
    match r.cookie(CSRF_COOKIE) {
        Some(expected) if r.csrf_matches(expected) => {}
        _ => {
            tracing::warn!("a sign-in form without its CSRF token refused");
            return Err(forbidden());
        }
    }
    let now = now();
    // The account a password names (read before the throttle, which counts under its name), or
    // the hash of a token; an empty token is no token.
    let credential = match with {
        SignedInWith::Password => {
            let (username, login) = login_named(&app.store, r.field("username").unwrap_or("")).await?;
            Credential::Password { username, login }
        }
        SignedInWith::Token => {
            let token = r.field("token").unwrap_or("").trim();
            Credential::Token { hash: (!token.is_empty()).then(|| auth::token_hash(token)) }
        }
    };
    let mut keys = vec![(digest::sha256_hex(format!("addr:{}", r.source_ip)), SIGN_IN_FAILURES_PER_ADDRESS)];
    if let Credential::Password { username, .. } = &credential {
        keys.push((digest::sha256_hex(format!("user:{username}")), SIGN_IN_FAILURES_PER_USERNAME));
    }
    let mut wait = 0;
    for (key, allowed) in &keys {
        let (failures, window_ends) = app.store.sign_in_failures(key, now).await?;
        if failures >= *allowed {
            wait = wait.max(window_ends - now);
        }
    }
    if wait > 0 {
        tracing::warn!(wait_secs = wait, "portal sign-in throttled after repeated failures");
        let mut page = Page::html(StatusCode::TOO_MANY_REQUESTS, pages::throttled(wait));
        page.retry_after = Some(wait as u64);
        return Ok(page);
    }
    let (vendor, token_hash) = match credential {
        Credential::Password { login, .. } => {
            let hash = login.as_ref().map(|l| l.password_hash.as_str());
            let ok = auth::verify_login(r.field("password").unwrap_or(""), hash);
            (login.filter(|_| ok).map(|l| l.vendor), None)
        }
        Credential::Token { hash: Some(hash) } => {
            (app.store.token_by_hash(&hash).await?.map(|t| t.vendor), Some(hash))
        }
        Credential::Token { hash: None } => (None, None),
    };
    let Some(vendor) = vendor else {
        for (key, _) in &keys {
            app.store.count_sign_in_failure(key, now, SIGN_IN_WINDOW_SECS).await?;
        }
        tracing::warn!(with = ?with, "portal sign-in refused");
        let message = match with {
            SignedInWith::Password => "Wrong username or password",
            SignedInWith::Token => "Wrong token",
        };
        return Ok(sign_in_form(r, secure, Some((with, message))));
    };
    let id = random_token();
    let session = PortalSession {
        vendor,
        signed_in_with: with,
        token_hash,
        csrf: random_token(),
        expires_at: now + SESSION_SECS,
    };
    app.store.put_session(&digest::sha256_hex(&id), &session).await?;
    tracing::Span::current().record("vendor", session.vendor.vendor_id.as_str());
    tracing::info!(with = ?with, "signed in to the portal");
    Ok(Page::see_other(format!("{BASE}/webhooks"))
        .with_cookie(cookie(SESSION_COOKIE, &id, SESSION_SECS, secure))
        .with_cookie(cookie(CSRF_COOKIE, "", 0, secure)))
}
