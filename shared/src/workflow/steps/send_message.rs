use serde::{Deserialize, Serialize};

use super::{check_text, go};
use crate::engine::{Flow, OutboundMessage, StepContext};
use crate::workflow::problems::Report;

/// Sends a text message to the contact and moves on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl SendMessage {
    pub fn check(&self, step: &str, report: &mut Report) {
        check_text(step, "text", &self.text, report);
    }

    pub fn exec(&self, ctx: &mut StepContext<'_>) -> Flow {
        ctx.send(OutboundMessage::Text {
            text: self.text.clone(),
        });
        go(&self.next)
    }
}
