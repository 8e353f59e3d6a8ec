//! The real `assent-timeout` binary under a Lambda Runtime API emulator, against the local AWS
//! emulator through `AWS_ENDPOINT_URL`. Prints the time from process start to the first
//! finished invocation (of this debug build: a smoke figure, not a benchmark).

#[path = "../../test-support/runtime_api.rs"]
mod runtime_api;

use serde_json::json;
use std::time::Instant;

use assent::contact::ContactId;
use assent::ports::StateStore;
use assent::store::DynamoStore;
use runtime_api::*;

#[tokio::test]
async fn the_timeout_binary_runs_under_the_runtime_api_against_the_emulator() {
    let client = dynamodb().await;
    let table = table_name();
    DynamoStore::create_table(&client, &table).await.unwrap();
    let (emulator, addr) = emulator().await;
    let contact = "whatsapp:4915100000042";
    emulator.invoke(
        "inv-1",
        json!({"contact": contact, "run": 1, "wait_seq": 1}),
    );
    let started = Instant::now();
    let _child = spawn(
        env!("CARGO_BIN_EXE_assent-timeout"),
        &addr,
        &[("ASSENT_TABLE", table.clone())],
    );
    assert!(emulator.answer("inv-1").await.is_ok());
    println!(
        "assent-timeout (debug build): start to first finished invocation {:?}",
        started.elapsed()
    );
    let loaded = DynamoStore::new(client, &table)
        .load(&ContactId::from_stored(contact))
        .await
        .unwrap();
    assert_eq!(
        loaded.inbox.len(),
        1,
        "the timeout is queued in the contact's inbox"
    );
    assert_eq!(loaded.inbox[0].1.key, "timeout:1:1");

    // A malformed event is answered with an error, and the function keeps serving.
    emulator.invoke("inv-2", json!({"contact": contact}));
    assert!(emulator.answer("inv-2").await.is_err());
    emulator.invoke(
        "inv-3",
        json!({"contact": contact, "run": 1, "wait_seq": 1}),
    );
    assert!(
        emulator.answer("inv-3").await.is_ok(),
        "a repeated fire is success (deduplicated)"
    );
}
