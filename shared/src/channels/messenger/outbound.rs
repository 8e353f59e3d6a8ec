//! `POST {api_base}/me/messages` with the page token. A question is text with up to 13
//! quick replies (publish-time validation keeps options at 10 and labels at 20 characters).

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use super::MessengerConfig;
use crate::channels::provider_http;
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

pub const MAX_QUICK_REPLIES: usize = 13;

/// 1/2/1200: temporary trouble at Meta; 4/17/32/613: rate limits; 190: the page token
/// expired or was revoked (messages wait until it is replaced).
const RETRYABLE_CODES: &[i64] = &[1, 2, 4, 17, 32, 190, 613, 1200];

pub async fn send(
    http: &reqwest::Client,
    config: &MessengerConfig,
    to: &Address,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let url = format!("{}/me/messages", config.api_base.trim_end_matches('/'));
    let response = http
        .post(url)
        .bearer_auth(&config.page_token)
        .json(&render(&to.user_id, message))
        .send()
        .await
        .map_err(|e| provider_http::unreachable("Send API", &e))?;
    let (status, retry_after, body) = provider_http::read(response).await;
    if status.is_success() {
        return Ok(Sent {
            provider_message_id: body["message_id"].as_str().map(str::to_string),
        });
    }
    Err(classify(status, &body, retry_after))
}

pub fn render(recipient: &str, message: &OutboundMessage) -> Value {
    let message = match message {
        OutboundMessage::Text { text } => json!({"text": text}),
        OutboundMessage::Question { text, choices } => {
            let replies: Vec<Value> = choices
                .iter()
                .take(MAX_QUICK_REPLIES)
                .map(|c| json!({"content_type": "text", "title": c.label, "payload": c.id}))
                .collect();
            json!({"text": text, "quick_replies": replies})
        }
    };
    json!({"recipient": {"id": recipient}, "messaging_type": "RESPONSE", "message": message})
}

/// Outside the 24-hour window (10/2018278), no such person (100, 551) and missing
/// permissions do not change by retrying.
fn classify(status: StatusCode, body: &Value, retry_after: Option<Duration>) -> SendError {
    let code = body["error"]["code"].as_i64();
    let subcode = body["error"]["error_subcode"].as_i64();
    let detail = body["error"]["message"].as_str().unwrap_or("no detail");
    let reason = match (code, subcode) {
        (Some(code), Some(sub)) => format!("HTTP {status}, error {code}/{sub}: {detail}"),
        (Some(code), None) => format!("HTTP {status}, error {code}: {detail}"),
        _ => format!("HTTP {status}"),
    };
    let retryable =
        provider_http::is_transient(status) || code.is_some_and(|c| RETRYABLE_CODES.contains(&c));
    provider_http::verdict(retryable, reason, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Choice;

    #[test]
    fn a_question_carries_quick_replies_with_ids_as_payloads() {
        let question = OutboundMessage::Question {
            text: "Do you agree?".into(),
            choices: vec![Choice {
                id: "agree".into(),
                label: "AGREE & PROCEED".into(),
            }],
        };
        let body = render("PSID", &question);
        assert_eq!(body["recipient"]["id"], "PSID");
        assert_eq!(body["message"]["quick_replies"][0]["payload"], "agree");
        assert_eq!(
            body["message"]["quick_replies"][0]["title"],
            "AGREE & PROCEED"
        );
    }

    #[test]
    fn outside_the_window_is_permanent_and_rate_limits_retry() {
        let err = |code: i64, sub: i64| json!({"error": {"message": "m", "type": "OAuthException", "code": code, "error_subcode": sub}});
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &err(10, 2018278), None),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &err(613, 0), None),
            SendError::Retryable { .. }
        ));
    }
}
