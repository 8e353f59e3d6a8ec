//! Timers (a question's timeout, a wait step's end): each persisted in the `timers` table
//! and mirrored in the in-memory [`TimerQueue`](crate::store::TimerQueue) that the local
//! timer loop reads.

use redb::ReadableTable;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::TimerRef;
use crate::ports::{Appended, InboxItem, StoreError};

use super::EmbeddedStore;
use super::inbox::append_in;
use super::tables::TIMERS;

impl EmbeddedStore {
    pub async fn put_timer(
        &self,
        contact: &ContactId,
        timer: TimerRef,
        deadline: Timestamp,
    ) -> Result<(), StoreError> {
        let contact = contact.clone();
        self.write(move |txn| {
            let mut timers = txn.open_table(TIMERS)?;
            timers.insert(
                (contact.as_str(), timer.run, timer.wait_seq),
                deadline.millis(),
            )?;
            Ok(contact)
        })
        .await
        .map(|contact| self.timers.armed(&contact, timer, deadline))
    }

    pub async fn delete_timer(
        &self,
        contact: &ContactId,
        timer: TimerRef,
    ) -> Result<(), StoreError> {
        let contact = contact.clone();
        self.write(move |txn| {
            let mut timers = txn.open_table(TIMERS)?;
            timers.remove((contact.as_str(), timer.run, timer.wait_seq))?;
            Ok(contact)
        })
        .await
        .map(|contact| self.timers.removed(&[(contact, timer)]))
    }

    /// Every persisted timer, to rebuild the queue at open.
    pub(super) fn stored_timers(
        &self,
    ) -> Result<Vec<(ContactId, TimerRef, Timestamp)>, StoreError> {
        self.read(|txn| {
            let timers = txn.open_table(TIMERS)?;
            let mut out = Vec::new();
            for entry in timers.iter()? {
                let (key, deadline) = entry?;
                let (contact, run, wait_seq) = key.value();
                out.push((
                    ContactId::from_stored(contact),
                    TimerRef { run, wait_seq },
                    Timestamp(deadline.value()),
                ));
            }
            Ok(out)
        })
    }

    /// Fires `due` timers in one transaction: each timer still stored is removed and its
    /// timeout queued; one no longer stored (cancelled, or its contact erased) is skipped.
    /// Returns the contacts that got a timeout, and the queue no longer holds `due`. One
    /// commit for any number of timers keeps timeouts on time when many come due together.
    pub async fn fire_timers(
        &self,
        due: &[(ContactId, TimerRef)],
        now: Timestamp,
    ) -> Result<Vec<ContactId>, StoreError> {
        let batch = due.to_vec();
        let fired = self
            .write(move |txn| {
                let mut fired = Vec::new();
                for (contact, timer) in &batch {
                    let removed = txn
                        .open_table(TIMERS)?
                        .remove((contact.as_str(), timer.run, timer.wait_seq))?
                        .is_some();
                    if removed
                        && append_in(txn, contact, &InboxItem::timeout(*timer, now))?
                            == Appended::New
                    {
                        fired.push(contact.clone());
                    }
                }
                Ok(fired)
            })
            .await?;
        self.timers.removed(due);
        Ok(fired)
    }
}
