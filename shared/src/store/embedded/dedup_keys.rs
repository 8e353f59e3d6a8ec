//! Forgetting the dedup keys of messages received before the retention window while the
//! store runs. Every accepted message leaves its key (about 100 bytes with its B-tree
//! share) so that a provider's retry is recognised; opening the store prunes them, but a
//! runner that is never restarted would otherwise keep every key it ever saw.
//!
//! The keys are ordered by contact, not by time, so a pass reads at most `budget` of them
//! from where the last pass stopped, removes the expired ones, and the next pass goes on
//! from there; after the last key it starts again from the first. A pass runs in the
//! store's writer like any write, so a small budget keeps it from holding up commits.

use redb::ReadableTable;
use std::sync::{Arc, Mutex};

use crate::clock::Timestamp;
use crate::ports::StoreError;

use super::EmbeddedStore;
use super::tables::{DEDUP_RETENTION_MS, INBOX_KEYS};

/// Whether a key received at `received_at` (ms) is past the retention window at `now`.
fn is_expired(received_at: i64, now: Timestamp) -> bool {
    received_at < now.millis() - DEDUP_RETENTION_MS
}

/// Removes every expired key, in one go: when the store opens, before anything else runs.
pub(super) fn prune_all(txn: &redb::WriteTransaction, now: Timestamp) -> Result<(), StoreError> {
    txn.open_table(INBOX_KEYS)?
        .retain(|_, received_at| !is_expired(received_at, now))?;
    Ok(())
}

/// Where the next pass starts: the first key it has not read yet, as (contact, key).
#[derive(Clone, Default)]
pub(super) struct PruneCursor(Arc<Mutex<Option<(String, String)>>>);

impl EmbeddedStore {
    /// Reads up to `budget` dedup keys from where the last call stopped and removes those
    /// of messages received before the retention window at `now`. Returns how many it
    /// removed.
    pub async fn prune_dedup_keys(
        &self,
        now: Timestamp,
        budget: usize,
    ) -> Result<usize, StoreError> {
        let cursor = self.prune_cursor.clone();
        self.write(move |txn| {
            let mut keys = txn.open_table(INBOX_KEYS)?;
            let start = cursor.0.lock().unwrap_or_else(|p| p.into_inner()).take();
            let mut expired = Vec::new();
            let mut next = None;
            let range = match &start {
                Some((contact, key)) => keys.range((contact.as_str(), key.as_str())..)?,
                None => keys.range::<(&str, &str)>(..)?,
            };
            for (read, entry) in range.enumerate() {
                let (k, received_at) = entry?;
                let (contact, key) = k.value();
                if read == budget {
                    next = Some((contact.to_string(), key.to_string()));
                    break;
                }
                if is_expired(received_at.value(), now) {
                    expired.push((contact.to_string(), key.to_string()));
                }
            }
            for (contact, key) in &expired {
                keys.remove((contact.as_str(), key.as_str()))?;
            }
            *cursor.0.lock().unwrap_or_else(|p| p.into_inner()) = next;
            Ok(expired.len())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::ContactId;
    use crate::engine::Event;
    use crate::ports::{Appended, InboxItem, InboxStore};

    const DAY_MS: i64 = 24 * 3600 * 1000;

    fn item(key: &str, received_at: Timestamp) -> InboxItem {
        InboxItem {
            key: key.into(),
            received_at,
            event: Event::Resume {
                requested_by: "test".into(),
            },
        }
    }

    #[tokio::test]
    async fn expired_keys_are_forgotten_a_slice_at_a_time_and_recent_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Timestamp(1_750_000_000_000);
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), t0).unwrap();
        let contacts: Vec<ContactId> = (0..3)
            .map(|i| ContactId::new("whatsapp", &format!("4915100000{i}")))
            .collect();
        // An hour past the retention of the keys received at t0, a day within it for the
        // recent ones.
        let now = Timestamp(t0.millis() + DEDUP_RETENTION_MS + 3_600_000);
        let recent = Timestamp(now.millis() - DAY_MS);
        for c in &contacts {
            for key in ["msg:a", "msg:b"] {
                assert_eq!(store.append(c, item(key, t0)).await.unwrap(), Appended::New);
            }
            let fresh = item("msg:fresh", recent);
            assert_eq!(store.append(c, fresh).await.unwrap(), Appended::New);
        }

        // The six old keys go, two reads at a time, in a round over all nine keys; the
        // recent ones stay.
        let mut removed = Vec::new();
        for _ in 0..5 {
            removed.push(store.prune_dedup_keys(now, 2).await.unwrap());
        }
        assert!(removed.iter().all(|&n| n <= 2), "{removed:?}");
        assert_eq!(removed.iter().sum::<usize>(), 6, "{removed:?}");
        for c in &contacts {
            let again = store.append(c, item("msg:a", now)).await.unwrap();
            assert_eq!(again, Appended::New, "an expired key is forgotten");
            let retry = store.append(c, item("msg:fresh", now)).await.unwrap();
            assert_eq!(retry, Appended::Duplicate, "a recent key is kept");
        }
        // The next round starts from the first key again and finds nothing more to do.
        let mut more = 0;
        for _ in 0..5 {
            more += store.prune_dedup_keys(now, 2).await.unwrap();
        }
        assert_eq!(more, 0);
    }
}
