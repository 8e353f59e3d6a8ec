//! What a step may touch while it runs: the contact's profile, its run, and the effects
//! it decides. Steps never see the store, the clock's source or a channel.

use super::effect::{ArmTimer, Effect, OutboundMessage, TimerRef};
use super::state::{Counters, Profile, Run, RunOutcome, Wait, WaitKind};
use crate::contact::Address;

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
