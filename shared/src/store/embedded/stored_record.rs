//! A contact's record as the `contacts` table holds it.

use crate::ports::{ContactRecord, StoreError};

use super::{corrupt, decode};

/// A contact's record as stored: the version as 8 big-endian bytes, then the record's
/// JSON, so that a commit checks the version without decoding the record. (Files written
/// before held `{"version": n, "record": ...}`; those still read.)
pub(super) struct StoredRecord {
    pub(super) version: u64,
    pub(super) record: ContactRecord,
}

#[derive(serde::Deserialize)]
struct LegacyRecord {
    version: u64,
    record: ContactRecord,
}

impl StoredRecord {
    pub(super) fn encode(&self) -> Result<Vec<u8>, StoreError> {
        let mut bytes = self.version.to_be_bytes().to_vec();
        serde_json::to_writer(&mut bytes, &self.record).map_err(corrupt)?;
        Ok(bytes)
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<StoredRecord, StoreError> {
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

pub(super) fn version_of(bytes: &[u8]) -> Result<u64, StoreError> {
    if bytes.first() == Some(&b'{') {
        return StoredRecord::decode(bytes).map(|s| s.version);
    }
    let prefix: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("a stored record shorter than its version"))?;
    Ok(u64::from_be_bytes(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::ContactId;

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
}
