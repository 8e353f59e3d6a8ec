//! Local one-shot timers: each armed timer is a row of the embedded store, which keeps
//! them in deadline order in memory too (rebuilt when the store opens), so a restart
//! loses no pending timeout; overdue ones are due at once. A question's timer is usually
//! armed by the store itself, in the commit that records the question sent
//! ([`crate::ports::StateStore::performs_in_commit`]); this port arms the rest.

use async_trait::async_trait;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::TimerRef;
use crate::ports::{TimerError, Timers};
use crate::store::{EmbeddedStore, TimerQueue};

pub struct LocalTimers {
    store: EmbeddedStore,
}

impl LocalTimers {
    pub fn new(store: EmbeddedStore) -> LocalTimers {
        LocalTimers { store }
    }

    /// Timers whose deadline is at or before `now`, earliest first. They stay queued
    /// until the store fired them ([`EmbeddedStore::fire_timers`]).
    pub fn due(&self, now: Timestamp) -> Vec<(ContactId, TimerRef)> {
        self.queue().due(now)
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.queue().next_deadline()
    }

    pub fn len(&self) -> usize {
        self.queue().len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }

    /// Resolves when a timer was armed since the last call.
    pub async fn changed(&self) {
        self.queue().changed().await
    }

    fn queue(&self) -> &TimerQueue {
        self.store.timer_queue()
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
            .map_err(unavailable)
    }

    async fn cancel(&self, contact: &ContactId, timer: TimerRef) -> Result<(), TimerError> {
        self.store
            .delete_timer(contact, timer)
            .await
            .map_err(unavailable)
    }
}
