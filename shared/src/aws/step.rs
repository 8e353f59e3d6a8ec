//! The step function's handler: a DynamoDB stream batch in, a partial batch response out.
//! A record is only a doorbell for its contact; each contact in the batch is run once.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lambda_runtime::LambdaEvent;

use crate::clock::SystemClock;
use crate::contact::ContactId;
use crate::ports::Clock;
use crate::runtime::Runtime;
use crate::store::DynamoStore;
use crate::store::dynamodb::{INBOX_PREFIX, contact_from_pk};

/// One contact's doorbell records in the batch (stream sequence numbers).
struct Rung {
    contact: ContactId,
    records: Vec<String>,
}

pub async fn handle(
    runtime: &Runtime,
    store: &DynamoStore,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
    let mut rungs: Vec<Rung> = Vec::new();
    for record in event.payload.records {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        let keys = serde_json::to_value(&record.change.keys).unwrap_or_default();
        let (Some(pk), Some(sk)) = (keys["pk"]["S"].as_str(), keys["sk"]["S"].as_str()) else {
            tracing::warn!(record = %sequence, "stream record without keys: skipped");
            continue;
        };
        let Some(contact) = contact_from_pk(pk).filter(|_| sk.starts_with(INBOX_PREFIX)) else {
            continue; // not an inbox item: the event source filter should have dropped it
        };
        match rungs.iter_mut().find(|r| r.contact == contact) {
            Some(rung) => rung.records.push(sequence),
            None => rungs.push(Rung {
                contact,
                records: vec![sequence],
            }),
        }
    }
    let mut failures = Vec::new();
    for rung in rungs {
        match runtime.run_steps(&rung.contact).await {
            Ok(_) => {}
            Err(e) if e.is_retryable() => {
                tracing::warn!(contact = %rung.contact.log_ref(), error = %e, "will be retried");
                failures.extend(rung.records);
            }
            Err(e) => {
                // Retrying cannot help: park it with its error instead of blocking the shard.
                tracing::error!(contact = %rung.contact.log_ref(), error = %e, "parked");
                for record in &rung.records {
                    let parked = store
                        .park(&rung.contact, record, &e.to_string(), SystemClock.now())
                        .await;
                    if parked.is_err() {
                        failures.push(record.clone());
                    }
                }
            }
        }
    }
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(id);
            failure
        })
        .collect();
    Ok(response)
}
