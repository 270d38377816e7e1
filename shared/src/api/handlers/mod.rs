//! One module per API operation, each with the `handle` its function's `main` runs. A handler
//! gets a routed, authenticated [`Call`](super::Call) and answers it; everything around that is
//! [`middleware`](super::middleware).
pub mod create_webhook;
pub mod delete_webhook;
pub mod enable_webhook;
pub mod get_notifications;
pub mod get_webhook;
pub mod list_deliveries;
pub mod list_webhooks;
pub mod publish_event;
pub mod redeliver_event;
pub mod rotate_secret;
pub mod test_webhook;
pub mod update_notifications;
pub mod update_webhook;
