//! `rotate-secret`: a new signing secret; the former one signs too for a grace period. All logic
//! lives in `shared`.
use shared::api::{run_function, Operation};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    run_function(Operation::RotateSecret).await
}
