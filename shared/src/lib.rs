//! The webhook service's library: every Lambda function is a thin `main.rs` over this crate.
//!
//! - [`domain`]: event types, webhooks, vendors and the validation of what vendors send.
//! - [`urls`]: the URL and address policy for webhook targets (pure functions).
//! - [`auth`]: vendor credentials, password hashing.
//! - [`store`]: the storage ports and their DynamoDB adapter.
//! - [`api`]: the HTTP API: routes, dialects, and the one place errors become responses.
//! - [`notify`] and [`mail`]: vendors' email notifications, and sending them through SES.

pub mod api;
pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod digest;
pub mod dispatch;
pub mod domain;
pub mod email_events;
pub mod emails;
pub mod error;
pub mod events;
pub mod fields;
#[doc(hidden)]
pub mod fuzzing;
pub mod grouped;
pub mod https;
pub mod ids;
pub mod json;
pub mod login_guard;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod options;
pub mod portal;
pub mod queue;
pub mod sqs_batch;
pub mod store;
pub mod telemetry;
pub mod urls;
