//! Inbox appends, and loading and committing a contact's record.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use std::collections::BTreeSet;

use crate::contact::ContactId;
use crate::ports::{
    Appended, Base, ContactRecord, InboxId, InboxItem, InboxStore, Loaded, StateStore, StoreError,
};

use super::record::{deflated, inflated};
use super::retired::{DIGEST_PREFIX, RETAINED_MAX, digest, digests_in};
use super::{
    DynamoStore, INBOX_PREFIX, INBOX_TTL_SECONDS, PK, SK, STATE_SK, TAG_PREFIX, TTL_ATTRIBUTE,
    contact_pk, is_condition_failure, json, n, number, s, text, to_json, unavailable,
};

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
        let mut retired: BTreeSet<&String> = BTreeSet::new();
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
            } else if sk.starts_with(DIGEST_PREFIX) {
                retired.extend(digests_in(item));
            }
        }
        inbox.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        // Keep only the processed keys whose items still exist: the rest expired. An item
        // known by a digest was processed and retired, and is a provider's retry.
        let (processed, pending): (Vec<_>, Vec<_>) = inbox.into_iter().partition(|(_, id, _)| {
            done.contains(&id.0) || (!retired.is_empty() && retired.contains(&digest(&id.0)))
        });
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
        // Only items a committed record marked processed are retired (`retired.rs`).
        let retiring = base.processed.len() > RETAINED_MAX;
        if retiring {
            self.put_digests(&pk, &base.processed).await?;
        }
        let kept = if retiring {
            &[][..]
        } else {
            &base.processed[..]
        };
        let processed: Vec<InboxId> = kept.iter().chain(consumed).cloned().collect();
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
        if retiring {
            self.delete_retired(&pk, &base.processed).await;
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
