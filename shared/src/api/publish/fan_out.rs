//! Fan-out: one delivery per matching webhook of each event, the events kept, the order emails
//! asked for, and all of it queued in as few requests as the queues take.
use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use lambda_http::http::StatusCode;

use super::Pending;
use crate::{
    api::App,
    clock::now,
    delivery::DeliveryMessage,
    domain::Webhook,
    emails::EmailMessage,
    error::ApiError,
    grouped, metrics,
    notify::Topic,
    options::{self, Ordering},
    queue::DeliveryQueue,
    store::{EventLog, NotifyStore, StoredEvent, WebhookStore},
};

/// Queues one delivery per matching active webhook whose filter the event passes (and the order
/// email, if the vendor asked for one), and keeps each event that a webhook of its type could
/// want (for redelivery and recovery); the number of deliveries of each event. A webhook whose
/// last attempt failed has its delivery put in the slow lane, where dispatch would move it:
/// healthy webhooks' deliveries never queue behind it. A healthy one whose cap SQS can keep has
/// it put in the grouped lane (`shared::grouped`), in its group.
pub(super) async fn fan_out<S, Q>(
    app: &App<S, Q>,
    queue: &Q,
    pending: &[Pending],
) -> Result<Vec<u32>, ApiError>
where
    S: WebhookStore + EventLog + NotifyStore,
    Q: DeliveryQueue,
{
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let published_at = now();
    let vendors: HashSet<&str> = pending.iter().map(|p| p.event.vendor_id.as_str()).collect();
    let mut webhooks: HashMap<&str, Vec<Webhook>> = HashMap::new();
    for (vendor, listed) in
        join_all(vendors.iter().map(|v| async move { (*v, app.store.list_webhooks(v).await) })).await
    {
        webhooks.insert(vendor, listed?);
    }
    // Email settings, for the vendors with an order event in this batch.
    let mut settings = HashMap::new();
    if app.emails.is_some() {
        let wanted: HashSet<&str> = pending
            .iter()
            .filter(|p| Topic::of_event(p.event.event_type).is_some())
            .map(|p| p.event.vendor_id.as_str())
            .collect();
        for (vendor, read) in
            join_all(wanted.iter().map(|v| async move { (*v, app.store.get_notifications(v).await) })).await
        {
            settings.insert(vendor, read?);
        }
    }

    let (mut bodies, mut slow, mut emails, mut kept) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut ordered, mut in_groups) = (Vec::new(), Vec::new());
    let mut counts = Vec::with_capacity(pending.len());
    let mut filtered_out = 0;
    for p in pending {
        let event = &p.event;
        let of_type: Vec<&Webhook> =
            webhooks[event.vendor_id.as_str()].iter().filter(|w| w.event_type == event.event_type).collect();
        let mut deliveries = 0;
        for w in of_type.iter().filter(|w| w.disabled.is_none()) {
            if let Some(filter) = &w.options.filter {
                if !filter.matches(&event.value) {
                    filtered_out += 1;
                    continue;
                }
            }
            let message = DeliveryMessage::first(
                p.event_id.clone(),
                event.event_type,
                event.vendor_id.clone(),
                w.id,
                published_at,
                event.payload.clone(),
            );
            deliveries += 1;
            // A webhook that keeps its order per order: its deliveries go to the FIFO queue, in
            // their order's group.
            if w.options.ordering == Ordering::PerOrder && app.ordered.is_some() {
                if let Some(key) = options::order_key(event.event_type, &event.value) {
                    let dedup = grouped::published_dedup(w.id, &p.event_id);
                    ordered.push(options::grouped(&message, &key, dedup));
                    continue;
                }
            }
            // A healthy webhook whose cap SQS can keep: the grouped lane, in its webhook's group.
            let kept = grouped::kept_cap(w, app.config.max_in_flight_per_webhook);
            if let (Some(_), Some(cap)) = (&app.grouped, kept) {
                let dedup = grouped::published_dedup(w.id, &p.event_id);
                in_groups.push(grouped::message(&message, cap, dedup));
                continue;
            }
            let body = message.to_body();
            if w.failing() && app.slow_lane.is_some() {
                slow.push(body);
            } else {
                bodies.push(body);
            }
        }
        counts.push(deliveries);
        // Kept for redelivery and for recovery whenever the vendor has a webhook of its type;
        // in the vendor's timeline only if one of them got no delivery of it (disabled, or its
        // filter said no), since recovery finds the others through the attempt log.
        if !of_type.is_empty() {
            kept.push(StoredEvent {
                event_id: p.event_id.clone(),
                vendor_id: event.vendor_id.clone(),
                event_type: event.event_type,
                payload: event.payload.get().to_owned(),
                published_at,
                in_timeline: (deliveries as usize) < of_type.len(),
            });
        }
        // An order email, if the vendor asked for one: a message on the emails queue, so that
        // sending it never holds the deliveries up; send-email sends it once per order.
        let topic = Topic::of_event(event.event_type);
        let wants = |s: &Option<crate::notify::Notifications>| {
            topic.is_some_and(|t| s.as_ref().and_then(|s| s.address_for(t)).is_some())
        };
        if settings.get(event.vendor_id.as_str()).is_some_and(wants) {
            emails.push(
                EmailMessage::order(
                    &p.event_id,
                    event.event_type,
                    &event.vendor_id,
                    published_at,
                    event.payload.clone(),
                )
                .to_body(),
            );
        }
    }
    if filtered_out > 0 {
        metrics::Record::new("publish-event").count("FilteredOut", filtered_out).emit();
    }
    // Delivering matters more than being able to deliver again: a failure to keep the events is
    // logged, and the fan-out goes on.
    if let Err(e) = app.store.store_events(&kept).await {
        tracing::error!(error = %crate::error::chain(&e), "cannot keep the events for redelivery");
    }
    let mut queued = queue.send_all(bodies).await;
    if let (Ok(()), Some(lane)) = (&queued, app.slow_lane.as_ref().filter(|_| !slow.is_empty())) {
        queued = lane.send_all(slow).await;
    }
    if let (Ok(()), Some(queue)) = (&queued, app.ordered.as_ref().filter(|_| !ordered.is_empty())) {
        queued = queue.send_grouped(ordered).await;
    }
    if let (Ok(()), Some(queue)) = (&queued, app.grouped.as_ref().filter(|_| !in_groups.is_empty())) {
        queued = queue.send_grouped(in_groups).await;
    }
    if let (Ok(()), Some(queue)) = (&queued, app.emails.as_ref().filter(|_| !emails.is_empty())) {
        queued = queue.send_all(emails).await;
    }
    if let Err(e) = queued {
        tracing::error!(error = %crate::error::chain(&e), "fan-out failed");
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the event could not be queued; publish it again with the same id",
        ));
    }
    Ok(counts)
}
