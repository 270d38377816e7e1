//! `dispatch`: consumes the deliveries queue (with `ReportBatchItemFailures`) and POSTs each
//! delivery to its webhook; all logic lives in `shared::dispatch`. It delivers webhooks and
//! nothing else: vendors' emails go through the emails queue to `send-email`.
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use shared::{dispatch::Dispatcher, sqs_batch::SqsEvent};

// One thread: an invocation's deliveries are polled together in its one task (each driving its
// own connection), so worker threads would only hand wake-ups across threads, and Lambda gives
// dispatch a fraction of one core (7.2% at 128 MB). Held to that share, the same batches took
// 20-25% less CPU per delivery than on the multi-threaded runtime (docs/performance.md:
// `webhooks-bench dispatch-share`).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let dispatcher = Dispatcher::from_env().await?;
    let dispatcher = &dispatcher;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        dispatcher.handle(&event.payload, Some(event.context.deadline as i64)).await.map_err(Error::from)
    }))
    .await
}
