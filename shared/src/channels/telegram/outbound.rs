//! `POST {api_base}/bot{token}/sendMessage`. A question carries an inline keyboard, one
//! button per row so that long labels are never cut; the option id is the callback_data
//! (ids are validated to fit its 64 bytes at publish time).

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use super::TelegramConfig;
use crate::channels::provider_http;
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

pub async fn send(
    http: &reqwest::Client,
    config: &TelegramConfig,
    to: &Address,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let url = format!(
        "{}/bot{}/sendMessage",
        config.api_base.trim_end_matches('/'),
        config.bot_token
    );
    let response = http
        .post(url)
        .json(&render(&to.user_id, message))
        .send()
        .await
        .map_err(|e| provider_http::unreachable("Bot API", &e))?;
    let (status, retry_after, body) = provider_http::read(response).await;
    if status.is_success() && body["ok"] == true {
        return Ok(Sent {
            provider_message_id: body["result"]["message_id"]
                .as_i64()
                .map(|id| id.to_string()),
        });
    }
    Err(classify(status, &body, retry_after))
}

pub fn render(chat_id: &str, message: &OutboundMessage) -> Value {
    // Chat ids are integers; a username (@channel) stays a string.
    let chat_id = chat_id
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| Value::from(chat_id));
    match message {
        OutboundMessage::Text { text } => json!({"chat_id": chat_id, "text": text}),
        OutboundMessage::Question { text, choices } => {
            let rows: Vec<Value> = choices
                .iter()
                .map(|c| json!([{"text": c.label, "callback_data": c.id}]))
                .collect();
            json!({"chat_id": chat_id, "text": text, "reply_markup": {"inline_keyboard": rows}})
        }
    }
}

/// 429 carries `parameters.retry_after`; 401 is a revoked token (messages wait for a new
/// one); 403 (blocked by the user) and 400 (chat not found) will not change by retrying.
fn classify(status: StatusCode, body: &Value, header_retry: Option<Duration>) -> SendError {
    let detail = body["description"].as_str().unwrap_or("no detail");
    let reason = format!("HTTP {status}: {detail}");
    let retry_after = body["parameters"]["retry_after"]
        .as_u64()
        .map(Duration::from_secs)
        .or(header_retry);
    let retryable = provider_http::is_transient(status) || status == StatusCode::UNAUTHORIZED;
    provider_http::verdict(retryable, reason, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Choice;

    #[test]
    fn a_question_is_an_inline_keyboard_with_ids_as_callback_data() {
        let question = OutboundMessage::Question {
            text: "Do you agree?".into(),
            choices: vec![Choice {
                id: "agree".into(),
                label: "AGREE & PROCEED".into(),
            }],
        };
        let body = render("4242", &question);
        assert_eq!(body["chat_id"], 4242);
        assert_eq!(
            body["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
            "agree"
        );
        assert_eq!(
            body["reply_markup"]["inline_keyboard"][0][0]["text"],
            "AGREE & PROCEED"
        );
    }

    #[test]
    fn throttling_waits_as_told_and_a_blocked_bot_is_permanent() {
        let throttled = json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 7", "parameters": {"retry_after": 7}});
        match classify(StatusCode::TOO_MANY_REQUESTS, &throttled, None) {
            SendError::Retryable { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
        let blocked = json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"});
        match classify(StatusCode::FORBIDDEN, &blocked, None) {
            SendError::Permanent { reason } => assert!(reason.contains("blocked")),
            other => panic!("{other:?}"),
        }
    }
}
