//! The vendor portal at `/portal/`: HTML pages where a vendor signs in and manages its webhooks,
//! sees every delivery attempt, sends tests, redelivers, rotates secrets and sets its emails.
//!
//! Every action goes through the same [`App`] operations as the JSON API, with the same
//! validation, limits and attempt log; the portal adds sessions and forms around them:
//! - a session is a random 256-bit id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//!   outside the local stack), kept server-side under its SHA-256 for 12 hours
//!   ([`SessionStore`]); the password is checked once, at sign-in (a token session is looked
//!   up again on each page, and ends when its token is revoked);
//! - every form carries a CSRF token (the session's; before sign-in, a cookie's double), and a
//!   post without the right one is refused with 403;
//! - failed sign-ins are counted per username and per source address in the table, so every
//!   instance sees them: 10 for a username (50 from an address) in 15 minutes, and the next
//!   sign-in gets a 429 page saying when to come back, before any password check;
//! - pages are sent with a Content-Security-Policy that allows only the portal's own stylesheet
//!   and script, and are never cached.
use lambda_http::{
    http::{header, HeaderValue, Method, StatusCode},
    Body, Request, RequestExt, Response,
};
use tracing::Instrument;

use crate::{
    api::App,
    clock::now,
    digest,
    domain::Vendor,
    error::ApiError,
    queue::DeliveryQueue,
    store::{
        AttemptLog, EventLog, NotifyStore, SessionStore, SignedInWith, TokenStore, VendorStore, WebhookStore,
    },
};

mod actions;
mod pages;
mod sign_in;

use sign_in::{sign_in, sign_in_form};

/// Where the portal is served.
pub const BASE: &str = "/portal";
/// How long a session lasts.
pub const SESSION_SECS: i64 = 12 * 3600;
/// Failed sign-ins allowed per username in a window of [`SIGN_IN_WINDOW_SECS`]...
pub const SIGN_IN_FAILURES_PER_USERNAME: u32 = 10;
/// ... and per source address, more: many vendors' people can share one (an office's NAT).
pub const SIGN_IN_FAILURES_PER_ADDRESS: u32 = 50;
/// ... this many seconds, which the first failure opens.
pub const SIGN_IN_WINDOW_SECS: i64 = 15 * 60;

/// The largest form a page takes (its largest field, an Authorization header, is 4 KiB).
const MAX_FORM_BYTES: usize = 64 * 1024;
const SESSION_COOKIE: &str = "portal_session";
const CSRF_COOKIE: &str = "portal_csrf";
/// Only the portal's own files: no inline script or style, no frames, forms to the portal only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const STYLESHEET: &str = include_str!("assets/portal.css");
const SCRIPT: &str = include_str!("assets/portal.js");

/// What the portal needs of the store: the API's ports and its sessions.
pub trait PortalStore:
    VendorStore + TokenStore + WebhookStore + AttemptLog + EventLog + NotifyStore + SessionStore
{
}
impl<S: VendorStore + TokenStore + WebhookStore + AttemptLog + EventLog + NotifyStore + SessionStore>
    PortalStore for S
{
}

/// A request as the portal reads it: its path below [`BASE`], its form fields and cookies.
pub(crate) struct PageRequest {
    pub method: Method,
    /// The path's segments below `/portal`, percent-decoded.
    pub segments: Vec<String>,
    pub query: Vec<(String, String)>,
    pub form: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    source_ip: String,
    /// The body is over [`MAX_FORM_BYTES`]: refused unread.
    too_large: bool,
}

impl PageRequest {
    fn of(req: &Request) -> Self {
        let path = req.uri().path();
        let below = path.strip_prefix(BASE).unwrap_or("");
        let segments = below
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                let pair = format!("x={}", s.replace('+', "%2B"));
                let decoded =
                    url::form_urlencoded::parse(pair.as_bytes()).next().map(|(_, v)| v.into_owned());
                decoded.unwrap_or_default()
            })
            .collect();
        let pairs = |b: &[u8]| url::form_urlencoded::parse(b).into_owned().collect::<Vec<_>>();
        let query = pairs(req.uri().query().unwrap_or("").as_bytes());
        let body = req.body().as_ref();
        let too_large = body.len() > MAX_FORM_BYTES;
        let form = if req.method() == Method::POST && !too_large { pairs(body) } else { Vec::new() };
        let cookies = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let source_ip = match req.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => c.http.source_ip.clone(),
            _ => None,
        }
        .unwrap_or_default();
        Self { method: req.method().clone(), segments, query, form, cookies, source_ip, too_large }
    }

    /// A GET (or HEAD): a page to show.
    pub fn is_get(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }

    /// A POST: a form.
    pub fn is_post(&self) -> bool {
        self.method == Method::POST
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn fields<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.form.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// Whether the form carries `expected` as its CSRF token (compared in constant time).
    fn csrf_matches(&self, expected: &str) -> bool {
        let given = self.field("csrf").unwrap_or("");
        given.len() == expected.len()
            && !expected.is_empty()
            && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// The signed-in vendor of a request, and its session's CSRF token.
pub(crate) struct Session {
    pub vendor: Vendor,
    pub csrf: String,
    pub signed_in_with: SignedInWith,
    id_hash: String,
}

/// A page's answer: HTML (or a redirect), with cookies to set.
pub(crate) struct Page {
    status: StatusCode,
    body: String,
    location: Option<String>,
    cookies: Vec<String>,
    retry_after: Option<u64>,
    content_type: &'static str,
}

impl Page {
    fn new(status: StatusCode, body: String, content_type: &'static str) -> Self {
        Self { status, body, location: None, cookies: Vec::new(), retry_after: None, content_type }
    }

    pub fn html(status: StatusCode, body: maud::Markup) -> Self {
        Self::new(status, body.into_string(), "text/html; charset=utf-8")
    }

    pub fn ok(body: maud::Markup) -> Self {
        Self::html(StatusCode::OK, body)
    }

    /// `303 See Other` to a path of the portal: the answer to a form that changed something.
    pub fn see_other(path: impl Into<String>) -> Self {
        let mut p = Self::html(StatusCode::SEE_OTHER, maud::html! {});
        p.location = Some(path.into());
        p
    }

    fn asset(body: &'static str, content_type: &'static str) -> Self {
        Self::new(StatusCode::OK, body.to_owned(), content_type)
    }

    fn with_cookie(mut self, cookie: String) -> Self {
        self.cookies.push(cookie);
        self
    }

    fn into_response(self) -> Response<Body> {
        let mut r = Response::new(Body::Text(self.body));
        *r.status_mut() = self.status;
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(l) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LOCATION, l);
        }
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for c in self.cookies {
            if let Ok(v) = HeaderValue::from_str(&c) {
                h.append(header::SET_COOKIE, v);
            }
        }
        r
    }
}

/// A cookie of the portal's: `HttpOnly`, `SameSite=Strict`, scoped to `/portal`, and `Secure`
/// unless the stack is local (plain http on 127.0.0.1).
fn cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path={BASE}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")
}

/// A fresh random token: 256 bits, URL-safe.
fn random_token() -> String {
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Serves the whole life of the portal function.
pub async fn run<S: PortalStore + 'static, Q: DeliveryQueue + Send + Sync + 'static>(
    app: App<S, Q>,
) -> Result<(), lambda_http::Error> {
    let app: &'static App<S, Q> = Box::leak(Box::new(app));
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(serve(app, req).await)
    }))
    .await
}

/// Answers one request; never fails (an error is an error page).
pub async fn serve<S: PortalStore, Q: DeliveryQueue>(app: &App<S, Q>, req: Request) -> Response<Body> {
    let request_id = req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        function = "portal",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
        vendor = tracing::field::Empty,
    );
    async move {
        let page = answer(app, &PageRequest::of(&req)).await.unwrap_or_else(|e| error_page(None, &e));
        tracing::info!(status = page.status.as_u16(), "answered");
        page.into_response()
    }
    .instrument(span)
    .await
}

/// The page for an operation's error that no form shows next to a field.
pub(crate) fn error_page(session: Option<&Session>, e: &ApiError) -> Page {
    if e.status.is_server_error() {
        tracing::error!(code = e.code, "portal request failed");
    }
    let status = e.status;
    let (title, message) = match status {
        StatusCode::NOT_FOUND => ("Not found", "There is nothing here, or it is not yours.".to_owned()),
        StatusCode::FORBIDDEN => (
            "Forbidden",
            "This form was out of date or did not come from the portal. Go back, reload the page and try again."
                .to_owned(),
        ),
        s if s.is_server_error() => {
            ("Something went wrong", "The request could not be completed; please try again.".to_owned())
        }
        _ => ("That did not work", e.message.clone()),
    };
    Page::html(status, pages::message(session, title, &message))
}

fn forbidden() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "csrf", "the form's CSRF token is missing or wrong")
}

async fn answer<S: PortalStore, Q: DeliveryQueue>(
    app: &App<S, Q>,
    r: &PageRequest,
) -> Result<Page, ApiError> {
    let secure = !app.config.portal_insecure_cookies;
    let segs: Vec<&str> = r.segments.iter().map(String::as_str).collect();
    let (get, post) = (r.is_get(), r.is_post());
    match segs.as_slice() {
        ["static", "portal.css"] if get => return Ok(Page::asset(STYLESHEET, "text/css; charset=utf-8")),
        ["static", "portal.js"] if get => return Ok(Page::asset(SCRIPT, "text/javascript; charset=utf-8")),
        _ => {}
    }
    if r.too_large {
        return Err(ApiError::too_large(MAX_FORM_BYTES));
    }
    let session = current_session(app, r).await?;
    if let Some(s) = &session {
        tracing::Span::current().record("vendor", s.vendor.vendor_id.as_str());
    }
    match (segs.as_slice(), session) {
        ([], Some(_)) if get => Ok(Page::see_other(format!("{BASE}/webhooks"))),
        ([] | ["sign-in"], None) if get => Ok(sign_in_form(r, secure, None)),
        (["sign-in"], Some(_)) if get => Ok(Page::see_other(format!("{BASE}/webhooks"))),
        (["sign-in"], _) if post => sign_in(app, r, SignedInWith::Password, secure).await,
        (["sign-in", "token"], _) if post => sign_in(app, r, SignedInWith::Token, secure).await,
        (_, None) if get => Ok(Page::see_other(format!("{BASE}/sign-in"))),
        (_, None) => Err(forbidden()),
        (_, Some(s)) => {
            if post && !r.csrf_matches(&s.csrf) {
                tracing::warn!("a form without its session's CSRF token refused");
                return Err(forbidden());
            }
            if let (["sign-out"], true) = (segs.as_slice(), post) {
                app.store.delete_session(&s.id_hash).await?;
                tracing::info!("signed out");
                return Ok(Page::see_other(format!("{BASE}/sign-in")).with_cookie(cookie(
                    SESSION_COOKIE,
                    "",
                    0,
                    secure,
                )));
            }
            Ok(actions::answer(app, r, &s, &segs).await.unwrap_or_else(|e| error_page(Some(&s), &e)))
        }
    }
}

/// The session the request's cookie names, if it is live.
async fn current_session<S: PortalStore, Q>(
    app: &App<S, Q>,
    r: &PageRequest,
) -> Result<Option<Session>, ApiError> {
    let Some(id) = r.cookie(SESSION_COOKIE) else { return Ok(None) };
    let id_hash = digest::sha256_hex(id);
    let Some(s) = app.store.get_session(&id_hash, now()).await? else { return Ok(None) };
    // A token session lasts as long as its token: revoked, the session ends with it.
    if let Some(token_hash) = &s.token_hash {
        let token = app.store.token_by_hash(token_hash).await?;
        if token.is_none_or(|t| t.vendor.vendor_id != s.vendor.vendor_id) {
            app.store.delete_session(&id_hash).await?;
            tracing::info!("a session whose token was revoked ended");
            return Ok(None);
        }
    }
    Ok(Some(Session { vendor: s.vendor, csrf: s.csrf, signed_in_with: s.signed_in_with, id_hash }))
}

#[cfg(test)]
mod tests {
    use lambda_http::http;

    use super::*;

    fn request(method: &str, uri: &str, cookie: Option<&str>, body: &str) -> PageRequest {
        let mut b = http::Request::builder().method(method).uri(uri);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        PageRequest::of(&b.body(Body::from(body)).unwrap())
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_outside_the_local_stack() {
        let c = cookie(SESSION_COOKIE, "abc", SESSION_SECS, true);
        assert_eq!(c, "portal_session=abc; Path=/portal; Max-Age=43200; HttpOnly; SameSite=Strict; Secure");
        assert!(!cookie(SESSION_COOKIE, "abc", 0, false).contains("Secure"));
    }

    #[test]
    fn a_request_is_read_into_segments_fields_and_cookies() {
        let r = request(
            "POST",
            "/portal/webhooks/12/deliveries/0001700000000000%23evt%2B1%20x%2302?after=a%23b",
            Some("a=1; portal_session=s3cr3t;portal_csrf="),
            "csrf=tok&notify=new_order&notify=failures&email=a%40b.example",
        );
        assert_eq!(r.segments, ["webhooks", "12", "deliveries", "0001700000000000#evt+1 x#02"]);
        assert_eq!(r.query("after"), Some("a#b"));
        assert_eq!(r.cookie(SESSION_COOKIE), Some("s3cr3t"));
        assert_eq!(r.cookie(CSRF_COOKIE), None, "an emptied cookie is none");
        assert_eq!(r.fields("notify").collect::<Vec<_>>(), ["new_order", "failures"]);
        assert_eq!(r.field("email"), Some("a@b.example"));
        // A GET's body is never read as a form.
        assert_eq!(request("GET", "/portal/webhooks", None, "csrf=tok").field("csrf"), None);
    }

    #[test]
    fn a_form_over_64_kib_is_not_read() {
        let big = format!("csrf=tok&url={}", "a".repeat(MAX_FORM_BYTES));
        let r = request("POST", "/portal/webhooks", None, &big);
        assert!(r.too_large && r.form.is_empty());
        assert!(!request("POST", "/portal/webhooks", None, "csrf=tok").too_large);
    }

    #[test]
    fn a_form_needs_exactly_its_csrf_token() {
        let with = |body: &str| request("POST", "/portal/sign-out", None, body);
        assert!(with("csrf=tok-123").csrf_matches("tok-123"));
        for body in ["", "csrf=", "csrf=tok-12", "csrf=tok-1234", "csrf=TOK-123", "other=tok-123"] {
            assert!(!with(body).csrf_matches("tok-123"), "{body:?}");
        }
        assert!(!with("csrf=").csrf_matches(""), "an empty expected token matches nothing");
    }

    #[test]
    fn every_page_is_sent_with_its_security_headers() {
        let r = Page::ok(maud::html! { p { "x" } })
            .with_cookie(cookie(CSRF_COOKIE, "t", 1, true))
            .into_response();
        let h = r.headers();
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(h[header::SET_COOKIE].to_str().unwrap().starts_with("portal_csrf=t;"));
    }

    #[test]
    fn session_ids_and_tokens_are_256_random_bits() {
        let (a, b) = (random_token(), random_token());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
    }
}
