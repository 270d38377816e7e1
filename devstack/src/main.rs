//! `devstack`: bootstraps the local AWS emulator for `make dev` and `make test`.
use std::{fs, path::PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use shared::{
    auth,
    clock::now,
    domain::Vendor,
    store::{Conflict, DynamoStore, StoreError, VendorStore},
};

#[derive(Parser)]
#[command(name = "devstack", about = "Local stack tooling (never deployed)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Creates the table of template.yaml in the emulator, and a demo vendor.
    Bootstrap {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        #[arg(long, env = "TABLE_NAME")]
        table: String,
        /// Username of the demo vendor to create (none if empty).
        #[arg(long, default_value = "demo")]
        demo_username: String,
        #[arg(long, default_value = "demo-password")]
        demo_password: String,
        /// Local queue names start with this.
        #[arg(long, default_value = "webhooks")]
        queue_prefix: String,
        /// Overrides the queues' visibility timeout (tests compress time).
        #[arg(long)]
        visibility_timeout: Option<i64>,
        /// Writes DELIVERIES_QUEUE_URL and the others here, as KEY=VALUE lines.
        #[arg(long)]
        env_out: Option<PathBuf>,
        /// Makes a throwaway CA and a localhost certificate here (ca.pem, cert.pem, key.pem).
        #[arg(long)]
        tls_dir: Option<PathBuf>,
        /// Makes this address an SES identity (the template's NotificationSender), so that the
        /// emulator lets dispatch send vendors' emails from it.
        #[arg(long, env = "EMAIL_SENDER")]
        email_sender: Option<String>,
    },
    /// Feeds a queue (the deliveries queue by default) to its function (`dispatch` by default)
    /// under `cargo lambda watch`, as Lambda's event source mapping would.
    Bridge {
        #[arg(long, env = "DELIVERIES_QUEUE_URL")]
        queue_url: String,
        /// The `cargo lambda watch` address.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        watch_url: String,
        #[arg(long, default_value = "dispatch")]
        function: String,
        #[arg(long, default_value_t = 10)]
        batch_size: i32,
        /// Pollers, each invoking the function with its own batches, as the event source
        /// mapping runs several.
        #[arg(long, default_value_t = 1)]
        pollers: usize,
    },
    /// Checks the DynamoDB accesses the emulator recorded (`DYNAMO_ACCESS_LOG`) against each
    /// function's `dynamodb:LeadingKeys` in the template; fails on any outside them.
    LeadingKeys {
        #[arg(long, default_value = "template.yaml")]
        template: PathBuf,
        #[arg(long)]
        access_log: PathBuf,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::LeadingKeys { template, access_log } => {
            use devstack::leading_keys;
            let text =
                fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
            let grants = leading_keys::grants(&devstack::parse_template(&text)?)?;
            let log = fs::read_to_string(&access_log)
                .with_context(|| format!("reading {}", access_log.display()))?;
            let accesses: Vec<leading_keys::Access> =
                log.lines().map(serde_json::from_str).collect::<Result<_, _>>().context("the access log")?;
            let (bad, seen) = leading_keys::violations(&grants, &accesses);
            println!(
                "{} DynamoDB operations by {} functions: {}",
                accesses.len(),
                seen.len(),
                seen.into_iter().collect::<Vec<_>>().join(", ")
            );
            if !bad.is_empty() {
                anyhow::bail!("outside the template's dynamodb:LeadingKeys:\n{}", bad.join("\n"));
            }
        }
        Command::Bridge { queue_url, watch_url, function, batch_size, pollers } => {
            let aws = shared::aws::sdk_config().await;
            let invoke_url =
                format!("{}/2015-03-31/functions/{function}/invocations", watch_url.trim_end_matches('/'));
            let mut bridge =
                devstack::bridge::Bridge::for_queue(aws_sdk_sqs::Client::new(&aws), queue_url, invoke_url)
                    .await?;
            bridge.batch_size = batch_size;
            let bridge = std::sync::Arc::new(bridge);
            let mut running = tokio::task::JoinSet::new();
            for _ in 0..pollers.max(1) {
                let bridge = bridge.clone();
                running.spawn(async move { bridge.run().await });
            }
            while let Some(done) = running.join_next().await {
                done??;
            }
        }
        Command::Bootstrap {
            template,
            table,
            demo_username,
            demo_password,
            queue_prefix,
            visibility_timeout,
            env_out,
            tls_dir,
            email_sender,
        } => {
            if let Some(dir) = &tls_dir {
                devstack::ensure_local_tls(dir)?;
            }
            let text =
                fs::read_to_string(&template).with_context(|| format!("reading {}", template.display()))?;
            let parsed = devstack::parse_template(&text)?;
            let def = devstack::table_definition(&parsed)?;
            let aws = shared::aws::sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&aws);
            let created = devstack::ensure_table(&client, &table, &def).await?;
            println!("table {table}: {}", if created { "created" } else { "exists" });
            let queues = devstack::ensure_queues(
                &aws_sdk_sqs::Client::new(&aws),
                &queue_prefix,
                &devstack::queue_definitions(&parsed)?,
                visibility_timeout,
            )
            .await?;
            let mut env = String::new();
            for (logical_id, q) in &queues {
                println!("queue {logical_id}: {}", q.url);
                let key = match logical_id.as_str() {
                    "DeliveriesQueue" => "DELIVERIES_QUEUE_URL",
                    "SlowDeliveriesQueue" => "SLOW_DELIVERIES_QUEUE_URL",
                    "DeadLetterQueue" => "DEAD_LETTER_QUEUE_URL",
                    "OrderedDeliveriesQueue" => "ORDERED_DELIVERIES_QUEUE_URL",
                    "OrderedDeadLetterQueue" => "ORDERED_DEAD_LETTER_QUEUE_URL",
                    "GroupedDeliveriesQueue" => "GROUPED_DELIVERIES_QUEUE_URL",
                    "GroupedDeadLetterQueue" => "GROUPED_DEAD_LETTER_QUEUE_URL",
                    "EmailsQueue" => "EMAILS_QUEUE_URL",
                    "EmailsDeadLetterQueue" => "EMAILS_DEAD_LETTER_QUEUE_URL",
                    _ => continue,
                };
                env.push_str(&format!("{key}={}\n", q.url));
            }
            if let Some(sender) = email_sender.filter(|s| !s.trim().is_empty()) {
                let ses = aws_sdk_sesv2::Client::new(&aws);
                let exists = ses.get_email_identity().email_identity(&sender).send().await.is_ok();
                if !exists {
                    ses.create_email_identity()
                        .email_identity(&sender)
                        .send()
                        .await
                        .map_err(|e| anyhow::anyhow!(shared::error::chain(&e)))?;
                }
                println!("email identity {sender}: {}", if exists { "exists" } else { "created" });
            }
            if let Some(path) = env_out {
                fs::write(&path, env).with_context(|| format!("writing {}", path.display()))?;
            }
            if !demo_username.is_empty() {
                let store = DynamoStore::new(client, &table);
                let hash = auth::hash_password(&demo_password).map_err(|e| anyhow::anyhow!("{e}"))?;
                let vendor = Vendor {
                    vendor_id: devstack::DEMO_VENDOR_ID.into(),
                    username: auth::normalize_username(&demo_username)?,
                    created_at: now(),
                };
                match store.create_vendor(&vendor, &hash).await {
                    Ok(()) => println!("demo vendor {} created ({})", vendor.username, vendor.vendor_id),
                    Err(StoreError::Conflict(Conflict::UsernameTaken)) => {
                        println!("demo vendor {} exists", vendor.username)
                    }
                    Err(e) => return Err(anyhow::anyhow!(shared::error::chain(&e))),
                }
                let demo = store
                    .vendor_login(&vendor.username)
                    .await
                    .map_err(|e| anyhow::anyhow!(shared::error::chain(&e)))?
                    .context("the demo vendor vanished")?
                    .vendor;
                let created = devstack::ensure_demo_webhook(&store, &demo).await?;
                println!(
                    "demo webhook {}: {}",
                    devstack::DEMO_WEBHOOK_ID,
                    if created { "created" } else { "exists" }
                );
                // The README's Ventiapp examples use it.
                let created = devstack::ensure_demo_token(&store, &demo).await?;
                println!("demo API token: {}", if created { "created" } else { "exists" });
            }
        }
    }
    Ok(())
}
