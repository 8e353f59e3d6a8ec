//! What can happen to a contact: they write, a timer fires, or a send fails for good.

use serde::{Deserialize, Serialize};

use super::effect::TimerRef;
use crate::clock::Timestamp;
use crate::contact::Address;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Inbound(Inbound),
    /// A message applied while the run's first question has not reached the channel yet
    /// (decided in the same batch, or its send is being retried): the contact has seen no
    /// question, so this is not an answer. The runtime turns an [`Event::Inbound`] into
    /// this when the record's outbox still holds that question.
    InboundBeforeQuestion(Inbound),
    Timeout(TimerRef),
    /// A message of `run` was refused by the channel for good (bad recipient, window
    /// closed). Not a retryable failure: those are retried before this is reported.
    DeliveryFailed {
        run: u64,
        reason: String,
    },
    /// The channel reported later, in a status webhook, that a message it had accepted
    /// was not delivered. The runtime turns it into [`Event::DeliveryFailed`] for the run
    /// that sent that message; a report it cannot tie to a run changes nothing.
    DeliveryReported {
        provider_message_id: String,
        reason: String,
    },
    /// Withdrawal asked for outside the conversation (the admin API), by `requested_by`.
    Withdraw {
        requested_by: String,
    },
    /// Asked for outside the conversation (the admin API): try the contact's pending
    /// effects again, after a channel outage that outlasted the retries. Decides nothing;
    /// running the steps for it performs the outbox.
    Resume {
        requested_by: String,
    },
}

/// A message from a contact, normalized from any channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inbound {
    pub from: Address,
    /// The provider's message id: the key that makes a retried delivery a duplicate.
    pub message_id: String,
    pub name: Option<String>,
    pub content: Content,
    /// When the provider says the contact sent it.
    pub sent_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    Text {
        text: String,
    },
    /// A tapped button, quick reply or list row: its payload id and the label shown.
    Choice {
        id: String,
        label: String,
    },
    /// Anything else (image, sticker, location...): never a valid answer.
    Other {
        kind: String,
    },
}

impl Event {
    /// Whether this event can only concern a contact the store already has a record for:
    /// a timer or a send belongs to a conversation, which lives in a record. Found for a
    /// contact without one, it was queued before the contact was erased.
    pub fn follows_a_record(&self) -> bool {
        match self {
            Event::Timeout(_)
            | Event::DeliveryFailed { .. }
            | Event::DeliveryReported { .. }
            | Event::Resume { .. } => true,
            Event::Inbound(_) | Event::InboundBeforeQuestion(_) | Event::Withdraw { .. } => false,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Event::Inbound(_) => "inbound",
            Event::InboundBeforeQuestion(_) => "inbound_before_question",
            Event::Timeout(_) => "timeout",
            Event::DeliveryFailed { .. } => "delivery_failed",
            Event::DeliveryReported { .. } => "delivery_reported",
            Event::Withdraw { .. } => "withdraw",
            Event::Resume { .. } => "resume",
        }
    }
}
