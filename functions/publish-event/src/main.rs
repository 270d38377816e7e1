//! `publish-event`: `POST /events`, the platform's way in: one delivery per matching webhook.
//! Wiring only: the handler is `shared::api::handlers::publish_event`.
use shared::api::{self, handlers::publish_event, App, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    let app = App::from_env_with_queue().await?;
    api::run(app, Operation::PublishEvent, publish_event::handle).await
}
