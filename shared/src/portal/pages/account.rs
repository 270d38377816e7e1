//! The vendor's notification settings, and the event types' catalogue.
use maud::{html, Markup};

use super::{csrf, field_error, layout, notice, rfc3339};
use crate::{
    domain::{EventType, FieldError},
    events,
    notify::Notifications,
    notify::Topic,
    portal::{Session, BASE},
};

/// The topics a vendor can tick, with their labels.
const TOPICS: [(Topic, &str); 3] = [
    (Topic::NewOrder, "New orders"),
    (Topic::OrderCancellation, "Cancelled orders"),
    (Topic::Failures, "Failing webhooks"),
];

/// A payload pretty-printed for a page.
fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

pub(crate) fn notifications(
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

pub(crate) fn event_types(s: &Session) -> Markup {
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
                    pre.json data-schema=(t.as_str()) tabindex="0" { (events::payload_schema(t).trim_end()) }
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
