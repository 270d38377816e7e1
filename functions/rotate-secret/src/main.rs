//! `rotate-secret`: a new signing secret; the former one signs too for a grace period.
//! Wiring only: the handler is `shared::api::handlers::rotate_secret`.
use shared::api::{self, handlers::rotate_secret, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    api::run(app, Operation::RotateSecret, rotate_secret::handle).await
}
