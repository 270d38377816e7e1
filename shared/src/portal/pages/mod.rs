//! The portal's pages. Names a vendor's automation finds elements by (labels, buttons, links,
//! headings) are part of the portal's contract: README, Portal.
use maud::{html, Markup, DOCTYPE};

use super::{Session, BASE};
pub(crate) use crate::clock::rfc3339;
use crate::domain::Webhook;

mod account;
mod webhooks;

pub(crate) use account::{event_types, notifications};
pub(crate) use webhooks::{attempt, confirm_delete, created, new_webhook, webhook, webhooks};

pub(super) fn layout(session: Option<&Session>, title: &str, main: Markup) -> Markup {
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

pub(super) fn csrf(s: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(s.csrf); }
}

pub(super) fn notice(text: Option<&str>) -> Markup {
    html! {
        div.notice role="status" {
            @if let Some(t) = text { p { (t) } }
        }
    }
}

pub(super) fn field_error(id: &str, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.field-error id={ (id) "-error" } { (e) } }
    }
}

pub(super) fn status_text(w: &Webhook) -> String {
    match &w.disabled {
        None => "active".into(),
        Some((at, why)) => format!("disabled: {why} (since {})", rfc3339(*at)),
    }
}

pub(super) fn webhook_path(w: &Webhook) -> String {
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

pub(super) fn sign_in(
    csrf: &str,
    error: Option<(crate::store::SignedInWith, &str)>,
    username: &str,
) -> Markup {
    use crate::store::SignedInWith;
    let error_for = |w: SignedInWith| error.filter(|(with, _)| *with == w).map(|(_, m)| m);
    layout(
        None,
        "Sign in",
        html! {
            h1 { "Sign in" }
            div.cards {
                section.card aria-labelledby="with-password" {
                    h2 id="with-password" { "eComNow vendors" }
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
                    h2 id="with-token" { "Ventiapp vendors" }
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
