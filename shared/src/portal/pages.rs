//! The portal's pages. Names a vendor's automation finds elements by (labels, buttons, links,
//! headings) are part of the portal's contract: README, Portal.
use maud::{html, Markup, DOCTYPE};

use super::{
    actions::{pretty, FormState, TOPICS},
    Session, BASE,
};
use crate::{
    clock::{rfc3339, rfc3339_ms},
    domain::{EventType, FieldError, Webhook},
    events,
    notify::Notifications,
    store::AttemptRecord,
};

/// How much of a response body an attempt's page shows.
const RESPONSE_SHOWN: usize = 1024;

fn layout(session: Option<&Session>, title: &str, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Webhooks portal" }
                link rel="stylesheet" href={ (BASE) "/static/portal.css" };
                script src={ (BASE) "/static/portal.js" } defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Webhooks portal" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            ul {
                                li { a href={ (BASE) "/webhooks" } { "Webhooks" } }
                                li { a href={ (BASE) "/notifications" } { "Notifications" } }
                                li { a href={ (BASE) "/event-types" } { "Event types" } }
                            }
                        }
                        div.account {
                            span.who {
                                "Signed in as " strong { (s.vendor.username) }
                                @if s.signed_in_with == crate::store::SignedInWith::Token { " (API token)" }
                            }
                            form method="post" action={ (BASE) "/sign-out" } {
                                (csrf(s))
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" { (main) }
            }
        }
    }
}

fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

fn notice(text: Option<&str>) -> Markup {
    html! {
        div.notice role="status" {
            @if let Some(t) = text { p { (t) } }
        }
    }
}

fn field_error(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.field-error id={ (id) "-error" } { (e) } }
    }
}

fn status_text(w: &Webhook) -> String {
    match &w.disabled {
        None => "active".into(),
        Some((at, why)) => format!("disabled: {why} (since {})", rfc3339(*at)),
    }
}

fn webhook_path(w: &Webhook) -> String {
    format!("{BASE}/webhooks/{}", w.id)
}

/// A page with a heading and a sentence: errors, and what is not found.
pub(super) fn message(session: Option<&Session>, title: &str, text: &str) -> Markup {
    layout(
        session,
        title,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href={ (BASE) "/" } { "Back to the portal" } }
        },
    )
}

pub(super) fn throttled(wait_secs: i64) -> Markup {
    let minutes = (wait_secs + 59) / 60;
    let when = if minutes <= 1 { "a minute".to_owned() } else { format!("{minutes} minutes") };
    layout(
        None,
        "Too many sign-in attempts",
        html! {
            h1 { "Too many sign-in attempts" }
            p role="alert" { "Too many failed sign-ins. Try again in " (when) "." }
            p { a href={ (BASE) "/sign-in" } { "Back to sign-in" } }
        },
    )
}

pub(super) fn sign_in(csrf: &str, error: Option<(crate::store::SignedInWith, &str)>, username: &str) -> Markup {
    use crate::store::SignedInWith;
    let error_for = |w: SignedInWith| error.filter(|(with, _)| *with == w).map(|(_, m)| m);
    layout(
        None,
        "Sign in",
        html! {
            h1 { "Sign in" }
            div.cards {
                section.card aria-labelledby="with-password" {
                    h2 id="with-password" { "With your username" }
                    @if let Some(m) = error_for(SignedInWith::Password) { p.error role="alert" { (m) } }
                    form method="post" action={ (BASE) "/sign-in" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="username" { "Username" }
                        input id="username" name="username" type="text" autocomplete="username" required value=(username);
                        label for="password" { "Password" }
                        input id="password" name="password" type="password" autocomplete="current-password" required;
                        button type="submit" { "Sign in" }
                    }
                }
                section.card aria-labelledby="with-token" {
                    h2 id="with-token" { "With a Ventiapp API token" }
                    @if let Some(m) = error_for(SignedInWith::Token) { p.error role="alert" { (m) } }
                    form method="post" action={ (BASE) "/sign-in/token" } {
                        input type="hidden" name="csrf" value=(csrf);
                        label for="token" { "API token" }
                        input id="token" name="token" type="password" autocomplete="off" required;
                        button type="submit" { "Sign in with token" }
                    }
                }
            }
        },
    )
}

pub(super) fn webhooks(s: &Session, list: &[Webhook]) -> Markup {
    layout(
        Some(s),
        "Webhooks",
        html! {
            h1 { "Webhooks" }
            p { a.button href={ (BASE) "/webhooks/new" } { "New webhook" } }
            @if list.is_empty() {
                p { "No webhooks yet. Register an endpoint with New webhook, and events of its type reach it signed." }
            } @else {
                div.scroll {
                    table {
                        caption { "Your webhooks" }
                        thead { tr { th scope="col" { "URL" } th scope="col" { "Event type" } th scope="col" { "Status" } } }
                        tbody {
                            @for w in list {
                                tr {
                                    td.url { a href=(webhook_path(w)) { (w.url) } }
                                    td { code { (w.event_type.as_str()) } }
                                    td { span class={ "status " @if w.disabled.is_some() { "off" } @else { "on" } } { (status_text(w)) } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub(super) fn new_webhook(s: &Session, form: &FormState) -> Markup {
    let v = |name: &str| form.values.field(name).unwrap_or("").to_owned();
    let chosen = v("eventType");
    layout(
        Some(s),
        "New webhook",
        html! {
            h1 { "New webhook" }
            form.stack method="post" action={ (BASE) "/webhooks" } novalidate {
                (csrf(s))
                label for="url" { "URL" }
                input id="url" name="url" type="text" inputmode="url" autocomplete="off" value=(v("url"))
                    aria-invalid=[form.error("url").map(|_| "true")] aria-describedby=[form.error("url").map(|_| "url-error")];
                (field_error("url", form.error("url")))
                label for="eventType" { "Event type" }
                select id="eventType" name="eventType"
                    aria-invalid=[form.error("eventType").map(|_| "true")] aria-describedby=[form.error("eventType").map(|_| "eventType-error")] {
                    @for t in EventType::ALL {
                        option value=(t.as_str()) selected[chosen == t.as_str()] { (t.as_str()) }
                    }
                }
                (field_error("eventType", form.error("eventType")))
                label for="authentication" { "Authorization header (optional)" }
                input id="authentication" name="authentication" type="password" autocomplete="off"
                    aria-invalid=[form.error("authentication").map(|_| "true")]
                    aria-describedby={ "authentication-help" @if form.error("authentication").is_some() { " authentication-error" } };
                p.help id="authentication-help" { "Sent as the Authorization header of every delivery, for example Basic XxxXxxXX. It is never shown again." }
                (field_error("authentication", form.error("authentication")))
                button type="submit" { "Create" }
            }
        },
    )
}

fn secret_box(secret: &str) -> Markup {
    html! {
        section.secret aria-labelledby="secret-heading" {
            h2 id="secret-heading" { "Signing secret" }
            p { "Shown this once: keep it where your receiver verifies signatures." }
            div.copy {
                code id="signing-secret" { (secret) }
                button type="button" data-copy="signing-secret" { "Copy" }
            }
        }
    }
}

pub(super) fn created(s: &Session, w: &Webhook) -> Markup {
    layout(
        Some(s),
        "Webhook created",
        html! {
            h1 { "Webhook created" }
            (notice(Some("Webhook created: events of its type are delivered to it from now on.")))
            (secret_box(&w.secret))
            p { a href=(webhook_path(w)) { "Go to " (w.url) } }
        },
    )
}

#[allow(clippy::too_many_arguments)]
pub(super) fn webhook(
    s: &Session,
    w: &Webhook,
    rows: &[(String, &AttemptRecord)],
    next: Option<&str>,
    paged: bool,
    message: Option<&str>,
    new_secret: Option<&str>,
) -> Markup {
    let path = webhook_path(w);
    let mut seen = std::collections::HashSet::new();
    layout(
        Some(s),
        &w.url,
        html! {
            h1.url { (w.url) }
            (notice(message))
            @if let Some(secret) = new_secret { (secret_box(secret)) }
            dl.details {
                dt { "Event type" } dd { code { (w.event_type.as_str()) } }
                dt { "Status" } dd { (status_text(w)) }
                dt { "Webhook id" } dd { (w.id) }
                dt { "Authorization header" } dd { @if w.authentication.is_some() { "set (not shown)" } @else { "none" } }
                dt { "Signing secret" } dd { "shown when the webhook is created and when it is rotated"
                    @if !w.previous_secrets.is_empty() { "; " (w.previous_secrets.len()) " former secret(s) still signing" } }
                @if let Some(since) = w.failing_since { dt { "Failing since" } dd { (rfc3339(since)) } }
                dt { "Created" } dd { (rfc3339(w.created_at)) }
                dt { "Updated" } dd { (rfc3339(w.updated_at)) }
            }
            div.actions {
                form method="post" action={ (path) "/test" } { (csrf(s)) button type="submit" { "Send test event" } }
                form method="post" action={ (path) "/rotate" } { (csrf(s)) button type="submit" { "Rotate secret" } }
                @if w.disabled.is_some() {
                    form method="post" action={ (path) "/enable" } { (csrf(s)) button type="submit" { "Enable" } }
                }
                form method="get" action={ (path) "/delete" } { button.danger type="submit" { "Delete" } }
            }
            div.scroll {
                table.deliveries {
                    caption { "Deliveries" }
                    thead { tr {
                        th scope="col" { "Event" } th scope="col" { "Attempt" } th scope="col" { "Outcome" }
                        th scope="col" { "Status" } th scope="col" { "Time" } th scope="col" { "Actions" }
                    } }
                    tbody {
                        @if rows.is_empty() {
                            tr { td colspan="6" { "No deliveries yet." } }
                        }
                        @for (key, a) in rows {
                            tr {
                                td { a href={ (path) "/deliveries/" (urlencode(key)) } { (a.event_id) } }
                                td { (a.attempt) }
                                td { span class={ "outcome " (a.outcome) } { (a.outcome) } }
                                td { @if let Some(code) = a.status { (code) } @else { "—" } }
                                td { time datetime=(rfc3339_ms(a.at_ms)) { (rfc3339_ms(a.at_ms)) } }
                                td {
                                    @if !a.event_id.starts_with("test_") && seen.insert(a.event_id.clone()) {
                                        (redeliver_form(s, &path, &a.event_id))
                                    }
                                }
                            }
                        }
                    }
                }
            }
            nav.pages aria-label="Deliveries pages" {
                @if paged { a href=(path) { "Newest deliveries" } }
                @if let Some(n) = next { a href={ (path) "?after=" (urlencode(n)) } { "Older deliveries" } }
            }
        },
    )
}

fn redeliver_form(s: &Session, path: &str, event_id: &str) -> Markup {
    html! {
        form method="post" action={ (path) "/redeliver" } {
            (csrf(s))
            input type="hidden" name="eventId" value=(event_id);
            button type="submit" aria-label={ "Redeliver " (event_id) } { "Redeliver" }
        }
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(super) fn attempt(s: &Session, w: &Webhook, a: &AttemptRecord) -> Markup {
    let path = webhook_path(w);
    let mut shown = a.response_excerpt.as_str();
    if shown.len() > RESPONSE_SHOWN {
        let mut end = RESPONSE_SHOWN;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown = &shown[..end];
    }
    let title = format!("Attempt {} of {}", a.attempt, a.event_id);
    layout(
        Some(s),
        &title,
        html! {
            h1 { (title) }
            p { a href=(path) { "Back to " (w.url) } }
            dl.details {
                dt { "Webhook" } dd.url { (w.url) }
                dt { "Event" } dd { (a.event_id) }
                dt { "Attempt" } dd { (a.attempt) }
                dt { "Outcome" } dd { (a.outcome) }
                dt { "Time" } dd { (rfc3339_ms(a.at_ms)) }
                dt { "Duration" } dd { (a.duration_ms) " ms" }
            }
            h2 { "Request headers" }
            p { "Secrets are not shown: the signature is made with the signing secret, and the Authorization header and your own headers' values are yours." }
            div.scroll {
                table {
                    caption { "Request headers" }
                    thead { tr { th scope="col" { "Header" } th scope="col" { "Value" } } }
                    tbody {
                        tr { td { "content-type" } td { "application/json" } }
                        tr { td { "user-agent" } td { (crate::delivery::USER_AGENT) } }
                        tr { td { "webhook-id" } td { (a.event_id) } }
                        tr { td { "webhook-timestamp" } td { "the signing time, at the attempt" } }
                        tr { td { "webhook-signature" } td { "v1,… (not shown)" } }
                        @if w.authentication.is_some() { tr { td { "authorization" } td { "(not shown)" } } }
                        @for (name, _) in &w.options.headers { tr { td { (name) } td { "(not shown)" } } }
                    }
                }
            }
            h2 { "Response" }
            dl.details {
                dt { "Status" } dd { @if let Some(code) = a.status { (code) } @else { "no answer (" (a.outcome) ")" } }
            }
            h3 { "Body (first KiB)" }
            @if shown.is_empty() { p { "Empty." } } @else { pre.body { (shown) } }
            @if !a.event_id.starts_with("test_") { (redeliver_form(s, &path, &a.event_id)) }
        },
    )
}

pub(super) fn confirm_delete(s: &Session, w: &Webhook) -> Markup {
    let path = webhook_path(w);
    layout(
        Some(s),
        "Delete webhook",
        html! {
            h1 { "Delete webhook" }
            p { "Deliveries of " code { (w.event_type.as_str()) } " events to " strong.url { (w.url) } " stop, and the webhook is gone. This cannot be undone." }
            div.actions {
                form method="post" action={ (path) "/delete" } { (csrf(s)) button.danger type="submit" { "Delete webhook" } }
                a href=(path) { "Cancel" }
            }
        },
    )
}

pub(super) fn notifications(
    s: &Session,
    settings: &Notifications,
    saved: Option<&str>,
    errors: &[FieldError],
) -> Markup {
    let error = |f: &str| errors.iter().find(|e| e.field == f).map(|e| e.message.as_str());
    layout(
        Some(s),
        "Notifications",
        html! {
            h1 { "Notifications" }
            (notice(saved))
            @if let Some((at, why)) = &settings.refused {
                p.error role="alert" { "Emails to this address were refused on " (rfc3339(*at)) ": " (why) ". Save it again to try it again." }
            }
            form.stack method="post" action={ (BASE) "/notifications" } novalidate {
                (csrf(s))
                label for="email" { "Email" }
                input id="email" name="email" type="email" autocomplete="email" value=(settings.email.as_deref().unwrap_or(""))
                    aria-invalid=[error("email").map(|_| "true")] aria-describedby=[error("email").map(|_| "email-error")];
                (field_error("email", error("email")))
                fieldset aria-describedby=[error("notify").map(|_| "notify-error")] {
                    legend { "Email me about" }
                    @for (topic, label) in TOPICS {
                        div.check {
                            input type="checkbox" id={ "notify-" (topic.as_str()) } name="notify" value=(topic.as_str())
                                checked[settings.topics.contains(&topic)];
                            label for={ "notify-" (topic.as_str()) } { (label) }
                        }
                    }
                }
                (field_error("notify", error("notify")))
                button type="submit" { "Save" }
            }
        },
    )
}

const VERIFY_PYTHON: &str = r#"# pip install standardwebhooks
from standardwebhooks.webhooks import Webhook

wh = Webhook("whsec_...")  # the webhook's signing secret
# body: the request's raw bytes; headers: its webhook-id, webhook-timestamp, webhook-signature
payload = wh.verify(body, headers)  # raises on a wrong signature or an old timestamp"#;

const VERIFY_JS: &str = r#"// npm install standardwebhooks
import { Webhook } from "standardwebhooks";

const wh = new Webhook("whsec_...");           // the webhook's signing secret
const payload = wh.verify(rawBody, headers);    // throws on a wrong signature"#;

pub(super) fn event_types(s: &Session) -> Markup {
    layout(
        Some(s),
        "Event types",
        html! {
            h1 { "Event types" }
            p { "Each event type's payload, as a JSON Schema (the rules every published event is checked against) and an example. Payloads may carry more fields than their schema names." }
            nav aria-label="Event types" {
                ul.inline { @for t in EventType::ALL { li { a href={ "#" (anchor(t)) } { (t.as_str()) } } } }
            }
            @for t in EventType::ALL {
                section.event-type id=(anchor(t)) aria-labelledby={ (anchor(t)) "-h" } {
                    h2 id={ (anchor(t)) "-h" } { (t.as_str()) }
                    p { (describe(t)) }
                    h3 { "Schema" }
                    pre.json data-schema=(t.as_str()) tabindex="0" { (pretty(&events::payload_schema(t))) }
                    h3 { "Example" }
                    pre.json data-example=(t.as_str()) tabindex="0" { (pretty(&events::test_payload(t))) }
                }
            }
            section aria-labelledby="verify-h" {
                h2 id="verify-h" { "Verifying a signature" }
                p { "Every delivery is signed as the Standard Webhooks specification says (headers webhook-id, webhook-timestamp and webhook-signature). Verify it with one of the specification's libraries before trusting the body:" }
                h3 { "Python" }
                pre.code tabindex="0" { (VERIFY_PYTHON) }
                h3 { "JavaScript" }
                pre.code tabindex="0" { (VERIFY_JS) }
            }
        },
    )
}

fn anchor(t: EventType) -> String {
    t.as_str().replace('/', "-")
}

fn describe(t: EventType) -> &'static str {
    match t {
        EventType::NewOrder => "eComNow: an order was placed.",
        EventType::OrderCancellation => "eComNow: an order was cancelled.",
        EventType::OrdersCreated => "Ventiapp: an order was created.",
        EventType::OrdersUpdated => "Ventiapp: an order changed.",
        EventType::OrdersCancelled => "Ventiapp: an order was cancelled.",
        EventType::BillsCreated => "Ventiapp: a bill was issued for an order.",
        EventType::ProductsCreated => "Ventiapp: a product was created.",
        EventType::ProductsUpdated => "Ventiapp: a product changed.",
        EventType::ProductsDeleted => "Ventiapp: a product was deleted.",
    }
}
