//! `publish-event`: `POST /events`, the platform's way in; all logic lives in `shared`.
use lambda_http::{run, service_fn, Error, Request};
use shared::api::{App, Operation};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let app = App::from_env().await?;
    let app = &app;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(app.handle(Operation::PublishEvent, req).await)
    }))
    .await
}
