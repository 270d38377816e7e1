//! The webhooks' pages: the list, a new one, one webhook with its deliveries, an attempt.
use maud::{html, Markup};

use super::{csrf, field_error, layout, notice, rfc3339, status_text, webhook_path};
use crate::{
    clock::rfc3339_ms,
    domain::{EventType, Webhook},
    portal::{actions::FormState, Session, BASE},
    store::AttemptRecord,
};

/// How much of a response body an attempt's page shows.
const RESPONSE_SHOWN: usize = 1024;

pub(crate) fn webhooks(s: &Session, list: &[Webhook]) -> Markup {
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

pub(crate) fn new_webhook(s: &Session, form: &FormState) -> Markup {
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

pub(crate) fn created(s: &Session, w: &Webhook) -> Markup {
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
pub(crate) fn webhook(
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

pub(crate) fn attempt(s: &Session, w: &Webhook, a: &AttemptRecord) -> Markup {
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
                        tr {
                            td { "webhook-timestamp" }
                            td { @if let Some(at) = a.signed_at { (at) " (" (rfc3339_ms(at * 1000)) ")" } @else { "the signing time, at the attempt" } }
                        }
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

pub(crate) fn confirm_delete(s: &Session, w: &Webhook) -> Markup {
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
