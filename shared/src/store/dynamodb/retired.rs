//! Retiring processed inbox items, so that a contact who writes a lot does not make each
//! message cost more than the one before.
//!
//! A processed inbox item stays until its TTL, because its key is what turns a provider's
//! retry of the same message into a duplicate (Meta retries for up to 7 days). Kept as
//! they were, those items are read by every load of the contact, and their keys fill the
//! record's `done` set, which every commit writes: measured over the AWS wire, the 40th
//! message of a contact within the window cost 5 write and 8 read units, against 2 and 2
//! for the first, and a record would pass DynamoDB's 400 KB item limit after some
//! thousands of messages.
//!
//! So once a load finds more than [`RETAINED_MAX`] processed items, the commit retires
//! them: one `dedup#` item takes a digest of each key, the record's `done` set forgets
//! them, and the items are deleted. That is one write unit per message (the delete) and
//! a fraction for the digest item; a load then reads at most `RETAINED_MAX` processed
//! items and the digests (24 characters a message), whatever the contact wrote.
//!
//! A provider's retry of a retired message meets no item, so its inbox item is put again
//! (the webhook cannot tell), rings the step function, and the load finds its key among
//! the digests: it counts as processed and is never applied. Only keys that a committed
//! record already marked processed are retired, so a commit that loses its race retires
//! nothing that was not done; a digest written for such a commit only repeats keys.
//! Digests expire with the items they stand for.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

use super::{DynamoStore, INBOX_TTL_SECONDS, PK, SK, TTL_ATTRIBUTE, n, s, unavailable};
use crate::clock::{SystemClock, Timestamp};
use crate::ports::{Clock, InboxId, StoreError};

pub(super) const DIGEST_PREFIX: &str = "dedup#";
const KEYS: &str = "keys";

/// Processed inbox items a contact's partition holds before a commit retires them. Each
/// key in the record's `done` set is up to about 80 bytes (WhatsApp's message ids are
/// long): with eight, a record with an empty outbox is written for one or two units. A
/// consent conversation (hello, up to four answers) never gets there, and retiring at 4
/// to 8 cost the same over 40 messages (3.0 to 3.3 write units each, measured).
pub const RETAINED_MAX: usize = 8;

/// The digest an inbox item's sort key is known by once retired: 96 bits of its sha256,
/// in hex. A collision would take a new message for a retry; among the keys one contact
/// sends in a week, its odds are far below one in 10^18.
pub(super) fn digest(sk: &str) -> String {
    hex::encode(&Sha256::digest(sk.as_bytes())[..12])
}

/// The digests a `dedup#` item holds.
pub(super) fn digests_in(item: &HashMap<String, AttributeValue>) -> impl Iterator<Item = &String> {
    item.get(KEYS)
        .and_then(|v| v.as_ss().ok())
        .into_iter()
        .flatten()
}

impl DynamoStore {
    /// Writes the digest item for `items`, before the record that forgets them.
    pub(super) async fn put_digests(&self, pk: &str, items: &[InboxId]) -> Result<(), StoreError> {
        let now = SystemClock.now();
        let keys: BTreeSet<String> = items.iter().map(|id| digest(&id.0)).collect();
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(pk))
            .item(SK, s(digest_sk(now)))
            .item(KEYS, AttributeValue::Ss(keys.into_iter().collect()))
            // Every item it stands for was received before now, so expired before this.
            .item(TTL_ATTRIBUTE, n(now.millis() / 1000 + INBOX_TTL_SECONDS))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Deletes retired items once the record no longer names them. A failure leaves an
    /// item behind, still known by its digest, and a later retirement deletes it.
    pub(super) async fn delete_retired(&self, pk: &str, items: &[InboxId]) {
        for item in items {
            if let Err(e) = self.delete(pk, &item.0).await {
                tracing::warn!(error = %e, "could not delete a retired inbox item; a later commit will");
            }
        }
    }
}

/// A digest item's sort key: the time, and random bits, so that two executors retiring at
/// once never overwrite each other's digests.
fn digest_sk(now: Timestamp) -> String {
    let mut salt = [0u8; 6];
    // Without randomness the time alone still orders digests; a clash needs the same ms.
    let _ = getrandom::fill(&mut salt);
    format!("{DIGEST_PREFIX}{:013}#{}", now.millis(), hex::encode(salt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_short_and_stable() {
        let d = digest("in#msg:wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJCMTc4QjQA");
        assert_eq!(d.len(), 24);
        assert_eq!(
            d,
            digest("in#msg:wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJCMTc4QjQA")
        );
        assert_ne!(d, digest("in#msg:wamid.other"));
    }
}
