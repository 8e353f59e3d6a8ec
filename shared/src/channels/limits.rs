//! What one inbound message may hold once stored, whatever its channel. Its ids become
//! store keys (a DynamoDB partition key holds at most 2,048 bytes and a sort key 1,024),
//! and the whole must fit one inbox item (a DynamoDB item holds at most 400 KB). No
//! provider sends more than the limits below; a body that does comes from a provider's
//! mistake, and one such message must not fail the whole body, which the provider would
//! then retry until it gave up on the good messages in it too.
//!
//! A message or report whose ids cannot be keys is skipped (counted in `skipped`, logged
//! without its content); over-long texts and labels are cut at a character boundary, so
//! the message still arrives (it can only be an invalid answer).

use crate::contact::Address;
use crate::engine::{Content, Inbound};
use crate::ports::DeliveryReport;

use super::Parsed;

/// Provider message ids: WhatsApp's are about 60 bytes, Messenger's about 100.
pub const MESSAGE_ID_MAX_BYTES: usize = 512;
/// User ids (phone numbers, page-scoped ids, chat ids) and the business's own id.
pub const USER_ID_MAX_BYTES: usize = 256;
/// 4,096 characters of up to 4 bytes: the longest text any supported channel carries.
pub const TEXT_MAX_BYTES: usize = 16 * 1024;
/// Choice ids and labels, profile names, kinds and failure reasons.
pub const LABEL_MAX_BYTES: usize = 1024;

/// Skips what no key can hold and cuts down what is too long.
pub fn fit(mut parsed: Parsed) -> Parsed {
    let messages = parsed.messages.len();
    parsed
        .messages
        .retain(|m| usable_address(&m.from) && usable_id(&m.message_id, MESSAGE_ID_MAX_BYTES));
    let failures = parsed.failures.len();
    parsed.failures.retain(|f| {
        usable_address(&f.to) && usable_id(&f.provider_message_id, MESSAGE_ID_MAX_BYTES)
    });
    let dropped = messages - parsed.messages.len() + failures - parsed.failures.len();
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "skipped messages whose sender or id is empty or too long to store"
        );
        parsed.skipped += dropped;
    }
    parsed.messages.iter_mut().for_each(cut_message);
    parsed.failures.iter_mut().for_each(cut_report);
    parsed
}

fn usable_id(id: &str, max: usize) -> bool {
    !id.is_empty() && id.len() <= max
}

fn usable_address(address: &Address) -> bool {
    usable_id(&address.user_id, USER_ID_MAX_BYTES)
        && address
            .via
            .as_deref()
            .is_none_or(|via| via.len() <= USER_ID_MAX_BYTES)
}

fn cut_message(message: &mut Inbound) {
    if let Some(name) = &mut message.name {
        cut(name, LABEL_MAX_BYTES);
    }
    match &mut message.content {
        Content::Text { text } => cut(text, TEXT_MAX_BYTES),
        Content::Choice { id, label } => {
            cut(id, LABEL_MAX_BYTES);
            cut(label, LABEL_MAX_BYTES);
        }
        Content::Other { kind } => cut(kind, LABEL_MAX_BYTES),
    }
}

fn cut_report(report: &mut DeliveryReport) {
    cut(&mut report.reason, LABEL_MAX_BYTES);
}

/// Shortens `text` to at most `max` bytes, at a character boundary.
fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        // `str::floor_char_boundary` is newer than this crate's minimum Rust version.
        let at = (0..=max)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(user_id: &str, message_id: &str, content: Content) -> Inbound {
        Inbound {
            from: Address {
                channel: "whatsapp".into(),
                user_id: user_id.into(),
                via: Some("106540352242922".into()),
            },
            message_id: message_id.into(),
            name: Some("Zoë".into()),
            content,
            sent_at: None,
        }
    }

    fn text(text: &str) -> Content {
        Content::Text { text: text.into() }
    }

    #[test]
    fn messages_without_a_storable_sender_or_id_are_skipped_and_counted() {
        let long = "9".repeat(MESSAGE_ID_MAX_BYTES + 1);
        let parsed = Parsed {
            messages: vec![
                message("4915100000001", "wamid.a", text("hi")),
                message("", "wamid.b", text("hi")),
                message("4915100000003", "", text("hi")),
                message("4915100000004", &long, text("hi")),
                message(&"4".repeat(USER_ID_MAX_BYTES + 1), "wamid.e", text("hi")),
                message("4915100000006", &long[1..], text("hi")),
            ],
            skipped: 1,
            ..Parsed::default()
        };
        let fitted = fit(parsed);
        let ids: Vec<&str> = fitted
            .messages
            .iter()
            .map(|m| m.message_id.as_str())
            .collect();
        assert_eq!(ids, ["wamid.a", &long[1..]]);
        assert_eq!(fitted.skipped, 5);
    }

    #[test]
    fn reports_without_a_storable_recipient_or_id_are_skipped() {
        let report = |to: &str, id: &str| DeliveryReport {
            to: Address {
                channel: "whatsapp".into(),
                user_id: to.into(),
                via: None,
            },
            provider_message_id: id.into(),
            reason: "x".repeat(LABEL_MAX_BYTES * 2),
        };
        let parsed = Parsed {
            failures: vec![
                report("4915100000001", "wamid.a"),
                report("4915100000001", ""),
            ],
            ..Parsed::default()
        };
        let fitted = fit(parsed);
        assert_eq!(fitted.failures.len(), 1);
        assert_eq!(fitted.failures[0].reason.len(), LABEL_MAX_BYTES);
        assert_eq!(fitted.skipped, 1);
    }

    #[test]
    fn long_texts_and_labels_are_cut_at_a_character_boundary() {
        // "é" is two bytes, and the limit is even: one extra byte puts the cut mid-character.
        let parsed = Parsed {
            messages: vec![
                message("1", "m1", text(&format!("a{}", "é".repeat(TEXT_MAX_BYTES)))),
                message(
                    "2",
                    "m2",
                    Content::Choice {
                        id: "yes".into(),
                        label: "😀".repeat(LABEL_MAX_BYTES),
                    },
                ),
                message("3", "m3", text("AGREE & PROCEED")),
            ],
            ..Parsed::default()
        };
        let fitted = fit(parsed);
        let Content::Text { text: cut_text } = &fitted.messages[0].content else {
            panic!("still a text")
        };
        assert_eq!(cut_text.len(), TEXT_MAX_BYTES - 1);
        assert!(cut_text.starts_with("aé"));
        let Content::Choice { id, label } = &fitted.messages[1].content else {
            panic!("still a choice")
        };
        assert_eq!((id.as_str(), label.len()), ("yes", LABEL_MAX_BYTES));
        assert_eq!(fitted.messages[2].content, text("AGREE & PROCEED"));
        assert_eq!(fitted.skipped, 0);
    }
}
