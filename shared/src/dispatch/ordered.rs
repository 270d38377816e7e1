//! Ordered deliveries: the FIFO queue of webhooks that keep their order per order. SQS hands out
//! a group's (a webhook's order's) messages one at a time, in the order they were published, and
//! none while one of them is in flight. So an ordered delivery never leaves its place: it waits
//! out a backoff, a hold or a handback under its own visibility timeout, and the group waits with
//! it, until it gets a 2xx or is parked in the FIFO dead-letter queue. Its attempt number is where
//! its age (since its first receive) falls in the retry schedule, since its message cannot be
//! rewritten to count.
use std::{collections::HashMap, sync::Arc, time::Duration};

use tokio::sync::Mutex;

use super::Dispatcher;
use crate::{
    clock,
    delivery::{Deliverer, ReceivedMessage},
    queue::{DeliveryQueue, Grouped, MAX_VISIBILITY},
    sqs_batch::{Disposition, SqsMessage},
    store::{AttemptLog, DeliverySlots, NotifyStore, WebhookStore},
};

/// The FIFO queue of ordered deliveries, its dead-letter queue, and its name (records whose
/// event source ARN ends in it came from it).
pub struct OrderedLane<Q> {
    pub queue: Q,
    pub dead_letters: Q,
    pub name: String,
}

impl OrderedLane<crate::queue::SqsQueue> {
    /// The lane at `url` (`…/<name>.fifo`), parking in `dead_letters_url`.
    pub fn at(sqs: aws_sdk_sqs::Client, url: &str, dead_letters_url: &str) -> Self {
        let name = url.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned();
        Self {
            queue: crate::queue::SqsQueue::new(sqs.clone(), url),
            dead_letters: crate::queue::SqsQueue::new(sqs, dead_letters_url),
            name,
        }
    }
}

/// The message groups of one batch: a group's messages are handled one after the other, and
/// once one of them is not done, the ones after it are handed back untried.
#[derive(Default)]
pub(super) struct Groups(HashMap<String, Arc<Mutex<bool>>>);

impl Groups {
    /// The groups of a batch's records.
    pub(super) fn of(records: &[SqsMessage]) -> Self {
        Self(records.iter().filter_map(group_of).map(|g| (g.to_owned(), Arc::default())).collect())
    }

    /// The lock of a record's group (held while it is handled, in the batch's order), or `None`
    /// for a record of no group (every record, when the batch is not the ordered lane's: its
    /// attributes are not looked up).
    pub(super) fn lock(&self, record: &SqsMessage) -> Option<Arc<Mutex<bool>>> {
        if self.0.is_empty() {
            return None;
        }
        group_of(record).and_then(|g| self.0.get(g)).cloned()
    }
}

fn group_of(record: &SqsMessage) -> Option<&str> {
    record.attributes.message_group_id.as_deref()
}

/// How long ago the record was first received, by SQS's clock.
fn age(record: &SqsMessage) -> Duration {
    let first =
        record.attributes.approximate_first_receive_timestamp.as_deref().and_then(|t| t.parse::<i64>().ok());
    Duration::from_millis(first.map_or(0, |first| (clock::now_ms() - first).max(0)) as u64)
}

impl<S, Q, D> Dispatcher<S, Q, D>
where
    S: WebhookStore + AttemptLog + NotifyStore + DeliverySlots,
    Q: DeliveryQueue,
    D: Deliverer,
{
    /// The ordered lane, if `record` came from it.
    pub(super) fn ordered_lane(&self, record: &SqsMessage) -> Option<&OrderedLane<Q>> {
        let lane = self.ordered.as_ref()?;
        (group_of(record).is_some() && super::holds::came_from(record, &lane.name)).then_some(lane)
    }

    /// The attempt an ordered record is at.
    pub(super) fn ordered_attempt(&self, record: &SqsMessage) -> u32 {
        self.schedule.attempt_at(age(record))
    }

    /// A delivery of a FIFO lane (ordered, grouped) kept in its place in `queue` for `wait`, its
    /// group waiting with it.
    pub(super) async fn hold(&self, queue: &Q, record: &SqsMessage, wait: Duration) -> Disposition {
        if let Some(receipt) = record.receipt_handle.as_deref() {
            let allowed = MAX_VISIBILITY.saturating_sub(Duration::from_secs(60));
            if let Err(e) = queue.delay(receipt, wait.min(allowed)).await {
                tracing::warn!(error = %crate::error::chain(&e), "cannot hold the delivery in place: it comes back after its visibility timeout");
            }
        }
        Disposition::Retry
    }

    /// After an ordered delivery's failed attempt: held for the schedule's delay (or the
    /// receiver's `Retry-After`, if longer, up to its cap; no jitter: the order's other
    /// deliveries wait behind it, not beside it), or after the last attempt parked,
    /// exactly as received, in the FIFO dead-letter queue, which lets its group go on.
    pub(super) async fn retry_in_place(
        &self,
        lane: &OrderedLane<Q>,
        record: &SqsMessage,
        message: &ReceivedMessage<'_>,
        retry_after: Option<Duration>,
    ) -> Disposition {
        let Some(wait) = self.schedule.delay_after(message.attempt, retry_after, 1.0) else {
            let parked = Grouped {
                body: record.body.clone().unwrap_or_default(),
                group: group_of(record).unwrap_or_default().to_owned(),
                dedup: record.message_id.clone().unwrap_or_default(),
            };
            return match lane.dead_letters.send_grouped(vec![parked]).await {
                Ok(()) => {
                    tracing::warn!("last attempt failed: parked in the ordered dead-letter queue; the order's next delivery goes on");
                    Disposition::Done
                }
                Err(e) => {
                    tracing::error!(error = %crate::error::chain(&e), "cannot park the ordered delivery: it comes back");
                    Disposition::Retry
                }
            };
        };
        tracing::info!(
            next_attempt = message.attempt + 1,
            next_in_ms = wait.as_millis() as u64,
            "will retry in place"
        );
        self.hold(&lane.queue, record, wait).await
    }
}
