use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use super::{Successor, check_text};
use crate::engine::{Choice, Content, Flow, OutboundMessage, RunOutcome, StepContext, answer};
use crate::workflow::limits::{
    OPTION_ID_MAX_BYTES, OPTION_LABEL_MAX_CHARS, OPTIONS_MAX, QUESTION_TEXT_MAX_CHARS,
    TIMEOUT_MAX_SECONDS, TIMEOUT_MIN_SECONDS, is_plain_id,
};
use crate::workflow::problems::Report;

/// Asks a multiple-choice question and waits for the answer, at most `timeout_seconds`
/// from the moment the channel accepted the question. An answer that matches no option
/// goes to `on_invalid` (Failure: Invalid); silence goes to `on_timeout` (Failure: Timeout).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskQuestion {
    pub text: String,
    pub options: Vec<AnswerOption>,
    pub timeout_seconds: u64,
    pub on_invalid: String,
    pub on_timeout: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerOption {
    /// The payload a button or quick reply sends back.
    pub id: String,
    /// What the contact sees, and may type instead of tapping.
    pub label: String,
    pub next: String,
}

impl AskQuestion {
    pub fn successors(&self) -> Vec<Successor<'_>> {
        let mut out: Vec<Successor<'_>> = self
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| (format!("options[{i}].next"), o.next.as_str()))
            .collect();
        out.push(("on_invalid".into(), self.on_invalid.as_str()));
        out.push(("on_timeout".into(), self.on_timeout.as_str()));
        out
    }

    pub fn check(&self, step: &str, report: &mut Report) {
        check_text(step, "text", &self.text, QUESTION_TEXT_MAX_CHARS, report);
        if self.options.is_empty() || self.options.len() > OPTIONS_MAX {
            report.step(
                step,
                "options",
                format!("1 to {OPTIONS_MAX} options (channels cannot offer more)"),
            );
        }
        let mut ids = HashSet::new();
        let mut labels = HashSet::new();
        for (i, option) in self.options.iter().enumerate() {
            let field = |name: &str| format!("options[{i}].{name}");
            if !is_plain_id(&option.id) || option.id.len() > OPTION_ID_MAX_BYTES {
                report.step(
                    step,
                    field("id"),
                    format!("1 to {OPTION_ID_MAX_BYTES} of A-Z, a-z, 0-9, _ and -"),
                );
            } else if !ids.insert(option.id.as_str()) {
                report.step(
                    step,
                    field("id"),
                    format!("duplicate option id `{}`", option.id),
                );
            }
            let chars = option.label.chars().count();
            if option.label.trim().is_empty() {
                report.step(step, field("label"), "must not be empty");
            } else if chars > OPTION_LABEL_MAX_CHARS {
                report.step(
                    step,
                    field("label"),
                    format!("{chars} characters; buttons allow at most {OPTION_LABEL_MAX_CHARS}"),
                );
            } else if !labels.insert(answer::normalize(&option.label)) {
                report.step(
                    step,
                    field("label"),
                    "two options have this label: a typed answer could not tell them apart",
                );
            }
        }
        if !(TIMEOUT_MIN_SECONDS..=TIMEOUT_MAX_SECONDS).contains(&self.timeout_seconds) {
            report.step(
                step,
                "timeout_seconds",
                format!("must be from {TIMEOUT_MIN_SECONDS} to {TIMEOUT_MAX_SECONDS}"),
            );
        }
    }

    pub fn exec(&self, ctx: &mut StepContext<'_>) -> Flow {
        let message = OutboundMessage::Question {
            text: self.text.clone(),
            choices: self
                .options
                .iter()
                .map(|o| Choice {
                    id: o.id.clone(),
                    label: o.label.clone(),
                })
                .collect(),
        };
        ctx.ask(message, self.timeout_seconds);
        Flow::Wait
    }

    /// The contact answered while this question was waiting.
    pub fn on_answer(&self, ctx: &mut StepContext<'_>, content: &Content) -> Flow {
        match answer::choose(&self.options, content) {
            Some(option) => {
                ctx.answered(&option.id);
                Flow::Goto(option.next.clone())
            }
            None => {
                ctx.set_outcome(RunOutcome::FailedInvalid);
                Flow::Goto(self.on_invalid.clone())
            }
        }
    }

    /// Nobody answered in time.
    pub fn on_timeout(&self, ctx: &mut StepContext<'_>) -> Flow {
        ctx.set_outcome(RunOutcome::FailedTimeout);
        Flow::Goto(self.on_timeout.clone())
    }
}
