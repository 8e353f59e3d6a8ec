use serde::{Deserialize, Serialize};

use super::go;
use crate::engine::{Flow, StepContext};
use crate::workflow::problems::Report;

/// Adds or removes a tag on the contact (tags build segments).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateContactTag {
    pub action: TagAction,
    pub tag: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagAction {
    Add,
    Remove,
}

pub const TAG_MAX_CHARS: usize = 100;

impl UpdateContactTag {
    pub fn check(&self, step: &str, report: &mut Report) {
        let tag = self.tag.trim();
        if tag.is_empty() || tag.chars().count() > TAG_MAX_CHARS || tag.len() != self.tag.len() {
            report.step(
                step,
                "tag",
                format!("1 to {TAG_MAX_CHARS} characters, no leading or trailing spaces"),
            );
        } else if self.tag.chars().any(char::is_control) {
            report.step(step, "tag", "must not contain control characters");
        }
    }

    pub fn exec(&self, ctx: &mut StepContext<'_>) -> Flow {
        match self.action {
            TagAction::Add => ctx.profile.tags.insert(self.tag.clone()),
            TagAction::Remove => ctx.profile.tags.remove(&self.tag),
        };
        go(&self.next)
    }
}
