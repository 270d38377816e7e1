//! `list-webhooks`: lists a vendor's webhooks.
//! Wiring only: the handler is `shared::api::handlers::list_webhooks`.
use shared::api::{self, handlers::list_webhooks, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::ListWebhooks, list_webhooks::handle).await
}
