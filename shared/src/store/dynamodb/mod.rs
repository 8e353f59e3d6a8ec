//! The DynamoDB store: one table, every item of a contact in one partition, so that one
//! Query loads the record, the inbox and the segment entries.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | record | `c#{contact}` | `state` | `version`, `record` (deflated JSON), `done` (string set of processed inbox sks) |
//! | inbox item | `c#{contact}` | `in#{dedup key}` | `item` (JSON), `at` (ms), `expires` (TTL) |
//! | retired inbox keys | `c#{contact}` | `dedup#{ms:013}#{salt}` | `keys` (digests of processed items deleted, `retired.rs`), `expires` (TTL) |
//! | segment entry | `c#{contact}` | `tag#{tag}` | `seg` = the tag and a shard (the sparse GSI's key; `segments.rs`) |
//! | ledger record | `c#{contact}` | `ledger#{seq:010}` | `record` (JSON), `at` (ms); never expires |
//! | parked record | `c#{contact}` | `parked#{stream seq}` | `error`, `at` |
//! | parked list entry | `parked` | `{contact}` | `error`, `at` (the latest parking) |
//! | web chat mailbox | `w#{visitor}` | `next`, `msg#{seq:020}` | the messages for a browser (`mailbox.rs`) |
//! | web chat sessions | `sessions#{address}` | `tat` | an address's allowance of new sessions (`session_limit.rs`) |
//! | workflow version | `workflows` | `{id}#v{version:010}` | `published` (JSON) |
//! | workflow draft | `drafts` | `{id}` | `definition` (JSON) |
//! | active workflow | `settings` | `active_workflow` | `id`, `version` |
//!
//! The record is stored deflated: JSON compresses to about half, which keeps a record with
//! its outbox (message texts) under the 1 KiB of one write unit.
//!
//! Writes are single-item: an inbox put conditional on the key being new (deduplication),
//! and a record put conditional on its version (optimistic locking) that also marks the
//! consumed inbox items processed. Inbox items stay until their TTL, so a provider retry
//! within the window still meets its key, unless a contact keeps writing: past a few
//! processed items, a commit retires them to digests (`retired.rs`).

mod admin;
mod ledger;
pub mod mailbox;
mod parking;
mod record;
mod retired;
mod segments;
mod session_limit;
mod state;
mod table;
mod workflows;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use std::collections::HashMap;

use crate::contact::ContactId;
use crate::ports::StoreError;

pub use parking::Parking;
pub use retired::RETAINED_MAX;
pub use session_limit::{SharedSessionLimit, TakeError};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const STATE_SK: &str = "state";
pub const INBOX_PREFIX: &str = "in#";
pub const TAG_PREFIX: &str = "tag#";
pub const CONTACT_PREFIX: &str = "c#";
const PARKED_PREFIX: &str = "parked#";
pub const LEDGER_PREFIX: &str = "ledger#";
const WORKFLOWS_PK: &str = "workflows";
const DRAFTS_PK: &str = "drafts";
/// The partition that lists parked contacts, so the admin API can find them without a
/// scan. Parking is rare (a channel down for an hour), so one partition is enough.
const PARKED_PK: &str = "parked";
const SETTINGS_PK: &str = "settings";
/// The TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "expires";
/// The sparse GSI over segment entries: hash key `seg` (the tag and a shard), range key `pk`.
pub const SEGMENT_INDEX: &str = "segments";
pub const SEGMENT_KEY: &str = "seg";
/// Inbox items outlive Meta's 7-day retry window by a day.
const INBOX_TTL_SECONDS: i64 = 8 * 24 * 3600;
/// The stream filter that makes only new inbox items ring the step function's doorbell.
pub const STREAM_FILTER_PATTERN: &str =
    r#"{"eventName":["INSERT"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"in#"}]}}}}"#;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn contact_pk(contact: &ContactId) -> String {
    format!("{CONTACT_PREFIX}{contact}")
}

/// The web chat visitor a contact is, if it is one: its messages wait in a mailbox.
fn web_visitor(contact: &ContactId) -> Option<&str> {
    match contact.parts()? {
        (crate::channels::web::NAME, visitor) => Some(visitor),
        _ => None,
    }
}

/// The contact a partition key belongs to, if it is a contact's.
pub fn contact_from_pk(pk: &str) -> Option<ContactId> {
    pk.strip_prefix(CONTACT_PREFIX).map(ContactId::from_stored)
}

fn unavailable<E, R>(e: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

fn is_condition_failure<E: ProvideErrorMetadata, R>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    e.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// A transaction refused because one of its conditions did not hold.
fn is_cancelled_by_condition<R>(
    e: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled
            .cancellation_reasons()
            .iter()
            .any(|reason| reason.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Result<&'a str, StoreError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        .ok_or_else(|| StoreError::Corrupt(format!("item without `{name}`")))
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Result<i64, StoreError> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Corrupt(format!("item without a number `{name}`")))
}

fn json<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, StoreError> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoStore {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// Every item of a partition, following pagination. Strongly consistent: a commit
    /// that builds on it must see the latest version.
    async fn partition(
        &self,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(items),
            }
        }
    }

    async fn delete(&self, pk: &str, sk: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// One page, of at most `limit` items, of a query for the items whose `attribute` is
    /// `value`, in the table or in `index`.
    async fn query_page(
        &self,
        index: Option<&str>,
        attribute: &str,
        value: String,
        start: Option<HashMap<String, AttributeValue>>,
        limit: usize,
    ) -> Result<QueryOutput, StoreError> {
        self.client
            .query()
            .table_name(&self.table)
            .set_index_name(index.map(str::to_string))
            .key_condition_expression("#key = :value")
            .expression_attribute_names("#key", attribute)
            .expression_attribute_values(":value", s(value))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)
    }
}
