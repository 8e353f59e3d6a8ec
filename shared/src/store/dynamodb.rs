//! The DynamoDB store: one table, every item of a contact in one partition, so that one
//! Query loads the record, the inbox and the segment entries.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | record | `c#{contact}` | `state` | `version`, `record` (deflated JSON), `done` (string set of processed inbox sks) |
//! | inbox item | `c#{contact}` | `in#{dedup key}` | `item` (JSON), `at` (ms), `expires` (TTL) |
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
//! within the window still meets its key.

pub mod mailbox;
mod segments;
mod session_limit;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, Projection, ProjectionType, Put, ReturnConsumedCapacity,
    ReturnValue, ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
    TransactWriteItem,
};
use std::collections::{BTreeSet, HashMap};

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::ConsentRecord;
use crate::ports::{
    AdminStore, Appended, Base, ContactRecord, InboxId, InboxItem, InboxStore, LedgerStore, Loaded,
    ParkedContact, StateStore, StoreError, WorkflowStore,
};
use crate::workflow::{PublishedWorkflow, Workflow};
use segments::Cursor;
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

/// What parking a stream record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parking {
    /// Recorded in the contact's partition and on the parked list.
    Listed,
    /// The contact was erased meanwhile: nothing was written.
    Erased,
}

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

fn deflated(record: &ContactRecord) -> Result<AttributeValue, StoreError> {
    let json = to_json(record)?;
    let packed = miniz_oxide::deflate::compress_to_vec(json.as_bytes(), 6);
    Ok(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
        packed,
    )))
}

fn inflated(item: &HashMap<String, AttributeValue>) -> Result<ContactRecord, StoreError> {
    let packed = item
        .get("record")
        .and_then(|v| v.as_b().ok())
        .ok_or_else(|| StoreError::Corrupt("record without `record`".into()))?;
    // A record is far below DynamoDB's 400 KB item limit; refuse anything that inflates past it.
    let json = miniz_oxide::inflate::decompress_to_vec_with_limit(packed.as_ref(), 4 << 20)
        .map_err(|e| StoreError::Corrupt(format!("record does not inflate: {e:?}")))?;
    serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))
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

    /// Records a stream record that is given up on (its error is not retryable, or it
    /// kept failing), so that it stops blocking the shard and stays visible: in the
    /// contact's partition, and on the parked list the admin API reads.
    ///
    /// Both are written only while the contact's record exists, in one transaction with
    /// that check: erasure deletes the record first, so a contact erased while its step
    /// failed is not brought back onto the list (parking is rare, so the transaction's
    /// double price does not matter). A contact that never got a record is parked as long
    /// as its inbox holds something.
    pub async fn park(
        &self,
        contact: &ContactId,
        record_id: &str,
        error: &str,
        now: Timestamp,
    ) -> Result<Parking, StoreError> {
        let pk = contact_pk(contact);
        let items = [
            (pk.clone(), format!("{PARKED_PREFIX}{record_id}")),
            (PARKED_PK.to_string(), contact.to_string()),
        ]
        .map(|(pk, sk)| {
            HashMap::from([
                (PK.to_string(), s(pk)),
                (SK.to_string(), s(sk)),
                ("error".to_string(), s(error)),
                ("at".to_string(), n(now.millis())),
            ])
        });
        let invalid =
            |e: aws_sdk_dynamodb::error::BuildError| StoreError::Unavailable(e.to_string());
        let record_exists = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(STATE_SK))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(invalid)?;
        let mut writes = vec![
            TransactWriteItem::builder()
                .condition_check(record_exists)
                .build(),
        ];
        for item in &items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .build()
                .map_err(invalid)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => return Ok(Parking::Listed),
            Err(e) if is_cancelled_by_condition(&e) => {}
            Err(e) => return Err(unavailable(e)),
        }
        // No record: erased, or it never got one (its first step failed).
        let waiting = self
            .partition(&pk)
            .await?
            .iter()
            .any(|item| text(item, SK).is_ok_and(|sk| sk.starts_with(INBOX_PREFIX)));
        if !waiting {
            return Ok(Parking::Erased);
        }
        for item in items {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(Parking::Listed)
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

    /// The parked records of a contact: (stream record id, error).
    pub async fn parked(&self, contact: &ContactId) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .partition(&contact_pk(contact))
            .await?
            .iter()
            .filter_map(|item| {
                let id = text(item, SK)
                    .ok()?
                    .strip_prefix(PARKED_PREFIX)?
                    .to_string();
                Some((id, text(item, "error").ok()?.to_string()))
            })
            .collect())
    }

    async fn put_segment_entry(&self, contact: &ContactId, tag: &str) -> Result<(), StoreError> {
        let key = segments::index_key(tag, segments::shard_of(contact));
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(contact_pk(contact)))
            .item(SK, s(format!("{TAG_PREFIX}{tag}")))
            .item(SEGMENT_KEY, s(key))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete_segment_entry(&self, pk: &str, tag: &str) -> Result<(), StoreError> {
        self.delete(pk, &format!("{TAG_PREFIX}{tag}")).await
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

    /// Up to `limit` contacts of one shard of a segment, from `cursor`; and whether that
    /// shard may hold more.
    async fn segment_shard_page(
        &self,
        tag: &str,
        cursor: &Cursor,
        limit: usize,
    ) -> Result<(Vec<ContactId>, bool), StoreError> {
        let key = segments::index_key(tag, cursor.shard);
        let start = cursor.after.as_ref().map(|contact| {
            HashMap::from([
                (SEGMENT_KEY.to_string(), s(&key)),
                (PK.to_string(), s(contact_pk(contact))),
                (SK.to_string(), s(format!("{TAG_PREFIX}{tag}"))),
            ])
        });
        let page = self
            .query_page(Some(SEGMENT_INDEX), SEGMENT_KEY, key, start, limit)
            .await?;
        let contacts = page
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| text(item, PK).ok().and_then(contact_from_pk))
            .collect();
        Ok((contacts, page.last_evaluated_key.is_some()))
    }

    /// Creates the table as the infra template does (for tests and local emulators).
    pub async fn create_table(client: &Client, table: &str) -> Result<(), String> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| e.to_string())
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| e.to_string())
        };
        let segments = GlobalSecondaryIndex::builder()
            .index_name(SEGMENT_INDEX)
            .key_schema(key(SEGMENT_KEY, KeyType::Hash)?)
            .key_schema(key(PK, KeyType::Range)?)
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::KeysOnly)
                    .build(),
            )
            .build()
            .map_err(|e| e.to_string())?;
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .attribute_definitions(attribute(SEGMENT_KEY)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .global_secondary_indexes(segments)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewImage)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(TTL_ATTRIBUTE)
                    .build()
                    .map_err(|e| e.to_string())?,
            )
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        Ok(())
    }
}

#[async_trait]
impl InboxStore for DynamoStore {
    async fn append(&self, contact: &ContactId, item: InboxItem) -> Result<Appended, StoreError> {
        let expires = item.received_at.millis() / 1000 + INBOX_TTL_SECONDS;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(contact_pk(contact)))
            .item(SK, s(format!("{INBOX_PREFIX}{}", item.key)))
            .item("item", s(to_json(&item)?))
            .item("at", n(item.received_at.millis()))
            .item(TTL_ATTRIBUTE, n(expires))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Appended::New),
            Err(e) if is_condition_failure(&e) => Ok(Appended::Duplicate),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[async_trait]
impl StateStore for DynamoStore {
    async fn load(&self, contact: &ContactId) -> Result<Loaded, StoreError> {
        let items = self.partition(&contact_pk(contact)).await?;
        let mut record = None;
        let mut base = Base::default();
        let mut done: BTreeSet<String> = BTreeSet::new();
        let mut inbox: Vec<(i64, InboxId, InboxItem)> = Vec::new();
        for item in &items {
            let sk = text(item, SK)?;
            if sk == STATE_SK {
                base.version = u64::try_from(number(item, "version")?).unwrap_or(0);
                record = Some(inflated(item)?);
                if let Some(AttributeValue::Ss(keys)) = item.get("done") {
                    done = keys.iter().cloned().collect();
                }
            } else if let Some(tag) = sk.strip_prefix(TAG_PREFIX) {
                base.indexed_tags.insert(tag.to_string());
            } else if sk.starts_with(INBOX_PREFIX) {
                let entry: InboxItem = json(text(item, "item")?)?;
                inbox.push((number(item, "at")?, InboxId(sk.to_string()), entry));
            }
        }
        inbox.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        // Keep only the processed keys whose items still exist: the rest expired.
        let (processed, pending): (Vec<_>, Vec<_>) = inbox
            .into_iter()
            .partition(|(_, id, _)| done.contains(&id.0));
        base.processed = processed.into_iter().map(|(_, id, _)| id).collect();
        let inbox = pending
            .into_iter()
            .map(|(_, id, item)| (id, item))
            .collect();
        Ok(Loaded {
            record,
            base,
            inbox,
        })
    }

    async fn commit(
        &self,
        contact: &ContactId,
        record: &ContactRecord,
        base: &Base,
        consumed: &[InboxId],
    ) -> Result<Base, StoreError> {
        let pk = contact_pk(contact);
        let wanted = &record.state.profile.tags;
        // Segment entries leave before the record says so and arrive after, so that a
        // segment never lists a contact whose record does not carry the tag.
        for gone in base.indexed_tags.difference(wanted) {
            self.delete_segment_entry(&pk, gone).await?;
        }
        let processed: Vec<InboxId> = base.processed.iter().chain(consumed).cloned().collect();
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(STATE_SK))
            .item("version", n(base.version + 1))
            .item("record", deflated(record)?)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        if !processed.is_empty() {
            put = put.item(
                "done",
                AttributeValue::Ss(processed.iter().map(|id| id.0.clone()).collect()),
            );
        }
        put = if base.version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(base.version))
        };
        match put.send().await {
            Ok(_) => {}
            Err(e) if is_condition_failure(&e) => return Err(StoreError::Conflict),
            Err(e) => return Err(unavailable(e)),
        }
        for added in wanted.difference(&base.indexed_tags) {
            self.put_segment_entry(contact, added).await?;
        }
        Ok(Base {
            version: base.version + 1,
            processed,
            indexed_tags: wanted.clone(),
        })
    }

    async fn discard(&self, contact: &ContactId, items: &[InboxId]) -> Result<(), StoreError> {
        let pk = contact_pk(contact);
        for item in items {
            self.delete(&pk, &item.0).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl AdminStore for DynamoStore {
    /// Reads the tag's index keys one after another, so a page may span shards; the
    /// cursor says which shard to go on in and after which contact.
    async fn segment_page(
        &self,
        tag: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ContactId>, Option<String>), StoreError> {
        let limit = limit.max(1);
        let mut cursor = after.map_or(Cursor::START, Cursor::decode);
        let mut contacts: Vec<ContactId> = Vec::new();
        loop {
            let (found, more) = self
                .segment_shard_page(tag, &cursor, limit - contacts.len())
                .await?;
            contacts.extend(found);
            cursor = match contacts.last() {
                Some(last) if more => Cursor {
                    shard: cursor.shard,
                    after: Some(last.clone()),
                },
                _ if cursor.shard + 1 < segments::SHARDS => Cursor {
                    shard: cursor.shard + 1,
                    after: None,
                },
                _ => return Ok((contacts, None)),
            };
            if contacts.len() >= limit {
                return Ok((contacts, Some(cursor.encode())));
            }
        }
    }

    async fn erase(&self, contact: &ContactId) -> Result<bool, StoreError> {
        let pk = contact_pk(contact);
        // The record first: a step parked from now on finds no record and writes nothing
        // (`park`), and one parked before is in the listing below.
        let existed = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(STATE_SK))
            .return_values(ReturnValue::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?
            .attributes
            .is_some();
        for item in self.partition(&pk).await? {
            let sk = text(&item, SK)?;
            if sk.starts_with(LEDGER_PREFIX) {
                continue; // kept: docs/privacy.md says why
            }
            self.delete(&pk, sk).await?;
        }
        self.unpark(contact).await?;
        if let Some(visitor) = web_visitor(contact) {
            self.delete_mailbox(visitor).await?;
        }
        Ok(existed)
    }

    async fn parked_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ParkedContact>, Option<String>), StoreError> {
        let start = after.map(|contact| {
            HashMap::from([(PK.to_string(), s(PARKED_PK)), (SK.to_string(), s(contact))])
        });
        let page = self
            .query_page(None, PK, PARKED_PK.into(), start, limit)
            .await?;
        let parked = page
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Ok(ParkedContact {
                    contact: ContactId::from_stored(text(item, SK)?),
                    at: Timestamp(number(item, "at")?),
                    error: text(item, "error")?.to_string(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let next = page
            .last_evaluated_key
            .as_ref()
            .and_then(|key| key.get(SK))
            .and_then(|sk| sk.as_s().ok())
            .cloned();
        Ok((parked, next))
    }

    async fn unpark(&self, contact: &ContactId) -> Result<(), StoreError> {
        self.delete(PARKED_PK, contact.as_str()).await
    }

    async fn put_draft(
        &self,
        workflow_id: &str,
        definition: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(DRAFTS_PK))
            .item(SK, s(workflow_id))
            .item("definition", s(definition.to_string()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn drafts(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.partition(DRAFTS_PK)
            .await?
            .iter()
            .map(|item| {
                Ok((
                    text(item, SK)?.to_string(),
                    json(text(item, "definition")?)?,
                ))
            })
            .collect()
    }
}

#[async_trait]
impl LedgerStore for DynamoStore {
    async fn append_record(
        &self,
        contact: &ContactId,
        record: &ConsentRecord,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(contact_pk(contact)))
            .item(SK, s(format!("{LEDGER_PREFIX}{:010}", record.seq)))
            .item("record", s(to_json(record)?))
            .item("at", n(record.recorded_at.millis()))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            // Already written by an earlier try of the same committed effect.
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn records(&self, contact: &ContactId) -> Result<Vec<ConsentRecord>, StoreError> {
        self.partition(&contact_pk(contact))
            .await?
            .iter()
            .filter(|item| text(item, SK).is_ok_and(|sk| sk.starts_with(LEDGER_PREFIX)))
            .map(|item| json(text(item, "record")?))
            .collect()
    }

    /// A filtered Scan: exports and reports are rare, and a time index would cost a write
    /// per record for ever.
    async fn records_since(&self, since: Timestamp) -> Result<Vec<ConsentRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(sk, :ledger) AND #at >= :since")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":ledger", s(LEDGER_PREFIX))
                .expression_attribute_values(":since", n(since.millis()))
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                out.push(json(text(&item, "record")?)?);
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }
}

#[async_trait]
impl WorkflowStore for DynamoStore {
    async fn publish(
        &self,
        workflow: &Workflow,
        now: Timestamp,
    ) -> Result<PublishedWorkflow, StoreError> {
        let latest = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :id)")
            .expression_attribute_values(":pk", s(WORKFLOWS_PK))
            .expression_attribute_values(":id", s(format!("{}#v", workflow.id)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        let latest: Option<PublishedWorkflow> = match latest.items.unwrap_or_default().first() {
            Some(item) => Some(json(text(item, "published")?)?),
            None => None,
        };
        let digest = workflow.digest();
        if let Some(latest) = latest.as_ref().filter(|l| l.digest == digest) {
            return Ok(latest.clone());
        }
        let published = PublishedWorkflow {
            id: workflow.id.clone(),
            version: latest.map_or(1, |l| l.version + 1),
            published_at: now,
            digest,
            definition: workflow.to_value(),
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(WORKFLOWS_PK))
            .item(
                SK,
                s(format!("{}#v{:010}", published.id, published.version)),
            )
            .item("published", s(to_json(&published)?))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => Ok(published),
            // Someone published the same version number first: try again on top of it.
            Err(e) if is_condition_failure(&e) => Err(StoreError::Conflict),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn set_active(&self, id: &str, version: u32) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(SETTINGS_PK))
            .item(SK, s("active_workflow"))
            .item("id", s(id))
            .item("version", n(version))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn active(&self) -> Result<Option<(String, u32)>, StoreError> {
        let items = self.partition(SETTINGS_PK).await?;
        let Some(item) = items
            .iter()
            .find(|i| text(i, SK).is_ok_and(|sk| sk == "active_workflow"))
        else {
            return Ok(None);
        };
        let version = u32::try_from(number(item, "version")?)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some((text(item, "id")?.to_string(), version)))
    }

    async fn published(&self) -> Result<Vec<PublishedWorkflow>, StoreError> {
        self.partition(WORKFLOWS_PK)
            .await?
            .iter()
            .map(|item| json(text(item, "published")?))
            .collect()
    }
}
