//! Parsing Cloud API webhook bodies: `entry[].changes[].value.{messages,statuses}`.
//! Meta batches several entries, changes and messages in one body; each message is read
//! on its own so that one odd element is skipped, not fatal.

use serde::Deserialize;
use serde_json::Value;

use super::NAME;
use crate::channels::{InboundError, Parsed};
use crate::clock::Timestamp;
use crate::contact::Address;
use crate::engine::{Content, Inbound};
use crate::ports::DeliveryReport;

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    object: Option<String>,
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    #[serde(default)]
    value: Option<ChangeValue>,
}

#[derive(Deserialize)]
struct ChangeValue {
    metadata: Option<Metadata>,
    #[serde(default)]
    contacts: Vec<WaContact>,
    #[serde(default)]
    messages: Vec<Value>,
    #[serde(default)]
    statuses: Vec<Value>,
}

#[derive(Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Deserialize)]
struct WaContact {
    wa_id: Option<String>,
    profile: Option<WaProfile>,
}

#[derive(Deserialize)]
struct WaProfile {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    from: String,
    id: String,
    timestamp: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    text: Option<Text>,
    interactive: Option<Interactive>,
    button: Option<Button>,
}

#[derive(Deserialize)]
struct Text {
    body: String,
}

#[derive(Deserialize)]
struct Interactive {
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
    title: String,
}

#[derive(Deserialize)]
struct Button {
    payload: Option<String>,
    text: Option<String>,
}

pub fn parse(body: &[u8]) -> Result<Parsed, InboundError> {
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| InboundError::not_json("WhatsApp webhook body", &e))?;
    let mut parsed = Parsed::default();
    if body
        .object
        .as_deref()
        .is_some_and(|o| o != "whatsapp_business_account")
    {
        // Another product's webhook on the same app: acknowledge, nothing to do.
        return Ok(parsed);
    }
    for value in body
        .entry
        .into_iter()
        .flat_map(|e| e.changes)
        .filter_map(|c| c.value)
    {
        for status in &value.statuses {
            match failure(status, value.metadata.as_ref()) {
                Some(report) => parsed.failures.push(report),
                None => parsed.statuses += 1,
            }
        }
        let Some(metadata) = &value.metadata else {
            parsed.skipped += value.messages.len();
            continue;
        };
        for raw in &value.messages {
            match serde_json::from_value::<Message>(raw.clone()) {
                Ok(message) => parsed
                    .messages
                    .push(normalize(message, metadata, &value.contacts)),
                Err(_) => parsed.skipped += 1,
            }
        }
    }
    Ok(parsed)
}

/// A `failed` status: a message the Cloud API accepted could not be delivered (outside
/// the 24-hour window, 131047, arrives this way).
fn failure(status: &Value, metadata: Option<&Metadata>) -> Option<DeliveryReport> {
    if status["status"] != "failed" {
        return None;
    }
    let error = &status["errors"][0];
    let reason = match (error["code"].as_i64(), error["title"].as_str()) {
        (Some(code), Some(title)) => format!("status failed, error {code}: {title}"),
        (Some(code), None) => format!("status failed, error {code}"),
        _ => "status failed".to_string(),
    };
    Some(DeliveryReport {
        to: Address {
            channel: NAME.into(),
            user_id: status["recipient_id"].as_str()?.to_string(),
            via: metadata.map(|m| m.phone_number_id.clone()),
        },
        provider_message_id: status["id"].as_str()?.to_string(),
        reason,
    })
}

fn normalize(message: Message, metadata: &Metadata, contacts: &[WaContact]) -> Inbound {
    let name = contacts
        .iter()
        .find(|c| c.wa_id.as_deref() == Some(message.from.as_str()))
        .and_then(|c| c.profile.as_ref())
        .and_then(|p| p.name.clone());
    let sent_at = message
        .timestamp
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .map(Timestamp::from_secs);
    let content = match (
        message.kind.as_str(),
        message.text,
        message.interactive,
        message.button,
    ) {
        ("text", Some(text), _, _) => Content::Text { text: text.body },
        ("interactive", _, Some(i), _) => match i.button_reply.or(i.list_reply) {
            Some(reply) => Content::Choice {
                id: reply.id,
                label: reply.title,
            },
            None => Content::Other {
                kind: "interactive".into(),
            },
        },
        ("button", _, _, Some(b)) => Content::Choice {
            id: b.payload.unwrap_or_default(),
            label: b.text.unwrap_or_default(),
        },
        (kind, ..) => Content::Other { kind: kind.into() },
    };
    Inbound {
        from: Address {
            channel: NAME.into(),
            user_id: message.from,
            via: Some(metadata.phone_number_id.clone()),
        },
        message_id: message.id,
        name,
        content,
        sent_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(messages: Value, statuses: Value) -> Vec<u8> {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{
            "field": "messages",
            "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PNID"},
                "contacts": [{"profile": {"name": "Zoë"}, "wa_id": "4915112345678"}],
                "messages": messages, "statuses": statuses}}]}]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn reads_text_buttons_lists_and_template_buttons() {
        let parsed = parse(&body(
            json!([
                {"from": "4915112345678", "id": "m1", "timestamp": "1700000000", "type": "text", "text": {"body": "hi 👋"}},
                {"from": "4915112345678", "id": "m2", "timestamp": "1700000001", "type": "interactive",
                 "interactive": {"type": "button_reply", "button_reply": {"id": "agree", "title": "AGREE & PROCEED"}}},
                {"from": "4915112345678", "id": "m3", "timestamp": "1700000002", "type": "interactive",
                 "interactive": {"type": "list_reply", "list_reply": {"id": "o4", "title": "Four", "description": "d"}}},
                {"from": "4915112345678", "id": "m4", "timestamp": "1700000003", "type": "button",
                 "button": {"payload": "agree", "text": "AGREE & PROCEED"}},
                {"from": "4915112345678", "id": "m5", "timestamp": "1700000004", "type": "image", "image": {"id": "x"}}
            ]),
            json!([]),
        ))
        .unwrap();
        let contents: Vec<_> = parsed.messages.iter().map(|m| m.content.clone()).collect();
        assert_eq!(
            contents,
            vec![
                Content::Text {
                    text: "hi 👋".into()
                },
                Content::Choice {
                    id: "agree".into(),
                    label: "AGREE & PROCEED".into()
                },
                Content::Choice {
                    id: "o4".into(),
                    label: "Four".into()
                },
                Content::Choice {
                    id: "agree".into(),
                    label: "AGREE & PROCEED".into()
                },
                Content::Other {
                    kind: "image".into()
                },
            ]
        );
        let first = &parsed.messages[0];
        assert_eq!(first.from.via.as_deref(), Some("PNID"));
        assert_eq!(first.name.as_deref(), Some("Zoë"));
        assert_eq!(first.sent_at, Some(Timestamp(1_700_000_000_000)));
    }

    #[test]
    fn statuses_are_counted_not_delivered_and_odd_messages_are_skipped() {
        let parsed = parse(&body(
            json!([{"from": "1", "type": "text", "text": {"body": "no id"}}]),
            json!([{"id": "wamid.1", "status": "delivered"}, {"id": "wamid.1", "status": "read"}]),
        ))
        .unwrap();
        assert!(parsed.messages.is_empty());
        assert_eq!((parsed.statuses, parsed.skipped), (2, 1));
    }

    #[test]
    fn a_failed_status_is_a_delivery_report_for_its_recipient() {
        let parsed = parse(&body(
            json!([]),
            json!([{"id": "wamid.9", "status": "failed", "recipient_id": "4915", "timestamp": "1",
                "errors": [{"code": 131047, "title": "Re-engagement message"}]}]),
        ))
        .unwrap();
        assert_eq!(parsed.statuses, 0);
        let report = &parsed.failures[0];
        assert_eq!(report.provider_message_id, "wamid.9");
        assert_eq!(
            report.to.contact_id(),
            Address {
                channel: "whatsapp".into(),
                user_id: "4915".into(),
                via: None
            }
            .contact_id()
        );
        assert!(report.reason.contains("131047"), "{}", report.reason);
    }

    #[test]
    fn a_rejection_never_quotes_the_body() {
        let Err(InboundError::Malformed(reason)) = parse(br#"{"entry": "my secret answer"}"#)
        else {
            panic!("expected a rejection");
        };
        assert!(!reason.contains("secret"), "{reason}");
    }

    #[test]
    fn rejects_what_is_not_a_webhook_body() {
        for bad in [&b"not json"[..], b"{}", b"[]", br#"{"entry": "x"}"#] {
            assert!(
                matches!(parse(bad), Err(InboundError::Malformed(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
