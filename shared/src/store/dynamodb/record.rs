//! The contact's record item: its JSON, deflated.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

use crate::ports::{ContactRecord, StoreError};

use super::to_json;

pub(super) fn deflated(record: &ContactRecord) -> Result<AttributeValue, StoreError> {
    let json = to_json(record)?;
    let packed = miniz_oxide::deflate::compress_to_vec(json.as_bytes(), 6);
    Ok(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
        packed,
    )))
}

pub(super) fn inflated(
    item: &HashMap<String, AttributeValue>,
) -> Result<ContactRecord, StoreError> {
    let packed = item
        .get("record")
        .and_then(|v| v.as_b().ok())
        .ok_or_else(|| StoreError::Corrupt("record without `record`".into()))?;
    // A record is far below DynamoDB's 400 KB item limit; refuse anything that inflates past it.
    let json = miniz_oxide::inflate::decompress_to_vec_with_limit(packed.as_ref(), 4 << 20)
        .map_err(|e| StoreError::Corrupt(format!("record does not inflate: {e:?}")))?;
    serde_json::from_slice(&json).map_err(|e| StoreError::Corrupt(e.to_string()))
}
