//! `redeliver-event`: queues a kept event for one webhook again.
//! Wiring only: the handler is `shared::api::handlers::redeliver_event`.
use shared::api::{self, handlers::redeliver_event, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env_with_queue().await?;
    api::run(app, Operation::RedeliverEvent, redeliver_event::handle).await
}
