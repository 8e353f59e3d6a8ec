//! `POST {api_base}/2010-04-01/Accounts/{sid}/Messages.json`, form-encoded, with basic
//! auth. A question becomes numbered lines: "Reply 1 for AGREE & PROCEED".

use reqwest::StatusCode;
use serde_json::Value;
use std::time::Duration;

use super::TwilioConfig;
use crate::channels::provider_http;
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

/// 20429: too many requests; 20003 is a revoked credential (messages wait for a new one).
const RETRYABLE_CODES: &[i64] = &[20003, 20429];

pub async fn send(
    http: &reqwest::Client,
    config: &TwilioConfig,
    to: &Address,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let Some(from) = to.via.as_deref() else {
        return Err(SendError::Permanent {
            reason: "no number to answer from".into(),
        });
    };
    let url = format!(
        "{}/2010-04-01/Accounts/{}/Messages.json",
        config.api_base.trim_end_matches('/'),
        config.account_sid
    );
    let form = [
        ("To", to.user_id.as_str()),
        ("From", from),
        ("Body", &render(message)),
    ];
    let response = http
        .post(url)
        .basic_auth(&config.account_sid, config.auth_token.as_deref())
        .form(&form)
        .send()
        .await
        .map_err(|e| provider_http::unreachable("Messages API", &e))?;
    let (status, retry_after, body) = provider_http::read(response).await;
    if status.is_success() {
        return Ok(Sent {
            provider_message_id: body["sid"].as_str().map(str::to_string),
        });
    }
    Err(classify(status, &body, retry_after))
}

pub fn render(message: &OutboundMessage) -> String {
    match message {
        OutboundMessage::Text { text } => text.clone(),
        OutboundMessage::Question { text, choices } => {
            let mut body = text.clone();
            body.push('\n');
            for (i, choice) in choices.iter().enumerate() {
                body.push_str(&format!("\nReply {} for {}", i + 1, choice.label));
            }
            body
        }
    }
}

/// Invalid numbers (21211, 21614), opted-out recipients (21610) and the like will not
/// change by retrying.
fn classify(status: StatusCode, body: &Value, retry_after: Option<Duration>) -> SendError {
    let code = body["code"].as_i64();
    let detail = body["message"].as_str().unwrap_or("no detail");
    let reason = match code {
        Some(code) => format!("HTTP {status}, error {code}: {detail}"),
        None => format!("HTTP {status}"),
    };
    let retryable = provider_http::is_transient(status)
        || status == StatusCode::UNAUTHORIZED
        || code.is_some_and(|c| RETRYABLE_CODES.contains(&c));
    provider_http::verdict(retryable, reason, retry_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Choice;
    use serde_json::json;

    #[test]
    fn a_question_is_numbered_text() {
        let question = OutboundMessage::Question {
            text: "Do you agree?".into(),
            choices: vec![
                Choice {
                    id: "agree".into(),
                    label: "AGREE & PROCEED".into(),
                },
                Choice {
                    id: "no".into(),
                    label: "No thanks".into(),
                },
            ],
        };
        assert_eq!(
            render(&question),
            "Do you agree?\n\nReply 1 for AGREE & PROCEED\nReply 2 for No thanks"
        );
    }

    #[test]
    fn an_opted_out_number_is_permanent_and_throttling_retries() {
        let err = |code: i64, status: u16| json!({"code": code, "message": "m", "status": status});
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &err(21610, 400), None),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, &err(20429, 429), None),
            SendError::Retryable { .. }
        ));
    }
}
