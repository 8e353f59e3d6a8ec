//! Reading Twilio's form-encoded webhooks: an inbound SMS (`SmsStatus=received`), or a
//! status callback (`MessageStatus`), which is acknowledged and not passed on. Twilio
//! reads the answer as TwiML: an empty `<Response/>` sends nothing back by itself.

use std::collections::HashMap;

use super::NAME;
use crate::channels::{InboundError, Parsed, Reply};
use crate::contact::Address;
use crate::engine::{Content, Inbound};
use crate::ports::DeliveryReport;

pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

pub fn parse(body: &[u8]) -> Result<Parsed, InboundError> {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(body)
        .map_err(|_| InboundError::Malformed("not a form-encoded Twilio webhook".into()))?;
    let mut parsed = Parsed {
        reply: Some(Reply {
            content_type: "text/xml",
            body: EMPTY_TWIML.into(),
        }),
        ..Parsed::default()
    };
    let field = |name: &str| form.get(name).filter(|v| !v.is_empty()).cloned();
    if let Some(status) = field("MessageStatus") {
        // A message Twilio accepted that the carrier did not deliver.
        let failed = status == "failed" || status == "undelivered";
        match (failed, field("MessageSid"), field("To"), field("From")) {
            (true, Some(sid), Some(to), Some(from)) => parsed.failures.push(DeliveryReport {
                to: Address {
                    channel: NAME.into(),
                    user_id: to,
                    via: Some(from),
                },
                provider_message_id: sid,
                reason: match field("ErrorCode") {
                    Some(code) => format!("status {status}, error {code}"),
                    None => format!("status {status}"),
                },
            }),
            _ => parsed.statuses += 1,
        }
        return Ok(parsed);
    }
    let (Some(sid), Some(from), Some(to)) = (field("MessageSid"), field("From"), field("To"))
    else {
        parsed.skipped += 1;
        return Ok(parsed);
    };
    let media: u32 = field("NumMedia").and_then(|n| n.parse().ok()).unwrap_or(0);
    let content = match form.get("Body") {
        Some(text) if !text.trim().is_empty() => Content::Text { text: text.clone() },
        _ if media > 0 => Content::Other {
            kind: "media".into(),
        },
        _ => Content::Text {
            text: String::new(),
        },
    };
    parsed.messages.push(Inbound {
        from: Address {
            channel: NAME.into(),
            user_id: from,
            via: Some(to),
        },
        message_id: sid,
        name: field("ProfileName"),
        content,
        sent_at: None,
    });
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::twilio::sandbox::{form_body, sms};

    #[test]
    fn an_sms_is_text_from_the_sender_to_our_number() {
        let parsed = parse(form_body(&sms("+4915112345678", "SM1", "1 👍 ñ")).as_bytes()).unwrap();
        let m = &parsed.messages[0];
        assert_eq!(m.from.user_id, "+4915112345678");
        assert_eq!(
            m.from.via.as_deref(),
            Some(crate::channels::twilio::sandbox::NUMBER)
        );
        assert_eq!(m.message_id, "SM1");
        assert_eq!(
            m.content,
            Content::Text {
                text: "1 👍 ñ".into()
            }
        );
        assert_eq!(parsed.reply.unwrap().content_type, "text/xml");
    }

    #[test]
    fn status_callbacks_are_counted_and_mms_without_text_is_not_an_answer() {
        let status =
            "MessageSid=SM9&MessageStatus=delivered&SmsStatus=delivered&To=%2B49151&From=%2B1555";
        let parsed = parse(status.as_bytes()).unwrap();
        assert_eq!((parsed.messages.len(), parsed.statuses), (0, 1));
        let undelivered =
            "MessageSid=SM9&MessageStatus=undelivered&ErrorCode=30003&To=%2B49151&From=%2B1555";
        let report = &parse(undelivered.as_bytes()).unwrap().failures[0];
        assert_eq!(
            (
                report.to.user_id.as_str(),
                report.provider_message_id.as_str()
            ),
            ("+49151", "SM9")
        );
        assert!(report.reason.contains("30003"));

        let mut mms = sms("+4915112345678", "MM1", "");
        mms.push(("NumMedia".into(), "1".into()));
        let parsed = parse(form_body(&mms).as_bytes()).unwrap();
        assert_eq!(
            parsed.messages[0].content,
            Content::Other {
                kind: "media".into()
            }
        );
    }

    #[test]
    fn a_form_without_sender_or_id_is_skipped_not_retried() {
        assert_eq!(parse(b"Body=hi").unwrap().skipped, 1);
        assert_eq!(parse(br#"{"From": "+1"}"#).unwrap().skipped, 1);
    }
}
