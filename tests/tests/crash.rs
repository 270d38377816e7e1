//! The dispatch process killed in the middle of a batch loses nothing: the invocation fails,
//! the batch comes back after its visibility timeout, and a new process delivers it. Runs the
//! real `dispatch` binary under a local Lambda that restarts crashed processes (as Lambda does,
//! and `cargo lambda watch` does not), on queues of its own.
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use shared::{
    delivery::DeliveryMessage,
    domain::EventType,
    queue::{DeliveryQueue, SqsQueue},
    store::AttemptLog,
};
use tests::{
    fixture, new_vendor,
    receiver::{Receiver, Reply},
    store, unique,
};

#[tokio::test]
async fn killing_dispatch_mid_batch_loses_nothing() {
    let store = store().await;
    let v = new_vendor(&store).await;
    let sqs = aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await);
    let name = unique("crash");
    let dlq = sqs.create_queue().queue_name(format!("{name}-dlq")).send().await.unwrap().queue_url.unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    let queue_url = sqs
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::VisibilityTimeout, "3")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            format!(r#"{{"deadLetterTargetArn":"{dlq_arn}","maxReceiveCount":8}}"#),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    // Five webhooks whose receivers hold the first request long enough to kill dispatch.
    let payload = fixture("ecomnow/new-order.json").trim_end().to_owned();
    let mut receivers = Vec::new();
    let mut bodies = Vec::new();
    let mut webhook_ids = Vec::new();
    for i in 0..5 {
        let r =
            Receiver::start(vec![Reply::Slow(Duration::from_millis(1500), 200)], Reply::Status(200)).await;
        let w = tests::insert_webhook(&store, &v.vendor, format!("{}?n={i}", r.url)).await;
        webhook_ids.push(w.id);
        bodies.push(
            DeliveryMessage::first(
                unique("evt"),
                EventType::NewOrder,
                v.vendor.vendor_id.clone(),
                w.id,
                0,
                serde_json::value::RawValue::from_string(payload.clone()).unwrap(),
            )
            .to_body(),
        );
        receivers.push(r);
    }
    SqsQueue::new(sqs.clone(), &queue_url).send_all(bodies).await.unwrap();

    let (lambda, bridge) = tests::own_dispatch(&sqs, &queue_url, &dlq, &[]).await;

    // Wait for the whole batch to be in flight (each receiver holds its first request 1.5 s),
    // then kill the process in the middle of it. Waiting for one receiver alone raced the
    // others' webhook reads, which the emulator serialises: a delivery not yet sent at the kill
    // is sent once, after it, and the assertion below would miss it.
    for (i, r) in receivers.iter().enumerate() {
        let first = r.wait_for(1, Duration::from_secs(30)).await;
        assert_eq!(first.len(), 1, "dispatch started the batch's delivery {i}");
    }
    lambda.kill();

    for (i, r) in receivers.iter().enumerate() {
        let got = r.wait_for(2, Duration::from_secs(30)).await;
        assert!(got.len() >= 2, "receiver {i} got the delivery again after the crash: {}", got.len());
    }
    assert!(lambda.starts() >= 2, "the process was started again");
    // Everything was delivered: the queue drains, nothing in the dead-letter queue.
    let mut left = String::new();
    for _ in 0..40 {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let a = attrs.attributes().unwrap();
        left = format!(
            "{}+{}",
            a[&QueueAttributeName::ApproximateNumberOfMessages],
            a[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible]
        );
        if left == "0+0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(left, "0+0", "every message was deleted after delivery");
    let dead = sqs.receive_message().queue_url(&dlq).wait_time_seconds(0).send().await.unwrap();
    assert!(dead.messages.unwrap_or_default().is_empty());
    bridge.abort();
    for r in &receivers {
        let ids: Vec<_> = r.received().iter().map(|g| g.header("webhook-id").unwrap().to_owned()).collect();
        assert!(ids.iter().all(|i| *i == ids[0]), "a redelivery carries the same webhook-id");
    }
    // The crash used no attempt up: the delivery made again is still the first attempt.
    for id in webhook_ids {
        let attempts = store.list_attempts(id, 10).await.unwrap();
        assert!(!attempts.is_empty() && attempts.iter().all(|a| a.attempt == 1), "{attempts:?}");
    }
}
