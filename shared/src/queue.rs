//! The deliveries queue: the port publish and dispatch use, and its SQS adapter.
use std::{future::Future, time::Duration};

use aws_sdk_sqs::{types::SendMessageBatchRequestEntry, Client};

use crate::store::BoxError;

/// A queue failure.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{0} message(s) could not be enqueued")]
    NotEnqueued(usize),
    #[error("queue backend failed")]
    Backend(#[source] BoxError),
}

/// Where deliveries wait, and where failed ones wait out their backoff.
pub trait DeliveryQueue: Send + Sync {
    /// Enqueues every body, or fails; entries the queue refuses are retried first.
    fn send_all(&self, bodies: Vec<String>) -> impl Future<Output = Result<(), QueueError>> + Send;

    /// Delays a received message's next receive by `delay` (its visibility timeout): the wait
    /// before its next attempt.
    fn delay(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> impl Future<Output = Result<(), QueueError>> + Send;
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

impl DeliveryQueue for SqsQueue {
    async fn send_all(&self, bodies: Vec<String>) -> Result<(), QueueError> {
        for chunk in bodies.chunks(10) {
            let mut pending: Vec<(String, &String)> =
                chunk.iter().enumerate().map(|(i, b)| (i.to_string(), b)).collect();
            for round in 0..SEND_ROUNDS {
                if round > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << round)).await;
                }
                let entries = pending
                    .iter()
                    .map(|(id, body)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(id)
                            .message_body(*body)
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

    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(|e| QueueError::Backend(Box::new(e)))?;
        Ok(())
    }
}
