//! The embedded store: one redb file holding contacts, inboxes, timers and workflows.
//! Every write is ACID and durable when it returns; concurrent writes share a commit
//! ([`GroupCommit`]), so one fsync serves many.

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::{ArmTimer, ConsentRecord, Effect, TimerRef};
use crate::ports::{
    AdminStore, Appended, Base, ContactRecord, InboxId, InboxItem, InboxStore, LedgerStore, Loaded,
    ParkedContact, StateStore, StoreError, WorkflowStore,
};
use crate::workflow::{PublishedWorkflow, Workflow};

use super::group_commit::GroupCommit;
use super::timer_queue::TimerQueue;

/// contact id -> `{"version": n, "record": ContactRecord}`
const CONTACTS: TableDefinition<&str, &[u8]> = TableDefinition::new("contacts");
/// (contact id, arrival seq) -> InboxItem
const INBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("inbox");
/// (contact id, dedup key) -> received_at ms. Outlives the inbox item, so that a provider
/// retry days later is still recognised; pruned after [`DEDUP_RETENTION_MS`].
const INBOX_KEYS: TableDefinition<(&str, &str), i64> = TableDefinition::new("inbox_keys");
/// contact id -> 1, while the contact has inbox items or outbox effects left.
const PENDING: TableDefinition<&str, u8> = TableDefinition::new("pending");
/// (contact id, run, wait seq) -> deadline ms
const TIMERS: TableDefinition<(&str, u64, u64), i64> = TableDefinition::new("timers");
/// (workflow id, version) -> PublishedWorkflow
const WORKFLOWS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("workflows");
/// (tag, contact id) -> 1: the segment index, kept in step with the records at commit.
const SEGMENTS: TableDefinition<(&str, &str), u8> = TableDefinition::new("segments");
/// workflow id -> draft definition (JSON)
const DRAFTS: TableDefinition<&str, &[u8]> = TableDefinition::new("drafts");
/// (contact id, seq) -> ConsentRecord. Never pruned.
const LEDGER: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("ledger");
/// settings: the active workflow, as JSON `[id, version]` under [`ACTIVE_KEY`]
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
const ACTIVE_KEY: &str = "active_workflow";
/// counters: "inbox_seq"
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Meta retries an undelivered webhook for up to 7 days.
pub const DEDUP_RETENTION_MS: i64 = 7 * 24 * 3600 * 1000;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<GroupCommit>,
    timers: Arc<TimerQueue>,
}

/// A contact's record as stored: the version as 8 big-endian bytes, then the record's
/// JSON, so that a commit checks the version without decoding the record. (Files written
/// before held `{"version": n, "record": ...}`; those still read.)
struct StoredRecord {
    version: u64,
    record: ContactRecord,
}

#[derive(serde::Deserialize)]
struct LegacyRecord {
    version: u64,
    record: ContactRecord,
}

impl StoredRecord {
    fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let mut bytes = self.version.to_be_bytes().to_vec();
        serde_json::to_writer(&mut bytes, &self.record).map_err(corrupt)?;
        Ok(bytes)
    }

    fn decode(bytes: &[u8]) -> Result<StoredRecord, StoreError> {
        if bytes.first() == Some(&b'{') {
            let legacy: LegacyRecord = decode(bytes)?;
            return Ok(StoredRecord {
                version: legacy.version,
                record: legacy.record,
            });
        }
        Ok(StoredRecord {
            version: version_of(bytes)?,
            record: decode(bytes.get(8..).unwrap_or_default())?,
        })
    }
}

fn version_of(bytes: &[u8]) -> Result<u64, StoreError> {
    if bytes.first() == Some(&b'{') {
        return StoredRecord::decode(bytes).map(|s| s.version);
    }
    let prefix: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("a stored record shorter than its version"))?;
    Ok(u64::from_be_bytes(prefix))
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
            let mut keys = txn.open_table(INBOX_KEYS)?;
            let cutoff = now.millis() - DEDUP_RETENTION_MS;
            keys.retain(|_, received_at| received_at >= cutoff)?;
            release_leases(txn)
        })?;
        let writer = Arc::new(GroupCommit::start(db.clone()).map_err(unavailable)?);
        let mut store = EmbeddedStore {
            db,
            writer,
            timers: Arc::default(),
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
    fn stored_timers(&self) -> Result<Vec<(ContactId, TimerRef, Timestamp)>, StoreError> {
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

#[async_trait]
impl InboxStore for EmbeddedStore {
    async fn append(&self, contact: &ContactId, item: InboxItem) -> Result<Appended, StoreError> {
        let contact = contact.clone();
        self.write(move |txn| append_in(txn, &contact, &item)).await
    }
}

/// Appends `item` to `contact`'s inbox inside `txn`, once per key.
fn append_in(
    txn: &redb::WriteTransaction,
    contact: &ContactId,
    item: &InboxItem,
) -> Result<Appended, StoreError> {
    let mut keys = txn.open_table(INBOX_KEYS)?;
    if keys.get((contact.as_str(), item.key.as_str()))?.is_some() {
        return Ok(Appended::Duplicate);
    }
    keys.insert(
        (contact.as_str(), item.key.as_str()),
        item.received_at.millis(),
    )?;
    let mut meta = txn.open_table(META)?;
    let seq = meta.get("inbox_seq")?.map(|v| v.value()).unwrap_or(0) + 1;
    meta.insert("inbox_seq", seq)?;
    txn.open_table(INBOX)?
        .insert((contact.as_str(), seq), encode(item)?.as_slice())?;
    mark_pending(txn, contact, true)?;
    Ok(Appended::New)
}

/// The inbox sequence numbers `items` name (the embedded store's inbox ids).
fn inbox_seqs(items: &[InboxId]) -> Result<Vec<u64>, StoreError> {
    items
        .iter()
        .map(|id| id.0.parse().map_err(corrupt))
        .collect()
}

/// Removes `seqs` from `contact`'s inbox inside `txn`; returns whether it is empty now.
fn remove_from_inbox(
    txn: &redb::WriteTransaction,
    contact: &ContactId,
    seqs: Vec<u64>,
) -> Result<bool, StoreError> {
    let c = contact.as_str();
    let mut inbox = txn.open_table(INBOX)?;
    for seq in seqs {
        inbox.remove((c, seq))?;
    }
    Ok(inbox.range((c, 0)..=(c, u64::MAX))?.next().is_none())
}

/// Records whether `contact` has work left (inbox items or outbox effects), writing only
/// when that changes: an unchanged B-tree stays clean, and a commit writes fewer pages.
fn mark_pending(
    txn: &redb::WriteTransaction,
    contact: &ContactId,
    pending: bool,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(PENDING)?;
    let marked = table.get(contact.as_str())?.is_some();
    if pending && !marked {
        table.insert(contact.as_str(), 1)?;
    } else if !pending && marked {
        table.remove(contact.as_str())?;
    }
    Ok(())
}

impl EmbeddedStore {
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

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn load(&self, contact: &ContactId) -> Result<Loaded, StoreError> {
        let contact = contact.clone();
        self.read(|txn| {
            let stored = match txn.open_table(CONTACTS)?.get(contact.as_str())? {
                Some(bytes) => Some(StoredRecord::decode(bytes.value())?),
                None => None,
            };
            let table = txn.open_table(INBOX)?;
            let mut inbox = Vec::new();
            for entry in table.range((contact.as_str(), 0)..=(contact.as_str(), u64::MAX))? {
                let (key, bytes) = entry?;
                inbox.push((InboxId(key.value().1.to_string()), decode(bytes.value())?));
            }
            // Consumed items are deleted at commit: nothing processed is still held.
            let (record, version) = match stored {
                Some(s) => (Some(s.record), s.version),
                None => (None, 0),
            };
            let base = Base {
                version,
                indexed_tags: record
                    .as_ref()
                    .map(|r: &ContactRecord| r.state.profile.tags.clone())
                    .unwrap_or_default(),
                ..Base::default()
            };
            Ok(Loaded {
                record,
                base,
                inbox,
            })
        })
    }

    async fn commit(
        &self,
        contact: &ContactId,
        record: &ContactRecord,
        base: &Base,
        consumed: &[InboxId],
    ) -> Result<Base, StoreError> {
        let contact = contact.clone();
        let expected = base.version;
        let (stored, effects) = InCommit::split(record)?;
        let outbox_empty = stored.outbox.is_empty();
        let bytes = StoredRecord {
            version: expected + 1,
            record: stored,
        }
        .encode()?;
        let new_tags = record.state.profile.tags.clone();
        // The tags the segment index holds: those of the record at `expected`, which the
        // version check below makes sure is what is stored.
        let old_tags = base.indexed_tags.clone();
        let consumed = inbox_seqs(consumed)?;
        self.write(move |txn| {
            let mut contacts = txn.open_table(CONTACTS)?;
            let current = match contacts.get(contact.as_str())? {
                Some(bytes) => version_of(bytes.value())?,
                None => 0,
            };
            if current != expected {
                return Err(StoreError::Conflict);
            }
            if old_tags != new_tags {
                let mut segments = txn.open_table(SEGMENTS)?;
                for gone in old_tags.difference(&new_tags) {
                    segments.remove((gone.as_str(), contact.as_str()))?;
                }
                for added in new_tags.difference(&old_tags) {
                    segments.insert((added.as_str(), contact.as_str()), 1)?;
                }
            }
            contacts.insert(contact.as_str(), bytes.as_slice())?;
            let inbox_empty = remove_from_inbox(txn, &contact, consumed)?;
            mark_pending(txn, &contact, !(inbox_empty && outbox_empty))?;
            effects.write(txn, &contact)?;
            let base = Base {
                version: expected + 1,
                indexed_tags: new_tags,
                ..Base::default()
            };
            Ok((base, contact, effects))
        })
        .await
        .map(|(base, contact, effects)| {
            effects.update(&self.timers, &contact);
            base
        })
    }

    async fn discard(&self, contact: &ContactId, items: &[InboxId]) -> Result<(), StoreError> {
        let contact = contact.clone();
        let seqs = inbox_seqs(items)?;
        self.write(move |txn| {
            let inbox_empty = remove_from_inbox(txn, &contact, seqs)?;
            // A record committed meanwhile keeps its own pending mark.
            let has_record = txn.open_table(CONTACTS)?.get(contact.as_str())?.is_some();
            if inbox_empty && !has_record {
                mark_pending(txn, &contact, false)?;
            }
            Ok(())
        })
        .await
    }

    fn performs_in_commit(&self, effect: &Effect) -> bool {
        match effect {
            Effect::Record(_) | Effect::CancelTimer(_) => true,
            // Its deadline is known: the question it times was handed over.
            Effect::ArmTimer(arm) => arm.starts_at.is_some(),
            Effect::Send { .. } => false,
        }
    }
}

/// The outbox effects a commit performs in its own transaction: the ledger and the
/// timers are tables of this file.
#[derive(Default)]
struct InCommit {
    /// (seq, encoded record)
    records: Vec<(u64, Vec<u8>)>,
    armed: Vec<(TimerRef, Timestamp)>,
    cancelled: Vec<TimerRef>,
}

impl InCommit {
    /// The record as stored (without these effects in its outbox), and the effects.
    fn split(record: &ContactRecord) -> Result<(ContactRecord, InCommit), StoreError> {
        let mut stored = record.clone();
        let mut effects = InCommit::default();
        let mut kept = Vec::with_capacity(stored.outbox.len());
        for entry in stored.outbox {
            match &entry.effect {
                Effect::Record(consent) => effects.records.push((consent.seq, encode(consent)?)),
                Effect::CancelTimer(timer) => effects.cancelled.push(*timer),
                Effect::ArmTimer(
                    arm @ ArmTimer {
                        starts_at: Some(start),
                        ..
                    },
                ) => effects.armed.push((arm.timer, arm.deadline(*start))),
                _ => kept.push(entry),
            }
        }
        stored.outbox = kept;
        Ok((stored, effects))
    }

    fn write(&self, txn: &redb::WriteTransaction, contact: &ContactId) -> Result<(), StoreError> {
        if !self.records.is_empty() {
            let mut ledger = txn.open_table(LEDGER)?;
            for (seq, bytes) in &self.records {
                insert_record(&mut ledger, contact, *seq, bytes)?;
            }
        }
        if !self.armed.is_empty() || !self.cancelled.is_empty() {
            let mut timers = txn.open_table(TIMERS)?;
            for timer in &self.cancelled {
                timers.remove((contact.as_str(), timer.run, timer.wait_seq))?;
            }
            for (timer, deadline) in &self.armed {
                timers.insert(
                    (contact.as_str(), timer.run, timer.wait_seq),
                    deadline.millis(),
                )?;
            }
        }
        Ok(())
    }

    /// After the commit is durable: the in-memory queue follows the table.
    fn update(&self, queue: &TimerQueue, contact: &ContactId) {
        let cancelled: Vec<_> = self
            .cancelled
            .iter()
            .map(|t| (contact.clone(), *t))
            .collect();
        queue.removed(&cancelled);
        for (timer, deadline) in &self.armed {
            queue.armed(contact, *timer, *deadline);
        }
    }
}

impl EmbeddedStore {
    /// Contacts with inbox items or outbox effects left over (after a crash or a stop).
    pub async fn contacts_with_pending_work(&self) -> Result<Vec<ContactId>, StoreError> {
        self.read(|txn| {
            let pending = txn.open_table(PENDING)?;
            let mut out = Vec::new();
            for entry in pending.iter()? {
                out.push(ContactId::from_stored(entry?.0.value()));
            }
            Ok(out)
        })
    }
}

#[async_trait]
impl AdminStore for EmbeddedStore {
    /// None: the local runner keeps retrying a contact's effects (with backoff) until they
    /// go through, so it never parks one.
    async fn parked_page(
        &self,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<(Vec<ParkedContact>, Option<String>), StoreError> {
        Ok((Vec::new(), None))
    }

    async fn unpark(&self, _contact: &ContactId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn segment_page(
        &self,
        tag: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ContactId>, Option<String>), StoreError> {
        let (tag, after) = (tag.to_string(), after.map(str::to_string));
        self.read(|txn| {
            let segments = txn.open_table(SEGMENTS)?;
            let start = after.as_deref().unwrap_or("");
            let mut page = Vec::new();
            for entry in segments.range((tag.as_str(), start)..)? {
                let (key, _) = entry?;
                let (t, contact) = key.value();
                if t != tag {
                    break;
                }
                if after.as_deref() == Some(contact) {
                    continue;
                }
                if page.len() == limit {
                    let next = page.last().map(|c: &ContactId| c.to_string());
                    return Ok((page, next));
                }
                page.push(ContactId::from_stored(contact));
            }
            Ok((page, None))
        })
    }

    async fn erase(&self, contact: &ContactId) -> Result<bool, StoreError> {
        let erased = contact.clone();
        let existed = self
            .write(move |txn| {
                let c = erased.as_str();
                let existed = txn.open_table(CONTACTS)?.remove(c)?.is_some();
                txn.open_table(PENDING)?.remove(c)?;
                txn.open_table(INBOX)?.retain(|(owner, _), _| owner != c)?;
                txn.open_table(INBOX_KEYS)?
                    .retain(|(owner, _), _| owner != c)?;
                txn.open_table(TIMERS)?
                    .retain(|(owner, _, _), _| owner != c)?;
                txn.open_table(SEGMENTS)?
                    .retain(|(_, owner), _| owner != c)?;
                Ok(existed)
            })
            .await?;
        self.timers.erased(contact);
        Ok(existed)
    }

    async fn put_draft(
        &self,
        workflow_id: &str,
        definition: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let (id, bytes) = (workflow_id.to_string(), encode(definition)?);
        self.write(move |txn| {
            txn.open_table(DRAFTS)?
                .insert(id.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    async fn drafts(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.read(|txn| {
            let mut out = Vec::new();
            for entry in txn.open_table(DRAFTS)?.iter()? {
                let (id, bytes) = entry?;
                out.push((id.value().to_string(), decode(bytes.value())?));
            }
            Ok(out)
        })
    }
}

/// Writes a ledger record unless its seq is there: then it is the same record, written
/// before by an effect performed again.
fn insert_record(
    ledger: &mut redb::Table<(&str, u64), &[u8]>,
    contact: &ContactId,
    seq: u64,
    bytes: &[u8],
) -> Result<(), StoreError> {
    if ledger.get((contact.as_str(), seq))?.is_none() {
        ledger.insert((contact.as_str(), seq), bytes)?;
    }
    Ok(())
}

#[async_trait]
impl LedgerStore for EmbeddedStore {
    async fn append_record(
        &self,
        contact: &ContactId,
        record: &ConsentRecord,
    ) -> Result<(), StoreError> {
        let contact = contact.clone();
        let seq = record.seq;
        let bytes = encode(record)?;
        self.write(move |txn| insert_record(&mut txn.open_table(LEDGER)?, &contact, seq, &bytes))
            .await
    }

    async fn records(&self, contact: &ContactId) -> Result<Vec<ConsentRecord>, StoreError> {
        let contact = contact.clone();
        self.read(|txn| {
            let ledger = txn.open_table(LEDGER)?;
            let mut out = Vec::new();
            for entry in ledger.range((contact.as_str(), 0)..=(contact.as_str(), u64::MAX))? {
                out.push(decode(entry?.1.value())?);
            }
            Ok(out)
        })
    }

    async fn records_since(&self, since: Timestamp) -> Result<Vec<ConsentRecord>, StoreError> {
        self.read(|txn| {
            let ledger = txn.open_table(LEDGER)?;
            let mut out = Vec::new();
            for entry in ledger.iter()? {
                let record: ConsentRecord = decode(entry?.1.value())?;
                if record.recorded_at >= since {
                    out.push(record);
                }
            }
            Ok(out)
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_in_the_earlier_format_still_read() {
        let record = ContactRecord::new(ContactId::new("whatsapp", "1"));
        let legacy = serde_json::json!({"version": 7, "record": record}).to_string();
        let read = StoredRecord::decode(legacy.as_bytes()).unwrap();
        assert_eq!((read.version, read.record), (7, record.clone()));
        assert_eq!(version_of(legacy.as_bytes()).unwrap(), 7);
        let current = StoredRecord {
            version: 8,
            record: record.clone(),
        }
        .encode()
        .unwrap();
        assert_eq!(version_of(&current).unwrap(), 8);
        assert_eq!(StoredRecord::decode(&current).unwrap().record, record);
        assert!(version_of(b"\0\0").is_err());
    }

    fn consent(contact: &ContactId) -> ConsentRecord {
        ConsentRecord {
            seq: 1,
            kind: crate::engine::ConsentKind::Asked,
            contact: contact.clone(),
            channel: "whatsapp".into(),
            channel_user: "1".into(),
            workflow_id: Some("w".into()),
            workflow_version: Some(1),
            run: Some(1),
            question: Some("Agree?".into()),
            options: vec!["AGREE".into()],
            policy_url: None,
            policy_version: None,
            provider_message_id: None,
            payload: None,
            text: None,
            requested_by: None,
            provider_at: None,
            recorded_at: Timestamp(1_000),
            prev_hash: String::new(),
            hash: "h".into(),
        }
    }

    #[tokio::test]
    async fn a_commit_writes_the_outboxs_ledger_records_and_timers_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), Timestamp(0)).unwrap();
        let contact = ContactId::new("whatsapp", "1");
        let (answered, next, pause) = (
            TimerRef {
                run: 1,
                wait_seq: 1,
            },
            TimerRef {
                run: 1,
                wait_seq: 2,
            },
            TimerRef {
                run: 1,
                wait_seq: 3,
            },
        );
        store
            .put_timer(&contact, answered, Timestamp(5_000))
            .await
            .unwrap();
        let send = Effect::Send {
            run: 1,
            to: crate::contact::Address {
                channel: "whatsapp".into(),
                user_id: "1".into(),
                via: None,
            },
            message: crate::engine::OutboundMessage::Text { text: "hi".into() },
            then_arm: None,
        };
        // A pause's clock starts when it is armed: the runtime arms it, not the commit.
        let unstarted = Effect::ArmTimer(ArmTimer {
            timer: pause,
            after_seconds: 60,
            starts_at: None,
        });
        let mut record = ContactRecord::new(contact.clone());
        record.record(vec![
            Effect::CancelTimer(answered),
            send.clone(),
            Effect::Record(Box::new(consent(&contact))),
            Effect::ArmTimer(ArmTimer {
                timer: next,
                after_seconds: 300,
                starts_at: Some(Timestamp(1_000)),
            }),
            unstarted.clone(),
        ]);
        let kept: Vec<Effect> = record
            .outbox
            .iter()
            .filter(|e| !store.performs_in_commit(&e.effect))
            .map(|e| e.effect.clone())
            .collect();
        assert_eq!(kept, vec![send, unstarted]);

        store
            .commit(&contact, &record, &Base::default(), &[])
            .await
            .unwrap();
        let stored = store.load(&contact).await.unwrap().record.unwrap();
        let stored: Vec<Effect> = stored.outbox.into_iter().map(|e| e.effect).collect();
        assert_eq!(stored, kept);
        assert_eq!(
            store.records(&contact).await.unwrap(),
            vec![consent(&contact)]
        );
        let timers = vec![(contact.clone(), next, Timestamp(301_000))];
        assert_eq!(store.stored_timers().unwrap(), timers);
        assert_eq!(
            store.timer_queue().due(Timestamp(i64::MAX)),
            vec![(contact, next)]
        );
    }

    #[tokio::test]
    async fn a_conflicting_commit_writes_none_of_its_effects() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), Timestamp(0)).unwrap();
        let contact = ContactId::new("whatsapp", "1");
        let mut record = ContactRecord::new(contact.clone());
        record.record(vec![Effect::Record(Box::new(consent(&contact)))]);
        let stale = Base {
            version: 3,
            ..Base::default()
        };
        let result = store.commit(&contact, &record, &stale, &[]).await;
        assert!(matches!(result, Err(StoreError::Conflict)));
        assert!(store.records(&contact).await.unwrap().is_empty());
    }
}
