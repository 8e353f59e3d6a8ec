//! Local one-shot timers: each armed timer is written to the embedded store first, then
//! kept in an in-memory queue ordered by deadline. At start the queue is rebuilt from the
//! store, so a restart loses no pending timeout; overdue ones are due at once.

use async_trait::async_trait;
use std::collections::BTreeSet;
use std::sync::Mutex;
use tokio::sync::Notify;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::TimerRef;
use crate::ports::{TimerError, Timers};
use crate::store::EmbeddedStore;

type Entry = (Timestamp, ContactId, TimerRef);

pub struct LocalTimers {
    store: EmbeddedStore,
    queue: Mutex<BTreeSet<Entry>>,
    /// Woken when a timer is armed, so the firing loop can re-check its next deadline.
    changed: Notify,
}

impl LocalTimers {
    /// Rebuilds the queue from what the store holds.
    pub async fn restore(store: EmbeddedStore) -> Result<LocalTimers, TimerError> {
        let persisted = store.timers().await.map_err(unavailable)?;
        let queue = persisted
            .into_iter()
            .map(|(contact, timer, deadline)| (deadline, contact, timer))
            .collect();
        Ok(LocalTimers {
            store,
            queue: Mutex::new(queue),
            changed: Notify::new(),
        })
    }

    /// Timers whose deadline is at or before `now`, earliest first. They stay queued
    /// until [`LocalTimers::fired`] says their timeout is safely in the inbox.
    pub fn due(&self, now: Timestamp) -> Vec<(ContactId, TimerRef)> {
        self.lock()
            .iter()
            .take_while(|(deadline, _, _)| *deadline <= now)
            .map(|(_, contact, timer)| (contact.clone(), *timer))
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.lock().first().map(|(deadline, _, _)| *deadline)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when a timer was armed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// The store no longer holds these timers (fired, or erased with their contact):
    /// drop them from the queue.
    pub fn forget(&self, gone: &[(ContactId, TimerRef)]) {
        self.lock()
            .retain(|(_, c, t)| !gone.iter().any(|(gc, gt)| gc == c && gt == t));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Entry>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn unavailable(e: impl std::fmt::Display) -> TimerError {
    TimerError::Unavailable(e.to_string())
}

#[async_trait]
impl Timers for LocalTimers {
    async fn arm(
        &self,
        contact: &ContactId,
        timer: TimerRef,
        deadline: Timestamp,
    ) -> Result<(), TimerError> {
        self.store
            .put_timer(contact, timer, deadline)
            .await
            .map_err(unavailable)?;
        {
            let mut queue = self.lock();
            queue.retain(|(_, c, t)| !(c == contact && *t == timer));
            queue.insert((deadline, contact.clone(), timer));
        }
        self.changed.notify_one();
        Ok(())
    }

    async fn cancel(&self, contact: &ContactId, timer: TimerRef) -> Result<(), TimerError> {
        self.store
            .delete_timer(contact, timer)
            .await
            .map_err(unavailable)?;
        self.lock()
            .retain(|(_, c, t)| !(c == contact && *t == timer));
        Ok(())
    }
}
