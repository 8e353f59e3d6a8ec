//! The real `assent-step` binary under a Lambda Runtime API emulator, against the local AWS
//! emulator through `AWS_ENDPOINT_URL`. Prints the time from process start to the first
//! finished invocation (of this debug build: a smoke figure, not a benchmark).

#[path = "../../test-support/runtime_api.rs"]
mod runtime_api;

use serde_json::json;
use std::time::Instant;

use assent::store::DynamoStore;
use runtime_api::*;

#[tokio::test]
async fn the_step_binary_publishes_its_workflow_and_answers_a_stream_batch() {
    let client = dynamodb().await;
    let table = table_name();
    DynamoStore::create_table(&client, &table).await.unwrap();
    let (emulator, addr) = emulator().await;
    // A doorbell for a contact with nothing pending: the function runs, finds no work,
    // and answers with no batch item failures.
    let record = json!({"eventID": "1", "eventName": "INSERT", "awsRegion": "us-east-1", "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": {"pk": {"S": "c#whatsapp:1"}, "sk": {"S": "in#msg:x"}}, "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}});
    emulator.invoke("batch-1", json!({"Records": [record]}));
    let secret = channel_secret(
        &json!({"WHATSAPP_APP_SECRET": "a", "WHATSAPP_VERIFY_TOKEN": "v",
        "WHATSAPP_ACCESS_TOKEN": "t"}),
    )
    .await;
    let started = Instant::now();
    let _child = spawn(
        env!("CARGO_BIN_EXE_assent-step"),
        &addr,
        &step_env(&table, &secret, "g"),
    );
    let answer = emulator.answer("batch-1").await.expect("a batch response");
    println!(
        "assent-step (debug build): start to first finished invocation {:?}",
        started.elapsed()
    );
    assert_eq!(answer["batchItemFailures"], json!([]));
    // It published the template at cold start, into the table.
    let store = DynamoStore::new(client, &table);
    let published = assent::ports::WorkflowStore::published(&store)
        .await
        .unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].id, "request-consent-privacy");
}

/// A secret that lacks a key of a channel the function is to serve: the function does
/// not start (on Lambda: an init error, and the event is retried), rather than serve the
/// channel half configured.
#[tokio::test]
async fn the_step_binary_does_not_start_without_its_channels_keys() {
    let client = dynamodb().await;
    let table = table_name();
    DynamoStore::create_table(&client, &table).await.unwrap();
    let (emulator, addr) = emulator().await;
    emulator.invoke("batch-1", json!({"Records": []}));
    let secret =
        channel_secret(&json!({"WHATSAPP_APP_SECRET": "a", "WHATSAPP_VERIFY_TOKEN": "v"})).await;
    let mut child = spawn(
        env!("CARGO_BIN_EXE_assent-step"),
        &addr,
        &step_env(&table, &secret, "g"),
    );
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("the binary gave up")
        .unwrap();
    assert!(!status.success());
}
