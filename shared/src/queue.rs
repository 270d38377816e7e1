//! The deliveries queue: the port publish and dispatch use, and its SQS adapter.
use std::{collections::HashMap, future::Future, time::Duration};

use aws_sdk_sqs::{
    types::{MessageSystemAttributeNameForSends, MessageSystemAttributeValue, SendMessageBatchRequestEntry},
    Client,
};

use crate::store::BoxError;

/// The largest message our queues take: their `MaximumMessageSize` in template.yaml, in bytes of
/// UTF-8. Ten of them, a full batch, stay within the 6 MB a Lambda invocation may carry.
pub const MAX_MESSAGE_BYTES: usize = 262_144;

/// The most a `SendMessageBatch` may carry: its messages' bytes together, and their number.
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const MAX_BATCH_ENTRIES: usize = 10;

/// The longest `DelaySeconds` SQS takes.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// A queue failure.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0} message(s) could not be enqueued")]
    NotEnqueued(usize),
    #[error("a message of {0} bytes is over the queue's limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge(usize),
    #[error("queue backend failed")]
    Backend(#[source] BoxError),
}

/// A message for a FIFO queue: SQS hands out a group's messages one at a time, in the order they
/// were sent, and drops one whose deduplication id it saw in the last five minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouped {
    pub body: String,
    /// At most 128 characters of letters, digits and punctuation.
    pub group: String,
    /// At most 128 characters of letters, digits and punctuation.
    pub dedup: String,
}

/// Where deliveries wait, and where failed ones wait out their backoff.
pub trait DeliveryQueue: Send + Sync {
    /// Enqueues every body, or fails; entries the queue refuses are retried first.
    fn send_all(&self, bodies: Vec<String>) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Enqueues one body, received no sooner than `delay` from now (at most [`MAX_DELAY`]).
    fn send_later(
        &self,
        body: String,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Delays a received message's next receive by `delay` (its visibility timeout): the wait
    /// before its next attempt.
    fn delay(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Enqueues every message on a FIFO queue, in order, or fails. A queue that keeps no groups
    /// refuses them all.
    fn send_grouped(&self, messages: Vec<Grouped>) -> impl Future<Output = Result<(), QueueError>> + Send {
        let refused = messages.len();
        async move { Err(QueueError::NotEnqueued(refused)) }
    }
}

/// The SQS implementation.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

/// How many rounds a batch entry the queue refused is retried.
const SEND_ROUNDS: u32 = 5;

impl SqsQueue {
    /// Wraps a client and the queue URL.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }
}

/// Splits `sizes` into runs that each fit one `SendMessageBatch`: at most ten messages and
/// [`MAX_BATCH_BYTES`] together, in order. A message over [`MAX_MESSAGE_BYTES`] is refused.
pub fn batches(sizes: &[usize]) -> Result<Vec<std::ops::Range<usize>>, QueueError> {
    let mut runs = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        if size > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge(size));
        }
        if i > start && (i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES) {
            runs.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        runs.push(start..sizes.len());
    }
    Ok(runs)
}

/// The X-Ray trace header of the invocation (`_X_AMZN_TRACE_ID`, which the Lambda runtime sets for
/// each one), as a message's `AWSTraceHeader`: X-Ray then links the function that consumes the
/// message to this invocation's trace, so an event's publish, fan-out and every attempt read as
/// one path. It does not count towards the message's size.
fn trace_header() -> Option<HashMap<MessageSystemAttributeNameForSends, MessageSystemAttributeValue>> {
    let header = std::env::var("_X_AMZN_TRACE_ID").ok().filter(|h| h.starts_with("Root="))?;
    let value =
        MessageSystemAttributeValue::builder().data_type("String").string_value(header).build().ok()?;
    Some(HashMap::from([(MessageSystemAttributeNameForSends::AwsTraceHeader, value)]))
}

impl SqsQueue {
    /// Sends every body (with its group and deduplication id, on a FIFO queue) in batches,
    /// retrying what the queue refuses. On a FIFO queue a refused entry sent again lands after
    /// the entries of its group that went through: SQS refuses entries only when throttled or
    /// failing, and a deduplication id keeps a publisher's retry from doubling any.
    async fn send_bodies(
        &self,
        bodies: Vec<String>,
        groups: Option<Vec<(String, String)>>,
    ) -> Result<(), QueueError> {
        let trace = trace_header();
        let sizes: Vec<usize> = bodies.iter().map(String::len).collect();
        for run in batches(&sizes)? {
            let chunk = &bodies[run.clone()];
            let chunk_groups = groups.as_ref().map(|g| &g[run]);
            let mut pending: Vec<(String, &String)> =
                chunk.iter().enumerate().map(|(i, b)| (i.to_string(), b)).collect();
            for round in 0..SEND_ROUNDS {
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << round)).await;
                }
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        let group = chunk_groups.and_then(|g| g.get(id.parse::<usize>().ok()?));
                        SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(*body)
                            .set_message_group_id(group.map(|(g, _)| g.clone()))
                            .set_message_deduplication_id(group.map(|(_, d)| d.clone()))
                            .set_message_system_attributes(trace.clone())
                            .build()
                            .map_err(|e| QueueError::Backend(Box::new(e)))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = match self
                    .client
                    .send_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(e) if round + 1 < SEND_ROUNDS => {
                        tracing::warn!(error = %crate::error::chain(&e), "send batch failed; retrying");
                        continue;
                    }
                    Err(e) => return Err(QueueError::Backend(Box::new(e))),
                };
                let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
                for f in out.failed() {
                    tracing::warn!(
                        code = f.code(),
                        sender_fault = f.sender_fault(),
                        "queue refused an entry"
                    );
                }
                pending.retain(|(id, _)| failed.contains(&id.as_str()));
                if pending.is_empty() {
                    break;
                }
            }
            if !pending.is_empty() {
                return Err(QueueError::NotEnqueued(pending.len()));
            }
        }
        Ok(())
    }
}

impl DeliveryQueue for SqsQueue {
    async fn send_all(&self, bodies: Vec<String>) -> Result<(), QueueError> {
        self.send_bodies(bodies, None).await
    }

    async fn send_grouped(&self, messages: Vec<Grouped>) -> Result<(), QueueError> {
        let (bodies, groups) = messages.into_iter().map(|m| (m.body, (m.group, m.dedup))).unzip();
        self.send_bodies(bodies, Some(groups)).await
    }

    async fn send_later(&self, body: String, delay: Duration) -> Result<(), QueueError> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(QueueError::TooLarge(body.len()));
        }
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(whole_seconds(delay.min(MAX_DELAY)))
            .set_message_system_attributes(trace_header())
            .send()
            .await
            .map_err(|e| QueueError::Backend(Box::new(e)))?;
        Ok(())
    }

    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(whole_seconds(delay.min(MAX_VISIBILITY)))
            .send()
            .await
            .map_err(|e| QueueError::Backend(Box::new(e)))?;
        Ok(())
    }
}

/// The longest visibility timeout SQS takes (12 hours from the receive).
pub const MAX_VISIBILITY: Duration = Duration::from_secs(43_200);

/// A wait in SQS's whole seconds, rounded up: a wait is never cut short, and a wait of a
/// fraction of a second is one second, not none.
pub fn whole_seconds(d: Duration) -> i32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.min(i32::MAX as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_hold_ten_messages_or_one_mebibyte_at_most() {
        assert_eq!(batches(&[10; 25]).unwrap(), [0..10, 10..20, 20..25]);
        let big = 200 * 1024;
        assert_eq!(batches(&[big; 10]).unwrap(), [0..5, 5..10]);
        assert_eq!(batches(&[MAX_MESSAGE_BYTES; 5]).unwrap(), [0..4, 4..5]);
        assert!(batches(&[]).unwrap().is_empty());
        assert!(matches!(batches(&[1, MAX_MESSAGE_BYTES + 1]), Err(QueueError::TooLarge(_))));
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(800)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(whole_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 0);
    }
}
