//! The signed-in vendor's pages and forms, each through the API's own operation.
use lambda_http::http::StatusCode;

use super::{pages, ApiError, Page, PageRequest, PortalStore, Session, BASE};
use crate::{
    api::App,
    clock::now,
    domain::{self, EventType, FieldError, WebhookSpec},
    notify::{self, Notifications},
    queue::DeliveryQueue,
    store::attempt_key,
    urls,
};

/// Deliveries shown on a page of a webhook's log.
const DELIVERIES_PER_PAGE: i32 = 20;

/// A form's value kept to show again, with the errors of its fields.
pub(crate) struct FormState<'a> {
    pub values: &'a PageRequest,
    pub errors: Vec<FieldError>,
}

impl FormState<'_> {
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|e| e.field == field).map(|e| e.message.as_str())
    }
}

pub(super) async fn answer<S: PortalStore, Q: DeliveryQueue>(
    app: &App<S, Q>,
    r: &PageRequest,
    s: &Session,
    segs: &[&str],
) -> Result<Page, ApiError> {
    let (get, post) = (r.is_get(), r.is_post());
    match segs {
        ["webhooks"] if get => {
            let webhooks = app.store.list_webhooks(&s.vendor.vendor_id).await?;
            Ok(Page::ok(pages::webhooks(s, &webhooks)))
        }
        ["webhooks"] if post => create(app, r, s).await,
        ["webhooks", "new"] if get => {
            Ok(Page::ok(pages::new_webhook(s, &FormState { values: r, errors: vec![] })))
        }
        ["webhooks", id] if get => webhook_page(app, r, s, webhook_id(id)?, None, None).await,
        ["webhooks", id, "deliveries", key] if get => {
            let id = webhook_id(id)?;
            let webhook = app.find_webhook(&s.vendor, id).await?;
            let attempt =
                app.store.get_attempt(id, key).await?.ok_or_else(|| ApiError::not_found("attempt"))?;
            Ok(Page::ok(pages::attempt(s, &webhook, &attempt)))
        }
        ["webhooks", id, "test"] if post => {
            let id = webhook_id(id)?;
            let attempt = app.test_webhook(&s.vendor, id).await?;
            let notice = match attempt.status {
                Some(code) => format!("Test event sent: the receiver answered {code} ({}).", attempt.outcome),
                None => format!("Test event sent: no answer ({}).", attempt.outcome),
            };
            webhook_page(app, r, s, id, Some(notice), None).await
        }
        ["webhooks", id, "rotate"] if post => {
            let id = webhook_id(id)?;
            let webhook = app.rotate_secret(&s.vendor, id, app.config.rotation_grace_secs, None).await?;
            let notice =
                "Signing secret rotated: the former one keeps signing for its grace period.".to_owned();
            webhook_page(app, r, s, webhook.id, Some(notice), Some(webhook.secret)).await
        }
        ["webhooks", id, "enable"] if post => {
            let id = webhook_id(id)?;
            app.enable_webhook(&s.vendor, id).await?;
            webhook_page(app, r, s, id, Some("Webhook enabled: deliveries start again.".into()), None).await
        }
        ["webhooks", id, "redeliver"] if post => {
            let id = webhook_id(id)?;
            let event_id = r.field("eventId").unwrap_or("");
            app.redeliver(&s.vendor, id, event_id).await?;
            let notice = format!("Event {event_id} queued for delivery again.");
            webhook_page(app, r, s, id, Some(notice), None).await
        }
        ["webhooks", id, "delete"] if get => {
            let webhook = app.find_webhook(&s.vendor, webhook_id(id)?).await?;
            Ok(Page::ok(pages::confirm_delete(s, &webhook)))
        }
        ["webhooks", id, "delete"] if post => {
            app.delete_webhook(&s.vendor, webhook_id(id)?).await?;
            Ok(Page::see_other(format!("{BASE}/webhooks?deleted=1")))
        }
        ["notifications"] if get => {
            let settings = app.store.get_notifications(&s.vendor.vendor_id).await?.unwrap_or_default();
            Ok(Page::ok(pages::notifications(s, &settings, None, &[])))
        }
        ["notifications"] if post => save_notifications(app, r, s).await,
        ["event-types"] if get => Ok(Page::ok(pages::event_types(s))),
        _ => Err(ApiError::not_found("page")),
    }
}

fn webhook_id(raw: &str) -> Result<u64, ApiError> {
    // Any id that is not one of the vendor's is "not found", as the API answers it.
    raw.parse::<u64>().ok().filter(|id| *id > 0).ok_or_else(|| ApiError::not_found("webhook"))
}

/// A webhook's page: its details, its actions and a page of its deliveries, newest first.
async fn webhook_page<S: PortalStore, Q: DeliveryQueue>(
    app: &App<S, Q>,
    r: &PageRequest,
    s: &Session,
    id: u64,
    notice: Option<String>,
    new_secret: Option<String>,
) -> Result<Page, ApiError> {
    let webhook = app.find_webhook(&s.vendor, id).await?;
    // `after` is a cursor the previous page gave: the key of its last attempt.
    let after = r.query("after").filter(|a| a.len() <= 400 && a.split('#').count() == 3);
    let (attempts, next) = app.store.attempts_page(id, DELIVERIES_PER_PAGE, after).await?;
    let rows: Vec<(String, &crate::store::AttemptRecord)> =
        attempts.iter().map(|a| (attempt_key(a), a)).collect();
    Ok(Page::ok(pages::webhook(
        s,
        &webhook,
        &rows,
        next.as_deref(),
        after.is_some(),
        notice.as_deref(),
        new_secret.as_deref(),
    )))
}

/// `New webhook`'s form: the API's validators on each field, the API's creation.
async fn create<S: PortalStore, Q>(app: &App<S, Q>, r: &PageRequest, s: &Session) -> Result<Page, ApiError> {
    let mut errors = Vec::new();
    let event_type = match EventType::parse(r.field("eventType").unwrap_or("")) {
        Some(t) => Some(t),
        None => {
            let all: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            errors.push(FieldError::malformed(
                "eventType",
                format!("eventType must be one of: {}", all.join(", ")),
            ));
            None
        }
    };
    let dialect = event_type.map(EventType::dialect).unwrap_or(domain::Dialect::Ecomnow);
    let policy = app.target_policy(dialect);
    let url = match urls::validate_target_url("url", r.field("url").unwrap_or("").trim(), policy) {
        Ok(u) => Some(u.to_string()),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let authentication = match domain::validate_authentication("authentication", r.field("authentication")) {
        Ok(a) => a,
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if let Some(u) = &url {
        if let Err(e) = urls::check_resolved_host("url", u, policy).await {
            errors.push(e);
        }
    }
    let form_again = |errors: Vec<FieldError>| {
        Page::html(StatusCode::BAD_REQUEST, pages::new_webhook(s, &FormState { values: r, errors }))
    };
    let (Some(event_type), Some(url), true) = (event_type, url, errors.is_empty()) else {
        return Ok(form_again(errors));
    };
    let spec =
        WebhookSpec { event_type, url, authentication, max_in_flight: None, options: Default::default() };
    match app.create_webhook(&s.vendor, spec).await {
        Ok(webhook) => Ok(Page::html(StatusCode::CREATED, pages::created(s, &webhook))),
        Err(e) if e.status.is_client_error() => {
            // A duplicate or the vendor's limit: said at the URL, the field it is about.
            Ok(form_again(vec![FieldError::malformed(
                e.field.clone().unwrap_or_else(|| "url".into()),
                e.message,
            )]))
        }
        Err(e) => Err(e),
    }
}

/// `Notifications`' form: the API's checks of an address and topics.
async fn save_notifications<S: PortalStore, Q>(
    app: &App<S, Q>,
    r: &PageRequest,
    s: &Session,
) -> Result<Page, ApiError> {
    let mut errors = Vec::new();
    let email = match r.field("email").map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) => match notify::validate_email("email", e) {
            Ok(e) => Some(e),
            Err(err) => {
                errors.push(err);
                None
            }
        },
    };
    let topics = match notify::parse_topics("notify", r.fields("notify")) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    if errors.is_empty() {
        if let Err(e) = notify::check_settings(email.as_deref(), &topics, "notify") {
            errors.push(e);
        }
    }
    let settings = Notifications { email, topics, refused: None, updated_at: now() };
    if !errors.is_empty() {
        let page = pages::notifications(s, &settings, None, &errors);
        return Ok(Page::html(StatusCode::BAD_REQUEST, page));
    }
    app.store.put_notifications(&s.vendor.vendor_id, &settings).await?;
    tracing::info!(
        topics = settings.topics.len(),
        has_email = settings.email.is_some(),
        "notification settings changed"
    );
    Ok(Page::ok(pages::notifications(s, &settings, Some("Notification settings saved."), &[])))
}
