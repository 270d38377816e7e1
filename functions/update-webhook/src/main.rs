//! `update-webhook`: replaces a webhook's type, URL and authentication.
//! Wiring only: the handler is `shared::api::handlers::update_webhook`.
use shared::api::{self, handlers::update_webhook, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::UpdateWebhook, update_webhook::handle).await
}
