use std::sync::Arc;

use crate::engine::Catalog;
use crate::workflow::{PublishedWorkflow, Workflow};

use super::{Runtime, RuntimeError};

impl Runtime {
    /// Publishes `workflow` as a new immutable version (a no-op when the latest version
    /// has the same content) and makes it what new conversations start. Runs already
    /// under way stay on the version they started with.
    pub async fn publish_and_activate(
        &self,
        workflow: &Workflow,
    ) -> Result<PublishedWorkflow, RuntimeError> {
        let published = self.store.publish(workflow, self.clock.now()).await?;
        self.reload_catalog(&published.id, published.version)
            .await?;
        Ok(published)
    }

    /// Loads every published version into memory and activates `id`@`version`.
    pub async fn reload_catalog(&self, id: &str, version: u32) -> Result<(), RuntimeError> {
        let mut catalog = Catalog::default();
        for published in self.store.published().await? {
            match published.workflow() {
                Ok(workflow) => catalog.insert(published.version, workflow),
                Err(problems) => tracing::warn!(
                    workflow = %published.id, version = published.version, %problems,
                    "a stored version no longer loads; its runs will end as definition_missing"
                ),
            }
        }
        catalog.activate(id, version);
        let catalog = Arc::new(catalog);
        match self.catalog.write() {
            Ok(mut c) => *c = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
        Ok(())
    }
}
