//! The partial-batch runner every SQS consumer uses, as in the Lambda runtime's
//! `advanced-sqs-partial-batch-failures` example: each message decoded as the consumer's message
//! type, the messages handled concurrently, and only the failures reported back, by id, so that
//! SQS retries them alone.
use std::future::Future;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use serde::Deserialize;
use tracing::Instrument;

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Handled (or let go on purpose): delete it.
    Done,
    /// Not done: leave it for its next receive (or SQS's redrive to the dead-letter queue).
    Retry,
}

/// A batch that cannot be answered message by message: SQS retries the whole of it.
#[derive(Debug, thiserror::Error)]
#[error("a message of the batch has no id: the whole batch is retried")]
pub struct MessageWithoutId;

/// Runs `handle` on every message of the batch that decodes as a `T`, concurrently, each in a
/// span with its message id; a message without a body, or one that does not decode, is left for
/// the dead-letter queue with its body intact. A message without an id fails the whole batch,
/// since no failure may be reported with an empty id.
pub async fn run_batch<'a, T, F, Fut>(
    event: &'a SqsEvent,
    handle: F,
) -> Result<SqsBatchResponse, MessageWithoutId>
where
    T: Deserialize<'a>,
    F: Fn(&'a SqsMessage, T) -> Fut,
    Fut: Future<Output = Disposition>,
{
    Ok(Decoded::of(event)?.run(handle).await)
}

/// A batch's messages decoded, before any is handled: a consumer that needs to know the whole
/// batch first (dispatch counts its deliveries per webhook) looks at them, then runs them.
pub struct Decoded<'a, T> {
    /// Each record, its id, and its message if it decoded.
    records: Vec<(&'a SqsMessage, &'a str, Option<T>)>,
}

impl<'a, T: Deserialize<'a>> Decoded<'a, T> {
    /// Decodes every message of `event`; a message without an id fails the whole batch.
    pub fn of(event: &'a SqsEvent) -> Result<Self, MessageWithoutId> {
        let mut records = Vec::with_capacity(event.records.len());
        for record in &event.records {
            let Some(id) = record.message_id.as_deref().filter(|id| !id.is_empty()) else {
                tracing::error!("SQS message without an id");
                return Err(MessageWithoutId);
            };
            let message = tracing::info_span!("message", message_id = %id).in_scope(|| {
                let Some(body) = record.body.as_deref() else {
                    tracing::error!("message without a body: left for the dead-letter queue");
                    return None;
                };
                serde_json::from_str::<T>(body)
                    .map_err(|e| tracing::error!(error = %e, "undecodable message: left for the dead-letter queue"))
                    .ok()
            });
            records.push((record, id, message));
        }
        Ok(Self { records })
    }

    /// The messages that decoded.
    pub fn messages(&self) -> impl Iterator<Item = &T> {
        self.records.iter().filter_map(|(_, _, m)| m.as_ref())
    }

    /// Runs `handle` on every decoded message, concurrently, each in a span with its message
    /// id; the answer lists the messages to retry, those that did not decode among them.
    pub async fn run<F, Fut>(self, handle: F) -> SqsBatchResponse
    where
        F: Fn(&'a SqsMessage, T) -> Fut,
        Fut: Future<Output = Disposition>,
    {
        let handle = &handle;
        let ids: Vec<&str> = self.records.iter().map(|(_, id, _)| *id).collect();
        let dispositions =
            futures_util::future::join_all(self.records.into_iter().map(|(record, id, message)| {
                async move {
                    match message {
                        Some(message) => handle(record, message).await,
                        None => Disposition::Retry,
                    }
                }
                .instrument(tracing::info_span!("message", message_id = %id))
            }))
            .await;
        let mut response = SqsBatchResponse::default();
        for (id, d) in ids.into_iter().zip(dispositions) {
            if d == Disposition::Retry {
                response.add_failure(id);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: Option<&str>, body: Option<&str>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = id.map(str::to_owned);
        m.body = body.map(str::to_owned);
        m
    }

    #[derive(serde::Deserialize)]
    struct Job {
        n: u32,
    }

    #[tokio::test]
    async fn only_failures_are_reported_and_undecodable_messages_are_failures() {
        let mut event = SqsEvent::default();
        event.records = vec![
            message(Some("a"), Some(r#"{"n": 1}"#)),
            message(Some("b"), Some(r#"{"n": 2}"#)),
            message(Some("c"), Some("not json")),
            message(Some("d"), None),
        ];
        let answer = run_batch(&event, |_, job: Job| async move {
            if job.n == 2 {
                Disposition::Retry
            } else {
                Disposition::Done
            }
        })
        .await
        .unwrap();
        let failed: Vec<&str> =
            answer.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
        assert_eq!(failed, ["b", "c", "d"]);
    }

    #[tokio::test]
    async fn a_message_without_an_id_fails_the_whole_batch() {
        let mut event = SqsEvent::default();
        event.records = vec![message(Some("a"), Some(r#"{"n": 1}"#)), message(Some(""), Some(r#"{"n": 1}"#))];
        let r = run_batch(&event, |_, _: Job| async { Disposition::Done }).await;
        assert!(r.is_err());
    }
}
