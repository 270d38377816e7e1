//! `get-webhook`: reads a webhook.
//! Wiring only: the handler is `shared::api::handlers::get_webhook`.
use shared::api::{self, handlers::get_webhook, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::GetWebhook, get_webhook::handle).await
}
