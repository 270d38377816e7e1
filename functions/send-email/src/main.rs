//! `send-email`: consumes the emails queue (with `ReportBatchItemFailures`) and sends vendors'
//! order and failure emails through SES. Wiring only: the logic is `shared::emails::sender`.
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::{emails::sender::EmailSender, sqs_batch::SqsEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let sender = EmailSender::from_env().await?;
    let sender = &sender;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        sender.handle(&event.payload).await.map_err(Error::from)
    }))
    .await
}
