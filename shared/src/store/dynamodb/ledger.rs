//! The consent ledger: one item per record in the contact's partition, never expiring.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::ConsentRecord;
use crate::ports::{LedgerStore, StoreError};

use super::{
    DynamoStore, LEDGER_PREFIX, PK, SK, contact_pk, is_condition_failure, json, n, s, text,
    to_json, unavailable,
};

#[async_trait]
impl LedgerStore for DynamoStore {
    async fn append_record(
        &self,
        contact: &ContactId,
        record: &ConsentRecord,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(contact_pk(contact)))
            .item(SK, s(format!("{LEDGER_PREFIX}{:010}", record.seq)))
            .item("record", s(to_json(record)?))
            .item("at", n(record.recorded_at.millis()))
            .condition_expression("attribute_not_exists(pk)")
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            // Already written by an earlier try of the same committed effect.
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn records(&self, contact: &ContactId) -> Result<Vec<ConsentRecord>, StoreError> {
        self.partition(&contact_pk(contact))
            .await?
            .iter()
            .filter(|item| text(item, SK).is_ok_and(|sk| sk.starts_with(LEDGER_PREFIX)))
            .map(|item| json(text(item, "record")?))
            .collect()
    }

    /// A filtered Scan: exports and reports are rare, and a time index would cost a write
    /// per record for ever.
    async fn records_since(&self, since: Timestamp) -> Result<Vec<ConsentRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(sk, :ledger) AND #at >= :since")
                .expression_attribute_names("#at", "at")
                .expression_attribute_values(":ledger", s(LEDGER_PREFIX))
                .expression_attribute_values(":since", n(since.millis()))
                .set_exclusive_start_key(start)
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items.unwrap_or_default() {
                out.push(json(text(&item, "record")?)?);
            }
            match page.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(out),
            }
        }
    }
}
