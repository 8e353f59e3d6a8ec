//! Published workflow versions and the active one.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use crate::clock::Timestamp;
use crate::ports::{StoreError, WorkflowStore};
use crate::workflow::{PublishedWorkflow, Workflow};

use super::{
    DynamoStore, PK, SETTINGS_PK, SK, WORKFLOWS_PK, is_condition_failure, json, n, number, s, text,
    to_json, unavailable,
};

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
