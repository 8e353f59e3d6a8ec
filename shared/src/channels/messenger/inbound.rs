//! Reading `entry[].messaging[]` batches. Each event is read on its own: a message (text,
//! quick reply, attachment), a postback (a tapped button), or something else (delivery,
//! read, the page's own echoes, reactions) that is acknowledged and not passed on.

use serde::Deserialize;
use serde_json::Value;

use super::NAME;
use crate::channels::{InboundError, Parsed};
use crate::clock::Timestamp;
use crate::contact::Address;
use crate::engine::{Content, Inbound};

#[derive(Deserialize)]
struct Body {
    object: String,
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    messaging: Vec<Value>,
}

#[derive(Deserialize)]
struct Event {
    sender: Party,
    recipient: Party,
    /// Milliseconds since the epoch.
    timestamp: Option<i64>,
    message: Option<Message>,
    postback: Option<Postback>,
}

#[derive(Deserialize)]
struct Party {
    id: String,
}

#[derive(Deserialize)]
struct Message {
    mid: String,
    text: Option<String>,
    #[serde(default)]
    is_echo: bool,
    quick_reply: Option<QuickReply>,
    #[serde(default)]
    attachments: Vec<Attachment>,
}

#[derive(Deserialize)]
struct QuickReply {
    payload: String,
}

#[derive(Deserialize)]
struct Attachment {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Postback {
    mid: Option<String>,
    title: Option<String>,
    payload: String,
}

pub fn parse(body: &[u8]) -> Result<Parsed, InboundError> {
    let body: Body = serde_json::from_slice(body)
        .map_err(|e| InboundError::not_json("Messenger webhook body", &e))?;
    let mut parsed = Parsed::default();
    if body.object != "page" && body.object != "instagram" {
        return Ok(parsed);
    }
    for raw in body.entry.into_iter().flat_map(|e| e.messaging) {
        match serde_json::from_value::<Event>(raw) {
            Ok(event) => match normalize(event) {
                Some(inbound) => parsed.messages.push(inbound),
                None => parsed.statuses += 1,
            },
            Err(_) => parsed.skipped += 1,
        }
    }
    Ok(parsed)
}

fn normalize(event: Event) -> Option<Inbound> {
    let sent_at = event.timestamp.map(Timestamp);
    let (message_id, content) = match (event.message, event.postback) {
        (Some(message), _) if message.is_echo => return None,
        (Some(message), _) => (message.mid.clone(), message_content(message)),
        (None, Some(postback)) => {
            // Older API versions send postbacks without a mid; the sender and time are
            // then what make a redelivery recognisable.
            let id = postback.mid.unwrap_or_else(|| {
                format!(
                    "postback:{}:{}",
                    event.sender.id,
                    event.timestamp.unwrap_or(0)
                )
            });
            let label = postback.title.unwrap_or_else(|| postback.payload.clone());
            (
                id,
                Content::Choice {
                    id: postback.payload,
                    label,
                },
            )
        }
        (None, None) => return None,
    };
    Some(Inbound {
        from: Address {
            channel: NAME.into(),
            user_id: event.sender.id,
            via: Some(event.recipient.id),
        },
        message_id,
        name: None,
        content,
        sent_at,
    })
}

fn message_content(message: Message) -> Content {
    match (message.quick_reply, message.text) {
        (Some(reply), text) => Content::Choice {
            label: text.unwrap_or_else(|| reply.payload.clone()),
            id: reply.payload,
        },
        (None, Some(text)) => Content::Text { text },
        (None, None) => Content::Other {
            kind: message
                .attachments
                .first()
                .map(|a| a.kind.clone())
                .unwrap_or_else(|| "other".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::messenger::sandbox::{PAGE_ID, batch, echo, quick_reply, text};
    use serde_json::json;

    #[test]
    fn a_batch_mixes_messages_quick_replies_postbacks_echoes_and_receipts() {
        let body = batch(
            "page",
            vec![
                text("PSID1", "m_1", "Olá 😀"),
                quick_reply("PSID1", "m_2", "agree", "AGREE & PROCEED"),
                echo("PSID1", "m_3"),
                json!({"sender": {"id": "PSID2"}, "recipient": {"id": "PAGE"}, "timestamp": 1, "postback": {"title": "AGREE & PROCEED", "payload": "agree"}}),
                json!({"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE"}, "delivery": {"mids": ["m_9"], "watermark": 1}}),
                json!({"sender": {"id": "PSID1"}, "recipient": {"id": "PAGE"}, "read": {"watermark": 1}}),
                json!({"no": "sender"}),
            ],
        );
        let parsed = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.messages.len(), 3);
        assert_eq!((parsed.statuses, parsed.skipped), (3, 1));
        assert_eq!(
            parsed.messages[0].content,
            Content::Text {
                text: "Olá 😀".into()
            }
        );
        assert_eq!(parsed.messages[0].from.via.as_deref(), Some(PAGE_ID));
        let choice = Content::Choice {
            id: "agree".into(),
            label: "AGREE & PROCEED".into(),
        };
        assert_eq!(parsed.messages[1].content, choice);
        assert_eq!(parsed.messages[2].content, choice);
        assert_eq!(parsed.messages[2].message_id, "postback:PSID2:1");
    }

    #[test]
    fn instagram_uses_the_same_shape_and_other_products_are_ignored() {
        let ig = batch("instagram", vec![text("IGSID", "aWdfZA", "hi")]);
        assert_eq!(parse(ig.to_string().as_bytes()).unwrap().messages.len(), 1);
        let other = batch("user", vec![text("X", "m", "hi")]);
        assert!(
            parse(other.to_string().as_bytes())
                .unwrap()
                .messages
                .is_empty()
        );
    }

    #[test]
    fn an_attachment_is_never_an_answer() {
        let image = json!({"sender": {"id": "P"}, "recipient": {"id": "PAGE"}, "message": {"mid": "m", "attachments": [{"type": "image", "payload": {"url": "https://x"}}]}});
        let parsed = parse(batch("page", vec![image]).to_string().as_bytes()).unwrap();
        assert_eq!(
            parsed.messages[0].content,
            Content::Other {
                kind: "image".into()
            }
        );
    }
}
