//! How segment entries spread over the segment index. An index key takes about 1,000
//! writes a second, and every contact that accepts gets the same tag, so one tag's entries
//! are spread over [`SHARDS`] keys by a hash of the contact: up to 16 times that rate.
//! Shard 0's key is the bare tag, which is what entries written before the spreading use,
//! so those stay listed. The other keys add a unit separator, a control character no tag
//! may contain (`workflow/steps/update_contact_tag.rs`), so two tags never share a key.
//!
//! A contact's entry lives in its own partition (`tag#{tag}`), so that loading the contact
//! reads which tags the index holds for it.

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

use crate::contact::ContactId;
use crate::ports::StoreError;

use super::{
    DynamoStore, PK, SEGMENT_INDEX, SEGMENT_KEY, SK, TAG_PREFIX, contact_from_pk, contact_pk, s,
    text, unavailable,
};

pub const SHARDS: u32 = 16;

/// Between a tag and its shard number in an index key.
const SEPARATOR: char = '\u{1f}';

/// Between the shard and the contact in a page cursor.
const CURSOR_SEPARATOR: char = '~';

pub fn shard_of(contact: &ContactId) -> u32 {
    let digest = Sha256::digest(contact.as_str().as_bytes());
    u32::from(digest[0]) % SHARDS
}

/// The index key of shard `shard` of `tag`.
pub fn index_key(tag: &str, shard: u32) -> String {
    match shard {
        0 => tag.to_string(),
        n => format!("{tag}{SEPARATOR}{n}"),
    }
}

/// Where a segment page starts: a shard, after a contact in it or from its start.
#[derive(Debug, PartialEq, Eq)]
pub struct Cursor {
    pub shard: u32,
    pub after: Option<ContactId>,
}

impl Cursor {
    pub const START: Cursor = Cursor {
        shard: 0,
        after: None,
    };

    /// A cursor as [`Cursor::encode`] wrote it. A bare contact id (the cursor before the
    /// index was spread) reads as a place in shard 0; anything else starts over.
    pub fn decode(raw: &str) -> Cursor {
        if let Some((shard, contact)) = raw.split_once(CURSOR_SEPARATOR)
            && let Ok(shard) = shard.parse::<u32>()
        {
            if shard >= SHARDS {
                return Cursor::START;
            }
            let after = (!contact.is_empty()).then(|| ContactId::from_stored(contact));
            return Cursor { shard, after };
        }
        Cursor {
            shard: 0,
            after: (!raw.is_empty()).then(|| ContactId::from_stored(raw)),
        }
    }

    pub fn encode(&self) -> String {
        let contact = self.after.as_ref().map_or("", ContactId::as_str);
        format!("{}{CURSOR_SEPARATOR}{contact}", self.shard)
    }
}

impl DynamoStore {
    pub(super) async fn put_segment_entry(
        &self,
        contact: &ContactId,
        tag: &str,
    ) -> Result<(), StoreError> {
        let key = index_key(tag, shard_of(contact));
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(contact_pk(contact)))
            .item(SK, s(format!("{TAG_PREFIX}{tag}")))
            .item(SEGMENT_KEY, s(key))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub(super) async fn delete_segment_entry(&self, pk: &str, tag: &str) -> Result<(), StoreError> {
        self.delete(pk, &format!("{TAG_PREFIX}{tag}")).await
    }

    /// Up to `limit` contacts of one shard of a segment, from `cursor`; and whether that
    /// shard may hold more.
    pub(super) async fn segment_shard_page(
        &self,
        tag: &str,
        cursor: &Cursor,
        limit: usize,
    ) -> Result<(Vec<ContactId>, bool), StoreError> {
        let key = index_key(tag, cursor.shard);
        let start = cursor.after.as_ref().map(|contact| {
            HashMap::from([
                (SEGMENT_KEY.to_string(), s(&key)),
                (PK.to_string(), s(contact_pk(contact))),
                (SK.to_string(), s(format!("{TAG_PREFIX}{tag}"))),
            ])
        });
        let page = self
            .query_page(Some(SEGMENT_INDEX), SEGMENT_KEY, key, start, limit)
            .await?;
        let contacts = page
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| text(item, PK).ok().and_then(contact_from_pk))
            .collect();
        Ok((contacts, page.last_evaluated_key.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_spread_over_every_shard() {
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..1000 {
            seen.insert(shard_of(&ContactId::new(
                "whatsapp",
                &format!("4915{n:08}"),
            )));
        }
        assert_eq!(seen.len(), SHARDS as usize);
    }

    #[test]
    fn shard_zero_is_the_bare_tag_and_no_two_tags_share_a_key() {
        assert_eq!(index_key("Consent: Privacy", 0), "Consent: Privacy");
        let keys: std::collections::BTreeSet<String> = ["VIP", "VIP 1", "VIP1"]
            .iter()
            .flat_map(|tag| (0..SHARDS).map(move |s| index_key(tag, s)))
            .collect();
        assert_eq!(keys.len(), 3 * SHARDS as usize);
    }

    #[test]
    fn cursors_round_trip_and_old_ones_still_read() {
        let c = ContactId::new("whatsapp", "4915");
        for cursor in [
            Cursor {
                shard: 3,
                after: Some(c.clone()),
            },
            Cursor {
                shard: 7,
                after: None,
            },
        ] {
            assert_eq!(Cursor::decode(&cursor.encode()), cursor);
        }
        assert_eq!(
            Cursor::decode("whatsapp:4915"),
            Cursor {
                shard: 0,
                after: Some(c)
            }
        );
        assert_eq!(Cursor::decode("99~whatsapp:1"), Cursor::START);
    }
}
