//! Sending through the Graph API: `POST {api_base}/{phone_number_id}/messages`.
//! Up to 3 options go out as reply buttons, up to 10 as a list message.

use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

use super::WhatsAppConfig;
use crate::channels::provider_http;
use crate::contact::Address;
use crate::engine::{Choice, OutboundMessage};
use crate::ports::{SendError, Sent};

const MAX_REPLY_BUTTONS: usize = 3;

/// Error codes that mean "slow down or try later" rather than "never".
/// 4/80007/130429/131056: rate limits; 1/2/131000/131016/133004: temporary trouble at Meta;
/// 190: the access token expired or was revoked (messages wait until it is replaced).
const RETRYABLE_CODES: &[i64] = &[1, 2, 4, 190, 80007, 130429, 131000, 131016, 131056, 133004];

pub async fn send(
    http: &reqwest::Client,
    config: &WhatsAppConfig,
    to: &Address,
    message: &OutboundMessage,
) -> Result<Sent, SendError> {
    let Some(phone_number_id) = to.via.as_deref() else {
        return Err(SendError::Permanent {
            reason: "no phone_number_id to answer from".into(),
        });
    };
    // It goes into the URL's path, with the access token: anything but the number Meta
    // sends could point the token at another Graph API endpoint.
    if phone_number_id.is_empty() || !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SendError::Permanent {
            reason: "the phone_number_id to answer from is not a number".into(),
        });
    }
    let url = format!(
        "{}/{}/messages",
        config.api_base.trim_end_matches('/'),
        phone_number_id
    );
    let response = http
        .post(url)
        .bearer_auth(&config.access_token)
        .json(&render(&to.user_id, message))
        .send()
        .await
        .map_err(|e| provider_http::unreachable("Graph API", &e))?;
    let (status, retry_after, body) = provider_http::read(response).await;
    if status.is_success() {
        let id = body["messages"][0]["id"].as_str().map(str::to_string);
        return Ok(Sent {
            provider_message_id: id,
        });
    }
    Err(classify(status, &body, retry_after))
}

/// The Cloud API message object for `message`.
pub fn render(to: &str, message: &OutboundMessage) -> Value {
    let base = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": to});
    let specific = match message {
        OutboundMessage::Text { text } => {
            json!({"type": "text", "text": {"preview_url": true, "body": text}})
        }
        OutboundMessage::Question { text, choices } if choices.len() <= MAX_REPLY_BUTTONS => {
            let buttons: Vec<Value> = choices
                .iter()
                .map(|c| json!({"type": "reply", "reply": {"id": c.id, "title": c.label}}))
                .collect();
            json!({"type": "interactive", "interactive": {
                "type": "button", "body": {"text": text}, "action": {"buttons": buttons}}})
        }
        OutboundMessage::Question { text, choices } => {
            let rows: Vec<Value> = choices
                .iter()
                .map(|c: &Choice| json!({"id": c.id, "title": c.label}))
                .collect();
            json!({"type": "interactive", "interactive": {
                "type": "list", "body": {"text": text},
                "action": {"button": "Choose", "sections": [{"title": "Options", "rows": rows}]}}})
        }
    };
    let mut merged = base;
    if let (Some(m), Some(s)) = (merged.as_object_mut(), specific.as_object()) {
        m.extend(s.clone());
    }
    merged
}

fn classify(status: StatusCode, body: &Value, retry_after: Option<Duration>) -> SendError {
    let code = body["error"]["code"].as_i64();
    let detail = body["error"]["message"].as_str().unwrap_or("no detail");
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

    fn choices(n: usize) -> Vec<Choice> {
        (1..=n)
            .map(|i| Choice {
                id: format!("o{i}"),
                label: format!("Option {i}"),
            })
            .collect()
    }

    #[test]
    fn three_options_are_buttons_and_more_are_a_list() {
        let q = |n| OutboundMessage::Question {
            text: "Pick".into(),
            choices: choices(n),
        };
        let buttons = render("49151", &q(3));
        assert_eq!(buttons["interactive"]["type"], "button");
        assert_eq!(
            buttons["interactive"]["action"]["buttons"][2]["reply"]["id"],
            "o3"
        );
        let list = render("49151", &q(4));
        assert_eq!(list["interactive"]["type"], "list");
        assert_eq!(
            list["interactive"]["action"]["sections"][0]["rows"][3]["title"],
            "Option 4"
        );
        assert_eq!(list["to"], "49151");
        assert_eq!(list["messaging_product"], "whatsapp");
    }

    #[test]
    fn rate_limits_and_outages_retry_bad_recipients_do_not() {
        let err = |code: i64| json!({"error": {"message": "m", "code": code}});
        let bad = StatusCode::BAD_REQUEST;
        assert!(matches!(
            classify(bad, &err(130429), None),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify(bad, &err(131056), None),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify(StatusCode::BAD_GATEWAY, &Value::Null, None),
            SendError::Retryable { .. }
        ));
        assert!(matches!(
            classify(bad, &err(131047), None),
            SendError::Permanent { .. }
        ));
        assert!(matches!(
            classify(bad, &err(131026), None),
            SendError::Permanent { .. }
        ));
    }

    /// An API base that redirects (here to the real sandbox, keeping the path).
    async fn redirecting_to(target: String) -> String {
        use axum::http::{Uri, header};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(move |uri: Uri| {
            let location = format!("{target}{uri}");
            async move {
                (
                    StatusCode::PERMANENT_REDIRECT,
                    [(header::LOCATION, location)],
                )
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    #[tokio::test]
    async fn a_phone_number_id_that_is_not_a_number_never_becomes_a_url() {
        let config = WhatsAppConfig {
            app: crate::channels::meta_webhook::MetaApp::default(),
            access_token: "token".into(),
            // Nothing listens there: a request would fail as unreachable, and be retried.
            api_base: "http://127.0.0.1:9".into(),
        };
        let http = provider_http::client().unwrap();
        let hello = OutboundMessage::Text {
            text: "Hello".into(),
        };
        for via in ["../../me/accounts?x=", "", "1065 4035"] {
            let to = Address {
                channel: "whatsapp".into(),
                user_id: "49151".into(),
                via: Some(via.into()),
            };
            match send(&http, &config, &to, &hello).await {
                Err(SendError::Permanent { reason }) => {
                    assert!(reason.contains("not a number"), "{reason}")
                }
                other => panic!("{via:?}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_redirecting_api_base_is_not_followed_and_the_message_waits() {
        let graph = super::super::sandbox::GraphSandbox::graph("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let config = WhatsAppConfig {
            app: crate::channels::meta_webhook::MetaApp {
                app_secret: None,
                verify_token: None,
            },
            access_token: "token".into(),
            api_base: redirecting_to(graph.base_url()).await,
        };
        let to = Address {
            channel: "whatsapp".into(),
            user_id: "49151".into(),
            via: Some("106540352242922".into()),
        };
        let hello = OutboundMessage::Text {
            text: "Hello".into(),
        };
        let http = provider_http::client().unwrap();
        match send(&http, &config, &to, &hello).await {
            Err(SendError::Retryable { reason, .. }) => assert!(reason.contains("308"), "{reason}"),
            other => panic!("expected a retry, got {other:?}"),
        }
        assert!(
            graph.sent().is_empty(),
            "nothing reached the redirect's target"
        );

        // The same client sends once the base is right.
        let config = WhatsAppConfig {
            api_base: graph.base_url(),
            ..config
        };
        assert!(send(&http, &config, &to, &hello).await.is_ok());
        assert_eq!(graph.sent_to("49151").len(), 1);
    }
}
