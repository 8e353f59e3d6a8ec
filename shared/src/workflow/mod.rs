//! Workflow definitions: the JSON format (docs/workflows.md), parsing that names the step
//! and field of every problem, validation, and the built-in templates.

pub mod limits;
mod migrate;
pub mod problems;
pub mod steps;
pub mod template;
mod validate;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use problems::{Problem, Problems};
pub use steps::StepKind;

use problems::Report;

/// The format version this build writes. Older documents are migrated on load.
pub const SPEC_VERSION: u32 = 1;

/// A validated workflow definition. Only [`Workflow::from_json`] and
/// [`Workflow::from_value`] build one, so every `Workflow` the engine sees is valid.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Workflow {
    pub spec_version: u32,
    pub id: String,
    pub name: String,
    pub trigger: Trigger,
    pub start: String,
    pub steps: Vec<Step>,
    /// How a contact withdraws consent given through this workflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawal: Option<Withdrawal>,
}

/// A contact who sends one of `keywords` (any case and spacing), or whom the admin API
/// withdraws, loses `tag`, gets `message`, and the ledger records the withdrawal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    pub keywords: Vec<String>,
    pub tag: String,
    pub message: String,
}

/// What starts a run of a workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// An inbound message from a contact who has no open conversation.
    ConversationOpened,
}

/// One step: its id and what it does.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Step {
    pub id: String,
    #[serde(flatten)]
    pub kind: StepKind,
}

/// A published, immutable version of a workflow. Runs pin one and stay on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PublishedWorkflow {
    pub id: String,
    pub version: u32,
    pub published_at: crate::clock::Timestamp,
    /// sha256 of the canonical definition: publishing identical content again is a no-op.
    pub digest: String,
    pub definition: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    spec_version: u32,
    id: String,
    name: String,
    trigger: Trigger,
    #[serde(default)]
    start: Option<String>,
    steps: Vec<Value>,
    #[serde(default)]
    withdrawal: Option<Withdrawal>,
}

impl Workflow {
    /// Parses and validates a JSON document.
    pub fn from_json(text: &str) -> Result<Workflow, Problems> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Problems(vec![Problem {
                step: None,
                field: "(document)".into(),
                message: format!("not valid JSON: {e}"),
            }])
        })?;
        Workflow::from_value(value)
    }

    /// Parses and validates a JSON value, migrating older format versions first.
    pub fn from_value(value: Value) -> Result<Workflow, Problems> {
        let value = migrate::to_current(value)?;
        let doc: Document = serde_path_to_error::deserialize(value).map_err(|e| {
            let (field, message) = problems::from_serde(&e.path().to_string(), e.inner());
            Problems(vec![Problem {
                step: None,
                field,
                message,
            }])
        })?;
        let mut report = Report::default();
        let steps = steps::parse_all(doc.steps, &mut report);
        report.into_result()?;
        let start = doc
            .start
            .or_else(|| steps.first().map(|s| s.id.clone()))
            .unwrap_or_default();
        let workflow = Workflow {
            spec_version: doc.spec_version,
            id: doc.id,
            name: doc.name,
            trigger: doc.trigger,
            start,
            steps,
            withdrawal: doc.withdrawal,
        };
        validate::check(&workflow)?;
        Ok(workflow)
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// sha256 over the canonical JSON (serde_json orders object keys), in hex.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(self.to_value().to_string().as_bytes()))
    }
}

impl PublishedWorkflow {
    /// Loads the definition of a stored version. It was valid when published; if it no
    /// longer loads, the error says why instead of running something half-understood.
    pub fn workflow(&self) -> Result<Workflow, Problems> {
        Workflow::from_value(self.definition.clone())
    }
}
