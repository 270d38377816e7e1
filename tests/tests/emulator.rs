//! The emulator is as strict as AWS wherever our code can reach one of AWS's limits: each limit
//! below is refused with AWS's own error code, through the real SDK. moto holds some of them
//! itself and scripts/moto_server.py adds the others; these tests catch a moto upgrade that
//! loosens one. The queues are the test's own; the DynamoDB items go in partitions of their own.
use std::{collections::HashMap, time::Duration};

use aws_sdk_dynamodb::{
    error::ProvideErrorMetadata,
    types::{AttributeValue, Put, PutRequest, TransactWriteItem, WriteRequest},
};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use shared::queue::{MAX_BATCH_BYTES, MAX_MESSAGE_BYTES};
use tests::{dynamo, stack_var, unique};

async fn sqs() -> aws_sdk_sqs::Client {
    stack_var("AWS_ENDPOINT_URL");
    aws_sdk_sqs::Client::new(&shared::aws::sdk_config().await)
}

/// A queue of this test's own, with our queues' maximum message size.
async fn queue(sqs: &aws_sdk_sqs::Client) -> String {
    sqs.create_queue()
        .queue_name(unique("emulator"))
        .attributes(QueueAttributeName::MaximumMessageSize, MAX_MESSAGE_BYTES.to_string())
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

/// A text of `bytes` bytes of UTF-8 in half as many characters: a limit counted in characters
/// would let it through.
fn two_byte_text(bytes: usize) -> String {
    "é".repeat(bytes / 2)
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("(none)").to_owned()
}

#[tokio::test]
async fn sqs_refuses_a_message_over_the_queues_maximum_size_in_bytes() {
    let sqs = sqs().await;
    let url = queue(&sqs).await;
    let fits = two_byte_text(MAX_MESSAGE_BYTES);
    sqs.send_message().queue_url(&url).message_body(&fits).send().await.expect("a message at the limit");
    let e = sqs
        .send_message()
        .queue_url(&url)
        .message_body(format!("{fits}x"))
        .send()
        .await
        .expect_err("one byte over the limit")
        .into_service_error();
    assert_eq!(code(&e), "InvalidParameterValue", "{e:?}");
}

#[tokio::test]
async fn sqs_refuses_a_batch_over_one_mebibyte_or_ten_entries() {
    let sqs = sqs().await;
    let url = queue(&sqs).await;
    let entry = |i: usize, body: &str| {
        SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(body).build().unwrap()
    };

    // Five messages of 220,000 bytes: 1,100,000 bytes in all, in 550,000 characters.
    let body = two_byte_text(220_000);
    let e = sqs
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some((0..5).map(|i| entry(i, &body)).collect()))
        .send()
        .await
        .expect_err("over 1 MiB in all")
        .into_service_error();
    assert_eq!(code(&e), "AWS.SimpleQueueService.BatchRequestTooLong", "{e:?}");
    const { assert!(5 * 220_000 > MAX_BATCH_BYTES && 4 * 220_000 < MAX_BATCH_BYTES) };
    let out = sqs
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some((0..4).map(|i| entry(i, &body)).collect()))
        .send()
        .await
        .expect("four of them fit");
    assert_eq!(out.successful().len(), 4);

    let e = sqs
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some((0..11).map(|i| entry(i, "x")).collect()))
        .send()
        .await
        .expect_err("eleven entries")
        .into_service_error();
    assert_eq!(code(&e), "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", "{e:?}");
}

#[tokio::test]
async fn sqs_counts_twelve_hours_of_visibility_from_the_receive() {
    let sqs = sqs().await;
    let url = queue(&sqs).await;
    // Sent two seconds before it can be received: 12 hours from the receive is legal, though it
    // is more than 12 hours from the send.
    sqs.send_message().queue_url(&url).message_body("m").delay_seconds(2).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let received = sqs
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    let handle = received.first().and_then(|m| m.receipt_handle.clone()).expect("the message is received");
    sqs.change_message_visibility()
        .queue_url(&url)
        .receipt_handle(&handle)
        .visibility_timeout(43_198)
        .send()
        .await
        .expect("12 hours less two seconds from the receive");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = sqs
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(&handle)
        .visibility_timeout(43_199)
        .send()
        .await
        .expect_err("past 12 hours from the receive")
        .into_service_error();
    assert_eq!(code(&e), "InvalidParameterValue", "{e:?}");
    let e = sqs
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(&handle)
        .visibility_timeout(43_201)
        .send()
        .await
        .expect_err("over 12 hours")
        .into_service_error();
    assert_eq!(code(&e), "InvalidParameterValue", "{e:?}");
}

/// An item of a partition of this test's own, with `bytes` bytes of data.
fn item(pk: &str, sk: usize, bytes: usize) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk.to_owned())),
        ("sk".to_owned(), AttributeValue::S(format!("{sk:04}"))),
        ("data".to_owned(), AttributeValue::S("d".repeat(bytes))),
    ])
}

#[tokio::test]
async fn dynamodb_refuses_an_item_over_400_kb() {
    let db = dynamo().await;
    let table = stack_var("TABLE_NAME");
    let pk = unique("emulator");
    db.put_item().table_name(&table).set_item(Some(item(&pk, 0, 390_000))).send().await.expect("390 KB fits");
    let e = db
        .put_item()
        .table_name(&table)
        .set_item(Some(item(&pk, 1, 410_000)))
        .send()
        .await
        .expect_err("410 KB")
        .into_service_error();
    assert_eq!(code(&e), "ValidationException", "{e:?}");
}

#[tokio::test]
async fn dynamodb_refuses_transactions_over_100_items_or_4_mb() {
    let db = dynamo().await;
    let table = stack_var("TABLE_NAME");
    let pk = unique("emulator");
    let put = |sk: usize, bytes: usize| {
        TransactWriteItem::builder()
            .put(Put::builder().table_name(&table).set_item(Some(item(&pk, sk, bytes))).build().unwrap())
            .build()
    };
    let e = db
        .transact_write_items()
        .set_transact_items(Some((0..101).map(|i| put(i, 10)).collect()))
        .send()
        .await
        .expect_err("101 items")
        .into_service_error();
    assert_eq!(code(&e), "ValidationException", "{e:?}");
    // Eleven items of 390 KB: each fits, together they are over 4 MB.
    let e = db
        .transact_write_items()
        .set_transact_items(Some((0..11).map(|i| put(i, 390_000)).collect()))
        .send()
        .await
        .expect_err("over 4 MB")
        .into_service_error();
    assert_eq!(code(&e), "ValidationException", "{e:?}");
    db.transact_write_items()
        .set_transact_items(Some((0..100).map(|i| put(i, 10)).collect()))
        .send()
        .await
        .expect("100 small items");
}

/// A transaction that fails changes nothing: what it wrote before its failing item is undone.
/// (The wrapper rolls back from a copy of the transaction's own items, not of the whole table as
/// moto does, which took seconds once the tests had filled the table.)
#[tokio::test]
async fn a_failed_transaction_changes_nothing() {
    let db = dynamo().await;
    let table = stack_var("TABLE_NAME");
    let pk = unique("emulator");
    db.put_item().table_name(&table).set_item(Some(item(&pk, 1, 10))).send().await.unwrap();
    let key = |sk: usize| {
        let mut k = item(&pk, sk, 0);
        k.remove("data");
        k
    };
    let e = db
        .transact_write_items()
        .transact_items(
            TransactWriteItem::builder()
                .put(Put::builder().table_name(&table).set_item(Some(item(&pk, 0, 5))).build().unwrap())
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .delete(
                    aws_sdk_dynamodb::types::Delete::builder()
                        .table_name(&table)
                        .set_key(Some(key(1)))
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&table)
                        .set_item(Some(item(&pk, 2, 5)))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .expect_err("the last item's condition fails")
        .into_service_error();
    assert_eq!(code(&e), "TransactionCanceledException", "{e:?}");
    let get =
        |sk: usize| db.get_item().table_name(&table).set_key(Some(key(sk))).consistent_read(true).send();
    assert!(get(0).await.unwrap().item.is_none(), "the put before it is undone");
    assert_eq!(get(1).await.unwrap().item, Some(item(&pk, 1, 10)), "the delete before it is undone");
    assert!(get(2).await.unwrap().item.is_none());
}

#[tokio::test]
async fn dynamodb_refuses_a_batch_write_over_25_items() {
    let db = dynamo().await;
    let table = stack_var("TABLE_NAME");
    let pk = unique("emulator");
    let writes = |n: usize| {
        let requests = (0..n)
            .map(|i| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item(&pk, i, 10))).build().unwrap())
                    .build()
            })
            .collect();
        HashMap::from([(table.clone(), requests)])
    };
    let e = db
        .batch_write_item()
        .set_request_items(Some(writes(26)))
        .send()
        .await
        .expect_err("26 requests")
        .into_service_error();
    assert_eq!(code(&e), "ValidationException", "{e:?}");
    db.batch_write_item().set_request_items(Some(writes(25))).send().await.expect("25 requests");
}

#[tokio::test]
async fn dynamodb_answers_a_query_with_at_most_1_mb_a_page() {
    let db = dynamo().await;
    let table = stack_var("TABLE_NAME");
    let pk = unique("emulator");
    for sk in 0..4 {
        db.put_item().table_name(&table).set_item(Some(item(&pk, sk, 390_000))).send().await.unwrap();
    }
    let page = db
        .query()
        .table_name(&table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
        .send()
        .await
        .unwrap();
    assert!(page.items().len() < 4, "1.56 MB of items in one page: {}", page.items().len());
    assert!(page.last_evaluated_key.is_some(), "the page says where the next begins");
}

#[tokio::test]
async fn an_invocations_trace_header_travels_with_every_message_it_queues() {
    use shared::queue::{DeliveryQueue, SqsQueue};
    let sqs = sqs().await;
    let url = queue(&sqs).await;
    // What the Lambda runtime sets for each invocation; only this test sends through SqsQueue in
    // this binary.
    let header = "Root=1-6b0cc390-ed96e509ebb3ff1aa5f699ed;Parent=ff04458d9cbcb2e3;Sampled=1";
    std::env::set_var("_X_AMZN_TRACE_ID", header);
    let queue = SqsQueue::new(sqs.clone(), &url);
    queue.send_all(vec!["fan-out 1".into(), "fan-out 2".into()]).await.unwrap();
    queue.send_later("retry".into(), Duration::ZERO).await.unwrap();
    std::env::remove_var("_X_AMZN_TRACE_ID");

    let mut seen = HashMap::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            let trace = m
                .attributes()
                .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::AwsTraceHeader))
                .cloned();
            seen.insert(m.body().unwrap_or_default().to_owned(), trace);
        }
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (body, trace) in &seen {
        assert_eq!(trace.as_deref(), Some(header), "{body}");
    }
}
