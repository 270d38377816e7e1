//! `portal`: the vendor portal's pages at `/portal/`.
//! Wiring only: the pages are `shared::portal`.
use shared::api::App;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init();
    // Its queue: redelivering an event puts it on the deliveries queue, as the API does.
    let app = App::from_env_with_queue().await?;
    shared::portal::run(app).await
}
