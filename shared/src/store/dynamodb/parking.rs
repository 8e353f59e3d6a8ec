//! Stream records given up on: kept in the contact's partition and on the parked list.

use aws_sdk_dynamodb::types::{ConditionCheck, Put, ReturnConsumedCapacity, TransactWriteItem};
use std::collections::HashMap;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::ports::StoreError;

use super::{
    DynamoStore, INBOX_PREFIX, PARKED_PK, PARKED_PREFIX, PK, SK, STATE_SK, contact_pk,
    is_cancelled_by_condition, n, s, text, unavailable,
};

/// What parking a stream record did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parking {
    /// Recorded in the contact's partition and on the parked list.
    Listed,
    /// The contact was erased meanwhile: nothing was written.
    Erased,
}

impl DynamoStore {
    /// Records a stream record that is given up on (its error is not retryable, or it
    /// kept failing), so that it stops blocking the shard and stays visible: in the
    /// contact's partition, and on the parked list the admin API reads.
    ///
    /// Both are written only while the contact's record exists, in one transaction with
    /// that check: erasure deletes the record first, so a contact erased while its step
    /// failed is not brought back onto the list (parking is rare, so the transaction's
    /// double price does not matter). A contact that never got a record is parked as long
    /// as its inbox holds something.
    pub async fn park(
        &self,
        contact: &ContactId,
        record_id: &str,
        error: &str,
        now: Timestamp,
    ) -> Result<Parking, StoreError> {
        let pk = contact_pk(contact);
        let items = [
            (pk.clone(), format!("{PARKED_PREFIX}{record_id}")),
            (PARKED_PK.to_string(), contact.to_string()),
        ]
        .map(|(pk, sk)| {
            HashMap::from([
                (PK.to_string(), s(pk)),
                (SK.to_string(), s(sk)),
                ("error".to_string(), s(error)),
                ("at".to_string(), n(now.millis())),
            ])
        });
        let invalid =
            |e: aws_sdk_dynamodb::error::BuildError| StoreError::Unavailable(e.to_string());
        let record_exists = ConditionCheck::builder()
            .table_name(&self.table)
            .key(PK, s(&pk))
            .key(SK, s(STATE_SK))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(invalid)?;
        let mut writes = vec![
            TransactWriteItem::builder()
                .condition_check(record_exists)
                .build(),
        ];
        for item in &items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item.clone()))
                .build()
                .map_err(invalid)?;
            writes.push(TransactWriteItem::builder().put(put).build());
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match result {
            Ok(_) => return Ok(Parking::Listed),
            Err(e) if is_cancelled_by_condition(&e) => {}
            Err(e) => return Err(unavailable(e)),
        }
        // No record: erased, or it never got one (its first step failed).
        let waiting = self
            .partition(&pk)
            .await?
            .iter()
            .any(|item| text(item, SK).is_ok_and(|sk| sk.starts_with(INBOX_PREFIX)));
        if !waiting {
            return Ok(Parking::Erased);
        }
        for item in items {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send()
                .await
                .map_err(unavailable)?;
        }
        Ok(Parking::Listed)
    }

    /// The parked records of a contact: (stream record id, error).
    pub async fn parked(&self, contact: &ContactId) -> Result<Vec<(String, String)>, StoreError> {
        Ok(self
            .partition(&contact_pk(contact))
            .await?
            .iter()
            .filter_map(|item| {
                let id = text(item, SK)
                    .ok()?
                    .strip_prefix(PARKED_PREFIX)?
                    .to_string();
                Some((id, text(item, "error").ok()?.to_string()))
            })
            .collect())
    }
}
