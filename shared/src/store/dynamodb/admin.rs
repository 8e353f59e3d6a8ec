//! What the admin API asks of the store: segments, erasure, the parked list and drafts.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValue};
use std::collections::HashMap;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::ports::{AdminStore, ParkedContact, StoreError};

use super::segments::{self, Cursor};
use super::{
    DRAFTS_PK, DynamoStore, LEDGER_PREFIX, PARKED_PK, PK, SK, STATE_SK, contact_pk, json, number,
    s, text, unavailable, web_visitor,
};

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
