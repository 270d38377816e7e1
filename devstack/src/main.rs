//! `devstack`: bootstraps the local AWS emulator for `make dev` and `make test`.
use std::{fs, path::PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use shared::{
    api::now,
    auth,
    domain::Vendor,
    ids,
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
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Bootstrap {
            template,
            table,
            demo_username,
            demo_password,
        } => {
            let text = fs::read_to_string(&template)
                .with_context(|| format!("reading {}", template.display()))?;
            let def = devstack::table_definition(&devstack::parse_template(&text)?)?;
            let aws = aws_config::load_from_env().await;
            let client = aws_sdk_dynamodb::Client::new(&aws);
            let created = devstack::ensure_table(&client, &table, &def).await?;
            println!(
                "table {table}: {}",
                if created { "created" } else { "exists" }
            );
            if !demo_username.is_empty() {
                let store = DynamoStore::new(client, &table);
                let hash =
                    auth::hash_password(&demo_password).map_err(|e| anyhow::anyhow!("{e}"))?;
                let vendor = Vendor {
                    vendor_id: ids::vendor_id(),
                    username: auth::normalize_username(&demo_username)?,
                    created_at: now(),
                };
                match store.create_vendor(&vendor, &hash).await {
                    Ok(()) => println!(
                        "demo vendor {} created ({})",
                        vendor.username, vendor.vendor_id
                    ),
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
            }
        }
    }
    Ok(())
}
