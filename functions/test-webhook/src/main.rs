//! `test-webhook`: sends a signed test event to a webhook and answers what it did.
//! Wiring only: the handler is `shared::api::handlers::test_webhook`.
use shared::api::{self, handlers::test_webhook, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::TestWebhook, test_webhook::handle).await
}
