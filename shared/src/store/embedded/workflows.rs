//! Published workflow versions and the active one.

use async_trait::async_trait;
use redb::ReadableTable;

use crate::clock::Timestamp;
use crate::ports::{StoreError, WorkflowStore};
use crate::workflow::{PublishedWorkflow, Workflow};

use super::tables::{ACTIVE_KEY, SETTINGS, WORKFLOWS};
use super::{EmbeddedStore, decode, encode};

#[async_trait]
impl WorkflowStore for EmbeddedStore {
    async fn publish(
        &self,
        workflow: &Workflow,
        now: Timestamp,
    ) -> Result<PublishedWorkflow, StoreError> {
        let id = workflow.id.clone();
        let digest = workflow.digest();
        let definition = workflow.to_value();
        self.write(move |txn| {
            let mut table = txn.open_table(WORKFLOWS)?;
            let latest: Option<PublishedWorkflow> = match table
                .range((id.as_str(), 0)..=(id.as_str(), u32::MAX))?
                .next_back()
            {
                Some(entry) => Some(decode(entry?.1.value())?),
                None => None,
            };
            if let Some(latest) = latest.as_ref().filter(|l| l.digest == digest) {
                return Ok(latest.clone());
            }
            let published = PublishedWorkflow {
                id: id.clone(),
                version: latest.map_or(1, |l| l.version + 1),
                published_at: now,
                digest,
                definition,
            };
            table.insert(
                (id.as_str(), published.version),
                encode(&published)?.as_slice(),
            )?;
            Ok(published)
        })
        .await
    }

    async fn set_active(&self, id: &str, version: u32) -> Result<(), StoreError> {
        let bytes = encode(&(id, version))?;
        self.write(move |txn| {
            txn.open_table(SETTINGS)?
                .insert(ACTIVE_KEY, bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn active(&self) -> Result<Option<(String, u32)>, StoreError> {
        self.read(|txn| match txn.open_table(SETTINGS)?.get(ACTIVE_KEY)? {
            Some(bytes) => Ok(Some(decode(bytes.value())?)),
            None => Ok(None),
        })
    }

    async fn published(&self) -> Result<Vec<PublishedWorkflow>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(WORKFLOWS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                out.push(decode(entry?.1.value())?);
            }
            Ok(out)
        })
    }
}
