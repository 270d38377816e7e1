//! `enable-webhook`: starts deliveries to a disabled webhook again.
//! Wiring only: the handler is `shared::api::handlers::enable_webhook`.
use shared::api::{self, handlers::enable_webhook, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::EnableWebhook, enable_webhook::handle).await
}
