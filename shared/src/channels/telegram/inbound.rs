//! Reading Bot API updates. Telegram posts one update per request; `update_id` is unique
//! per bot, so it is the message key that makes a redelivery a duplicate. A tapped inline
//! button is a `callback_query`: it is answered in the webhook response itself
//! (`answerCallbackQuery`), which stops the button's spinner without a second request
//! and without the bot token in the webhook function.

use serde::Deserialize;
use serde_json::{Value, json};

use super::NAME;
use crate::channels::{InboundError, Parsed, Reply};
use crate::clock::Timestamp;
use crate::contact::Address;
use crate::engine::{Content, Inbound};

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    message: Option<Message>,
    callback_query: Option<CallbackQuery>,
}

#[derive(Deserialize)]
struct Message {
    chat: Chat,
    from: Option<User>,
    date: Option<i64>,
    text: Option<String>,
    reply_markup: Option<Markup>,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct User {
    first_name: Option<String>,
    last_name: Option<String>,
}

#[derive(Deserialize)]
struct CallbackQuery {
    id: String,
    from: Option<User>,
    message: Option<Message>,
    data: Option<String>,
}

#[derive(Deserialize)]
struct Markup {
    #[serde(default)]
    inline_keyboard: Vec<Vec<Button>>,
}

#[derive(Deserialize)]
struct Button {
    text: String,
    callback_data: Option<String>,
}

/// Message kinds that are not text; the first one present names an `Other` content.
const OTHER_KINDS: &[&str] = &[
    "photo",
    "sticker",
    "voice",
    "video",
    "video_note",
    "audio",
    "document",
    "animation",
    "location",
    "contact",
    "poll",
];

pub fn parse(body: &[u8]) -> Result<Parsed, InboundError> {
    let update: Update =
        serde_json::from_slice(body).map_err(|e| InboundError::not_json("Telegram update", &e))?;
    let mut parsed = Parsed::default();
    let message_id = format!("update:{}", update.update_id);
    if let Some(query) = update.callback_query {
        // Answered whatever happens next, so the person's button stops spinning.
        parsed.reply = Some(Reply {
            content_type: "application/json",
            body: json!({"method": "answerCallbackQuery", "callback_query_id": query.id})
                .to_string(),
        });
        match choice(query, message_id) {
            Some(inbound) => parsed.messages.push(inbound),
            None => parsed.skipped += 1,
        }
    } else if let Some(message) = update.message {
        match private(&message) {
            true => parsed.messages.push(from_message(message, message_id)),
            false => parsed.skipped += 1,
        }
    } else {
        // edited_message, my_chat_member (blocked or unblocked), channel_post...: nothing
        // a consent conversation reads.
        parsed.statuses += 1;
    }
    Ok(parsed)
}

fn private(message: &Message) -> bool {
    message.chat.kind == "private"
}

fn from_message(message: Message, message_id: String) -> Inbound {
    let content = match message.text {
        Some(text) => Content::Text { text },
        None => Content::Other {
            kind: OTHER_KINDS
                .iter()
                .find(|k| message.rest.contains_key(**k))
                .unwrap_or(&"other")
                .to_string(),
        },
    };
    Inbound {
        from: address(message.chat.id),
        message_id,
        name: message.from.as_ref().and_then(full_name),
        content,
        sent_at: message.date.map(Timestamp::from_secs),
    }
}

/// A tapped inline button: its callback_data is the choice id, and the label is read back
/// from the keyboard of the message it was on.
fn choice(query: CallbackQuery, message_id: String) -> Option<Inbound> {
    let message = query.message.filter(private)?;
    let id = query.data?;
    let label = message
        .reply_markup
        .iter()
        .flat_map(|m| m.inline_keyboard.iter().flatten())
        .find(|b| b.callback_data.as_deref() == Some(id.as_str()))
        .map(|b| b.text.clone())
        .unwrap_or_else(|| id.clone());
    Some(Inbound {
        from: address(message.chat.id),
        message_id,
        name: query.from.as_ref().and_then(full_name),
        content: Content::Choice { id, label },
        // The tap's own time is not sent; the webhook's arrival time stands for it.
        sent_at: None,
    })
}

fn address(chat_id: i64) -> Address {
    Address {
        channel: NAME.into(),
        user_id: chat_id.to_string(),
        via: None,
    }
}

fn full_name(user: &User) -> Option<String> {
    match (&user.first_name, &user.last_name) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (first, last) => first.clone().or_else(|| last.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::telegram::sandbox::{callback_update, text_update};

    #[test]
    fn reads_text_with_unicode_and_names_the_sender() {
        let parsed = parse(text_update(7, 4242, "Olá 😀 привет").to_string().as_bytes()).unwrap();
        let m = &parsed.messages[0];
        assert_eq!(m.from.channel, "telegram");
        assert_eq!(m.from.user_id, "4242");
        assert_eq!(m.message_id, "update:7");
        assert_eq!(m.name.as_deref(), Some("José Ñandú"));
        assert_eq!(
            m.content,
            Content::Text {
                text: "Olá 😀 привет".into()
            }
        );
        assert_eq!(parsed.reply, None);
    }

    #[test]
    fn a_tapped_button_is_a_choice_with_its_label_and_is_answered_at_once() {
        let parsed = parse(
            callback_update(8, 4242, "cbq-1", "agree")
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(
            parsed.messages[0].content,
            Content::Choice {
                id: "agree".into(),
                label: "AGREE & PROCEED".into()
            }
        );
        let reply: Value = serde_json::from_str(&parsed.reply.unwrap().body).unwrap();
        assert_eq!(reply["method"], "answerCallbackQuery");
        assert_eq!(reply["callback_query_id"], "cbq-1");
    }

    #[test]
    fn groups_media_and_other_updates_are_not_conversations() {
        let mut group = text_update(9, -100, "hi all");
        group["message"]["chat"]["type"] = "group".into();
        assert_eq!(parse(group.to_string().as_bytes()).unwrap().skipped, 1);

        let mut sticker = text_update(10, 4242, "");
        let m = sticker["message"].as_object_mut().unwrap();
        m.remove("text");
        m.insert("sticker".into(), json!({"file_id": "f", "emoji": "👍"}));
        let parsed = parse(sticker.to_string().as_bytes()).unwrap();
        assert_eq!(
            parsed.messages[0].content,
            Content::Other {
                kind: "sticker".into()
            }
        );

        let blocked =
            json!({"update_id": 11, "my_chat_member": {"chat": {"id": 4242, "type": "private"}}});
        let parsed = parse(blocked.to_string().as_bytes()).unwrap();
        assert!(parsed.messages.is_empty());
        assert_eq!(parsed.statuses, 1);
    }

    #[test]
    fn rejects_what_is_not_an_update_without_quoting_it() {
        for body in [
            &b"{"[..],
            b"[]",
            br#"{"message": {"text": "secret words"}}"#,
        ] {
            match parse(body) {
                Err(InboundError::Malformed(reason)) => assert!(!reason.contains("secret")),
                other => panic!("{other:?}"),
            }
        }
    }
}
