//! `create-webhook`: registers a webhook.
//! Wiring only: the handler is `shared::api::handlers::create_webhook`.
use shared::api::{self, handlers::create_webhook, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::CreateWebhook, create_webhook::handle).await
}
