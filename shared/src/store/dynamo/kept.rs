//! A kept event's item: its record, its payload deflated (raw DEFLATE: JSON about halves, so a
//! 1 KiB event is one write unit, not two), and what writing it costs.
use serde::{Deserialize, Serialize};

use super::{records::to_item, *};

/// A published event kept for redelivery (`EVT#<vendorId>#<eventId>`, 30 days).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EventRecord {
    pub(super) pk: String,
    pub(super) sk: String,
    /// The vendor's events of one type, by `publishedAt`: the key of the `EventsByTime` index,
    /// set only on an event a webhook of its type got no delivery of (events kept before this
    /// rule all have it; those before the index, none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) timeline: Option<String>,
    pub(super) event_id: String,
    pub(super) event_type: EventType,
    /// The payload as published (events kept before `deflated`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) payload: Option<String>,
    /// The payload as published, raw DEFLATE: a 1 KiB event is then one write unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) deflated: Option<serde_bytes::ByteBuf>,
    pub(super) published_at: i64,
    pub(super) expires_at: i64,
}

impl EventRecord {
    /// The record of `e`, its payload deflated.
    pub(super) fn of(e: &StoredEvent) -> Self {
        EventRecord {
            pk: event_pk(&e.vendor_id, &e.event_id),
            sk: "#".into(),
            timeline: e.in_timeline.then(|| timeline_pk(&e.vendor_id, e.event_type)),
            event_id: e.event_id.clone(),
            event_type: e.event_type,
            payload: None,
            deflated: Some(serde_bytes::ByteBuf::from(miniz_oxide::deflate::compress_to_vec(
                e.payload.as_bytes(),
                DEFLATE_LEVEL,
            ))),
            published_at: e.published_at,
            expires_at: e.published_at + ATTEMPT_TTL_SECS,
        }
    }

    /// The event, as `vendor_id`'s.
    pub(super) fn event(self, vendor_id: &str) -> Result<StoredEvent, StoreError> {
        let payload = match (self.payload, self.deflated) {
            (Some(payload), _) => payload,
            (None, Some(deflated)) => {
                let bytes = miniz_oxide::inflate::decompress_to_vec_with_limit(
                    &deflated,
                    crate::events::MAX_EVENT_BYTES,
                )
                .map_err(|e| StoreError::Corrupt(format!("kept event {}: {e}", self.event_id)))?;
                String::from_utf8(bytes)
                    .map_err(|e| StoreError::Corrupt(format!("kept event {}: {e}", self.event_id)))?
            }
            (None, None) => {
                return Err(StoreError::Corrupt(format!("kept event {} has no payload", self.event_id)))
            }
        };
        Ok(StoredEvent {
            in_timeline: self.timeline.is_some(),
            event_id: self.event_id,
            vendor_id: vendor_id.to_owned(),
            event_type: self.event_type,
            payload,
            published_at: self.published_at,
        })
    }
}

/// miniz's default: on JSON of a few KiB, the higher levels gain a few bytes for twice the time.
const DEFLATE_LEVEL: u8 = 6;

/// What keeping `event` costs in write units: one per KB its item begins, and one for its key
/// in the `EVENTS_BY_TIME` index if it is in the timeline.
pub fn kept_event_write_units(event: &StoredEvent) -> Result<u64, StoreError> {
    let item = to_item(EventRecord::of(event))?;
    Ok(item_bytes(&item).div_ceil(1024) as u64 + event.in_timeline as u64)
}

/// The size DynamoDB bills an item by: its attributes' names and values (a string's or a
/// binary's bytes, a number about half its digits and a byte; the other kinds, which kept
/// events do not have, a byte).
pub fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    _ => 1,
                }
        })
        .sum()
}
