//! The consent ledger: one entry per record, never pruned.

use async_trait::async_trait;
use redb::ReadableTable;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::ConsentRecord;
use crate::ports::{LedgerStore, StoreError};

use super::tables::LEDGER;
use super::{EmbeddedStore, decode, encode};

/// Writes a ledger record unless its seq is there: then it is the same record, written
/// before by an effect performed again.
pub(super) fn insert_record(
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
