//! `webhooks-admin`: what operators do that vendors cannot (vendor accounts, API tokens),
//! against AWS or the local stack.
//!
//! Settings come from the usual AWS environment and `TABLE_NAME`. When `TABLE_NAME` is not
//! set and a local stack is running (it writes `.stack/env` at the repository root), the
//! local stack's settings are used, so the CLI works there with no setup.
use std::{
    env, fs,
    io::{self, Read},
    path::PathBuf,
};

mod dlq;
mod publish;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use shared::{
    auth,
    clock::now,
    domain::Vendor,
    ids,
    notify::{self, Notifications, Topic},
    store::{ApiToken, Conflict, DynamoStore, NotifyStore, StoreError, TokenStore, VendorStore},
};

#[derive(Parser)]
#[command(name = "webhooks-admin", version, about = "Operate the webhook service")]
struct Cli {
    /// The DynamoDB table (default: $TABLE_NAME, or the running local stack's).
    #[arg(long, global = true)]
    table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Vendor accounts.
    #[command(subcommand)]
    Vendor(VendorCommand),
    /// Bearer tokens of the Ventiapp dialect.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The dead-letter queues: deliveries that never got a 2xx, and (`--emails`) vendors'
    /// emails the mail service never took.
    Dlq(DlqArgs),
    /// Publishes an event (`POST /events`), signed with SigV4 with the caller's AWS credentials,
    /// as the deployed API's IAM authorizer requires; the body from --file or stdin.
    Publish(PublishArgs),
}

#[derive(Args)]
struct PublishArgs {
    /// The API's base URL (default: $WEBHOOKS_API_URL, or the running local stack's; on AWS,
    /// the stack's ApiUrl output).
    #[arg(long)]
    api: Option<String>,
    /// The event: `{"id"?, "vendorId", "type", "payload"}` (default: stdin).
    #[arg(long)]
    file: Option<PathBuf>,
}

#[derive(Args)]
struct DlqArgs {
    /// The dead-letter queue's URL (default: $DEAD_LETTER_QUEUE_URL, or with --emails
    /// $EMAILS_DEAD_LETTER_QUEUE_URL).
    #[arg(long, global = true)]
    dlq_url: Option<String>,
    /// The queue replays go to (default: $DELIVERIES_QUEUE_URL, or with --emails
    /// $EMAILS_QUEUE_URL).
    #[arg(long, global = true)]
    queue_url: Option<String>,
    /// Acts on the emails' dead-letter queue ($EMAILS_DEAD_LETTER_QUEUE_URL), replaying to the
    /// emails queue ($EMAILS_QUEUE_URL).
    #[arg(long, global = true)]
    emails: bool,
    /// Acts on the ordered deliveries' FIFO dead-letter queue ($ORDERED_DEAD_LETTER_QUEUE_URL),
    /// replaying to the ordered deliveries queue ($ORDERED_DELIVERIES_QUEUE_URL), each delivery
    /// in its order's group.
    #[arg(long, global = true, conflicts_with = "emails")]
    ordered: bool,
    /// Acts on the grouped lane's FIFO dead-letter queue ($GROUPED_DEAD_LETTER_QUEUE_URL), where
    /// SQS parks what kept failing without an attempt, replaying to the deliveries queue
    /// ($DELIVERIES_QUEUE_URL), from where dispatch moves each delivery back to its group.
    #[arg(long, global = true, conflicts_with_all = ["emails", "ordered"])]
    grouped: bool,
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Subcommand)]
enum DlqCommand {
    /// Lists parked deliveries: event, webhook, vendor, type, attempts, last error, age.
    List {
        #[arg(long)]
        webhook: Option<u64>,
        #[arg(long)]
        vendor: Option<String>,
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
    /// Puts parked deliveries back on the deliveries queue, with a fresh attempt count.
    Replay {
        #[arg(long)]
        webhook: Option<u64>,
        #[arg(long)]
        vendor: Option<String>,
        #[arg(long, default_value_t = usize::MAX)]
        max: usize,
    },
    /// Deletes every parked delivery, after confirmation.
    Purge {
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issues a token and prints {"tokenId": …, "token": …}: the token is shown only this once.
    Create {
        /// The vendor: its id (ven_…) or username.
        #[arg(long)]
        vendor: String,
        /// A note on what the token is for.
        #[arg(long)]
        label: Option<String>,
    },
    /// Lists a vendor's tokens (ids and labels, never the tokens) as JSON lines.
    List {
        #[arg(long)]
        vendor: String,
    },
    /// Revokes a token: it stops working at once.
    Revoke {
        #[arg(long)]
        token_id: String,
    },
}

#[derive(Subcommand)]
enum VendorCommand {
    /// Creates a vendor account and prints {"vendorId": "…"}.
    Create(VendorCreate),
    /// Lists vendor accounts as JSON lines.
    List,
    /// Sets a vendor's email address and the notifications it gets; prints the settings.
    Update(VendorUpdate),
    /// Prints a vendor's account and email settings.
    Show {
        /// The vendor: its id (ven_…) or username.
        #[arg(long)]
        vendor: String,
    },
}

#[derive(Args)]
struct VendorUpdate {
    /// The vendor: its id (ven_…) or username.
    #[arg(long)]
    vendor: String,
    /// The contact address ("" removes it, and every notification with it). Setting it, even to
    /// the same address, clears a refusal by SES: the next email tries it again.
    #[arg(long)]
    email: Option<String>,
    /// Comma-separated: new_order, order_cancellation, failures ("" for none).
    #[arg(long)]
    notify: Option<String>,
}

#[derive(Args)]
struct VendorCreate {
    #[arg(long)]
    username: String,
    /// The password (visible in the process list: prefer --password-stdin).
    #[arg(long, conflicts_with = "password_stdin", required_unless_present = "password_stdin")]
    password: Option<String>,
    /// Reads the password from standard input (one line).
    #[arg(long)]
    password_stdin: bool,
    /// The vendor's contact address, for the email notifications it opts in to (--notify).
    #[arg(long)]
    email: Option<String>,
    /// Comma-separated: new_order, order_cancellation, failures (none unless given).
    #[arg(long, requires = "email")]
    notify: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    let table = match cli.table {
        Some(t) => t,
        None => match env::var("TABLE_NAME") {
            Ok(t) => t,
            Err(_) => load_local_stack_env()?,
        },
    };
    let aws = shared::aws::sdk_config().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);

    match cli.command {
        Command::Publish(args) => {
            let body = match &args.file {
                Some(path) => fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                None => {
                    let mut body = Vec::new();
                    io::stdin().read_to_end(&mut body).context("reading the event from stdin")?;
                    body
                }
            };
            let api = match args.api {
                Some(api) => api,
                None => env::var("WEBHOOKS_API_URL").context("give --api, or set WEBHOOKS_API_URL")?,
            };
            let (_, answer) = publish::publish(&aws, &api, body).await?;
            println!("{answer}");
        }
        Command::Vendor(VendorCommand::Create(args)) => {
            let password = match (args.password, args.password_stdin) {
                (Some(p), _) => p,
                (None, _) => {
                    let mut line = String::new();
                    io::stdin().read_to_string(&mut line).context("reading the password from stdin")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            // Checked before the account is made: a bad address creates nothing.
            let settings = match &args.email {
                Some(email) => Some(notification_settings(
                    &Notifications::default(),
                    Some(email),
                    args.notify.as_deref(),
                )?),
                None => None,
            };
            let vendor = create_vendor(&store, &args.username, &password).await?;
            let mut out = json!({ "vendorId": vendor.vendor_id, "username": vendor.username });
            if let Some(settings) = settings {
                store.put_notifications(&vendor.vendor_id, &settings).await.map_err(describe)?;
                out["notifications"] = notifications_json(&settings);
            }
            println!("{out}");
        }
        Command::Vendor(VendorCommand::Update(args)) => {
            let vendor = find_vendor(&store, &args.vendor).await?;
            if args.email.is_none() && args.notify.is_none() {
                bail!("nothing to change: give --email, --notify or both");
            }
            let current =
                store.get_notifications(&vendor.vendor_id).await.map_err(describe)?.unwrap_or_default();
            let settings = notification_settings(&current, args.email.as_deref(), args.notify.as_deref())?;
            store.put_notifications(&vendor.vendor_id, &settings).await.map_err(describe)?;
            println!(
                "{}",
                json!({ "vendorId": vendor.vendor_id, "notifications": notifications_json(&settings) })
            );
        }
        Command::Vendor(VendorCommand::Show { vendor }) => {
            let vendor = find_vendor(&store, &vendor).await?;
            let settings =
                store.get_notifications(&vendor.vendor_id).await.map_err(describe)?.unwrap_or_default();
            println!(
                "{}",
                json!({
                    "vendorId": vendor.vendor_id,
                    "username": vendor.username,
                    "createdAt": vendor.created_at,
                    "notifications": notifications_json(&settings),
                })
            );
        }
        Command::Token(TokenCommand::Create { vendor, label }) => {
            let vendor = find_vendor(&store, &vendor).await?;
            if label.as_ref().is_some_and(|l| l.chars().count() > 200) {
                bail!("--label must be at most 200 characters");
            }
            let token = auth::new_token();
            let record = ApiToken { token_id: token_id(), vendor, label, created_at: now() };
            store.create_token(&record, &auth::token_hash(&token)).await.map_err(describe)?;
            println!(
                "{}",
                json!({ "tokenId": record.token_id, "token": token, "vendorId": record.vendor.vendor_id })
            );
        }
        Command::Token(TokenCommand::List { vendor }) => {
            let vendor = find_vendor(&store, &vendor).await?;
            for t in store.list_tokens(&vendor.vendor_id).await.map_err(describe)? {
                println!("{}", json!({ "tokenId": t.token_id, "label": t.label, "createdAt": t.created_at }));
            }
        }
        Command::Token(TokenCommand::Revoke { token_id }) => {
            if !store.revoke_token(&token_id).await.map_err(describe)? {
                bail!("no token {token_id:?}");
            }
            println!("{}", json!({ "tokenId": token_id, "revoked": true }));
        }
        Command::Dlq(args) => run_dlq(args, &aws, &store).await?,
        Command::Vendor(VendorCommand::List) => {
            for v in store.list_vendors().await.map_err(describe)? {
                println!(
                    "{}",
                    json!({ "vendorId": v.vendor_id, "username": v.username, "createdAt": v.created_at })
                );
            }
        }
    }
    Ok(())
}

/// The `dlq` commands. A queue URL comes from its flag, or else from the variable of the queue
/// pair meant (the deliveries', or with `--emails` the emails'), which the local stack's env file
/// may have set after the flags were parsed.
async fn run_dlq(args: DlqArgs, aws: &aws_config::SdkConfig, store: &DynamoStore) -> Result<()> {
    let (dlq_var, queue_var) = if args.emails {
        ("EMAILS_DEAD_LETTER_QUEUE_URL", "EMAILS_QUEUE_URL")
    } else if args.ordered {
        ("ORDERED_DEAD_LETTER_QUEUE_URL", "ORDERED_DELIVERIES_QUEUE_URL")
    } else if args.grouped {
        ("GROUPED_DEAD_LETTER_QUEUE_URL", "DELIVERIES_QUEUE_URL")
    } else {
        ("DEAD_LETTER_QUEUE_URL", "DELIVERIES_QUEUE_URL")
    };
    let queues = dlq::Queues {
        sqs: aws_sdk_sqs::Client::new(aws),
        dead_letters: args
            .dlq_url
            .or_else(|| env::var(dlq_var).ok())
            .with_context(|| format!("set {dlq_var} or --dlq-url"))?,
        deliveries: args.queue_url.or_else(|| env::var(queue_var).ok()).unwrap_or_default(),
        emails: args.emails,
        ordered: args.ordered,
    };
    match args.command {
        DlqCommand::List { webhook, vendor, max } => {
            queues.list(store, &dlq::Filter { webhook, vendor }, max).await
        }
        DlqCommand::Replay { webhook, vendor, max } => {
            if queues.deliveries.is_empty() {
                bail!("set {queue_var} or --queue-url");
            }
            // SQS moves messages as they are: right for emails, but a delivery must start over
            // at its first attempt, so deliveries are sent back one by one, rewritten.
            let everything = webhook.is_none() && vendor.is_none() && max == usize::MAX;
            let moved = if everything && args.emails { queues.move_all().await? } else { None };
            let n = match moved {
                Some(n) => n,
                None => queues.replay(&dlq::Filter { webhook, vendor }, max).await?,
            };
            println!("{}", json!({ "replayed": n }));
            Ok(())
        }
        DlqCommand::Purge { yes } => queues.purge(yes).await,
    }
}

/// Validates and creates a vendor account.
async fn create_vendor(store: &DynamoStore, username: &str, password: &str) -> Result<Vendor> {
    let username = auth::normalize_username(username)?;
    auth::validate_new_password(password)?;
    let hash = auth::hash_password(password).map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    let vendor = Vendor { vendor_id: ids::vendor_id(), username, created_at: now() };
    match store.create_vendor(&vendor, &hash).await {
        Ok(()) => Ok(vendor),
        Err(StoreError::Conflict(Conflict::UsernameTaken)) => {
            bail!("username {:?} is taken", vendor.username)
        }
        Err(e) => Err(describe(e)),
    }
}

/// The settings after `--email` and `--notify` (each kept as it was when not given). An email
/// given (even the same one) clears a refusal; "" removes the address and every notification.
fn notification_settings(
    current: &Notifications,
    email: Option<&str>,
    notify: Option<&str>,
) -> Result<Notifications> {
    let mut next = current.clone();
    match email {
        Some(e) if e.trim().is_empty() => {
            next.email = None;
            next.topics.clear();
            next.refused = None;
        }
        Some(e) => {
            next.email = Some(notify::validate_email("--email", e).map_err(|e| anyhow::anyhow!(e.message))?);
            next.refused = None;
        }
        None => {}
    }
    if let Some(list) = notify {
        let names = list.split(',').map(str::trim).filter(|n| !n.is_empty());
        next.topics = notify::parse_topics("--notify", names).map_err(|e| anyhow::anyhow!(e.message))?;
    }
    notify::check_settings(next.email.as_deref(), &next.topics, "--notify")
        .map_err(|e| anyhow::anyhow!(e.message))?;
    next.updated_at = now();
    Ok(next)
}

fn notifications_json(n: &Notifications) -> serde_json::Value {
    json!({
        "email": n.email,
        "notify": n.topics.iter().map(|t: &Topic| t.as_str()).collect::<Vec<_>>(),
        "refused": n.refused.as_ref().map(|(at, why)| json!({ "at": at, "reason": why })),
    })
}

/// Finds a vendor by id (`ven_…`) or username.
async fn find_vendor(store: &DynamoStore, key: &str) -> Result<Vendor> {
    let found = if key.starts_with("ven_") {
        store.vendor_by_id(key).await.map_err(describe)?
    } else {
        let username = auth::normalize_username(key)?;
        store.vendor_login(&username).await.map_err(describe)?.map(|l| l.vendor)
    };
    found.with_context(|| format!("no vendor {key:?}"))
}

/// A token id: `tok_` and 16 random characters.
fn token_id() -> String {
    format!("tok_{}", &ids::vendor_id()[4..])
}

fn describe(e: StoreError) -> anyhow::Error {
    anyhow::anyhow!(shared::error::chain(&e))
}

/// Reads the running local stack's settings into this process's environment.
fn load_local_stack_env() -> Result<String> {
    let mut dir: Option<PathBuf> = env::current_dir().ok();
    while let Some(d) = dir {
        let file = d.join(".stack/env");
        if let Ok(text) = fs::read_to_string(&file) {
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    if env::var_os(k).is_none() {
                        env::set_var(k, v);
                    }
                }
            }
            eprintln!("webhooks-admin: using the local stack ({})", file.display());
            return env::var("TABLE_NAME").context("the local stack's env file has no TABLE_NAME");
        }
        dir = d.parent().map(PathBuf::from);
    }
    bail!("TABLE_NAME is not set and no local stack is running (start one with `make dev`)")
}
