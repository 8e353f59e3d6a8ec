use serde::{Deserialize, Serialize};

use super::go;
use crate::engine::{Flow, StepContext};
use crate::workflow::limits::{TIMEOUT_MAX_SECONDS, TIMEOUT_MIN_SECONDS};
use crate::workflow::problems::Report;

/// Pauses the run for a while. Messages that arrive meanwhile do not move it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wait {
    pub seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl Wait {
    pub fn check(&self, step: &str, report: &mut Report) {
        if !(TIMEOUT_MIN_SECONDS..=TIMEOUT_MAX_SECONDS).contains(&self.seconds) {
            report.step(
                step,
                "seconds",
                format!("must be from {TIMEOUT_MIN_SECONDS} to {TIMEOUT_MAX_SECONDS}"),
            );
        }
    }

    pub fn exec(&self, ctx: &mut StepContext<'_>) -> Flow {
        ctx.pause(self.seconds);
        Flow::Wait
    }

    /// The pause is over.
    pub fn on_timeout(&self) -> Flow {
        go(&self.next)
    }
}
