//! Publishing: events fanned out to their webhooks, one or a batch at a time. A batch costs what
//! one event costs wherever the work can be shared: each vendor and its webhooks are read once,
//! the events are kept in batch writes, and the deliveries go on the queue ten to a request.
use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use lambda_http::http::StatusCode;
use serde_json::value::RawValue;

use crate::{
    api::App,
    clock::now,
    delivery::DeliveryMessage,
    digest,
    domain::FieldError,
    emails::EmailMessage,
    error::ApiError,
    events::PublishRequest,
    ids, metrics,
    queue::{DeliveryQueue, MAX_MESSAGE_BYTES},
    store::{EventClaim, EventLog, EventStart, NotifyStore, VendorStore, WebhookStore},
};

mod fan_out;
use fan_out::fan_out;

/// How long a publisher's idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 24 * 3600;

/// How long a publish holds its idempotency key while it fans out: three times the function's
/// time limit (10 s), so that a lease past its time is a fan-out that died.
pub const FAN_OUT_LEASE_SECS: i64 = 30;

/// An event fanned out (or fanned out before, under the same id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub event_id: String,
    /// The webhooks it was queued for.
    pub deliveries: u32,
}

/// An event on its way: read, its id settled, and whether it holds its key's lease.
struct Pending {
    index: usize,
    event: PublishRequest,
    event_id: String,
    /// The publisher's idempotency key, whose lease this publish holds.
    leased: bool,
}

/// Publishes each event on its own terms (validated, idempotent, refused alone), sharing the
/// reads and writes a batch has in common; the answers are in the events' order.
pub async fn publish_all<S, Q>(
    app: &App<S, Q>,
    queue: &Q,
    events: Vec<Result<PublishRequest, ApiError>>,
) -> Vec<Result<Published, ApiError>>
where
    S: VendorStore + WebhookStore + EventLog + NotifyStore,
    Q: DeliveryQueue,
{
    let mut answers: Vec<Option<Result<Published, ApiError>>> = vec![None; events.len()];
    // An event whose id came earlier in the batch gets that one's answer.
    let mut first_of: HashMap<(String, String), (usize, String)> = HashMap::new();
    let mut repeats: Vec<(usize, usize, bool)> = Vec::new();
    let mut pending = Vec::new();
    for (index, event) in events.into_iter().enumerate() {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                answers[index] = Some(Err(e));
                continue;
            }
        };
        let event_id = event.id.clone().unwrap_or_else(ids::event_id);
        if let Err(e) = refuse_what_cannot_be_queued(&event_id, &event) {
            answers[index] = Some(Err(e));
            continue;
        }
        if let Some(key) = &event.id {
            let print = fingerprint(&event);
            match first_of.get(&(event.vendor_id.clone(), key.clone())) {
                Some((first, first_print)) => {
                    repeats.push((index, *first, *first_print == print));
                    continue;
                }
                None => _ = first_of.insert((event.vendor_id.clone(), key.clone()), (index, print)),
            }
        }
        pending.push(Pending { index, event, event_id, leased: false });
    }

    // Vendors, once each.
    let vendors: HashSet<&str> = pending.iter().map(|p| p.event.vendor_id.as_str()).collect();
    let found = join_all(vendors.iter().map(|v| async move { (*v, app.store.vendor_by_id(v).await) })).await;
    let mut unknown: HashMap<String, ApiError> = HashMap::new();
    for (vendor, result) in found {
        match result {
            Ok(Some(_)) => {}
            Ok(None) => _ = unknown.insert(vendor.to_owned(), vendor_unknown()),
            Err(e) => _ = unknown.insert(vendor.to_owned(), ApiError::from(e)),
        }
    }
    let mut pending = settle(&mut answers, pending, |p| unknown.get(&p.event.vendor_id).cloned());

    // Publishers' keys: a repeat is answered as the first time, and nothing is queued for it.
    let now_secs = now();
    let claims = join_all(pending.iter().map(|p| claim(app, p, now_secs))).await;
    let mut repeated = 0;
    let mut kept = Vec::with_capacity(pending.len());
    for (mut p, claim) in pending.drain(..).zip(claims) {
        match claim {
            Ok(Claimed::Lease(event_id)) => {
                p.event_id = event_id.unwrap_or(p.event_id);
                p.leased = true;
                kept.push(p);
            }
            Ok(Claimed::NoKey) => kept.push(p),
            Ok(Claimed::Answer(answer)) => {
                repeated += answer.is_ok() as u64;
                answers[p.index] = Some(answer);
            }
            Err(e) => answers[p.index] = Some(Err(e.into())),
        }
    }
    let pending = kept;

    let fanned = fan_out(app, queue, &pending).await;
    let mut published = 0;
    let mut fanned_out = 0;
    match fanned {
        Ok(counts) => {
            let finished = join_all(pending.iter().zip(&counts).map(|(p, n)| async move {
                match (&p.event.id, p.leased) {
                    (Some(key), true) => app.store.finish_event(&p.event.vendor_id, key, *n).await,
                    _ => Ok(()),
                }
            }))
            .await;
            // One line for the request's events, each `event_id/event_type/vendor/deliveries`:
            // what a line per event said, without its request id and trace again for each.
            let mut events = String::new();
            for ((p, deliveries), finished) in pending.iter().zip(counts).zip(finished) {
                let (id, event) = (&p.event_id, &p.event);
                crate::telemetry::list_item(
                    &mut events,
                    format_args!("{id}/{}/{}/{deliveries}", event.event_type, event.vendor_id),
                );
                published += 1;
                fanned_out += deliveries as u64;
                answers[p.index] = Some(match finished {
                    Ok(()) => Ok(Published { event_id: p.event_id.clone(), deliveries }),
                    Err(e) => Err(e.into()),
                });
            }
            if published > 0 {
                tracing::info!(count = published, deliveries = fanned_out, %events, "published");
            }
        }
        Err(e) => {
            // The leases are given up, so that publishing again can complete them at once.
            join_all(pending.iter().filter(|p| p.leased).map(|p| async move {
                let key = p.event.id.as_deref().unwrap_or_default();
                if let Err(release) = app.store.release_event(&p.event.vendor_id, key).await {
                    tracing::warn!(error = %crate::error::chain(&release), "cannot release the event's lease");
                }
            }))
            .await;
            for p in &pending {
                answers[p.index] = Some(Err(e.clone()));
            }
        }
    }
    for (index, first, same) in repeats {
        answers[index] = Some(match (&answers[first], same) {
            (_, false) => Err(mismatch()),
            (Some(answer), true) => answer.clone(),
            (None, true) => Err(ApiError::internal_error()),
        });
    }
    let mut record = metrics::Record::new("publish-event").count("Published", published);
    record = record.count("FannedOut", fanned_out);
    if repeated > 0 {
        record = record.count("Repeated", repeated);
    }
    record.emit();
    answers.into_iter().map(|a| a.unwrap_or_else(|| Err(ApiError::internal_error()))).collect()
}

/// Answers the events `refuse` has an error for; the others go on.
fn settle(
    answers: &mut [Option<Result<Published, ApiError>>],
    pending: Vec<Pending>,
    refuse: impl Fn(&Pending) -> Option<ApiError>,
) -> Vec<Pending> {
    pending
        .into_iter()
        .filter(|p| match refuse(p) {
            Some(e) => {
                answers[p.index] = Some(Err(e));
                false
            }
            None => true,
        })
        .collect()
}

fn vendor_unknown() -> ApiError {
    FieldError::not_allowed("vendorId", "vendorId names no vendor").into()
}

fn mismatch() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_mismatch",
        "an event with this id was published with another type or payload: give a new event a new id",
    )
}

/// What a publisher's key says about an event.
enum Claimed {
    /// No key: publish it.
    NoKey,
    /// The lease is this publish's; the event keeps the id of a fan-out it resumes.
    Lease(Option<String>),
    /// Seen before: this is the answer.
    Answer(Result<Published, ApiError>),
}

async fn claim<S: EventLog, Q>(
    app: &App<S, Q>,
    p: &Pending,
    t: i64,
) -> Result<Claimed, crate::store::StoreError> {
    let Some(key) = &p.event.id else { return Ok(Claimed::NoKey) };
    let fingerprint = fingerprint(&p.event);
    let claim = EventClaim {
        vendor_id: &p.event.vendor_id,
        key,
        event_id: &p.event_id,
        fingerprint: &fingerprint,
        now: t,
        lease_until: t + FAN_OUT_LEASE_SECS,
        expires_at: t + IDEMPOTENCY_WINDOW_SECS,
    };
    Ok(match app.store.begin_event(&claim).await? {
        EventStart::New => Claimed::Lease(None),
        EventStart::Resumed { event_id } => {
            tracing::warn!(event_id = %event_id, "repeated event id whose fan-out stopped: fanning out again");
            Claimed::Lease(Some(event_id))
        }
        EventStart::Done { event_id, deliveries } => {
            tracing::info!(event_id = %event_id, "repeated event id: nothing enqueued");
            Claimed::Answer(Ok(Published { event_id, deliveries }))
        }
        EventStart::InProgress { retry_after_secs } => {
            tracing::info!(event_id = %key, "repeated event id while its fan-out runs: nothing enqueued");
            Claimed::Answer(Err(ApiError::new(
                StatusCode::CONFLICT,
                "in_progress",
                "an event with this id is being fanned out now: publish it again after Retry-After",
            )
            .with_retry_after(retry_after_secs)))
        }
        EventStart::Mismatch => Claimed::Answer(Err(mismatch())),
    })
}

/// What makes two publishes under one id the same event: their type and payload, as JSON
/// values (a publisher that serialises the same payload again, with its keys in another order or
/// other whitespace, publishes the same event).
fn fingerprint(event: &PublishRequest) -> String {
    let mut canonical = format!("{}\n", event.event_type.as_str());
    write_canonical(&event.value, &mut canonical);
    digest::sha256_hex(canonical.as_bytes())
}

/// JSON with every object's keys in order, whatever order the map type keeps them in.
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `413` for an event whose delivery message (or order email) would not fit in one SQS message,
/// before anything is stored or queued: publishing it again could never succeed.
fn refuse_what_cannot_be_queued(event_id: &str, event: &PublishRequest) -> Result<(), ApiError> {
    // Both messages embed the payload as it is: their envelopes, measured around a one-byte
    // payload, plus the payload's length, without copying it.
    let payload_len = event.payload.get().len();
    let delivery =
        DeliveryMessage::longest_body_len(event_id, event.event_type, &event.vendor_id, payload_len);
    let placeholder = RawValue::from_string("0".to_owned()).expect("0 is JSON");
    let email = EmailMessage::order(event_id, event.event_type, &event.vendor_id, i64::MIN, placeholder)
        .to_body()
        .len()
        - 1
        + payload_len;
    let longest = delivery.max(email);
    if longest > MAX_MESSAGE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the event would need a queue message of {longest} bytes, and SQS takes at most \
                 {MAX_MESSAGE_BYTES}: make the payload {} bytes smaller",
                longest - MAX_MESSAGE_BYTES
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(payload: &str) -> PublishRequest {
        crate::events::parse_publish(
            format!(r#"{{"vendorId":"ven_1","type":"products/deleted","payload":{payload}}}"#).as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn the_fingerprint_is_the_payloads_value_not_its_bytes() {
        let a = request(r#"{"productId": 1, "sku": "A", "price": 1.5, "title": "t"}"#);
        let b = request(r#"{"title":"t","price":1.50,"sku":"A","productId":1}"#);
        let c = request(r#"{"productId": 1, "sku": "B", "price": 1.5, "title": "t"}"#);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&c));
    }
}
