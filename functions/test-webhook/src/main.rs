//! `test-webhook`: sends a signed test event to a webhook and answers what it did. All logic lives in `shared`.
use shared::api::{run_function, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_function(Operation::TestWebhook).await
}
