//! The dead-letter queue: what is parked there, putting it back, emptying it.
//!
//! Replaying everything uses SQS's message-move task where the service has it (AWS: SQS moves the
//! messages itself, and an interrupted command leaves the task running); otherwise, and for a
//! filtered or bounded replay, a receive / send / delete loop, in that order: an interrupted
//! replay may deliver a message twice (receivers deduplicate by `webhook-id`), never lose one.
use std::{
    collections::HashMap,
    io::{self, Write},
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use aws_sdk_sqs::{
    types::{Message, MessageSystemAttributeName},
    Client,
};
use shared::{
    delivery::DeliveryMessage,
    emails::EmailMessage,
    store::{AttemptLog, DynamoStore},
};

/// A dead-letter queue and the queue its messages go back to, from the flags or the
/// environment: the deliveries', or (`--emails`) the emails'.
pub struct Queues {
    pub sqs: Client,
    /// Where replayed messages go.
    pub deliveries: String,
    pub dead_letters: String,
    /// The emails' queues: their messages are emails, not deliveries.
    pub emails: bool,
    /// The ordered deliveries' FIFO queues: a replayed message goes back in its group.
    pub ordered: bool,
}

/// Which parked deliveries a command acts on.
#[derive(Default)]
pub struct Filter {
    pub webhook: Option<u64>,
    pub vendor: Option<String>,
}

impl Filter {
    fn matches(&self, m: &DeliveryMessage) -> bool {
        self.webhook.is_none_or(|w| w == m.webhook_id)
            && self.vendor.as_deref().is_none_or(|v| v == m.vendor_id)
    }

    /// A failure email matches its webhook; an order email goes with its vendor, not with any
    /// one webhook.
    fn matches_email(&self, m: &EmailMessage) -> bool {
        let webhook = match m {
            EmailMessage::Alert(a) => self.webhook.is_none_or(|w| w == a.webhook_id),
            EmailMessage::Order(_) => self.webhook.is_none(),
        };
        webhook && self.vendor.as_deref().is_none_or(|v| v == m.vendor_id())
    }

    fn matches_message(&self, m: &Message) -> bool {
        match decode(m) {
            Some(d) => self.matches(&d),
            None => decode_email(m).is_some_and(|e| self.matches_email(&e)),
        }
    }
}

/// How long a message read by these commands stays hidden from other readers (and, after an
/// interrupted replay, how long until the messages it held can be replayed again).
const HOLD: i32 = 30;

impl Queues {
    /// Receives up to ten parked messages, hidden for [`HOLD`] seconds.
    async fn receive(&self) -> Result<Vec<Message>> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.dead_letters)
            .max_number_of_messages(10)
            .visibility_timeout(HOLD)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| anyhow!(shared::error::chain(&e)))
            .context("reading the dead-letter queue")?;
        Ok(out.messages.unwrap_or_default())
    }

    /// Makes messages this command held but did not take visible again at once.
    async fn release(&self, held: &[Message]) {
        for m in held {
            if let Some(receipt) = m.receipt_handle() {
                let _ = self
                    .sqs
                    .change_message_visibility()
                    .queue_url(&self.dead_letters)
                    .receipt_handle(receipt)
                    .visibility_timeout(0)
                    .send()
                    .await;
            }
        }
    }

    /// Reads every parked message once (until the queue has nothing more to show), then releases them.
    async fn read_all(&self, max: usize) -> Result<Vec<Message>> {
        let mut all: Vec<Message> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while all.len() < max {
            let batch = self.receive().await?;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                if seen.insert(m.message_id().unwrap_or_default().to_owned()) {
                    all.push(m);
                }
            }
        }
        Ok(all)
    }

    /// Prints a table of the parked deliveries.
    pub async fn list(&self, store: &DynamoStore, filter: &Filter, max: usize) -> Result<()> {
        let messages = self.read_all(max).await?;
        println!(
            "{:<28} {:>17} {:<26} {:<18} {:>8}  {:<24} {:>8}",
            "EVENT", "WEBHOOK", "VENDOR", "TYPE", "ATTEMPTS", "LAST ERROR", "AGE"
        );
        let now = shared::clock::now_ms();
        let age_of = |m: &Message| {
            let sent: i64 = attribute(m, MessageSystemAttributeName::SentTimestamp)
                .and_then(|s| s.parse().ok())
                .unwrap_or(now);
            age(Duration::from_millis((now - sent).max(0) as u64))
        };
        let mut shown = 0;
        for m in &messages {
            if let Some(d) = decode(m) {
                if !filter.matches(&d) {
                    continue;
                }
                let attempts = store.list_attempts(d.webhook_id, 100).await.unwrap_or_default();
                let ours: Vec<_> = attempts.iter().filter(|a| a.event_id == d.event_id).collect();
                let last = ours
                    .first()
                    .map(|a| a.status.map_or(a.outcome.clone(), |s| format!("{} {s}", a.outcome)))
                    .unwrap_or_else(|| "-".into());
                let row = [&d.event_id, &d.webhook_id.to_string(), &d.vendor_id, d.event_type.as_str()];
                print_row(row, &ours.len().to_string(), &last, &age_of(m));
            } else if let Some(e) = decode_email(m) {
                if !filter.matches_email(&e) {
                    continue;
                }
                let (event, what, kind) = match &e {
                    EmailMessage::Order(o) => {
                        (o.event_id.clone(), "(order email)".to_owned(), o.event_type.as_str())
                    }
                    EmailMessage::Alert(a) => {
                        ("-".to_owned(), format!("{} (email)", a.webhook_id), a.alert.as_str())
                    }
                };
                let receives = attribute(m, MessageSystemAttributeName::ApproximateReceiveCount)
                    .unwrap_or_else(|| "-".into());
                print_row(
                    [&event, &what, e.vendor_id(), kind],
                    &receives,
                    "the mail service failed",
                    &age_of(m),
                );
            } else {
                println!(
                    "{:<28} (not a delivery message: {} bytes)",
                    m.message_id().unwrap_or("?"),
                    m.body().map_or(0, str::len)
                );
                continue;
            }
            shown += 1;
        }
        self.release(&messages).await;
        let what = if self.emails { "emails" } else { "deliveries" };
        eprintln!("{shown} parked {what} shown ({} read)", messages.len());
        Ok(())
    }

    /// Moves every parked message back, unchanged, with a message-move task, waiting for it and
    /// showing its progress (for emails: a delivery must be rewritten to start over).
    /// `Ok(None)` when the service has no such tasks (the local emulator).
    pub async fn move_all(&self) -> Result<Option<usize>> {
        let (source, destination) = (self.arn(&self.dead_letters).await?, self.arn(&self.deliveries).await?);
        let started =
            self.sqs.start_message_move_task().source_arn(&source).destination_arn(&destination).send().await;
        if let Err(e) = started {
            let why = shared::error::chain(&e);
            eprintln!("no message-move task here ({why}): moving message by message");
            return Ok(None);
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let tasks = self
                .sqs
                .list_message_move_tasks()
                .source_arn(&source)
                .max_results(1)
                .send()
                .await
                .map_err(|e| anyhow!(shared::error::chain(&e)))
                .context("reading the message-move task")?;
            let Some(task) = tasks.results().first() else { continue };
            let moved = task.approximate_number_of_messages_moved() as usize;
            eprint!("\rreplayed {moved} of {}", task.approximate_number_of_messages_to_move().unwrap_or(0));
            let _ = io::stderr().flush();
            match task.status() {
                Some("COMPLETED") => {
                    eprintln!();
                    return Ok(Some(moved));
                }
                Some("FAILED") | Some("CANCELLED") => {
                    bail!(
                        "the message-move task ended {:?}: {}",
                        task.status(),
                        task.failure_reason().unwrap_or("no reason given")
                    )
                }
                _ => {}
            }
        }
    }

    async fn arn(&self, url: &str) -> Result<String> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| anyhow!(shared::error::chain(&e)))
            .with_context(|| format!("reading the ARN of {url}"))?;
        out.attributes()
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .cloned()
            .with_context(|| format!("{url} has no ARN"))
    }

    /// Sends matching parked deliveries back to the deliveries queue, as new messages (a fresh
    /// attempt count), and deletes them from the dead-letter queue once sent.
    pub async fn replay(&self, filter: &Filter, max: usize) -> Result<usize> {
        let mut replayed = 0;
        let mut skipped: HashMap<String, Message> = HashMap::new();
        while replayed < max {
            let batch = self.receive().await?;
            let fresh: Vec<Message> = batch
                .into_iter()
                .filter(|m| !skipped.contains_key(m.message_id().unwrap_or_default()))
                .collect();
            if fresh.is_empty() {
                break;
            }
            for m in fresh {
                let matches = filter.matches_message(&m);
                if !matches || replayed >= max {
                    skipped.insert(m.message_id().unwrap_or_default().to_owned(), m);
                    continue;
                }
                let body = m.body().context("a parked message without a body")?;
                // A delivery starts over at its first attempt, due at once.
                let body = match decode(&m).filter(|_| !self.emails) {
                    Some(d) => DeliveryMessage { attempt: 1, not_before_ms: None, ..d }.to_body(),
                    None => body.to_owned(),
                };
                // An ordered delivery goes back in its order's group, after what that order got
                // since, with a deduplication id of its own (a replay is sent again on purpose).
                let group = m.attributes().and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId));
                let dedup = self.ordered.then(shared::ids::event_id);
                self.sqs
                    .send_message()
                    .queue_url(&self.deliveries)
                    .message_body(body)
                    .set_message_group_id(group.filter(|_| self.ordered).cloned())
                    .set_message_deduplication_id(dedup)
                    .send()
                    .await
                    .map_err(|e| anyhow!(shared::error::chain(&e)))
                    .context("sending back to its queue")?;
                self.sqs
                    .delete_message()
                    .queue_url(&self.dead_letters)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .map_err(|e| anyhow!(shared::error::chain(&e)))
                    .context("deleting from the dead-letter queue")?;
                replayed += 1;
                eprint!("\rreplayed {replayed}");
                let _ = io::stderr().flush();
            }
        }
        let skipped: Vec<Message> = skipped.into_values().collect();
        self.release(&skipped).await;
        eprintln!("\rreplayed {replayed}, left {} that did not match", skipped.len());
        Ok(replayed)
    }

    /// Deletes every parked message, after the operator typed the queue's name (or `--yes`).
    pub async fn purge(&self, yes: bool) -> Result<()> {
        let name = self.dead_letters.rsplit('/').next().unwrap_or_default().to_owned();
        if !yes {
            let what = if self.emails { "email" } else { "delivery" };
            eprint!("This deletes every {what} in {name} for good. Type the queue's name to go on: ");
            io::stderr().flush()?;
            let mut typed = String::new();
            io::stdin().read_line(&mut typed)?;
            if typed.trim() != name {
                bail!("not purged");
            }
        }
        self.sqs
            .purge_queue()
            .queue_url(&self.dead_letters)
            .send()
            .await
            .map_err(|e| anyhow!(shared::error::chain(&e)))
            .context("purging")?;
        eprintln!("purged {name}");
        Ok(())
    }
}

fn decode(m: &Message) -> Option<DeliveryMessage> {
    serde_json::from_str(m.body()?).ok()
}

fn decode_email(m: &Message) -> Option<EmailMessage> {
    serde_json::from_str(m.body()?).ok()
}

/// One row of the listing: event, webhook, vendor, type; attempts, last error, age.
fn print_row([event, webhook, vendor, kind]: [&str; 4], attempts: &str, last: &str, age: &str) {
    println!(
        "{:<28} {:>17} {:<26} {:<18} {:>8}  {:<24} {:>8}",
        truncate(event, 28),
        truncate(webhook, 17),
        truncate(vendor, 26),
        kind,
        attempts,
        truncate(last, 24),
        age,
    );
}

fn attribute(m: &Message, name: MessageSystemAttributeName) -> Option<String> {
    m.attributes()?.get(&name).cloned()
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
