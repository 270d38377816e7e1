//! `list-deliveries`: a webhook's delivery attempts, newest first.
//! Wiring only: the handler is `shared::api::handlers::list_deliveries`.
use shared::api::{self, handlers::list_deliveries, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::ListDeliveries, list_deliveries::handle).await
}
