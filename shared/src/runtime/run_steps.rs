//! Applies a contact's unprocessed inbox through the engine, commits, then performs the
//! recorded effects. The doorbell (stream or local queue) only says "look at this contact".

use crate::contact::ContactId;
use crate::engine::{self, ContactState};
use crate::ports::{InboxId, StoreError};

use super::{Runtime, RuntimeError, log_transition};

/// A commit lost to a concurrent executor is retried this often before giving up.
const MAX_CONFLICTS: u32 = 8;

/// What one call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepsRun {
    pub events_applied: usize,
    pub effects_performed: usize,
}

impl Runtime {
    pub async fn run_steps(&self, contact: &ContactId) -> Result<StepsRun, RuntimeError> {
        for _ in 0..MAX_CONFLICTS {
            let loaded = self.store.load(contact).await?;
            let outbox_empty = loaded.state.as_ref().is_none_or(|s| s.outbox.is_empty());
            if loaded.inbox.is_empty() && outbox_empty {
                return Ok(StepsRun::default());
            }
            let mut state = loaded
                .state
                .unwrap_or_else(|| ContactState::new(contact.clone()));
            let catalog = self.catalog();
            let now = self.clock.now();
            let consumed: Vec<InboxId> = loaded.inbox.iter().map(|(id, _)| id.clone()).collect();
            for (_, item) in &loaded.inbox {
                let applied = engine::apply(&mut state, &item.event, now, &catalog);
                log_transition(contact, &item.event, &applied.transition);
                state.outbox.extend(applied.effects);
            }
            let version = match self
                .store
                .commit(contact, &state, loaded.version, &consumed)
                .await
            {
                Ok(version) => version,
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            };
            let effects_performed = self
                .perform_outbox(contact, state, version, &catalog)
                .await?;
            return Ok(StepsRun {
                events_applied: consumed.len(),
                effects_performed,
            });
        }
        Err(RuntimeError::Contended(MAX_CONFLICTS))
    }
}
