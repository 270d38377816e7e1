//! `update-notifications`: sets a vendor's email address and notifications. All logic lives in
//! `shared`.
use shared::api::{run_function, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_function(Operation::UpdateNotifications).await
}
