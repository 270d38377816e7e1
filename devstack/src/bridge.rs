//! The local stand-in for the Lambda SQS event source mapping: long-polls the deliveries queue,
//! invokes `dispatch` under `cargo lambda watch` with a real SQS event, deletes what succeeded
//! and leaves the batch item failures (and, if the invocation fails, the whole batch) to
//! reappear after their visibility timeout, as the event source mapping does.
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::{
    types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName},
    Client,
};

/// Where the bridge reads and whom it invokes.
pub struct Bridge {
    pub sqs: Client,
    pub queue_url: String,
    pub queue_arn: String,
    pub region: String,
    /// `http://127.0.0.1:9000/2015-03-31/functions/dispatch/invocations`
    pub invoke_url: String,
    pub batch_size: i32,
}

impl Bridge {
    /// A bridge from `queue_url` to the function at `invoke_url`, ten messages a batch, as the
    /// template's event source mappings; its records carry the queue's ARN, as Lambda's do (dispatch
    /// tells its slow lane by it).
    pub async fn for_queue(sqs: Client, queue_url: String, invoke_url: String) -> Result<Self> {
        let arn_name = QueueAttributeName::QueueArn;
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(arn_name.clone())
            .send()
            .await
            .map_err(|e| anyhow!(shared::error::chain(&e)))
            .context("reading the queue's ARN")?
            .attributes()
            .and_then(|a| a.get(&arn_name))
            .cloned()
            .unwrap_or_default();
        let region = sqs.config().region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        Ok(Self { sqs, queue_url, queue_arn, region, invoke_url, batch_size: 10 })
    }

    /// Polls forever.
    pub async fn run(&self) -> Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
        loop {
            if let Err(e) = self.once(&http).await {
                eprintln!("bridge: {e:#}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Receives one batch (waiting up to a second) and hands it to dispatch.
    pub async fn once(&self, http: &reqwest::Client) -> Result<usize> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| anyhow!(shared::error::chain(&e)))
            .context("receiving")?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let started = std::time::Instant::now();
        let mut event = SqsEvent::default();
        event.records = messages.iter().map(|m| self.record(m)).collect();
        let response = http.post(&self.invoke_url).json(&event).send().await.context("invoking dispatch")?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let failures: Vec<String> = match serde_json::from_str::<SqsBatchResponse>(&text) {
            Ok(r) if status.is_success() => {
                r.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
            }
            _ => {
                eprintln!("bridge: dispatch failed ({status}): {text}; the batch comes back after its visibility timeout");
                return Ok(messages.len());
            }
        };
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| !failures.iter().any(|f| Some(f.as_str()) == m.message_id()))
            .collect();
        if !done.is_empty() {
            let entries = done
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?;
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| anyhow!(shared::error::chain(&e)))
                .context("deleting")?;
        }
        println!(
            "bridge: {} batch of {}: {} done, {} to retry, in {} ms",
            shared::clock::rfc3339_ms(shared::clock::now_ms()),
            messages.len(),
            done.len(),
            failures.len(),
            started.elapsed().as_millis()
        );
        Ok(messages.len())
    }

    fn record(&self, m: &Message) -> SqsMessage {
        let mut r = SqsMessage::default();
        r.message_id = m.message_id.clone();
        r.receipt_handle = m.receipt_handle.clone();
        r.body = m.body.clone();
        r.md5_of_body = m.md5_of_body.clone();
        r.attributes = m
            .attributes()
            .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
            .unwrap_or_default();
        r.event_source = Some("aws:sqs".into());
        r.event_source_arn = Some(self.queue_arn.clone());
        r.aws_region = Some(self.region.clone());
        r
    }
}
