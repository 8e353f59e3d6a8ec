//! What the admin API asks of the store: segments, erasure and drafts.

use async_trait::async_trait;
use redb::ReadableTable;

use crate::contact::ContactId;
use crate::ports::{AdminStore, ParkedContact, StoreError};

use super::tables::{CONTACTS, DRAFTS, INBOX, INBOX_KEYS, PENDING, SEGMENTS, TIMERS};
use super::{EmbeddedStore, decode, encode};

#[async_trait]
impl AdminStore for EmbeddedStore {
    /// None: the local runner keeps retrying a contact's effects (with backoff) until they
    /// go through, so it never parks one.
    async fn parked_page(
        &self,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<(Vec<ParkedContact>, Option<String>), StoreError> {
        Ok((Vec::new(), None))
    }

    async fn unpark(&self, _contact: &ContactId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn segment_page(
        &self,
        tag: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ContactId>, Option<String>), StoreError> {
        let (tag, after) = (tag.to_string(), after.map(str::to_string));
        self.read(|txn| {
            let segments = txn.open_table(SEGMENTS)?;
            let start = after.as_deref().unwrap_or("");
            let mut page = Vec::new();
            for entry in segments.range((tag.as_str(), start)..)? {
                let (key, _) = entry?;
                let (t, contact) = key.value();
                if t != tag {
                    break;
                }
                if after.as_deref() == Some(contact) {
                    continue;
                }
                if page.len() == limit {
                    let next = page.last().map(|c: &ContactId| c.to_string());
                    return Ok((page, next));
                }
                page.push(ContactId::from_stored(contact));
            }
            Ok((page, None))
        })
    }

    async fn erase(&self, contact: &ContactId) -> Result<bool, StoreError> {
        let erased = contact.clone();
        let existed = self
            .write(move |txn| {
                let c = erased.as_str();
                let existed = txn.open_table(CONTACTS)?.remove(c)?.is_some();
                txn.open_table(PENDING)?.remove(c)?;
                txn.open_table(INBOX)?.retain(|(owner, _), _| owner != c)?;
                txn.open_table(INBOX_KEYS)?
                    .retain(|(owner, _), _| owner != c)?;
                txn.open_table(TIMERS)?
                    .retain(|(owner, _, _), _| owner != c)?;
                txn.open_table(SEGMENTS)?
                    .retain(|(_, owner), _| owner != c)?;
                Ok(existed)
            })
            .await?;
        self.timers.erased(contact);
        Ok(existed)
    }

    async fn put_draft(
        &self,
        workflow_id: &str,
        definition: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let (id, bytes) = (workflow_id.to_string(), encode(definition)?);
        self.write(move |txn| {
            txn.open_table(DRAFTS)?
                .insert(id.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn drafts(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(DRAFTS)?.iter()? {
                let (id, bytes) = entry?;
                out.push((id.value().to_string(), decode(bytes.value())?));
            }
            Ok(out)
        })
    }
}
