//! Inbox appends (deduplicated by the provider's key) and what a commit does to the inbox.

use async_trait::async_trait;
use redb::ReadableTable;

use crate::contact::ContactId;
use crate::ports::{Appended, InboxId, InboxItem, InboxStore, StoreError};

use super::tables::{INBOX, INBOX_KEYS, META, PENDING};
use super::{EmbeddedStore, corrupt, encode};

#[async_trait]
impl InboxStore for EmbeddedStore {
    async fn append(&self, contact: &ContactId, item: InboxItem) -> Result<Appended, StoreError> {
        let contact = contact.clone();
        self.write(move |txn| append_in(txn, &contact, &item)).await
    }
}

/// Appends `item` to `contact`'s inbox inside `txn`, once per key.
pub(super) fn append_in(
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
pub(super) fn inbox_seqs(items: &[InboxId]) -> Result<Vec<u64>, StoreError> {
    items
        .iter()
        .map(|id| id.0.parse().map_err(corrupt))
        .collect()
}

/// Removes `seqs` from `contact`'s inbox inside `txn`; returns whether it is empty now.
pub(super) fn remove_from_inbox(
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
pub(super) fn mark_pending(
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
