use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use super::{Successor, check_text};
use crate::engine::{
    Choice, ConsentKind, Content, Details, Flow, Inbound, OutboundMessage, RunOutcome, StepContext,
    answer,
};
use crate::workflow::limits::{
    OPTION_ID_MAX_BYTES, OPTION_LABEL_MAX_CHARS, OPTIONS_MAX, TIMEOUT_MAX_SECONDS,
    TIMEOUT_MIN_SECONDS, is_plain_id,
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
    /// Makes this a consent question: every decision on it goes to the consent ledger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentTerms>,
}

/// What the contact consents to by choosing the `accept` option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentTerms {
    pub policy_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
    /// The option id that gives consent; any other valid option declines.
    pub accept: String,
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
        check_text(step, "text", &self.text, report);
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
        if let Some(terms) = &self.consent {
            if !self.options.iter().any(|o| o.id == terms.accept) {
                report.step(
                    step,
                    "consent.accept",
                    format!("no option has the id `{}`", terms.accept),
                );
            }
            let url = &terms.policy_url;
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(char::is_whitespace)
            {
                report.step(step, "consent.policy_url", "an http(s) URL without spaces");
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
        self.record(ctx, ConsentKind::Asked, Details::default());
        Flow::Wait
    }

    /// The contact answered while this question was waiting.
    pub fn on_answer(&self, ctx: &mut StepContext<'_>, message: &Inbound) -> Flow {
        let (payload, text) = match &message.content {
            Content::Choice { id, label } => (Some(id.clone()), Some(label.clone())),
            Content::Text { text } => (None, Some(text.clone())),
            Content::Other { kind } => (Some(format!("({kind})")), None),
        };
        let how = Details {
            provider_message_id: Some(message.message_id.clone()),
            payload,
            text,
            provider_at: message.sent_at,
            ..Details::default()
        };
        match answer::choose(&self.options, &message.content) {
            Some(option) => {
                let accepted = self.consent.as_ref().is_some_and(|t| t.accept == option.id);
                let kind = if accepted {
                    ConsentKind::Accepted
                } else {
                    ConsentKind::Declined
                };
                self.record(ctx, kind, how);
                ctx.answered(&option.id);
                Flow::Goto(option.next.clone())
            }
            None => {
                self.record(ctx, ConsentKind::InvalidAnswer, how);
                ctx.set_outcome(RunOutcome::FailedInvalid);
                Flow::Goto(self.on_invalid.clone())
            }
        }
    }

    /// Nobody answered in time.
    pub fn on_timeout(&self, ctx: &mut StepContext<'_>) -> Flow {
        self.record(ctx, ConsentKind::TimedOut, Details::default());
        ctx.set_outcome(RunOutcome::FailedTimeout);
        Flow::Goto(self.on_timeout.clone())
    }

    /// The question could not be delivered.
    pub fn on_delivery_failed(&self, ctx: &mut StepContext<'_>, reason: &str) {
        let details = Details {
            payload: Some(reason.to_string()),
            ..Details::default()
        };
        self.record(ctx, ConsentKind::DeliveryFailed, details);
    }

    /// For a consent question, a ledger record with the question as it was asked.
    fn record(&self, ctx: &mut StepContext<'_>, kind: ConsentKind, details: Details) {
        let Some(terms) = &self.consent else { return };
        let details = Details {
            question: Some(self.text.clone()),
            options: self.options.iter().map(|o| o.label.clone()).collect(),
            policy_url: Some(terms.policy_url.clone()),
            policy_version: terms.policy_version.clone(),
            ..details
        };
        ctx.record(kind, details);
    }
}
