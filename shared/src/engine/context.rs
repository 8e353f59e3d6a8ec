//! What a step may touch while it runs: the contact's profile, its run, and the effects
//! it decides. Steps never see the store, the clock's source or a channel.

use super::effect::{ArmTimer, Effect, OutboundMessage, TimerRef};
use super::ledger::{ConsentKind, ConsentRecord, LedgerHead};
use super::state::{Counters, Profile, Run, RunOutcome, Wait, WaitKind};
use crate::clock::Timestamp;
use crate::contact::{Address, ContactId};

/// A ledger record, not yet chained.
pub(super) fn consent_record(
    kind: ConsentKind,
    contact: &ContactId,
    address: &Address,
    run: Option<(&str, u32, u64)>,
    details: Details,
    now: Timestamp,
) -> ConsentRecord {
    // The answer is proof and stays whole, within reason.
    let text = details.text.map(|t| t.chars().take(1000).collect());
    ConsentRecord {
        seq: 0,
        kind,
        contact: contact.clone(),
        channel: address.channel.clone(),
        channel_user: address.user_id.clone(),
        workflow_id: run.map(|(id, _, _)| id.to_string()),
        workflow_version: run.map(|(_, version, _)| version),
        run: run.map(|(_, _, run)| run),
        question: details.question,
        options: details.options,
        policy_url: details.policy_url,
        policy_version: details.policy_version,
        provider_message_id: details.provider_message_id,
        payload: details.payload,
        text,
        requested_by: details.requested_by,
        provider_at: details.provider_at,
        recorded_at: now,
        prev_hash: String::new(),
        hash: String::new(),
    }
}

/// Where a run goes after a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Flow {
    Goto(String),
    /// Stop here until an answer or a timer.
    Wait,
    /// The run is over; the conversation stays open.
    End,
    /// The run is over and the conversation closes.
    Close,
}

pub struct StepContext<'a> {
    pub profile: &'a mut Profile,
    pub(super) run: &'a mut Run,
    pub(super) counters: &'a mut Counters,
    pub(super) to: &'a Address,
    pub(super) effects: &'a mut Vec<Effect>,
    pub(super) contact: &'a ContactId,
    pub(super) ledger: &'a mut LedgerHead,
    pub(super) now: Timestamp,
}

/// What a ledger record says beyond who and when: the question and the answer.
#[derive(Clone, Debug, Default)]
pub struct Details {
    pub question: Option<String>,
    pub options: Vec<String>,
    pub policy_url: Option<String>,
    pub policy_version: Option<String>,
    pub provider_message_id: Option<String>,
    pub payload: Option<String>,
    pub text: Option<String>,
    pub provider_at: Option<Timestamp>,
    pub requested_by: Option<String>,
}

impl StepContext<'_> {
    pub fn send(&mut self, message: OutboundMessage) {
        self.push_send(message, None);
    }

    /// Sends a question and waits for its answer; the timeout starts once it is handed over.
    pub fn ask(&mut self, message: OutboundMessage, timeout_seconds: u64) {
        let timer = self.begin_wait(WaitKind::Answer);
        self.run.asks += 1;
        let arm = ArmTimer {
            timer,
            after_seconds: timeout_seconds,
            starts_at: None,
        };
        self.push_send(message, Some(arm));
    }

    /// Waits for the clock alone.
    pub fn pause(&mut self, seconds: u64) {
        let timer = self.begin_wait(WaitKind::Delay);
        self.effects.push(Effect::ArmTimer(ArmTimer {
            timer,
            after_seconds: seconds,
            starts_at: None,
        }));
    }

    /// How often the current (jump_to) step was followed in this run.
    pub fn jumps_taken(&self) -> u32 {
        self.run.jumps.get(&self.run.step).copied().unwrap_or(0)
    }

    pub fn count_jump(&mut self) {
        *self.run.jumps.entry(self.run.step.clone()).or_insert(0) += 1;
    }

    pub fn answered(&mut self, option_id: &str) {
        self.run.last_answer = Some(option_id.to_string());
        self.run.pending_outcome = RunOutcome::Completed;
    }

    pub fn set_outcome(&mut self, outcome: RunOutcome) {
        self.run.pending_outcome = outcome;
    }

    pub fn last_answer(&self) -> Option<&str> {
        self.run.last_answer.as_deref()
    }

    /// Appends a consent ledger record for this run.
    pub fn record(&mut self, kind: ConsentKind, details: Details) {
        let record = consent_record(
            kind,
            self.contact,
            self.to,
            Some((
                self.run.workflow_id.as_str(),
                self.run.workflow_version,
                self.run.id,
            )),
            details,
            self.now,
        );
        self.effects
            .push(Effect::Record(Box::new(record.chain(self.ledger))));
    }

    fn begin_wait(&mut self, kind: WaitKind) -> TimerRef {
        self.counters.waits += 1;
        let seq = self.counters.waits;
        self.run.wait = Some(Wait {
            seq,
            step: self.run.step.clone(),
            kind,
        });
        TimerRef {
            run: self.run.id,
            wait_seq: seq,
        }
    }

    fn push_send(&mut self, message: OutboundMessage, then_arm: Option<ArmTimer>) {
        self.effects.push(Effect::Send {
            run: self.run.id,
            to: self.to.clone(),
            message,
            then_arm,
        });
    }
}
