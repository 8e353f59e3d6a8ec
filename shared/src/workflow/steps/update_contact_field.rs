use serde::{Deserialize, Serialize};

use super::go;
use crate::engine::{Flow, StepContext};
use crate::workflow::limits::{FIELD_VALUE_MAX_CHARS, STEP_ID_MAX_CHARS, is_short_plain_id};
use crate::workflow::problems::Report;

/// Sets a field on the contact's profile; `"value": null` clears it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateContactField {
    pub field: String,
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl UpdateContactField {
    pub fn check(&self, step: &str, report: &mut Report) {
        if !is_short_plain_id(&self.field) {
            report.step(
                step,
                "field",
                format!("1 to {STEP_ID_MAX_CHARS} of A-Z, a-z, 0-9, _ and -"),
            );
        }
        if let Some(value) = &self.value {
            if value.chars().count() > FIELD_VALUE_MAX_CHARS {
                report.step(
                    step,
                    "value",
                    format!("at most {FIELD_VALUE_MAX_CHARS} characters"),
                );
            }
        }
    }

    pub fn exec(&self, ctx: &mut StepContext<'_>) -> Flow {
        match &self.value {
            Some(value) => ctx.profile.fields.insert(self.field.clone(), value.clone()),
            None => ctx.profile.fields.remove(&self.field),
        };
        go(&self.next)
    }
}
