//! The grouped lane: a FIFO queue whose message group is the webhook. SQS hands out none of a
//! group's messages while a batch of them is in flight, and a batch holds at most
//! [`GROUP_BATCH`], so a webhook's deliveries in this lane are never more than that in flight
//! per group: the cap on deliveries in flight is kept by SQS, with no write to count them.
//! A healthy webhook whose cap is ten or more has its deliveries here, over `cap / 10` groups;
//! a failing one's go to the slow lane, and a webhook with a smaller cap (or none) keeps the
//! deliveries queue, its cap counted in DynamoDB (`store::DeliverySlots`).
use crate::{delivery::DeliveryMessage, digest, domain::Webhook, queue::Grouped};

/// The most messages of one group in flight at once: the grouped lane's batch size (its event
/// source's `BatchSize` in template.yaml, and the local bridge's).
pub const GROUP_BATCH: u32 = 10;

/// How many groups a webhook's deliveries spread over in the grouped lane, given its cap on
/// deliveries in flight (`0`: none, a cap under [`GROUP_BATCH`] or no cap; those stay out).
pub fn groups(cap: u32) -> u32 {
    cap / GROUP_BATCH
}

/// The cap a webhook's deliveries are held to: its own, or the stack's (`default`).
pub fn cap(webhook: &Webhook, default: u32) -> u32 {
    webhook.max_in_flight.unwrap_or(default)
}

/// The cap of `webhook` if a delivery to it belongs in the grouped lane now: the webhook is
/// healthy (a failing one's deliveries belong in the slow lane) and its cap is kept by its groups.
pub fn kept_cap(webhook: &Webhook, default_cap: u32) -> Option<u32> {
    let cap = cap(webhook, default_cap);
    (!webhook.failing() && groups(cap) > 0).then_some(cap)
}

/// The message group of a delivery of `event_id` to a webhook whose deliveries spread over
/// `groups` groups: the same event always falls in the same one.
pub fn group(webhook_id: u64, event_id: &str, groups: u32) -> String {
    if groups <= 1 {
        return format!("{webhook_id}");
    }
    let hash = digest::sha256_hex(event_id);
    let shard = u32::from_str_radix(&hash[..8], 16).unwrap_or(0) % groups;
    format!("{webhook_id}-{shard}")
}

/// A delivery as the grouped lane takes it, in its webhook's group, with a deduplication id
/// (`dedup`): SQS drops a message whose id it saw in its group in the last five minutes.
pub fn message<P: serde::Serialize>(message: &DeliveryMessage<P>, cap: u32, dedup: String) -> Grouped {
    Grouped {
        body: message.to_body(),
        group: group(message.webhook_id, &message.event_id, groups(cap)),
        dedup,
    }
}

/// The deduplication id of a delivery as published: a publisher's retry of the same event
/// within five minutes is then a no-op.
pub fn published_dedup(webhook_id: u64, event_id: &str) -> String {
    digest::sha256_hex(format!("{webhook_id}\n{event_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_of_ten_or_more_is_kept_by_groups_of_ten() {
        assert_eq!(groups(0), 0, "no cap: nothing to keep");
        assert_eq!(groups(9), 0, "a cap under a batch stays with the counted slots");
        assert_eq!(groups(10), 1);
        assert_eq!(groups(29), 2, "never more than the cap in flight: 2 groups of 10");
        assert_eq!(groups(30), 3);
    }

    #[test]
    fn an_event_falls_in_one_group_of_its_webhook() {
        assert_eq!(group(7, "evt_a", 1), "7");
        let spread: std::collections::HashSet<String> =
            (0..200).map(|i| group(7, &format!("evt_{i}"), 3)).collect();
        assert_eq!(spread, ["7-0", "7-1", "7-2"].map(String::from).into_iter().collect());
        assert_eq!(group(7, "evt_a", 3), group(7, "evt_a", 3));
        assert!(group(u64::MAX, "evt_a", 1000).len() <= 128, "SQS takes 128 characters at most");
    }
}
