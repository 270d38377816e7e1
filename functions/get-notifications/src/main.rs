//! `get-notifications`: a vendor's email notification settings.
//! Wiring only: the handler is `shared::api::handlers::get_notifications`.
use shared::api::{self, handlers::get_notifications, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::GetNotifications, get_notifications::handle).await
}
