use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::Catalog;
use crate::workflow::{PublishedWorkflow, Workflow};

use super::{Runtime, RuntimeError};

impl Runtime {
    /// Publishes `workflow` as a new immutable version (a no-op when the latest version
    /// has the same content) and makes it what new conversations start, for every host
    /// (the active version is kept in the store). Runs already under way stay on the
    /// version they started with.
    pub async fn publish_and_activate(
        &self,
        workflow: &Workflow,
    ) -> Result<PublishedWorkflow, RuntimeError> {
        let published = self.store.publish(workflow, self.clock.now()).await?;
        self.store
            .set_active(&published.id, published.version)
            .await?;
        self.load_catalog().await?;
        Ok(published)
    }

    /// Loads every published version and the active one from the store. Returns whether
    /// a workflow is active.
    pub async fn load_catalog(&self) -> Result<bool, RuntimeError> {
        let active = self.store.active().await?;
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
        if let Some((id, version)) = &active {
            catalog.activate(id, *version);
        }
        let catalog = Arc::new(catalog);
        match self.catalog.write() {
            Ok(mut c) => *c = catalog,
            Err(poisoned) => *poisoned.into_inner() = catalog,
        }
        if let Ok(mut at) = self.catalog_loaded_at.lock() {
            *at = Some(Instant::now());
        }
        Ok(active.is_some())
    }

    /// Reloads the catalog if it is older than `max_age`, so that a long-lived host (a
    /// warm Lambda) picks up versions another host published.
    pub async fn refresh_catalog(&self, max_age: Duration) -> Result<(), RuntimeError> {
        let stale = self
            .catalog_loaded_at
            .lock()
            .map(|at| at.is_none_or(|at| at.elapsed() >= max_age))
            .unwrap_or(true);
        if stale {
            self.load_catalog().await?;
        }
        Ok(())
    }
}
