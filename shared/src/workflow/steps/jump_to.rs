use serde::{Deserialize, Serialize};

use super::{Successor, go};
use crate::engine::{Flow, StepContext};
use crate::workflow::limits::MAX_JUMPS_LIMIT;
use crate::workflow::problems::Report;

/// Goes back (or forward) to `target`, at most `max_jumps` times per run. The arrival
/// after the last allowed jump falls through to `next` (or ends the run).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JumpTo {
    pub target: String,
    pub max_jumps: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl JumpTo {
    pub fn successors(&self) -> Vec<Successor<'_>> {
        let mut out = vec![("target".to_string(), self.target.as_str())];
        out.extend(super::next_only(&self.next));
        out
    }

    pub fn check(&self, step: &str, report: &mut Report) {
        if !(1..=MAX_JUMPS_LIMIT).contains(&self.max_jumps) {
            report.step(
                step,
                "max_jumps",
                format!("must be from 1 to {MAX_JUMPS_LIMIT}"),
            );
        }
    }

    pub fn exec(&self, ctx: &mut StepContext<'_>) -> Flow {
        if ctx.jumps_taken() < self.max_jumps {
            ctx.count_jump();
            Flow::Goto(self.target.clone())
        } else {
            go(&self.next)
        }
    }
}
