//! Whole-definition checks: ids, references, reachability, and loops that could spin.

use std::collections::{HashMap, HashSet, VecDeque};

use super::Workflow;
use super::limits::{
    DEFINITION_MAX_BYTES, STEP_ID_MAX_CHARS, STEPS_MAX, TEXT_MAX_BYTES, is_short_plain_id,
};
use super::problems::{Problems, Report, step_name};
use super::steps::Successor;

pub fn check(workflow: &Workflow) -> Result<(), Problems> {
    let mut report = Report::default();
    check_document(workflow, &mut report);
    check_steps(workflow, &mut report);
    if report.is_empty() {
        // Graph checks assume every reference resolves; skip them until it does.
        check_reachable(workflow, &mut report);
        check_spin_loops(workflow, &mut report);
    }
    report.into_result()
}

fn check_document(workflow: &Workflow, report: &mut Report) {
    if !is_short_plain_id(&workflow.id) {
        report.document(
            "id",
            format!("1 to {STEP_ID_MAX_CHARS} of A-Z, a-z, 0-9, _ and -"),
        );
    }
    if workflow.name.trim().is_empty() {
        report.document("name", "must not be empty");
    }
    if let Some(w) = &workflow.withdrawal {
        if w.keywords.is_empty()
            || w.keywords
                .iter()
                .any(|k| k.trim().is_empty() || k.chars().count() > 64)
        {
            report.document(
                "withdrawal.keywords",
                "1 or more keywords of 1 to 64 characters",
            );
        }
        if w.tag.trim().is_empty() || w.tag.len() != w.tag.trim().len() {
            report.document(
                "withdrawal.tag",
                "a tag, without leading or trailing spaces",
            );
        }
        if w.message.trim().is_empty() || w.message.len() > TEXT_MAX_BYTES {
            report.document(
                "withdrawal.message",
                format!("1 to {TEXT_MAX_BYTES} bytes of UTF-8 (the strictest channel's limit)"),
            );
        }
    }
    if workflow.steps.is_empty() || workflow.steps.len() > STEPS_MAX {
        report.document("steps", format!("1 to {STEPS_MAX} steps"));
    } else if workflow.step(&workflow.start).is_none() {
        report.document("start", format!("unknown step `{}`", workflow.start));
    }
    let size = workflow.to_value().to_string().len();
    if size > DEFINITION_MAX_BYTES {
        report.document(
            "(document)",
            format!(
                "{size} bytes of JSON, over the {DEFINITION_MAX_BYTES} a definition may take \
                 (it is stored as one item): fewer or shorter steps"
            ),
        );
    }
}

fn check_steps(workflow: &Workflow, report: &mut Report) {
    let mut seen = HashSet::new();
    for (index, step) in workflow.steps.iter().enumerate() {
        let name = step_name(&step.id, index);
        if !is_short_plain_id(&step.id) {
            report.step(
                &name,
                "id",
                format!("1 to {STEP_ID_MAX_CHARS} of A-Z, a-z, 0-9, _ and -"),
            );
        } else if !seen.insert(step.id.as_str()) {
            report.step(&name, "id", "duplicate step id");
        }
        step.kind.check(&name, report);
        for (field, target) in step.kind.successors() {
            if workflow.step(target).is_none() {
                report.step(&name, field, format!("unknown step `{target}`"));
            }
        }
    }
}

fn check_reachable(workflow: &Workflow, report: &mut Report) {
    let mut reached = HashSet::from([workflow.start.as_str()]);
    let mut queue = VecDeque::from([workflow.start.as_str()]);
    while let Some(id) = queue.pop_front() {
        let Some(step) = workflow.step(id) else {
            continue;
        };
        for (_, next) in step.kind.successors() {
            if reached.insert(next) {
                queue.push_back(next);
            }
        }
    }
    for step in &workflow.steps {
        if !reached.contains(step.id.as_str()) {
            report.step(
                &step.id,
                "id",
                format!(
                    "unreachable: no path from the start step `{}`",
                    workflow.start
                ),
            );
        }
    }
}

/// A loop through steps none of which waits (for an answer or the clock) would run
/// without the contact, sending the same messages again and again until the step cap
/// stops it. Each such loop is reported once, at the step that closes it.
fn check_spin_loops(workflow: &Workflow, report: &mut Report) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    let mut marks: HashMap<&str, Mark> = HashMap::new();
    for root in &workflow.steps {
        if marks.contains_key(root.id.as_str()) {
            continue;
        }
        // Iterative depth-first search: (step id, its successors, next successor index).
        let mut path: Vec<(&str, Vec<Successor<'_>>, usize)> = Vec::new();
        let successors = |id: &str| -> Vec<Successor<'_>> {
            match workflow.step(id) {
                Some(step) if !step.kind.waits() => step.kind.successors(),
                _ => Vec::new(),
            }
        };
        marks.insert(&root.id, Mark::OnPath);
        path.push((&root.id, successors(&root.id), 0));
        while let Some((id, edges, index)) = path.last_mut() {
            let id: &str = id;
            let Some((field, next)) = edges.get(*index).cloned() else {
                marks.insert(id, Mark::Done);
                path.pop();
                continue;
            };
            *index += 1;
            match marks.get(next) {
                Some(Mark::OnPath) => {
                    let start = path.iter().position(|(s, _, _)| *s == next).unwrap_or(0);
                    let mut cycle: Vec<&str> = path[start..].iter().map(|(s, _, _)| *s).collect();
                    cycle.push(next);
                    report.step(
                        id,
                        field,
                        format!(
                            "loop {} has no ask_question or wait step: it would spin without the contact",
                            cycle.join(" -> ")
                        ),
                    );
                }
                Some(Mark::Done) => {}
                None => {
                    marks.insert(next, Mark::OnPath);
                    let edges = successors(next);
                    path.push((next, edges, 0));
                }
            }
        }
    }
}
