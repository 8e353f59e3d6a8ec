//! The step function's handler: a DynamoDB stream batch in, a partial batch response out.
//! A record is only a doorbell for its contact; each contact in the batch is run once.
//!
//! A contact that fails with a retryable error has its records reported as failures, so
//! Lambda retries them. Once a failing record is older than [`PARK_AFTER`], or at once if
//! retrying cannot help, it is parked instead: a `parked#` item with the error is written
//! and the record is reported done, so it stops blocking the shard. Parking loses nothing:
//! the contact's inbox items and outbox stay in the table and run at its next event.

use aws_lambda_events::event::dynamodb::{Event, EventRecord as DynamoDbEventRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures_util::StreamExt;
use lambda_runtime::LambdaEvent;

use std::time::Duration;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::runtime::Runtime;
use crate::store::DynamoStore;
use crate::store::dynamodb::{INBOX_PREFIX, Parking, contact_from_pk};

/// How old the loaded workflows may get before a batch reloads them.
pub const CATALOG_MAX_AGE: Duration = Duration::from_secs(60);

/// At most this many of a batch's contacts run at once: the event source mapping's batch
/// size, so a whole batch runs together.
pub const CONTACTS_AT_ONCE: usize = 25;

/// How long a record may keep failing before it is parked.
pub const PARK_AFTER: Duration = Duration::from_secs(3600);

/// One of a contact's doorbell records: where it stands in the batch, its stream sequence
/// number, and when it was written.
struct Doorbell {
    position: usize,
    sequence: String,
    created: Timestamp,
}

/// One contact's doorbell records in the batch.
struct Rung {
    contact: ContactId,
    records: Vec<Doorbell>,
}

pub async fn handle(
    runtime: &Runtime,
    store: &DynamoStore,
    event: LambdaEvent<Event>,
) -> Result<DynamoDbEventResponse, lambda_runtime::Error> {
    // A version published through the admin API reaches warm instances within a minute.
    if let Err(e) = runtime.refresh_catalog(CATALOG_MAX_AGE).await {
        tracing::warn!(error = %e, "could not refresh the workflows; using the ones loaded");
    }
    let rungs = rungs(event.payload.records);
    // Contacts are independent and each mostly waits on its channel's API, so a batch's
    // contacts run together: the invocation (billed by duration) lasts about as long as
    // its slowest contact, not the sum. A contact's own records stay in order.
    let failed: Vec<Vec<Doorbell>> = futures_util::stream::iter(rungs)
        .map(|rung| ring(runtime, store, rung))
        .buffer_unordered(CONTACTS_AT_ONCE)
        .collect()
        .await;
    // In the batch's order: Lambda goes on from the first failed record.
    let mut failures: Vec<Doorbell> = failed.into_iter().flatten().collect();
    failures.sort_by_key(|record| record.position);
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|record| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(record.sequence);
            failure
        })
        .collect();
    Ok(response)
}

/// The batch's records grouped by contact, in order of first appearance.
fn rungs(records: Vec<DynamoDbEventRecord>) -> Vec<Rung> {
    let mut rungs: Vec<Rung> = Vec::new();
    for (position, record) in records.into_iter().enumerate() {
        let sequence = record.change.sequence_number.clone().unwrap_or_default();
        let created = Timestamp(
            record
                .change
                .approximate_creation_date_time
                .timestamp_millis(),
        );
        let keys = serde_json::to_value(&record.change.keys).unwrap_or_default();
        let (Some(pk), Some(sk)) = (keys["pk"]["S"].as_str(), keys["sk"]["S"].as_str()) else {
            tracing::warn!(record = %sequence, "stream record without keys: skipped");
            continue;
        };
        let Some(contact) = contact_from_pk(pk).filter(|_| sk.starts_with(INBOX_PREFIX)) else {
            continue; // not an inbox item: the event source filter should have dropped it
        };
        let doorbell = Doorbell {
            position,
            sequence,
            created,
        };
        match rungs.iter_mut().find(|r| r.contact == contact) {
            Some(rung) => rung.records.push(doorbell),
            None => rungs.push(Rung {
                contact,
                records: vec![doorbell],
            }),
        }
    }
    rungs
}

/// Runs one contact's steps; returns its records to report failed (Lambda retries them).
async fn ring(runtime: &Runtime, store: &DynamoStore, rung: Rung) -> Vec<Doorbell> {
    let Err(e) = runtime.run_steps(&rung.contact).await else {
        return Vec::new();
    };
    let now = runtime.now();
    let mut failures = Vec::new();
    for record in rung.records {
        let give_up = !e.is_retryable() || record.created.plus(PARK_AFTER) <= now;
        if !give_up {
            tracing::warn!(contact = %rung.contact.log_ref(), error = %e, "will be retried");
            failures.push(record);
            continue;
        }
        let sequence = &record.sequence;
        tracing::error!(contact = %rung.contact.log_ref(), error = %e, record = %sequence, "parked");
        match store
            .park(&rung.contact, sequence, &e.to_string(), now)
            .await
        {
            Ok(Parking::Listed) => {}
            Ok(Parking::Erased) => {
                tracing::info!(contact = %rung.contact.log_ref(), "erased meanwhile: nothing parked")
            }
            Err(_) => failures.push(record),
        }
    }
    failures
}
