//! The partial-batch runner every SQS consumer uses, as in the Lambda runtime's
//! `advanced-sqs-partial-batch-failures` example: each message decoded as the consumer's message
//! type, the messages handled concurrently, and only the failures reported back, by id, so that
//! SQS retries them alone.
use std::future::Future;

use aws_lambda_events::sqs::SqsBatchResponse;
use serde::{Deserialize, Deserializer, Serialize};
use tracing::Instrument;

/// An SQS batch as Lambda's event source mapping hands it to a function, with only the fields
/// a consumer reads. Lambda's records carry a dozen more (the body's digest, the region, every
/// attribute SQS keeps); decoded into `aws_lambda_events`' records, which keep them all, the
/// event cost more CPU per delivery than the dispatch handler's own work (docs/performance.md).
/// Fields this type does not name are skipped unread.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records")]
    pub records: Vec<SqsMessage>,
}

/// One record of an [`SqsEvent`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SqsMessage {
    pub message_id: Option<String>,
    pub receipt_handle: Option<String>,
    pub body: Option<String>,
    #[serde(rename = "eventSourceARN")]
    pub event_source_arn: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: SqsAttributes,
}

/// The attributes of a record that a consumer reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SqsAttributes {
    /// A FIFO queue's message group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_group_id: Option<String>,
    /// When SQS first handed the message out (Unix milliseconds, in decimal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_first_receive_timestamp: Option<String>,
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

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
    let handle = &handle;
    let answer = Decoded::of(event)?
        .run(|record, message| {
            let id = record.message_id.as_deref().unwrap_or_default();
            handle(record, message).instrument(tracing::info_span!("message", message_id = %id))
        })
        .await;
    Ok(answer)
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
            // The message id is a field of the line that says why, not a span opened for every
            // message: the JSON subscriber formats a span's fields when it opens.
            let message = match record.body.as_deref() {
                None => {
                    tracing::error!(message_id = %id, "message without a body: left for the dead-letter queue");
                    None
                }
                Some(body) => serde_json::from_str::<T>(body)
                    .map_err(|e| {
                        tracing::error!(message_id = %id, error = %e, "undecodable message: left for the dead-letter queue")
                    })
                    .ok(),
            };
            records.push((record, id, message));
        }
        Ok(Self { records })
    }

    /// The messages that decoded.
    pub fn messages(&self) -> impl Iterator<Item = &T> {
        self.records.iter().filter_map(|(_, _, m)| m.as_ref())
    }

    /// Runs `handle` on every decoded message, concurrently (in a span of `handle`'s own, if it
    /// opens one); the answer lists the messages to retry, those that did not decode among them.
    pub async fn run<F, Fut>(self, handle: F) -> SqsBatchResponse
    where
        F: Fn(&'a SqsMessage, T) -> Fut,
        Fut: Future<Output = Disposition>,
    {
        let handle = &handle;
        let ids: Vec<&str> = self.records.iter().map(|(_, id, _)| *id).collect();
        let dispositions =
            futures_util::future::join_all(self.records.into_iter().map(|(record, _, message)| async move {
                match message {
                    Some(message) => handle(record, message).await,
                    None => Disposition::Retry,
                }
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
        SqsMessage {
            message_id: id.map(str::to_owned),
            body: body.map(str::to_owned),
            ..SqsMessage::default()
        }
    }

    #[derive(serde::Deserialize)]
    struct Job {
        n: u32,
    }

    #[tokio::test]
    async fn only_failures_are_reported_and_undecodable_messages_are_failures() {
        let event = SqsEvent {
            records: vec![
                message(Some("a"), Some(r#"{"n": 1}"#)),
                message(Some("b"), Some(r#"{"n": 2}"#)),
                message(Some("c"), Some("not json")),
                message(Some("d"), None),
            ],
        };
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

    #[test]
    fn lambdas_records_decode_with_what_consumers_read_and_nothing_else() {
        // A FIFO queue's record as Lambda's event source mapping sends it (AWS's documented
        // example), and a record whose optional parts are null or missing.
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {
                "messageId": "11d6ee51-4cc7-4302-9e22-7cd8afdaadf5",
                "receiptHandle": "AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw...",
                "body": "{\"v\":1}",
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1573251510774",
                    "SequenceNumber": "18849496460467696128",
                    "MessageGroupId": "1",
                    "SenderId": "AIDAIO23YVJENQZJOL4VO",
                    "MessageDeduplicationId": "1",
                    "ApproximateFirstReceiveTimestamp": "1573251510774"
                },
                "messageAttributes": {"tracing": {"stringValue": "x", "dataType": "String"}},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:fifo.fifo",
                "awsRegion": "us-east-2"
            },
            {"messageId": "b", "body": null, "attributes": null}
        ]}))
        .unwrap();
        let fifo = &event.records[0];
        assert_eq!(fifo.message_id.as_deref(), Some("11d6ee51-4cc7-4302-9e22-7cd8afdaadf5"));
        assert_eq!(fifo.receipt_handle.as_deref(), Some("AQEBBX8nesZEXmkhsmZeyIE8iQAMig7qw..."));
        assert_eq!(fifo.body.as_deref(), Some(r#"{"v":1}"#));
        assert_eq!(fifo.event_source_arn.as_deref(), Some("arn:aws:sqs:us-east-2:123456789012:fifo.fifo"));
        assert_eq!(fifo.attributes.message_group_id.as_deref(), Some("1"));
        assert_eq!(fifo.attributes.approximate_first_receive_timestamp.as_deref(), Some("1573251510774"));
        let bare = &event.records[1];
        assert_eq!((bare.message_id.as_deref(), &bare.body), (Some("b"), &None));
        assert_eq!(bare.attributes, SqsAttributes::default());
    }

    #[tokio::test]
    async fn a_message_without_an_id_fails_the_whole_batch() {
        let event = SqsEvent {
            records: vec![message(Some("a"), Some(r#"{"n": 1}"#)), message(Some(""), Some(r#"{"n": 1}"#))],
        };
        let r = run_batch(&event, |_, _: Job| async { Disposition::Done }).await;
        assert!(r.is_err());
    }
}
