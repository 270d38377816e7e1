//! `email-events`: SES bounces and complaints, from the configuration set's SNS topic, mark the
//! vendor's address refused; all logic lives in `shared::email_events`.
use aws_lambda_events::sns::SnsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::{config::ConfigError, store::DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let table = std::env::var("TABLE_NAME").map_err(|_| ConfigError::new("TABLE_NAME", "is not set"))?;
    let aws = shared::aws::lambda_sdk_config();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let store = &store;
    run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        let refused = shared::email_events::handle(store, &event.payload, shared::clock::now()).await?;
        Ok::<_, Error>(serde_json::json!({ "refused": refused }))
    }))
    .await
}
