//! Everything the engine knows about one contact. The store commits it as part of a
//! [`crate::ports::ContactRecord`], with a version it checks (optimistic locking).

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use super::ledger::LedgerHead;
use crate::clock::Timestamp;
use crate::contact::{Address, ContactId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContactState {
    pub contact: ContactId,
    pub profile: Profile,
    /// The open conversation, if any. `None`: the next inbound message opens one.
    pub conversation: Option<Conversation>,
    /// The conversation closed most recently, kept so that its run's outcome stays visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_closed: Option<Conversation>,
    pub counters: Counters,
    /// Where the contact's consent ledger chain stands.
    #[serde(default)]
    pub ledger: LedgerHead,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Where the contact last wrote from and to: replies go there.
    pub address: Option<Address>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub tags: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// Sequence numbers for ids that must never repeat within a contact.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub conversations: u64,
    pub runs: u64,
    pub waits: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: u64,
    pub opened_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<Timestamp>,
    pub run: Option<Run>,
}

/// One run of a workflow, pinned to the published version it started on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: u64,
    pub workflow_id: String,
    pub workflow_version: u32,
    pub started_at: Timestamp,
    /// The step the run is at (or ended at).
    pub step: String,
    /// What the run is waiting for, if anything.
    pub wait: Option<Wait>,
    /// Times each jump_to step was followed in this run.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub jumps: BTreeMap<String, u32>,
    /// Questions sent in this run (first asks and re-asks).
    pub asks: u32,
    /// The option id of the last matched answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_answer: Option<String>,
    /// How the run would end if it ended now; becomes `outcome` when it does.
    pub pending_outcome: RunOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<RunOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    /// Unique per contact; a timer carries it, and a timer for another seq is stale.
    pub seq: u64,
    pub step: String,
    pub kind: WaitKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    Answer,
    Delay,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Reached its end; the last question (if any) was answered with a valid option.
    Completed,
    /// Ended after an answer matched no option (Failure: Invalid, retries spent).
    FailedInvalid,
    /// Ended after a question timed out (Failure: Timeout).
    FailedTimeout,
    /// A message could not be delivered, so the run could not go on.
    FailedDelivery,
    /// Took more steps for one event than the engine allows.
    StepLimit,
    /// The published version the run is pinned to is not available.
    DefinitionMissing,
    /// The contact withdrew consent (a keyword such as STOP, or the admin API).
    Withdrawn,
}

impl ContactState {
    pub fn new(contact: ContactId) -> Self {
        ContactState {
            contact,
            profile: Profile::default(),
            conversation: None,
            last_closed: None,
            counters: Counters::default(),
            ledger: LedgerHead::default(),
        }
    }

    /// The run of the open conversation, if it is still going.
    pub fn active_run(&self) -> Option<&Run> {
        self.conversation
            .as_ref()
            .and_then(|c| c.run.as_ref())
            .filter(|r| r.outcome.is_none())
    }

    /// The most recent run, open or closed.
    pub fn latest_run(&self) -> Option<&Run> {
        self.conversation
            .as_ref()
            .and_then(|c| c.run.as_ref())
            .or_else(|| self.last_closed.as_ref().and_then(|c| c.run.as_ref()))
    }
}
