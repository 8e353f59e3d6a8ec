//! What the engine asks the world to do. Recorded in the state's outbox before anything
//! is performed, so a crash re-performs (at least once) and never re-decides.

use serde::{Deserialize, Serialize};

use super::ledger::ConsentRecord;
use crate::clock::Timestamp;
use crate::contact::Address;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Send a message. `then_arm` starts a timer once the channel accepted it: a
    /// question's timeout runs from the moment it was handed over, not from the decision.
    Send {
        run: u64,
        to: Address,
        message: OutboundMessage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        then_arm: Option<ArmTimer>,
    },
    ArmTimer(ArmTimer),
    /// Tidy-up only: a timer that fires anyway is stale and ignored.
    CancelTimer(TimerRef),
    /// Append a record to the contact's consent ledger (idempotent: keyed by its seq).
    Record(Box<ConsentRecord>),
}

/// Which wait of which run a timer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerRef {
    pub run: u64,
    pub wait_seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmTimer {
    pub timer: TimerRef,
    pub after_seconds: u64,
    /// When the clock started: set once the question was handed to the channel.
    /// `None`: from the moment the timer is armed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutboundMessage {
    Text { text: String },
    Question { text: String, choices: Vec<Choice> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub label: String,
}

impl ArmTimer {
    /// When the timer fires, if it is armed at `armed_at`.
    pub fn deadline(&self, armed_at: Timestamp) -> Timestamp {
        self.starts_at
            .unwrap_or(armed_at)
            .plus(std::time::Duration::from_secs(self.after_seconds))
    }
}

impl Effect {
    /// Whether this effect delivers something to the contact or waits on it: what a run
    /// whose message was refused for good no longer needs. Ledger records always stay.
    pub fn serves_delivery_of(&self, run: u64) -> bool {
        match self {
            Effect::Send { run: r, .. } => *r == run,
            Effect::ArmTimer(arm) => arm.timer.run == run,
            Effect::CancelTimer(_) | Effect::Record(_) => false,
        }
    }
}
