//! The pure state machine: `apply(state, event, now, catalog)` changes the state and
//! returns the effects to perform. No I/O, no wall clock, no channel or AWS types.

pub mod answer;
mod catalog;
mod context;
mod effect;
mod event;
pub mod ledger;
mod state;

pub use catalog::Catalog;
pub use context::{Details, Flow, StepContext};
pub use effect::{ArmTimer, Choice, Effect, OutboundMessage, TimerRef};
pub use event::{Content, Event, Inbound};
pub use ledger::{ConsentKind, ConsentRecord, LedgerHead};
pub use state::{ContactState, Conversation, Counters, Profile, Run, RunOutcome, Wait, WaitKind};

use serde::Serialize;
use std::collections::BTreeMap;

use crate::clock::Timestamp;
use crate::workflow::{StepKind, Trigger, Workflow};

/// No definition can make one event run more steps than this (validation already rules
/// out loops without a wait; this is the backstop).
pub const MAX_STEPS_PER_EVENT: u32 = 100;

/// The result of applying one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub effects: Vec<Effect>,
    pub transition: Transition,
}

/// What one event did, for the structured log line and for tests. No message content.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Transition {
    pub happened: Happened,
    pub run: Option<u64>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Set when the run ended with this event.
    pub outcome: Option<RunOutcome>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Happened {
    /// A new conversation opened and the triggered workflow started.
    ConversationOpened,
    /// A new conversation opened, but no workflow is published for it.
    NoWorkflow,
    Answered,
    AnswerInvalid,
    /// A message arrived while no question was waiting: kept, changes nothing.
    NotWaiting,
    /// A message arrived before the run's first question reached the channel: not an
    /// answer, changes nothing (the question still waits).
    BeforeQuestion,
    TimedOut,
    DelayOver,
    /// A timer for a wait that is no longer current: ignored.
    StaleTimeout,
    DeliveryFailed,
    /// A delivery failure for a run that already ended: ignored.
    StaleDeliveryFailure,
    DefinitionMissing,
    /// The contact withdrew consent (their tag is gone, the ledger says so).
    Withdrawn,
    /// The pending effects are to be tried again; nothing else changes.
    Resumed,
}

pub fn apply(
    state: &mut ContactState,
    event: &Event,
    now: Timestamp,
    catalog: &Catalog,
) -> Applied {
    let before = state.latest_run().map(|r| (r.id, r.outcome));
    let from = state.active_run().map(|r| r.step.clone());
    let mut effects = Vec::new();
    let happened = match event {
        Event::Inbound(message) => on_inbound(state, message, now, catalog, &mut effects),
        Event::InboundBeforeQuestion(message) => {
            note_sender(state, message, now, catalog, &mut effects)
                .unwrap_or(Happened::BeforeQuestion)
        }
        Event::Timeout(timer) => on_timeout(state, *timer, now, catalog, &mut effects),
        Event::DeliveryFailed { run, reason } => {
            on_delivery_failed(state, *run, reason, now, catalog, &mut effects)
        }
        // Only reaches the engine when no run sent that message (see the event's doc).
        Event::DeliveryReported { .. } => Happened::StaleDeliveryFailure,
        Event::Resume { .. } => Happened::Resumed,
        Event::Withdraw { requested_by } => {
            let how = Details {
                requested_by: Some(requested_by.clone()),
                ..Details::default()
            };
            withdraw(state, how, now, catalog, &mut effects)
        }
    };
    let run = state.latest_run();
    let ended_now = run.is_some_and(|r| r.outcome.is_some() && before != Some((r.id, r.outcome)));
    let transition = Transition {
        happened,
        run: run.map(|r| r.id),
        from,
        to: run.map(|r| r.step.clone()),
        outcome: run.and_then(|r| r.outcome).filter(|_| ended_now),
    };
    Applied {
        effects,
        transition,
    }
}

/// What every message does first: it says where to reply and who the contact is, and a
/// withdrawal keyword withdraws whatever else is going on (`Some`: that happened).
fn note_sender(
    state: &mut ContactState,
    message: &Inbound,
    now: Timestamp,
    catalog: &Catalog,
    effects: &mut Vec<Effect>,
) -> Option<Happened> {
    state.profile.address = Some(message.from.clone());
    if let Some(name) = message.name.as_ref().filter(|n| !n.trim().is_empty()) {
        state.profile.name = Some(name.clone());
    }
    if !is_withdrawal(state, message, catalog) {
        return None;
    }
    let how = Details {
        provider_message_id: Some(message.message_id.clone()),
        text: text_of(message),
        provider_at: message.sent_at,
        ..Details::default()
    };
    Some(withdraw(state, how, now, catalog, effects))
}

fn on_inbound(
    state: &mut ContactState,
    message: &Inbound,
    now: Timestamp,
    catalog: &Catalog,
    effects: &mut Vec<Effect>,
) -> Happened {
    if let Some(withdrawn) = note_sender(state, message, now, catalog, effects) {
        return withdrawn;
    }
    if state.conversation.is_none() {
        return open_conversation(state, now, catalog, effects);
    }
    let Some(run) = state.active_run() else {
        return Happened::NotWaiting;
    };
    let Some(wait) = run.wait.clone().filter(|w| w.kind == WaitKind::Answer) else {
        return Happened::NotWaiting;
    };
    let Some(workflow) = catalog.get(&run.workflow_id, run.workflow_version) else {
        return definition_missing(state, now);
    };
    let Some(StepKind::AskQuestion(question)) = workflow.step(&wait.step).map(|s| &s.kind) else {
        return definition_missing(state, now);
    };
    let matched = answer::choose(&question.options, &message.content).is_some();
    drive(state, workflow, now, effects, |ctx| {
        ctx.effects.push(Effect::CancelTimer(TimerRef {
            run: ctx.run.id,
            wait_seq: wait.seq,
        }));
        ctx.run.wait = None;
        question.on_answer(ctx, message)
    });
    if matched {
        Happened::Answered
    } else {
        Happened::AnswerInvalid
    }
}

fn open_conversation(
    state: &mut ContactState,
    now: Timestamp,
    catalog: &Catalog,
    effects: &mut Vec<Effect>,
) -> Happened {
    state.counters.conversations += 1;
    let mut conversation = Conversation {
        id: state.counters.conversations,
        opened_at: now,
        closed_at: None,
        run: None,
    };
    let Some((version, workflow)) = catalog.triggered(Trigger::ConversationOpened) else {
        state.conversation = Some(conversation);
        return Happened::NoWorkflow;
    };
    state.counters.runs += 1;
    conversation.run = Some(Run {
        id: state.counters.runs,
        workflow_id: workflow.id.clone(),
        workflow_version: version,
        started_at: now,
        step: workflow.start.clone(),
        wait: None,
        jumps: BTreeMap::new(),
        asks: 0,
        last_answer: None,
        pending_outcome: RunOutcome::Completed,
        outcome: None,
        ended_at: None,
    });
    state.conversation = Some(conversation);
    let start = workflow.start.clone();
    drive(state, workflow, now, effects, |_| Flow::Goto(start));
    Happened::ConversationOpened
}

fn on_timeout(
    state: &mut ContactState,
    timer: TimerRef,
    now: Timestamp,
    catalog: &Catalog,
    effects: &mut Vec<Effect>,
) -> Happened {
    let Some(run) = state.active_run() else {
        return Happened::StaleTimeout;
    };
    let Some(wait) = run.wait.clone() else {
        return Happened::StaleTimeout;
    };
    if run.id != timer.run || wait.seq != timer.wait_seq {
        return Happened::StaleTimeout;
    }
    let Some(workflow) = catalog.get(&run.workflow_id, run.workflow_version) else {
        return definition_missing(state, now);
    };
    let kind = workflow.step(&wait.step).map(|s| &s.kind);
    let happened = match kind {
        Some(StepKind::AskQuestion(_)) => Happened::TimedOut,
        Some(StepKind::Wait(_)) => Happened::DelayOver,
        _ => return definition_missing(state, now),
    };
    drive(state, workflow, now, effects, |ctx| {
        ctx.run.wait = None;
        match kind {
            Some(StepKind::AskQuestion(question)) => question.on_timeout(ctx),
            Some(StepKind::Wait(wait)) => wait.on_timeout(),
            _ => Flow::End,
        }
    });
    happened
}

fn on_delivery_failed(
    state: &mut ContactState,
    run: u64,
    reason: &str,
    now: Timestamp,
    catalog: &Catalog,
    effects: &mut Vec<Effect>,
) -> Happened {
    let Some(active) = state.active_run().filter(|r| r.id == run) else {
        return Happened::StaleDeliveryFailure;
    };
    let waiting = active.wait.as_ref().map(|w| w.step.clone());
    // A failure reported after the hand-off finds the question's timer armed.
    let armed = active.wait.as_ref().map(|w| TimerRef {
        run,
        wait_seq: w.seq,
    });
    let workflow = catalog.get(&active.workflow_id, active.workflow_version);
    let question =
        workflow
            .zip(waiting)
            .and_then(|(w, step)| match w.step(&step).map(|s| &s.kind) {
                Some(StepKind::AskQuestion(q)) => Some((w, q)),
                _ => None,
            });
    match question {
        Some((workflow, question)) => drive(state, workflow, now, effects, |ctx| {
            ctx.effects.extend(armed.map(Effect::CancelTimer));
            ctx.run.wait = None;
            question.on_delivery_failed(ctx, reason);
            ctx.set_outcome(RunOutcome::FailedDelivery);
            Flow::Close
        }),
        None => finish(state, now, RunOutcome::FailedDelivery, true),
    }
    Happened::DeliveryFailed
}

/// The workflow whose withdrawal terms apply to the contact: that of their latest run,
/// else the one a new conversation would start.
fn withdrawal_source<'c>(
    state: &ContactState,
    catalog: &'c Catalog,
) -> Option<(&'c Workflow, u32)> {
    let latest = state.latest_run().and_then(|r| {
        catalog
            .get(&r.workflow_id, r.workflow_version)
            .map(|w| (w, r.workflow_version))
    });
    latest
        .or_else(|| {
            catalog
                .triggered(Trigger::ConversationOpened)
                .map(|(v, w)| (w, v))
        })
        .filter(|(w, _)| w.withdrawal.is_some())
}

fn text_of(message: &Inbound) -> Option<String> {
    match &message.content {
        Content::Text { text } => Some(text.clone()),
        Content::Choice { label, .. } => Some(label.clone()),
        Content::Other { .. } => None,
    }
}

fn is_withdrawal(state: &ContactState, message: &Inbound, catalog: &Catalog) -> bool {
    let Content::Text { text } = &message.content else {
        return false;
    };
    let typed = answer::normalize(text);
    withdrawal_source(state, catalog)
        .and_then(|(w, _)| w.withdrawal.as_ref())
        .is_some_and(|terms| terms.keywords.iter().any(|k| answer::normalize(k) == typed))
}

/// Removes the consent tag, records the withdrawal (when there was consent to withdraw),
/// ends any run, closes the conversation and confirms to the contact.
fn withdraw(
    state: &mut ContactState,
    how: Details,
    now: Timestamp,
    catalog: &Catalog,
    effects: &mut Vec<Effect>,
) -> Happened {
    let Some((workflow, version)) = withdrawal_source(state, catalog) else {
        return Happened::NotWaiting;
    };
    let Some(terms) = workflow.withdrawal.as_ref() else {
        return Happened::NotWaiting;
    };
    let had_consent = state.profile.tags.remove(&terms.tag);
    let run = state.latest_run().map(|r| r.id).unwrap_or(0);
    finish(state, now, RunOutcome::Withdrawn, true);
    let Some(address) = state.profile.address.clone() else {
        return Happened::Withdrawn;
    };
    if had_consent {
        let source = Some((workflow.id.as_str(), version, run));
        let record = context::consent_record(
            ConsentKind::Withdrawn,
            &state.contact,
            &address,
            source,
            how,
            now,
        );
        effects.push(Effect::Record(Box::new(record.chain(&mut state.ledger))));
    }
    effects.push(Effect::Send {
        run,
        to: address,
        message: OutboundMessage::Text {
            text: terms.message.clone(),
        },
        then_arm: None,
    });
    Happened::Withdrawn
}

fn definition_missing(state: &mut ContactState, now: Timestamp) -> Happened {
    finish(state, now, RunOutcome::DefinitionMissing, true);
    Happened::DefinitionMissing
}

/// Runs `first` (what happens at the current step), then steps until the run waits or ends.
fn drive(
    state: &mut ContactState,
    workflow: &Workflow,
    now: Timestamp,
    effects: &mut Vec<Effect>,
    first: impl FnOnce(&mut StepContext<'_>) -> Flow,
) {
    let ContactState {
        contact,
        profile,
        conversation,
        counters,
        ledger,
        ..
    } = state;
    let (Some(run), Some(to)) = (
        conversation.as_mut().and_then(|c| c.run.as_mut()),
        profile.address.clone(),
    ) else {
        return;
    };
    let mut ctx = StepContext {
        profile,
        run,
        counters,
        to: &to,
        effects,
        contact,
        ledger,
        now,
    };
    let mut flow = first(&mut ctx);
    let mut budget = MAX_STEPS_PER_EVENT;
    let (outcome, close) = loop {
        let next = match flow {
            Flow::Wait => return,
            Flow::End => break (ctx.run.pending_outcome, false),
            Flow::Close => break (ctx.run.pending_outcome, true),
            Flow::Goto(next) => next,
        };
        if budget == 0 {
            break (RunOutcome::StepLimit, true);
        }
        budget -= 1;
        ctx.run.step = next;
        flow = match workflow.step(&ctx.run.step) {
            Some(step) => step.kind.exec(&mut ctx),
            None => break (RunOutcome::DefinitionMissing, true),
        };
    };
    finish(state, now, outcome, close);
}

/// Ends the active run with `outcome`; closes the conversation if asked.
fn finish(state: &mut ContactState, now: Timestamp, outcome: RunOutcome, close: bool) {
    if let Some(conversation) = state.conversation.as_mut() {
        if let Some(run) = conversation.run.as_mut().filter(|r| r.outcome.is_none()) {
            run.outcome = Some(outcome);
            run.ended_at = Some(now);
            run.wait = None;
        }
    }
    if close {
        if let Some(mut conversation) = state.conversation.take() {
            conversation.closed_at = Some(now);
            state.last_closed = Some(conversation);
        }
    }
}
