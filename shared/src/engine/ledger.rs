//! The consent ledger: one append-only record per decision point, each chained to the
//! contact's previous record by sha256, so that a verifier can recompute the chain and any
//! edit, insertion or removal shows.
//!
//! Canonical encoding (what is hashed): the record as compact JSON with its keys sorted
//! and the `hash` field left out. `hash = hex(sha256(canonical))`; the first record's
//! `prev_hash` is 64 zeros.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Timestamp;
use crate::contact::ContactId;

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    Asked,
    Accepted,
    /// A valid answer that is not the accepting option.
    Declined,
    InvalidAnswer,
    TimedOut,
    DeliveryFailed,
    Withdrawn,
}

/// One decision, with who, what, how and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// 1, 2, 3… per contact.
    pub seq: u64,
    pub kind: ConsentKind,
    // who
    pub contact: ContactId,
    pub channel: String,
    pub channel_user: String,
    // what
    pub workflow_id: Option<String>,
    pub workflow_version: Option<u32>,
    pub run: Option<u64>,
    pub question: Option<String>,
    pub options: Vec<String>,
    pub policy_url: Option<String>,
    pub policy_version: Option<String>,
    // how
    pub provider_message_id: Option<String>,
    pub payload: Option<String>,
    pub text: Option<String>,
    /// Who asked for a withdrawal made through the admin API.
    pub requested_by: Option<String>,
    // when
    pub provider_at: Option<Timestamp>,
    pub recorded_at: Timestamp,
    // chain
    pub prev_hash: String,
    pub hash: String,
}

/// Where a contact's chain stands: the last record's seq and hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHead {
    pub seq: u64,
    pub hash: String,
}

impl ConsentRecord {
    /// The bytes the hash covers.
    pub fn canonical(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.remove("hash");
        }
        // serde_json's map keeps keys sorted, so this is the sorted-key compact form.
        value.to_string()
    }

    pub fn computed_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }

    /// Gives the record its place in the chain after `head`, and moves `head` on.
    pub fn chain(mut self, head: &mut LedgerHead) -> ConsentRecord {
        self.seq = head.seq + 1;
        self.prev_hash = if head.hash.is_empty() {
            GENESIS.to_string()
        } else {
            head.hash.clone()
        };
        self.hash = self.computed_hash();
        head.seq = self.seq;
        head.hash = self.hash.clone();
        self
    }
}

/// Where a chain is broken, if it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub seq: u64,
    pub reason: &'static str,
}

/// Recomputes a contact's chain (records in any order). `Ok` when every record's hash is
/// its own, each links to the one before, and none is missing.
pub fn verify(records: &[ConsentRecord]) -> Result<(), ChainBreak> {
    let mut sorted: Vec<&ConsentRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.seq);
    let mut prev = GENESIS.to_string();
    for (i, record) in sorted.iter().enumerate() {
        let brk = |reason| {
            Err(ChainBreak {
                seq: record.seq,
                reason,
            })
        };
        if record.seq != i as u64 + 1 {
            return brk("a record is missing before this one");
        }
        if record.prev_hash != prev {
            return brk("does not link to the record before it");
        }
        if record.computed_hash() != record.hash {
            return brk("its content does not match its hash");
        }
        prev = record.hash.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: ConsentKind, head: &mut LedgerHead) -> ConsentRecord {
        ConsentRecord {
            seq: 0,
            kind,
            contact: ContactId::new("whatsapp", "1"),
            channel: "whatsapp".into(),
            channel_user: "1".into(),
            workflow_id: Some("w".into()),
            workflow_version: Some(1),
            run: Some(1),
            question: Some("Agree?".into()),
            options: vec!["AGREE".into()],
            policy_url: Some("https://example.com/p".into()),
            policy_version: None,
            provider_message_id: Some("wamid.1".into()),
            payload: None,
            text: None,
            requested_by: None,
            provider_at: None,
            recorded_at: Timestamp(1),
            prev_hash: String::new(),
            hash: String::new(),
        }
        .chain(head)
    }

    #[test]
    fn a_chain_verifies_and_every_kind_of_tampering_shows() {
        let mut head = LedgerHead::default();
        let chain = vec![
            record(ConsentKind::Asked, &mut head),
            record(ConsentKind::Accepted, &mut head),
            record(ConsentKind::Withdrawn, &mut head),
        ];
        assert_eq!(chain[0].prev_hash, GENESIS);
        assert_eq!(chain[1].prev_hash, chain[0].hash);
        assert_eq!(verify(&chain), Ok(()));

        let mut edited = chain.clone();
        edited[1].kind = ConsentKind::Declined;
        assert_eq!(verify(&edited).unwrap_err().seq, 2);

        let mut rehashed = edited.clone();
        rehashed[1].hash = rehashed[1].computed_hash(); // a forger recomputes one hash…
        assert_eq!(
            verify(&rehashed).unwrap_err().seq,
            3,
            "…and the next link breaks"
        );

        let removed = vec![chain[0].clone(), chain[2].clone()];
        assert_eq!(verify(&removed).unwrap_err().seq, 3);
    }
}
