//! Built-in templates: ready-made workflows with a few parameters.

use serde_json::{Value, json};
use std::collections::BTreeMap;

use super::{Problems, SPEC_VERSION, Workflow};

pub const REQUEST_CONSENT_PRIVACY: &str = "request-consent-privacy";

/// Every template this build knows, by name.
pub const TEMPLATES: &[&str] = &[REQUEST_CONSENT_PRIVACY];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template `{0}` (known: {known})", known = TEMPLATES.join(", "))]
    UnknownTemplate(String),
    #[error("template `{template}` has no parameter `{param}` (known: {known})")]
    UnknownParam {
        template: &'static str,
        param: String,
        known: String,
    },
    #[error("parameter `{param}`: {message}")]
    BadParam { param: String, message: String },
    #[error("parameter `{0}` is required")]
    MissingParam(&'static str),
    #[error(transparent)]
    Invalid(#[from] Problems),
}

/// Builds the named template with `params` (strings, as they come from a command line or
/// a JSON object); anything not given takes its default.
pub fn build(name: &str, params: &BTreeMap<String, String>) -> Result<Workflow, TemplateError> {
    match name {
        REQUEST_CONSENT_PRIVACY => request_consent_privacy(params),
        other => Err(TemplateError::UnknownTemplate(other.to_string())),
    }
}

/// The parameters of Request Consent: Privacy and their defaults (`None`: required).
pub const CONSENT_PRIVACY_PARAMS: &[(&str, Option<&str>)] = &[
    ("policy_url", None),
    ("timeout_seconds", Some("300")),
    ("max_jumps", Some("3")),
    ("tag", Some("Consent: Privacy")),
    (
        "privacy_message",
        Some("Before we continue, please read our privacy policy: {policy_url}"),
    ),
    (
        "question",
        Some("Do you agree to our privacy policy and to us processing your data as it describes?"),
    ),
    ("option_label", Some("AGREE & PROCEED")),
    (
        "accepted_message",
        Some("Thank you! Your consent is recorded. How can we help you today?"),
    ),
    (
        "invalid_message",
        Some(
            "We could not record your consent, so we cannot go on with this conversation. Message us again whenever you are ready.",
        ),
    ),
    ("withdraw_keywords", Some("STOP,REVOKE")),
    (
        "withdrawn_message",
        Some(
            "You have withdrawn your consent: we no longer process your data for this. Message us any time to start again.",
        ),
    ),
    (
        "timeout_message",
        Some(
            "We did not get your answer in time, so this conversation is closed. Message us again whenever you are ready.",
        ),
    ),
];

/// Request Consent: Privacy, exactly the flow in DESIGN.md:
/// link → question (AGREE & PROCEED, timeout) → accepted: acknowledge + tag;
/// invalid: jump back to the question at most `max_jumps` times, then fail and close;
/// timeout: fail and close.
fn request_consent_privacy(given: &BTreeMap<String, String>) -> Result<Workflow, TemplateError> {
    let p = resolve(REQUEST_CONSENT_PRIVACY, CONSENT_PRIVACY_PARAMS, given)?;
    let policy_url = &p["policy_url"];
    if !(policy_url.starts_with("https://") || policy_url.starts_with("http://"))
        || policy_url.contains(char::is_whitespace)
    {
        return Err(bad("policy_url", "an http(s) URL without spaces"));
    }
    let timeout: u64 = number(&p, "timeout_seconds")?;
    let max_jumps: u32 = number(&p, "max_jumps")?;
    let keywords: Vec<&str> = p["withdraw_keywords"]
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect();
    let definition: Value = json!({
        "spec_version": SPEC_VERSION,
        "id": REQUEST_CONSENT_PRIVACY,
        "name": "Request Consent: Privacy",
        "trigger": {"type": "conversation_opened"},
        "start": "send_privacy_link",
        "steps": [
            {"id": "send_privacy_link", "type": "send_message",
             "text": p["privacy_message"].replace("{policy_url}", policy_url),
             "next": "request_consent"},
            {"id": "request_consent", "type": "ask_question",
             "text": p["question"],
             "options": [{"id": "agree", "label": p["option_label"], "next": "acknowledge"}],
             "timeout_seconds": timeout,
             "on_invalid": "retry_invalid",
             "on_timeout": "send_timeout_fail",
             "consent": {"policy_url": policy_url, "accept": "agree"}},
            {"id": "acknowledge", "type": "send_message",
             "text": p["accepted_message"], "next": "tag_consent"},
            {"id": "tag_consent", "type": "update_contact_tag", "action": "add", "tag": p["tag"]},
            {"id": "retry_invalid", "type": "jump_to", "target": "request_consent",
             "max_jumps": max_jumps, "next": "send_invalid_fail"},
            {"id": "send_invalid_fail", "type": "send_message",
             "text": p["invalid_message"], "next": "close_conversation"},
            {"id": "send_timeout_fail", "type": "send_message",
             "text": p["timeout_message"], "next": "close_conversation"},
            {"id": "close_conversation", "type": "close_conversation"}
        ],
        "withdrawal": {"keywords": keywords, "tag": p["tag"], "message": p["withdrawn_message"]}
    });
    Ok(Workflow::from_value(definition)?)
}

/// Merges given parameters over defaults, refusing unknown names and missing required ones.
fn resolve(
    template: &'static str,
    spec: &[(&'static str, Option<&str>)],
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<&'static str, String>, TemplateError> {
    if let Some(unknown) = given
        .keys()
        .find(|k| !spec.iter().any(|(name, _)| name == k))
    {
        return Err(TemplateError::UnknownParam {
            template,
            param: unknown.clone(),
            known: spec.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        });
    }
    spec.iter()
        .map(|(name, default)| {
            let value = given
                .get(*name)
                .cloned()
                .or_else(|| default.map(str::to_string))
                .ok_or(TemplateError::MissingParam(name))?;
            Ok((*name, value))
        })
        .collect()
}

fn number<T: std::str::FromStr>(
    p: &BTreeMap<&'static str, String>,
    name: &str,
) -> Result<T, TemplateError> {
    p[name]
        .trim()
        .parse()
        .map_err(|_| bad(name, "a whole number"))
}

fn bad(param: &str, expected: &str) -> TemplateError {
    TemplateError::BadParam {
        param: param.to_string(),
        message: format!("expected {expected}"),
    }
}
