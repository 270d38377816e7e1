//! `update-notifications`: sets a vendor's email address and notifications. All logic lives in
//! `shared`.
//! Wiring only: the handler is `shared::api::handlers::update_notifications`.
use shared::api::{self, handlers::update_notifications, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::UpdateNotifications, update_notifications::handle).await
}
