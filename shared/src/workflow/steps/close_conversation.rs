use serde::{Deserialize, Serialize};

use crate::engine::{Flow, StepContext};

/// Ends the run and closes the conversation: the contact's next message opens a new one
/// (and triggers the workflow again).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseConversation {}

impl CloseConversation {
    pub fn exec(&self, _ctx: &mut StepContext<'_>) -> Flow {
        Flow::Close
    }
}
