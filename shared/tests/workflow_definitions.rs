//! Definitions: the format loads, and every problem names the step and field it is in.

mod support;

use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

use assent::workflow::template::{self, TemplateError};
use assent::workflow::{Problem, Problems, Workflow};
use support::mangle::{apply_to_bytes, apply_to_json, mangle};

fn doc(steps: Value) -> Value {
    json!({"spec_version": 1, "id": "w", "name": "W", "trigger": {"type": "conversation_opened"}, "steps": steps})
}

fn problems(value: Value) -> Vec<Problem> {
    match Workflow::from_value(value) {
        Ok(_) => panic!("expected the definition to be refused"),
        Err(e) => e.0,
    }
}

/// Asserts that some problem is about `step`/`field` and mentions `words`.
fn has(problems: &[Problem], step: Option<&str>, field: &str, words: &str) {
    assert!(
        problems
            .iter()
            .any(|p| p.step.as_deref() == step && p.field == field && p.message.contains(words)),
        "no problem at {step:?}/{field} mentioning {words:?} in {problems:#?}"
    );
}

fn question(id: &str, label: &str, on_invalid: &str, on_timeout: &str) -> Value {
    json!({"id": id, "type": "ask_question", "text": "Agree?",
        "options": [{"id": "yes", "label": label, "next": "end"}],
        "timeout_seconds": 60, "on_invalid": on_invalid, "on_timeout": on_timeout})
}

fn end() -> Value {
    json!({"id": "end", "type": "close_conversation"})
}

#[test]
fn the_documented_example_loads_and_round_trips() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/examples/consent-with-reminder.json"
    ))
    .expect("docs example exists");
    let workflow = Workflow::from_json(&text).unwrap_or_else(|e| panic!("{e}"));
    let again = Workflow::from_value(workflow.to_value()).unwrap();
    assert_eq!(workflow, again);
    assert_eq!(workflow.digest(), again.digest());
}

#[test]
fn unknown_step_references_name_the_field_that_holds_them() {
    let p = problems(doc(json!([question("ask", "OK", "nowhere", "end"), end()])));
    has(&p, Some("ask"), "on_invalid", "unknown step `nowhere`");
    let p = problems(doc(json!([
        {"id": "ask", "type": "ask_question", "text": "Agree?", "options": [{"id": "yes", "label": "OK", "next": "gone"}],
         "timeout_seconds": 60, "on_invalid": "end", "on_timeout": "end"}, end()])));
    has(&p, Some("ask"), "options[0].next", "unknown step `gone`");
}

#[test]
fn unreachable_steps_are_refused() {
    let p = problems(doc(json!([question("ask", "OK", "end", "end"), end(),
        {"id": "orphan", "type": "send_message", "text": "never sent", "next": "end"}])));
    has(&p, Some("orphan"), "id", "unreachable");
}

#[test]
fn a_question_needs_both_failure_branches() {
    let mut q = question("ask", "OK", "end", "end");
    q.as_object_mut().unwrap().remove("on_timeout");
    has(
        &problems(doc(json!([q, end()]))),
        Some("ask"),
        "on_timeout",
        "missing field",
    );
    let mut q = question("ask", "OK", "end", "end");
    q.as_object_mut().unwrap().remove("on_invalid");
    has(
        &problems(doc(json!([q, end()]))),
        Some("ask"),
        "on_invalid",
        "missing field",
    );
}

#[test]
fn a_jump_needs_a_limit() {
    let jump = json!({"id": "again", "type": "jump_to", "target": "ask", "next": "end"});
    let p = problems(doc(json!([
        question("ask", "OK", "again", "end"),
        jump,
        end()
    ])));
    has(&p, Some("again"), "max_jumps", "missing field");
    let jump =
        json!({"id": "again", "type": "jump_to", "target": "ask", "max_jumps": 0, "next": "end"});
    let p = problems(doc(json!([
        question("ask", "OK", "again", "end"),
        jump,
        end()
    ])));
    has(&p, Some("again"), "max_jumps", "from 1");
}

#[test]
fn a_loop_without_a_question_or_wait_is_refused() {
    let p = problems(doc(json!([
        {"id": "a", "type": "send_message", "text": "ping", "next": "b"},
        {"id": "b", "type": "jump_to", "target": "a", "max_jumps": 3, "next": "end"},
        end()])));
    has(&p, Some("b"), "target", "loop a -> b -> a");
    // The same loop through a question is the normal re-ask pattern.
    let ok = doc(json!([question("ask", "OK", "again", "end"),
        {"id": "again", "type": "jump_to", "target": "ask", "max_jumps": 3, "next": "end"}, end()]));
    Workflow::from_value(ok).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn button_labels_must_fit_the_channels() {
    let p = problems(doc(json!([
        question("ask", "I AGREE AND WANT TO PROCEED", "end", "end"),
        end()
    ])));
    has(&p, Some("ask"), "options[0].label", "at most 20");
}

#[test]
fn texts_must_fit_the_strictest_channel_in_bytes_not_characters() {
    // 334 emoji are 334 characters but 1,336 bytes: more than Instagram takes.
    let emoji = "😀".repeat(334);
    let mut ask = question("ask", "OK", "end", "end");
    ask["text"] = json!(emoji);
    let p = problems(doc(json!([
        {"id": "hello", "type": "send_message", "text": "a".repeat(1001), "next": "ask"},
        ask,
        end()
    ])));
    has(&p, Some("hello"), "text", "1001 bytes");
    has(&p, Some("ask"), "text", "at most 1000");
    // Exactly at the limit is fine.
    let mut fits = question("ask", "OK", "end", "end");
    fits["text"] = json!("😀".repeat(250));
    assert!(Workflow::from_value(doc(json!([fits, end()]))).is_ok());
}

#[test]
fn duplicate_ids_are_refused() {
    let p = problems(doc(json!([question("ask", "OK", "end", "end"), end(),
        {"id": "end", "type": "send_message", "text": "dup"}])));
    has(&p, Some("end"), "id", "duplicate step id");
    let p = problems(doc(json!([
        {"id": "ask", "type": "ask_question", "text": "Agree?", "options": [
            {"id": "yes", "label": "OK", "next": "end"}, {"id": "yes", "label": "Sure", "next": "end"}],
         "timeout_seconds": 60, "on_invalid": "end", "on_timeout": "end"}, end()])));
    has(&p, Some("ask"), "options[1].id", "duplicate option id");
}

#[test]
fn typos_and_wrong_types_name_the_field() {
    let p = problems(doc(
        json!([{"id": "hi", "type": "send_message", "txt": "hello"}]),
    ));
    has(&p, Some("hi"), "txt", "unknown field");
    let p = problems(doc(
        json!([{"id": "hi", "type": "send_mesage", "text": "hello"}]),
    ));
    has(&p, Some("hi"), "type", "unknown step type `send_mesage`");
    let mut q = question("ask", "OK", "end", "end");
    q["timeout_seconds"] = json!("five minutes");
    has(
        &problems(doc(json!([q, end()]))),
        Some("ask"),
        "timeout_seconds",
        "invalid type",
    );
    let p = problems(doc(json!([{"type": "send_message", "text": "no id"}])));
    has(&p, Some("#1"), "id", "required");
}

#[test]
fn all_problems_are_reported_at_once() {
    let p = problems(doc(
        json!([question("ask", "THIS LABEL IS FAR TOO LONG", "nowhere", "end"), end(),
        {"id": "end", "type": "close_conversation"}]),
    ));
    assert!(p.len() >= 3, "{p:#?}");
}

#[test]
fn format_versions_are_checked() {
    let mut d = doc(json!([end()]));
    d["spec_version"] = json!(99);
    has(&problems(d), None, "spec_version", "newer");
    let mut d = doc(json!([end()]));
    d.as_object_mut().unwrap().remove("spec_version");
    has(&problems(d), None, "spec_version", "required");
}

#[test]
fn the_template_is_valid_and_refuses_bad_parameters() {
    let params = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let name = template::REQUEST_CONSENT_PRIVACY;
    let ok = template::build(name, &params(&[("policy_url", "https://example.com/p")])).unwrap();
    assert_eq!(ok.name, "Request Consent: Privacy");
    assert!(matches!(
        template::build(name, &params(&[])),
        Err(TemplateError::MissingParam("policy_url"))
    ));
    assert!(matches!(
        template::build(
            name,
            &params(&[("policy_url", "https://x"), ("colour", "red")])
        ),
        Err(TemplateError::UnknownParam { .. })
    ));
    assert!(matches!(
        template::build(name, &params(&[("policy_url", "ftp://x")])),
        Err(TemplateError::BadParam { .. })
    ));
    match template::build(
        name,
        &params(&[
            ("policy_url", "https://x"),
            ("option_label", "I HEREBY AGREE TO IT ALL"),
        ]),
    ) {
        Err(TemplateError::Invalid(p)) => has(
            &p.0,
            Some("request_consent"),
            "options[0].label",
            "at most 20",
        ),
        other => panic!("expected a label problem, got {other:?}"),
    }
    assert!(matches!(
        template::build("nope", &params(&[])),
        Err(TemplateError::UnknownTemplate(_))
    ));
}

#[test]
fn a_definition_too_large_to_store_is_refused_as_a_whole() {
    let steps = |n: usize| {
        let mut steps: Vec<Value> = (0..n)
            .map(|i| json!({"id": format!("s{i}"), "type": "send_message", "text": "a".repeat(1000), "next": format!("s{}", i + 1)}))
            .collect();
        steps.push(json!({"id": format!("s{n}"), "type": "close_conversation"}));
        doc(Value::Array(steps))
    };
    let p = problems(steps(300));
    has(&p, None, "(document)", "bytes of JSON, over the 262144");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(Workflow::from_value(steps(200)).is_ok());
}

/// The names a problem may give the steps of a definition: each step's position (`#N`),
/// and the ids that are plain and short enough to find.
fn step_names(value: &Value) -> Vec<String> {
    let steps = value["steps"].as_array().cloned().unwrap_or_default();
    let ids = steps
        .iter()
        .filter_map(|s| s["id"].as_str())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .map(String::from);
    (1..=steps.len())
        .map(|n| format!("#{n}"))
        .chain(ids)
        .collect()
}

/// The checks every answer to a definition must pass: a definition that loads saves and
/// loads again as itself; one that does not gets at least one problem, each naming a
/// field, and a step only as a reader can find it: by a usable id, or by position (`#N`).
fn answers_plainly(value: &Value, result: Result<Workflow, Problems>) -> Result<(), TestCaseError> {
    match result {
        Ok(workflow) => {
            let again = Workflow::from_value(workflow.to_value());
            prop_assert_eq!(again.as_ref(), Ok(&workflow));
        }
        Err(Problems(problems)) => {
            prop_assert!(!problems.is_empty());
            let names = step_names(value);
            for p in &problems {
                prop_assert!(!p.field.is_empty() && !p.message.is_empty(), "{:?}", p);
                if let Some(step) = &p.step {
                    prop_assert!(names.contains(step), "{:?} not in {:?}", p, names);
                }
            }
        }
    }
    Ok(())
}

/// The built-in template and the documented example, mangled at random: loading never
/// panics, and what is wrong is said plainly.
#[test]
fn mangled_definitions_load_or_name_their_problems() {
    let template = template::build(
        template::REQUEST_CONSENT_PRIVACY,
        &BTreeMap::from([(
            "policy_url".to_string(),
            "https://example.com/p".to_string(),
        )]),
    )
    .unwrap()
    .to_value();
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/examples/consent-with-reminder.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let originals = [template, example];
    let config = support::proptest_config();
    proptest!(config, |(which in 0..2usize, mangles in proptest::collection::vec(mangle(), 1..5))| {
        let mut value = originals[which].clone();
        for m in &mangles {
            apply_to_json(&mut value, m);
        }
        answers_plainly(&value, Workflow::from_value(value.clone()))?;
        let mut bytes = value.to_string().into_bytes();
        for m in &mangles {
            apply_to_bytes(&mut bytes, m);
        }
        let text = String::from_utf8_lossy(&bytes);
        let reread: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        answers_plainly(&reread, Workflow::from_json(&text))?;
    });
}

#[test]
fn a_step_without_a_usable_id_is_named_by_its_position() {
    let p = problems(doc(json!([
        {"id": "", "type": "send_message", "text": "", "next": "end"},
        end()
    ])));
    has(&p, Some("#1"), "id", "1 to 64");
    has(&p, Some("#1"), "text", "must not be empty");
    let p = problems(doc(json!([end(), {"id": "has space", "type": "nope"}])));
    has(&p, Some("#2"), "type", "unknown step type `nope`");
}
