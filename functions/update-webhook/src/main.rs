//! `update-webhook`: replaces a webhook's type, URL and authentication. All logic lives in `shared`.
use shared::api::{run_function, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_function(Operation::UpdateWebhook).await
}
