//! `delete-webhook`: deletes a webhook.
//! Wiring only: the handler is `shared::api::handlers::delete_webhook`.
use shared::api::{self, handlers::delete_webhook, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::DeleteWebhook, delete_webhook::handle).await
}
