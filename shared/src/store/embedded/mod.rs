//! The embedded store: one redb file holding contacts, inboxes, timers and workflows.
//! Every write is ACID and durable when it returns; concurrent writes share a commit
//! ([`GroupCommit`]), so one fsync serves many.

mod admin;
mod dedup_keys;
mod inbox;
mod ledger;
mod state;
mod stored_record;
mod tables;
mod timers;
mod workflows;

use redb::{Database, ReadableDatabase, ReadableTable};
use std::path::Path;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::ports::StoreError;

use super::group_commit::GroupCommit;
use super::timer_queue::TimerQueue;
use stored_record::StoredRecord;
use tables::{
    CONTACTS, DRAFTS, INBOX, LEDGER, META, PENDING, SEGMENTS, SETTINGS, TIMERS, WORKFLOWS,
};

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<GroupCommit>,
    timers: Arc<TimerQueue>,
    prune_cursor: dedup_keys::PruneCursor,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(corrupt)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(corrupt)
}

impl EmbeddedStore {
    /// Opens (or creates) the store file and prunes expired dedup keys.
    pub fn open(path: &Path, now: Timestamp) -> Result<EmbeddedStore, StoreError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                StoreError::Unavailable(format!("{} is in use by another process", path.display()))
            }
            other => unavailable(other),
        })?;
        let db = Arc::new(db);
        write_now(&db, |txn| {
            // Create every table up front so that readers never meet a missing one.
            txn.open_table(CONTACTS)?;
            txn.open_table(INBOX)?;
            txn.open_table(PENDING)?;
            txn.open_table(TIMERS)?;
            txn.open_table(WORKFLOWS)?;
            txn.open_table(LEDGER)?;
            txn.open_table(SEGMENTS)?;
            txn.open_table(DRAFTS)?;
            txn.open_table(SETTINGS)?;
            txn.open_table(META)?;
            dedup_keys::prune_all(txn, now)?;
            release_leases(txn)
        })?;
        let writer = Arc::new(GroupCommit::start(db.clone()).map_err(unavailable)?);
        let mut store = EmbeddedStore {
            db,
            writer,
            timers: Arc::default(),
            prune_cursor: Default::default(),
        };
        store.timers = Arc::new(TimerQueue::new(store.stored_timers()?));
        Ok(store)
    }

    /// The timers the store holds, by deadline.
    pub fn timer_queue(&self) -> &TimerQueue {
        &self.timers
    }

    /// Runs `f` in the next group commit; returns once it is durable.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.write(f).await
    }

    /// Runs a read on the caller's thread. Reads take microseconds on pages the OS has
    /// cached, less than a hop to tokio's blocking pool would cost.
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(unavailable)?;
        f(&txn)
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        unavailable(e)
    }
}
impl From<redb::TableError> for StoreError {
    fn from(e: redb::TableError) -> Self {
        unavailable(e)
    }
}
impl From<redb::StorageError> for StoreError {
    fn from(e: redb::StorageError) -> Self {
        unavailable(e)
    }
}

/// A write outside the group commit, before the writer starts.
fn write_now<T>(
    db: &Database,
    f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let txn = db.begin_write().map_err(unavailable)?;
    let out = f(&txn)?;
    txn.commit().map_err(unavailable)?;
    Ok(out)
}

/// Outbox leases left by a process that is gone. This process holds the file alone (redb
/// locks it), so every lease in it is stale: without this, a contact whose steps were
/// interrupted would wait for the lease to run out before anyone performed them.
fn release_leases(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let pending: Vec<String> = txn
        .open_table(PENDING)?
        .iter()?
        .map(|entry| entry.map(|(contact, _)| contact.value().to_string()))
        .collect::<Result<_, _>>()?;
    let mut contacts = txn.open_table(CONTACTS)?;
    for contact in pending {
        let stored = match contacts.get(contact.as_str())? {
            Some(bytes) => StoredRecord::decode(bytes.value())?,
            None => continue,
        };
        if stored.record.lease.is_none() {
            continue;
        }
        let mut record = stored.record;
        record.lease = None;
        let released = StoredRecord {
            version: stored.version + 1,
            record,
        };
        contacts.insert(contact.as_str(), released.encode()?.as_slice())?;
    }
    Ok(())
}
