//! `email-events`: SES bounces and complaints, from the configuration set's SNS topic, mark the
//! vendor's address refused; all logic lives in `shared::email_events`.
use aws_lambda_events::sns::SnsEvent;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::{config::Config, store::DynamoStore};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let config = Config::from_env()?;
    let aws = shared::aws::lambda_sdk_config();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &config.table_name);
    let store = &store;
    run(service_fn(move |event: LambdaEvent<SnsEvent>| async move {
        let refused = shared::email_events::handle(store, &event.payload, shared::clock::now()).await?;
        Ok::<_, Error>(serde_json::json!({ "refused": refused }))
    }))
    .await
}
