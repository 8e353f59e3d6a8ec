//! Everything wrong with a workflow definition, each problem naming its step and field.

use serde::Serialize;
use std::fmt;

use super::limits::is_short_plain_id;

/// One problem in a definition. `step` is the step's id (or `#N`, its 1-based position,
/// when it has no usable id); `None` for document-level fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub step: Option<String>,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.step {
            Some(step) => write!(f, "step `{step}`, field `{}`: {}", self.field, self.message),
            None => write!(f, "field `{}`: {}", self.field, self.message),
        }
    }
}

/// How a problem names a step: by its id, or by `#N` (its 1-based position) when the id is
/// not one a reader could find (empty, too long, or not plain).
pub fn step_name(id: &str, index: usize) -> String {
    if is_short_plain_id(id) {
        id.to_string()
    } else {
        format!("#{}", index + 1)
    }
}

/// The error of parsing or validating a definition: all problems found, not just the first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid workflow definition")?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

/// Collects problems while a check walks a definition.
#[derive(Default, Debug)]
pub struct Report {
    problems: Vec<Problem>,
}

impl Report {
    pub fn step(&mut self, step: &str, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            step: Some(step.to_string()),
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn document(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            step: None,
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn into_result(self) -> Result<(), Problems> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(self.problems))
        }
    }
}

/// Turns a serde error at `path` into the field it is about and a plain message.
/// serde names the field in backticks for missing and unknown fields; otherwise the path
/// (e.g. `options[0].label`) names it.
pub fn from_serde(path: &str, error: &serde_json::Error) -> (String, String) {
    let message = error.to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    let named = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))
        .and_then(|rest| rest.split('`').next());
    let field = match (path, named) {
        (".", Some(name)) | ("", Some(name)) => name.to_string(),
        // serde_path_to_error already ends the path with an unknown field's name.
        (path, Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            path.to_string()
        }
        (path, Some(name)) => format!("{path}.{name}"),
        (".", None) | ("", None) => "(step)".to_string(),
        (path, None) => path.to_string(),
    };
    (field, message)
}
