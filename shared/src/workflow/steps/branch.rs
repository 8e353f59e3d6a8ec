use serde::{Deserialize, Serialize};

use super::Successor;
use crate::engine::{Flow, StepContext};
use crate::workflow::problems::Report;

/// Goes to the first case whose condition holds, or to `else`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    pub cases: Vec<Case>,
    #[serde(rename = "else")]
    pub otherwise: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub when: Condition,
    pub next: String,
}

/// What a case can test: the contact's tags and fields, and the run's last answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    HasTag(String),
    LacksTag(String),
    FieldPresent(String),
    FieldEquals {
        field: String,
        value: String,
    },
    /// The id of the option the contact chose at the last question of this run.
    LastAnswer(String),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

impl Branch {
    pub fn successors(&self) -> Vec<Successor<'_>> {
        let mut out: Vec<Successor<'_>> = self
            .cases
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("cases[{i}].next"), c.next.as_str()))
            .collect();
        out.push(("else".into(), self.otherwise.as_str()));
        out
    }

    pub fn check(&self, step: &str, report: &mut Report) {
        for (i, case) in self.cases.iter().enumerate() {
            if let Some(problem) = case.when.problem() {
                report.step(step, format!("cases[{i}].when"), problem);
            }
        }
    }

    pub fn exec(&self, ctx: &mut StepContext<'_>) -> Flow {
        let chosen = self
            .cases
            .iter()
            .find(|case| case.when.holds(ctx))
            .map_or(&self.otherwise, |case| &case.next);
        Flow::Goto(chosen.clone())
    }
}

impl Condition {
    fn holds(&self, ctx: &StepContext<'_>) -> bool {
        match self {
            Condition::HasTag(tag) => ctx.profile.tags.contains(tag),
            Condition::LacksTag(tag) => !ctx.profile.tags.contains(tag),
            Condition::FieldPresent(field) => ctx.profile.fields.contains_key(field),
            Condition::FieldEquals { field, value } => ctx.profile.fields.get(field) == Some(value),
            Condition::LastAnswer(id) => ctx.last_answer() == Some(id.as_str()),
            Condition::All(all) => all.iter().all(|c| c.holds(ctx)),
            Condition::Any(any) => any.iter().any(|c| c.holds(ctx)),
            Condition::Not(inner) => !inner.holds(ctx),
        }
    }

    fn problem(&self) -> Option<&'static str> {
        match self {
            Condition::All(list) | Condition::Any(list) if list.is_empty() => {
                Some("`all` and `any` need at least one condition")
            }
            Condition::All(list) | Condition::Any(list) => list.iter().find_map(Condition::problem),
            Condition::Not(inner) => inner.problem(),
            _ => None,
        }
    }
}
