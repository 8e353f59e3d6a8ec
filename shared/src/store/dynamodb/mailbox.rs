//! The web chat's mailbox on AWS, in the table: a partition per visitor, outside the
//! contact's own so that loading a contact does not read its messages, and the stream
//! filter (new `in#` items) ignores them.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | counter | `w#{visitor}` | `next` | `seq`: the last number given (a new counter starts at the clock's milliseconds) |
//! | message | `w#{visitor}` | `msg#{seq:020}` | `message` (JSON), `expires` (TTL) |
//!
//! A push is two writes: the counter's atomic increment gives the number, then the
//! message is put under it. Messages and the counter expire a day after the last push;
//! erasing the contact deletes the partition at once.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, ReturnValue};
use std::time::Duration;

use super::{DynamoStore, PK, SK, TTL_ATTRIBUTE, json, n, number, s, text, to_json, unavailable};
use crate::channels::web::{Delivered, KEPT_PER_VISITOR, Mailbox};
use crate::engine::OutboundMessage;
use crate::ports::StoreError;

const MAILBOX_PREFIX: &str = "w#";
const COUNTER_SK: &str = "next";
const MESSAGE_PREFIX: &str = "msg#";
/// A day: a tab left open catches up on what came, and the table never becomes an
/// archive of messages (the ledger is the record that counts).
const MAILBOX_TTL_SECONDS: i64 = 24 * 3600;
/// Browsers poll this often while messages come; the widget slows down when none do.
const POLL_PAUSE: Duration = Duration::from_secs(2);

fn mailbox_pk(visitor: &str) -> String {
    format!("{MAILBOX_PREFIX}{visitor}")
}

fn message_sk(seq: u64) -> String {
    format!("{MESSAGE_PREFIX}{seq:020}")
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn expires() -> AttributeValue {
    n(now_millis() / 1000 + MAILBOX_TTL_SECONDS)
}

impl DynamoStore {
    async fn next_seq(&self, pk: &str) -> Result<u64, StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(COUNTER_SK))
            // A new counter starts at the clock in milliseconds, not at 0: numbers then keep
            // growing after an idle mailbox expired, so a tab left open, which asks for what
            // comes after the last number it saw, still gets what comes next.
            .update_expression("SET seq = if_not_exists(seq, :now) + :one, #expires = :expires")
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now_millis()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", expires())
            .return_values(ReturnValue::UpdatedNew)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        let attributes = updated.attributes.unwrap_or_default();
        Ok(u64::try_from(number(&attributes, "seq")?).unwrap_or(0))
    }

    async fn push_message(
        &self,
        visitor: &str,
        message: &OutboundMessage,
    ) -> Result<u64, StoreError> {
        let pk = mailbox_pk(visitor);
        let seq = self.next_seq(&pk).await?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&pk))
            .item(SK, s(message_sk(seq)))
            .item("message", s(to_json(&Delivered::new(seq, message))?))
            .item(TTL_ATTRIBUTE, expires())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(seq)
    }

    async fn messages_after(&self, visitor: &str, seq: u64) -> Result<Vec<Delivered>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(mailbox_pk(visitor)))
            .expression_attribute_values(":from", s(message_sk(seq.saturating_add(1))))
            .expression_attribute_values(":to", s(message_sk(u64::MAX)))
            // Strongly consistent: a message the step function just put is seen at once.
            .consistent_read(true)
            .limit(KEPT_PER_VISITOR as i32)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
            .map_err(unavailable)?;
        page.items
            .unwrap_or_default()
            .iter()
            .map(|item| json(text(item, "message")?))
            .collect()
    }

    /// Deletes a visitor's mailbox (their contact is erased).
    pub(super) async fn delete_mailbox(&self, visitor: &str) -> Result<(), StoreError> {
        let pk = mailbox_pk(visitor);
        for item in self.partition(&pk).await? {
            self.delete(&pk, text(&item, SK)?).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Mailbox for DynamoStore {
    async fn push(&self, visitor: &str, message: &OutboundMessage) -> Result<u64, String> {
        self.push_message(visitor, message)
            .await
            .map_err(|e| e.to_string())
    }

    /// Answers at once: a Lambda function waiting for news would be billed for the wait.
    async fn after(
        &self,
        visitor: &str,
        seq: u64,
        _patience: Duration,
    ) -> Result<Vec<Delivered>, String> {
        self.messages_after(visitor, seq)
            .await
            .map_err(|e| e.to_string())
    }

    /// Erasure (`AdminStore::erase`) deletes the mailbox already; this is for a host that
    /// forgets through the channel.
    async fn forget(&self, visitor: &str) -> Result<(), String> {
        self.delete_mailbox(visitor)
            .await
            .map_err(|e| e.to_string())
    }

    fn poll_pause(&self) -> Option<Duration> {
        Some(POLL_PAUSE)
    }
}
