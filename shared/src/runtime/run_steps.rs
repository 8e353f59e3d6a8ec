//! Applies a contact's unprocessed inbox through the engine, commits, then performs the
//! recorded effects. The doorbell (stream or local queue) only says "look at this contact".

use std::time::Duration;

use crate::contact::ContactId;
use crate::engine;
use crate::ports::{ContactRecord, InboxId, Lease, StoreError};

use super::{Runtime, RuntimeError, log_transition};

/// A commit lost to a concurrent executor is retried this often before giving up.
const MAX_CONFLICTS: u32 = 8;

/// How long an executor may take to perform an outbox before another may take it over
/// (it crashed or stalled). Longer than a send's tries (3 x 10 s timeout, plus backoff).
pub const LEASE: Duration = Duration::from_secs(45);

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
            if loaded.record.is_none()
                && loaded.inbox.iter().all(|(_, i)| i.event.follows_a_record())
            {
                // A schedule that was pending, or a status report, for an erased contact:
                // a record made for it would hold the contact's id again.
                let leftovers: Vec<InboxId> = loaded.inbox.into_iter().map(|(id, _)| id).collect();
                if !leftovers.is_empty() {
                    self.store.discard(contact, &leftovers).await?;
                }
                return Ok(StepsRun::default());
            }
            let mut record = loaded
                .record
                .unwrap_or_else(|| ContactRecord::new(contact.clone()));
            if loaded.inbox.is_empty() && record.outbox.is_empty() {
                return Ok(StepsRun::default());
            }
            let catalog = self.catalog();
            let now = self.clock.now();
            let consumed: Vec<InboxId> = loaded.inbox.iter().map(|(id, _)| id.clone()).collect();
            for (_, item) in &loaded.inbox {
                let event = record.resolve(&item.event);
                let applied = engine::apply(&mut record.state, &event, now, &catalog);
                log_transition(contact, &event, &applied.transition);
                record.record(applied.effects);
            }
            let holds_lease = self.take_lease(&mut record);
            if !holds_lease && consumed.is_empty() {
                // Nothing new to record, and another executor is performing the outbox.
                return Err(RuntimeError::Busy);
            }
            let base = match self
                .store
                .commit(contact, &record, &loaded.base, &consumed)
                .await
            {
                Ok(base) => base,
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            };
            // The store performed these in the commit (ledger records, timers).
            record
                .outbox
                .retain(|entry| !self.store.performs_in_commit(&entry.effect));
            if !holds_lease {
                // Another executor is performing this contact's outbox, and performs what
                // was just added to it before it lets go. Report busy, so that a host whose
                // doorbell is a retried stream record comes back if that executor died.
                return Err(RuntimeError::Busy);
            }
            if record.outbox.is_empty() && record.lease.is_none() {
                // An event that decided nothing to perform (a message after the consent,
                // say): the commit above is final, and another one would only cost a write.
                return Ok(StepsRun {
                    events_applied: consumed.len(),
                    effects_performed: 0,
                });
            }
            let effects_performed = self.perform_outbox(contact, record, base, &catalog).await?;
            return Ok(StepsRun {
                events_applied: consumed.len(),
                effects_performed,
            });
        }
        Err(RuntimeError::Contended(MAX_CONFLICTS))
    }

    /// Takes (or renews) the outbox lease unless another executor holds a live one.
    /// An empty outbox needs no lease.
    pub(super) fn take_lease(&self, record: &mut ContactRecord) -> bool {
        if record.outbox.is_empty() {
            return true;
        }
        let now = self.clock.now();
        let free = match &record.lease {
            None => true,
            Some(lease) => lease.owner == self.executor || lease.until <= now,
        };
        if free {
            record.lease = Some(Lease {
                owner: self.executor.clone(),
                until: now.plus(LEASE),
            });
        }
        free
    }
}
