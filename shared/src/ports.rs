//! The traits the runtime needs from the outside world. Adapters implement them; the
//! engine uses none of them. Each error says whether trying again can help.

use async_trait::async_trait;
use std::time::Duration;

use crate::clock::Timestamp;
use crate::contact::{Address, ContactId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::engine::{
    ConsentRecord, ContactState, Effect, Event, Inbound, OutboundMessage, TimerRef,
};
use crate::workflow::{PublishedWorkflow, Workflow};

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// What the store keeps per contact: the engine's state, the effects it decided that are
/// not performed yet (the outbox), and who is performing them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    pub state: ContactState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<OutboxEntry>,
    /// Held by the executor performing the outbox, so that a second executor does not
    /// perform the same effects while the first is still at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Source of outbox entry ids.
    #[serde(default)]
    pub effects_decided: u64,
    /// The provider's ids of the latest messages sent, with their run: a delivery failure
    /// reported later names the message, and this names the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<SentRef>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRef {
    pub id: String,
    pub run: u64,
}

/// Sent messages remembered per contact. While a question waits, it and the message
/// before it (the policy link) are the latest two; fewer bytes keep the record in one
/// DynamoDB write unit.
pub const SENT_REMEMBERED: usize = 2;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub id: u64,
    pub effect: Effect,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub until: Timestamp,
}

impl ContactRecord {
    pub fn new(contact: ContactId) -> Self {
        ContactRecord {
            state: ContactState::new(contact),
            outbox: Vec::new(),
            lease: None,
            effects_decided: 0,
            sent: Vec::new(),
        }
    }

    pub fn remember_sent(&mut self, id: String, run: u64) {
        self.sent.push(SentRef { id, run });
        let excess = self.sent.len().saturating_sub(SENT_REMEMBERED);
        self.sent.drain(..excess);
    }

    /// The event to apply for `event`: a later delivery report becomes a delivery
    /// failure of the run that sent the message, when it is one of those remembered; a
    /// message while the run's first question is still to be sent is not an answer.
    pub fn resolve(&self, event: &Event) -> Event {
        match event {
            Event::Inbound(message) if self.first_question_unsent() => {
                Event::InboundBeforeQuestion(message.clone())
            }
            Event::DeliveryReported {
                provider_message_id,
                reason,
            } => match self.sent.iter().find(|s| &s.id == provider_message_id) {
                Some(sent) => Event::DeliveryFailed {
                    run: sent.run,
                    reason: reason.clone(),
                },
                None => event.clone(),
            },
            other => other.clone(),
        }
    }

    /// Whether the run's first question, which it waits on, is still in the outbox:
    /// decided, not yet with the channel (its send carries the timer that starts once it
    /// is). Until then the contact has seen no question of the run. A re-ask still in the
    /// outbox does not count: the contact has seen the question it repeats, and may be
    /// answering that one.
    fn first_question_unsent(&self) -> bool {
        let Some(run) = self.state.active_run().filter(|r| r.asks <= 1) else {
            return false;
        };
        let Some(wait) = run.wait.as_ref() else {
            return false;
        };
        self.outbox.iter().any(|entry| {
            matches!(&entry.effect, Effect::Send { then_arm: Some(arm), .. } if arm.timer.wait_seq == wait.seq)
        })
    }

    /// Appends effects to the outbox, each with a new id.
    pub fn record(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            self.effects_decided += 1;
            self.outbox.push(OutboxEntry {
                id: self.effects_decided,
                effect,
            });
        }
    }
}

/// A channel's later word that a message it accepted was not delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The contact the message was for.
    pub to: Address,
    pub provider_message_id: String,
    pub reason: String,
}

/// One event waiting in a contact's inbox.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboxItem {
    /// Deduplication key: a provider retry of the same message has the same key.
    pub key: String,
    pub received_at: Timestamp,
    pub event: Event,
}

impl InboxItem {
    /// An inbound message, keyed by the provider's message id.
    pub fn inbound(message: Inbound, received_at: Timestamp) -> Self {
        InboxItem {
            key: format!("msg:{}", message.message_id),
            received_at,
            event: Event::Inbound(message),
        }
    }

    /// A status webhook saying a message was not delivered, keyed by that message.
    pub fn delivery_report(report: DeliveryReport, received_at: Timestamp) -> Self {
        InboxItem {
            key: format!("failed:{}", report.provider_message_id),
            received_at,
            event: Event::DeliveryReported {
                provider_message_id: report.provider_message_id,
                reason: report.reason,
            },
        }
    }

    /// A fired timer, keyed by its wait: a double fire lands once.
    pub fn timeout(timer: TimerRef, received_at: Timestamp) -> Self {
        InboxItem {
            key: format!("timeout:{}:{}", timer.run, timer.wait_seq),
            received_at,
            event: Event::Timeout(timer),
        }
    }
}

/// What a commit builds on: the version it expects, and the inbox items already
/// processed that the store still holds (a store may track "processed" in the record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Base {
    /// 0 when nothing was ever committed for the contact.
    pub version: u64,
    pub processed: Vec<InboxId>,
    /// Tags the store holds segment-index entries for (a store that indexes segments
    /// apart from the record keeps them in step at commit).
    pub indexed_tags: BTreeSet<String>,
}

/// A contact's committed record, what it builds on, and its unprocessed inbox in arrival order.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub record: Option<ContactRecord>,
    pub base: Base,
    /// Each with the store's id for it, to name it in [`StateStore::commit`].
    pub inbox: Vec<(InboxId, InboxItem)>,
}

/// The store's own id of an inbox item (opaque to everyone else).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InboxId(pub String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    New,
    /// The key was seen before: nothing was stored.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Someone else committed this contact first: reload and apply again.
    #[error("version conflict")]
    Conflict,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StoreError::Corrupt(_))
    }
}

/// Appends to a contact's inbox, once per key (a conditional put).
#[async_trait]
pub trait InboxStore: Send + Sync {
    async fn append(&self, contact: &ContactId, item: InboxItem) -> Result<Appended, StoreError>;
}

#[async_trait]
pub trait StateStore: Send + Sync {
    async fn load(&self, contact: &ContactId) -> Result<Loaded, StoreError>;

    /// Writes `record` if the stored version is still `base.version`, and in the same
    /// atomic step marks the `consumed` inbox items processed and performs the outbox
    /// effects that [`StateStore::performs_in_commit`] names (the stored outbox leaves
    /// them out). Returns what the next commit builds on.
    async fn commit(
        &self,
        contact: &ContactId,
        record: &ContactRecord,
        base: &Base,
        consumed: &[InboxId],
    ) -> Result<Base, StoreError>;

    /// Deletes inbox items without processing them. For what was queued for a contact
    /// that has no record (erased meanwhile): it must not bring a record back.
    async fn discard(&self, contact: &ContactId, items: &[InboxId]) -> Result<(), StoreError>;

    /// Whether `commit` performs `effect` itself, in the same atomic write as the record.
    /// A store whose transactions span its tables writes ledger records and timers this
    /// way and saves a write for each; the runtime then never performs them, and drops
    /// them from its copy of the outbox once a commit succeeded. (DynamoDB would need a
    /// transaction, which costs twice the write units of the separate writes: it says no.)
    fn performs_in_commit(&self, _effect: &Effect) -> bool {
        false
    }
}

#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Publishes a new immutable version, unless the latest version has the same content
    /// (then returns that one).
    async fn publish(
        &self,
        workflow: &Workflow,
        now: Timestamp,
    ) -> Result<PublishedWorkflow, StoreError>;

    async fn published(&self) -> Result<Vec<PublishedWorkflow>, StoreError>;

    /// Makes `id`@`version` what new conversations start, for every host that reads it.
    async fn set_active(&self, id: &str, version: u32) -> Result<(), StoreError>;

    async fn active(&self) -> Result<Option<(String, u32)>, StoreError>;
}

/// The consent ledger: append-only, per contact, in seq order.
#[async_trait]
pub trait LedgerStore: Send + Sync {
    /// Writes a record. Writing a seq that is already there is success: the record comes
    /// from a committed outbox, so it is the same record performed again.
    async fn append_record(
        &self,
        contact: &ContactId,
        record: &ConsentRecord,
    ) -> Result<(), StoreError>;

    async fn records(&self, contact: &ContactId) -> Result<Vec<ConsentRecord>, StoreError>;

    /// Every contact's records at or after `since`, for export and reports.
    async fn records_since(&self, since: Timestamp) -> Result<Vec<ConsentRecord>, StoreError>;
}

/// A contact whose failing effects stopped being retried: on AWS, parked after its stream
/// records kept failing for an hour (a long channel outage, a revoked token).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedContact {
    pub contact: ContactId,
    /// When it was last parked.
    pub at: Timestamp,
    /// The error it was parked with.
    pub error: String,
}

/// What the admin API needs beyond the runtime's ports.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Contacts tagged `tag`, `limit` at a time; `after` is the cursor a previous page
    /// returned. Returns the page and the next cursor, if there is more.
    async fn segment_page(
        &self,
        tag: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ContactId>, Option<String>), StoreError>;

    /// Parked contacts, `limit` at a time; `after` is the cursor a previous page returned.
    async fn parked_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<ParkedContact>, Option<String>), StoreError>;

    /// Takes a contact off the parked list (it was resumed, or has nothing pending).
    async fn unpark(&self, contact: &ContactId) -> Result<(), StoreError>;

    /// Erases what the store holds about a contact except its consent ledger: record,
    /// inbox, deduplication keys, timers, segment entries, its place on the parked list.
    /// `false` if there was nothing.
    async fn erase(&self, contact: &ContactId) -> Result<bool, StoreError>;

    async fn put_draft(
        &self,
        workflow_id: &str,
        definition: &serde_json::Value,
    ) -> Result<(), StoreError>;

    async fn drafts(&self) -> Result<Vec<(String, serde_json::Value)>, StoreError>;
}

/// Everything the runtime needs from storage.
pub trait Store: InboxStore + StateStore + WorkflowStore + LedgerStore {}
impl<T: InboxStore + StateStore + WorkflowStore + LedgerStore> Store for T {}

#[derive(Debug, thiserror::Error)]
pub enum TimerError {
    #[error("timer service unavailable: {0}")]
    Unavailable(String),
}

/// One-shot timers. Firing appends a timeout event to the contact's inbox.
#[async_trait]
pub trait Timers: Send + Sync {
    /// Idempotent: arming the same timer again is success.
    async fn arm(
        &self,
        contact: &ContactId,
        timer: TimerRef,
        deadline: Timestamp,
    ) -> Result<(), TimerError>;
    /// Best-effort tidy-up: a timer that fires anyway is stale and ignored.
    async fn cancel(&self, contact: &ContactId, timer: TimerRef) -> Result<(), TimerError>;
}

/// What the channel gave back for an accepted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    pub provider_message_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Rate limits, 5xx, timeouts, bad credentials: the message waits and is tried again.
    #[error("send failed, will retry: {reason}")]
    Retryable {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The channel refuses this message for good (invalid recipient, window closed).
    #[error("send refused: {reason}")]
    Permanent { reason: String },
}

#[async_trait]
pub trait ChannelSender: Send + Sync {
    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError>;
}

/// Wakes whatever runs a contact's steps. On AWS the table's stream is the doorbell, so
/// ringing does nothing; locally it queues the contact for a worker.
pub trait Doorbell: Send + Sync {
    fn ring(&self, contact: &ContactId);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_the_run_of_a_remembered_send_only() {
        let mut record = ContactRecord::new(ContactId::new("whatsapp", "1"));
        record.remember_sent("wamid.1".into(), 1);
        record.remember_sent("wamid.2".into(), 2);
        record.remember_sent("wamid.3".into(), 2);
        assert_eq!(record.sent.len(), SENT_REMEMBERED);
        let report = |id: &str| Event::DeliveryReported {
            provider_message_id: id.into(),
            reason: "r".into(),
        };
        assert_eq!(
            record.resolve(&report("wamid.3")),
            Event::DeliveryFailed {
                run: 2,
                reason: "r".into()
            }
        );
        // Forgotten (older than the last two): left as it is, which changes nothing.
        assert_eq!(record.resolve(&report("wamid.1")), report("wamid.1"));
    }
}
