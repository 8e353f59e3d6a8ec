//! The step types, one file each. A step's file holds what it is (its JSON form), what
//! makes it valid, and what it does when a run reaches it.

mod ask_question;
mod branch;
mod close_conversation;
mod jump_to;
mod send_message;
mod update_contact_field;
mod update_contact_tag;
mod wait;

pub use ask_question::{AnswerOption, AskQuestion, ConsentTerms};
pub use branch::{Branch, Case, Condition};
pub use close_conversation::CloseConversation;
pub use jump_to::JumpTo;
pub use send_message::SendMessage;
pub use update_contact_field::UpdateContactField;
pub use update_contact_tag::{TagAction, UpdateContactTag};
pub use wait::Wait;

use serde::Serialize;
use serde_json::Value;

use super::Step;
use super::limits::TEXT_MAX_BYTES;
use super::problems::{self, Report};
use crate::engine::{Flow, StepContext};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StepKind {
    SendMessage(SendMessage),
    AskQuestion(AskQuestion),
    JumpTo(JumpTo),
    UpdateContactTag(UpdateContactTag),
    UpdateContactField(UpdateContactField),
    Branch(Branch),
    Wait(Wait),
    CloseConversation(CloseConversation),
}

/// Where a step can go next: the field that names the target, and the target.
pub type Successor<'a> = (String, &'a str);

/// The `type` of each step kind, as written in definitions.
pub const TYPES: &[&str] = &[
    "send_message",
    "ask_question",
    "jump_to",
    "update_contact_tag",
    "update_contact_field",
    "branch",
    "wait",
    "close_conversation",
];

type ParseResult = Result<StepKind, serde_path_to_error::Error<serde_json::Error>>;

impl StepKind {
    /// Reads the fields of a step of type `kind` (`None`: no such type). Each type is
    /// read into its own struct, so that an error's path names the exact field.
    fn parse(kind: &str, fields: Value) -> Option<ParseResult> {
        use serde_path_to_error::deserialize as read;
        Some(match kind {
            "send_message" => read(fields).map(StepKind::SendMessage),
            "ask_question" => read(fields).map(StepKind::AskQuestion),
            "jump_to" => read(fields).map(StepKind::JumpTo),
            "update_contact_tag" => read(fields).map(StepKind::UpdateContactTag),
            "update_contact_field" => read(fields).map(StepKind::UpdateContactField),
            "branch" => read(fields).map(StepKind::Branch),
            "wait" => read(fields).map(StepKind::Wait),
            "close_conversation" => read(fields).map(StepKind::CloseConversation),
            _ => return None,
        })
    }

    pub fn successors(&self) -> Vec<Successor<'_>> {
        match self {
            StepKind::SendMessage(s) => next_only(&s.next),
            StepKind::AskQuestion(s) => s.successors(),
            StepKind::JumpTo(s) => s.successors(),
            StepKind::UpdateContactTag(s) => next_only(&s.next),
            StepKind::UpdateContactField(s) => next_only(&s.next),
            StepKind::Branch(s) => s.successors(),
            StepKind::Wait(s) => next_only(&s.next),
            StepKind::CloseConversation(_) => Vec::new(),
        }
    }

    /// Whether a run stops here for the contact or the clock. Loops must pass one.
    pub fn waits(&self) -> bool {
        matches!(self, StepKind::AskQuestion(_) | StepKind::Wait(_))
    }

    pub fn check(&self, step: &str, report: &mut Report) {
        match self {
            StepKind::SendMessage(s) => s.check(step, report),
            StepKind::AskQuestion(s) => s.check(step, report),
            StepKind::JumpTo(s) => s.check(step, report),
            StepKind::UpdateContactTag(s) => s.check(step, report),
            StepKind::UpdateContactField(s) => s.check(step, report),
            StepKind::Branch(s) => s.check(step, report),
            StepKind::Wait(s) => s.check(step, report),
            StepKind::CloseConversation(_) => {}
        }
    }

    pub fn exec(&self, ctx: &mut StepContext<'_>) -> Flow {
        match self {
            StepKind::SendMessage(s) => s.exec(ctx),
            StepKind::AskQuestion(s) => s.exec(ctx),
            StepKind::JumpTo(s) => s.exec(ctx),
            StepKind::UpdateContactTag(s) => s.exec(ctx),
            StepKind::UpdateContactField(s) => s.exec(ctx),
            StepKind::Branch(s) => s.exec(ctx),
            StepKind::Wait(s) => s.exec(ctx),
            StepKind::CloseConversation(s) => s.exec(ctx),
        }
    }
}

/// `next` is optional on most steps: without it the run ends there.
pub fn next_only(next: &Option<String>) -> Vec<Successor<'_>> {
    next.iter()
        .map(|n| ("next".to_string(), n.as_str()))
        .collect()
}

pub fn go(next: &Option<String>) -> Flow {
    match next {
        Some(next) => Flow::Goto(next.clone()),
        None => Flow::End,
    }
}

/// Parses each step on its own so that a problem names the step it is in.
pub fn parse_all(values: Vec<Value>, report: &mut Report) -> Vec<Step> {
    let mut steps = Vec::with_capacity(values.len());
    for (index, value) in values.into_iter().enumerate() {
        let position = format!("#{}", index + 1);
        let Value::Object(mut object) = value else {
            report.step(&position, "(step)", "a step is a JSON object");
            continue;
        };
        let id = match object.remove("id") {
            Some(Value::String(id)) => id,
            Some(_) => {
                report.step(&position, "id", "must be a string");
                continue;
            }
            None => {
                report.step(&position, "id", "required");
                continue;
            }
        };
        let name = problems::step_name(&id, index);
        let kind = match object.remove("type") {
            Some(Value::String(kind)) => kind,
            Some(_) => {
                report.step(&name, "type", "must be a string");
                continue;
            }
            None => {
                report.step(
                    &name,
                    "type",
                    format!("required (one of: {})", TYPES.join(", ")),
                );
                continue;
            }
        };
        match StepKind::parse(&kind, Value::Object(object)) {
            Some(Ok(kind)) => steps.push(Step { id, kind }),
            Some(Err(e)) => {
                let (field, message) = problems::from_serde(&e.path().to_string(), e.inner());
                report.step(&name, field, message);
            }
            None => report.step(
                &name,
                "type",
                format!("unknown step type `{kind}` (one of: {})", TYPES.join(", ")),
            ),
        }
    }
    steps
}

/// Shared text checks: present, and within the channel limit.
pub fn check_text(step: &str, field: &str, text: &str, report: &mut Report) {
    if text.trim().is_empty() {
        report.step(step, field, "must not be empty");
    } else if text.len() > TEXT_MAX_BYTES {
        report.step(
            step,
            field,
            format!(
                "{} bytes of UTF-8; the strictest channel (Instagram) allows at most {TEXT_MAX_BYTES}",
                text.len()
            ),
        );
    }
}
