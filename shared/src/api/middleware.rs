//! What every HTTP function does around its one operation: a span per request, the routes (a
//! path's other methods answer 405 with `Allow`), authentication by the route's dialect, and
//! errors turned into JSON answers. Each function's `main` hands [`run`] its own handler, so
//! the binary holds that operation's code and no other's.
use std::future::Future;

use lambda_http::{Body, Request, RequestExt, Response};
use tracing::Instrument;

use super::{
    request,
    routes::{self, Operation},
    App,
};
use crate::{
    auth,
    domain::{Dialect, Vendor},
    error::ApiError,
    login_guard::{Decision, LoginGuard},
    store::{StoreError, TokenStore, VendorLogin, VendorStore},
};

/// A request as its operation's handler receives it: routed, and its caller authenticated.
pub struct Call {
    /// The dialect of the route the request came in on.
    pub dialect: Dialect,
    /// The route's path, as [`ROUTES`](super::ROUTES) writes it (`/events/batch`): what tells a
    /// function's routes apart.
    pub path: &'static str,
    /// The authenticated vendor; `None` on the platform's route.
    vendor: Option<Vendor>,
    /// The value of the route's `{param}` segment, if it has one.
    param: Option<String>,
    /// The request itself.
    pub request: Request,
}

impl Call {
    /// The vendor who sent the request (every vendor route has one).
    pub fn vendor(&self) -> Result<&Vendor, ApiError> {
        self.vendor.as_ref().ok_or_else(|| {
            tracing::error!("a vendor operation was routed from the platform's route");
            ApiError::internal_error()
        })
    }

    /// The `{webhookId}` of the path, checked.
    pub fn webhook_id(&self) -> Result<u64, ApiError> {
        request::webhook_id(self.param.as_deref(), "webhookId")
    }
}

/// The whole life of an API function: logging, then requests served by `handler` until the
/// runtime stops. `app` lives as long as the process, as Lambda keeps it.
pub async fn run<S, Q, H, F>(app: App<S, Q>, op: Operation, handler: H) -> Result<(), lambda_http::Error>
where
    S: VendorStore + TokenStore + 'static,
    Q: Send + Sync + 'static,
    H: Fn(&'static App<S, Q>, Call) -> F + Sync,
    F: Future<Output = Result<Response<Body>, ApiError>> + Send,
{
    let app: &'static App<S, Q> = Box::leak(Box::new(app));
    let handler = &handler;
    lambda_http::run(lambda_http::service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(serve(app, op, handler, req).await)
    }))
    .await
}

/// Serves one request for the function of `op`; never fails, every error is a JSON answer.
pub async fn serve<S, Q, H, F>(
    app: &'static App<S, Q>,
    op: Operation,
    handler: &H,
    req: Request,
) -> Response<Body>
where
    S: VendorStore + TokenStore,
    H: Fn(&'static App<S, Q>, Call) -> F,
    F: Future<Output = Result<Response<Body>, ApiError>>,
{
    let request_id = req.lambda_context_ref().map(|c| c.request_id.clone()).unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        function = op.function_name(),
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
        vendor = tracing::field::Empty,
    );
    async move {
        let response = match route(app, op, req).await {
            Ok(call) => handler(app, call).await,
            Err(e) => Err(e),
        };
        let response = response.unwrap_or_else(ApiError::into_response);
        tracing::info!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await
}

/// Finds the request's route and authenticates its caller as the route's dialect says.
async fn route<S: VendorStore + TokenStore, Q>(
    app: &App<S, Q>,
    op: Operation,
    req: Request,
) -> Result<Call, ApiError> {
    let (route, param) = match routes::resolve(req.method().as_str(), req.uri().path()) {
        routes::Resolved::Route(route, param) => (route, param.map(str::to_owned)),
        routes::Resolved::MethodNotAllowed(allow) => return Err(ApiError::method_not_allowed(&allow)),
        routes::Resolved::NotFound => return Err(ApiError::not_found("route")),
    };
    if route.operation != op {
        // The template routed this request to the wrong function: a deployment bug.
        tracing::error!(expected = route.operation.function_name(), "request routed to the wrong function");
        return Err(ApiError::internal_error());
    }
    let vendor = match route.dialect {
        Dialect::Ecomnow => Some(authenticate_basic(&app.store, &app.logins, &req).await?),
        Dialect::Ventiapp => Some(authenticate_bearer(&app.store, &req).await?),
        Dialect::Platform => None,
    };
    if let Some(v) = &vendor {
        tracing::Span::current().record("vendor", v.vendor_id.as_str());
    }
    Ok(Call { dialect: route.dialect, path: route.path, vendor, param, request: req })
}

/// eComNow authentication: `Username`/`Password` headers or HTTP Basic. Credentials this
/// instance verified a moment ago skip argon2; a username with too many failures gets `429`
/// before any check ([`crate::login_guard`]).
async fn authenticate_basic(
    store: &impl VendorStore,
    logins: &LoginGuard,
    req: &Request,
) -> Result<Vendor, ApiError> {
    const CHALLENGE: &str = "Basic realm=\"webhooks\", charset=\"UTF-8\"";
    let creds = auth::credentials_from_headers(req.headers()).ok_or(ApiError::unauthorized(CHALLENGE))?;
    let (username, login) = login_named(store, &creds.username).await?;
    let stored = login.as_ref().map(|l| l.password_hash.as_str());
    let now = std::time::Instant::now();
    match logins.decide(&username, stored, &creds.password, now) {
        Decision::Remembered => {
            if let Some(login) = login {
                return Ok(login.vendor);
            }
        }
        Decision::Throttled(wait) => {
            tracing::warn!(wait_ms = wait.as_millis() as u64, "sign-in throttled after repeated failures");
            return Err(ApiError::too_many_sign_ins((wait.as_secs_f64().ceil() as u64).max(1)));
        }
        Decision::Check => {}
    }
    let ok = auth::verify_login(&creds.password, stored);
    logins.record(&username, stored, &creds.password, ok, now);
    match login {
        Some(login) if ok => Ok(login.vendor),
        _ => Err(ApiError::unauthorized(CHALLENGE)),
    }
}

/// The account a sign-in's username names, and the name its failures are throttled under. A
/// malformed username can have no account: it is looked up nowhere, refused as an unknown one is
/// (at the same cost, [`auth::verify_login`]), and throttled under its own spelling.
pub(crate) async fn login_named(
    store: &impl VendorStore,
    raw: &str,
) -> Result<(String, Option<VendorLogin>), StoreError> {
    match auth::normalize_username(raw) {
        Ok(username) => {
            let login = store.vendor_login(&username).await?;
            Ok((username, login))
        }
        Err(_) => Ok((raw.chars().take(256).collect(), None)),
    }
}

/// Ventiapp authentication: `Authorization: Bearer <token>`, found by its SHA-256. The lookup
/// is by the digest, so a match is the token itself: nothing else is left to compare.
async fn authenticate_bearer(store: &impl TokenStore, req: &Request) -> Result<Vendor, ApiError> {
    const CHALLENGE: &str = "Bearer realm=\"webhooks\"";
    let token = auth::bearer_token(req.headers()).ok_or(ApiError::unauthorized(CHALLENGE))?;
    match store.token_by_hash(&auth::token_hash(token)).await? {
        Some(record) => Ok(record.vendor),
        None => Err(ApiError::unauthorized(CHALLENGE)),
    }
}

#[cfg(test)]
mod tests {
    use lambda_http::http::{self, header};

    use super::*;
    use crate::{
        api::handlers::{create_webhook, get_webhook, list_webhooks},
        config::Config,
        store::{ApiToken, MemoryStore},
    };

    const PASSWORD: &str = "correct horse battery staple";

    fn app() -> &'static App<MemoryStore> {
        let store = MemoryStore::default();
        let vendor = Vendor { vendor_id: "ven_a".into(), username: "acme".into(), created_at: 1 };
        store.add_vendor(vendor.clone(), &auth::hash_password(PASSWORD).unwrap());
        let token = ApiToken { token_id: "tok_1".into(), vendor, label: None, created_at: 1 };
        store.add_token(token, &auth::token_hash("vwt_0123456789abcdef0123"));
        let mut config = Config::for_table("t");
        config.delivery.allow_private_targets = true;
        Box::leak(Box::new(App::new(config, store)))
    }

    fn request(method: &str, path: &str, auth: Option<(&str, &str)>, body: &str) -> Request {
        let mut b = http::Request::builder().method(method).uri(path);
        if let Some((name, value)) = auth {
            b = b.header(name, value);
        }
        b.header(header::CONTENT_TYPE, "application/json").body(Body::from(body)).unwrap()
    }

    async fn json(r: Response<Body>) -> (u16, serde_json::Value) {
        let status = r.status().as_u16();
        (status, serde_json::from_slice(r.body().as_ref()).unwrap_or_default())
    }

    fn basic() -> Option<(&'static str, &'static str)> {
        Some(("authorization", "Basic YWNtZTpjb3JyZWN0IGhvcnNlIGJhdHRlcnkgc3RhcGxl"))
    }

    #[tokio::test]
    async fn a_throttled_username_costs_no_password_check_and_a_verified_one_no_second() {
        let app = app();
        let list = |auth| {
            serve(
                app,
                Operation::ListWebhooks,
                &list_webhooks::handle,
                request("GET", "/basic/webhooks", auth, ""),
            )
        };
        // Verified once, then remembered: the second request runs no argon2.
        assert_eq!(json(list(basic()).await).await.0, 200);
        let checks = app.logins.full_checks();
        assert_eq!(json(list(basic()).await).await.0, 200);
        assert_eq!(app.logins.full_checks(), checks);
        // Five wrong passwords are checked; the sixth is refused before any check.
        let wrong = Some(("authorization", "Basic YWNtZTp3cm9uZw=="));
        for _ in 0..5 {
            assert_eq!(json(list(wrong).await).await.0, 401);
        }
        let checks = app.logins.full_checks();
        let r = list(wrong).await;
        assert_eq!(r.headers()[header::RETRY_AFTER], "60");
        let (status, body) = json(r).await;
        assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_sign_ins")));
        assert_eq!(app.logins.full_checks(), checks, "no argon2 for a throttled username");
        // The vendor's remembered credentials still pass.
        assert_eq!(json(list(basic()).await).await.0, 200);
    }

    #[tokio::test]
    async fn other_methods_of_the_functions_paths_answer_405_with_allow() {
        let app = app();
        let r = serve(
            app,
            Operation::GetWebhook,
            &get_webhook::handle,
            request("PATCH", "/basic/webhooks/1", basic(), ""),
        )
        .await;
        assert_eq!(r.headers()[header::ALLOW], "GET, PUT, DELETE");
        assert_eq!(json(r).await.1["error"]["code"], "method_not_allowed");
    }

    #[tokio::test]
    async fn a_request_for_another_operation_is_a_500_not_served() {
        let app = app();
        let r = serve(
            app,
            Operation::GetWebhook,
            &get_webhook::handle,
            request("GET", "/basic/webhooks", basic(), ""),
        )
        .await;
        let (status, body) = json(r).await;
        assert_eq!((status, body["error"]["code"].as_str()), (500, Some("internal")));
    }

    #[tokio::test]
    async fn vendor_routes_need_their_dialects_credentials() {
        let app = app();
        for (path, auth) in [
            ("/basic/webhooks", None),
            ("/basic/webhooks", Some(("authorization", "Basic YWNtZTp3cm9uZw=="))),
            ("/api/webhooks/list", Some(("authorization", "Bearer vwt_0123456789abcdef0124"))),
            // Each dialect its own scheme: a token is no eComNow credential.
            ("/basic/webhooks", Some(("authorization", "Bearer vwt_0123456789abcdef0123"))),
        ] {
            let r =
                serve(app, Operation::ListWebhooks, &list_webhooks::handle, request("GET", path, auth, ""))
                    .await;
            assert_eq!(r.status(), 401, "{path} {auth:?}");
            assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        }
    }

    #[tokio::test]
    async fn both_dialects_reach_one_handler_as_their_vendor() {
        let app = app();
        let create = |path, auth, body| request("POST", path, auth, body);
        let r = serve(
            app,
            Operation::CreateWebhook,
            &create_webhook::handle,
            create("/basic/webhooks", basic(), r#"{"webhookType":"new_order","url":"http://127.0.0.1:9/a"}"#),
        )
        .await;
        let (status, body) = json(r).await;
        assert_eq!((status, body["vendorId"].as_str()), (201, Some("ven_a")), "{body}");
        let bearer = Some(("authorization", "Bearer vwt_0123456789abcdef0123"));
        let r = serve(
            app,
            Operation::CreateWebhook,
            &create_webhook::handle,
            create(
                "/api/webhooks/create",
                bearer,
                r#"{"webhook":{"topic":"bills/created","address":"https://127.0.0.1:9/b"}}"#,
            ),
        )
        .await;
        let (status, body) = json(r).await;
        assert_eq!((status, body["webhook"]["message"].as_str()), (201, Some("Webhook created")), "{body}");
        let r = serve(
            app,
            Operation::ListWebhooks,
            &list_webhooks::handle,
            request("GET", "/basic/webhooks", basic(), ""),
        )
        .await;
        assert_eq!(json(r).await.1["webhooks"].as_array().map(Vec::len), Some(2));
    }
}
