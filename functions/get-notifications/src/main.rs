//! `get-notifications`: a vendor's email notification settings. All logic lives in `shared`.
use shared::api::{run_function, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_function(Operation::GetNotifications).await
}
