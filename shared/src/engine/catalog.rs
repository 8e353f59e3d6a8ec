//! The published workflow versions the engine may run, held in memory. The runtime fills
//! it from the store; the engine only reads it.

use std::collections::HashMap;
use std::sync::Arc;

use crate::workflow::{Trigger, Workflow};

#[derive(Clone, Debug, Default)]
pub struct Catalog {
    versions: HashMap<(String, u32), Arc<Workflow>>,
    active: Option<(String, u32)>,
}

impl Catalog {
    pub fn insert(&mut self, version: u32, workflow: Workflow) {
        self.versions
            .insert((workflow.id.clone(), version), Arc::new(workflow));
    }

    /// Makes `id`@`version` the workflow new conversations start.
    pub fn activate(&mut self, id: &str, version: u32) {
        self.active = Some((id.to_string(), version));
    }

    /// The workflow id and version new conversations start.
    pub fn active(&self) -> Option<(&str, u32)> {
        self.active.as_ref().map(|(id, v)| (id.as_str(), *v))
    }

    pub fn get(&self, id: &str, version: u32) -> Option<&Workflow> {
        self.versions
            .get(&(id.to_string(), version))
            .map(|w| w.as_ref())
    }

    /// The workflow (and its version) a trigger starts, if any.
    pub fn triggered(&self, trigger: Trigger) -> Option<(u32, &Workflow)> {
        let (id, version) = self.active.as_ref()?;
        let workflow = self.get(id, *version)?;
        (workflow.trigger == trigger).then_some((*version, workflow))
    }
}
