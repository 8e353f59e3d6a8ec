//! The website chat: a visitor gets a session token from the server (`POST /web/session`),
//! writes with it (`POST /webhooks/web`, `Authorization: Bearer <token>`) and long-polls
//! for answers (`GET /web/messages?after=N`). The widget (`/widget.js`) is a small
//! script with no framework; `/` is a demo page. Served by `assent-local`.

mod mailbox;
pub mod routes;
mod session;
mod session_limit;

pub use mailbox::{Delivered, KEPT_PER_VISITOR, Mailbox, MemoryMailbox};
pub use session::SessionKey;
pub use session_limit::{SessionCounter, SessionLimit, network};

use async_trait::async_trait;
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::{Channel, InboundError, Parsed};
use crate::contact::Address;
use crate::engine::{Content, Inbound, OutboundMessage};
use crate::ports::{SendError, Sent};

pub const NAME: &str = "web";
/// What the widget sends when a visitor opens a new conversation: it starts the workflow
/// and is never a valid answer.
pub const OPENED: &str = "conversation_opened";
/// Message ids come from the browser: plenty for a UUID, little to store.
const ID_MAX_BYTES: usize = 128;
/// Longer texts are refused (400) rather than cut: what a person typed is kept whole.
pub const TEXT_MAX_BYTES: usize = 4096;
/// Sessions one address may start per minute unless configured (`WEB_SESSIONS_PER_MINUTE`):
/// far more than people behind one office's address start, far fewer than a script would.
pub const SESSIONS_PER_MINUTE: u32 = 20;

pub struct WebChat {
    key: SessionKey,
    mailbox: Arc<dyn Mailbox>,
    /// Origins (scheme://host[:port]) whose pages may embed the widget; the server's own
    /// pages always may.
    allowed_origins: Vec<String>,
    /// New sessions an address may start per minute (0: no limit), and where they are
    /// counted.
    sessions_per_minute: u32,
    sessions: Arc<dyn SessionCounter>,
    /// The header a reverse proxy names the visitor's address in (its last entry is the
    /// one the proxy added); `None`: the connection's own peer address.
    address_header: Option<String>,
}

/// What the widget posts.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Posted {
    /// Chosen by the browser, so that a retried post is recognised.
    id: String,
    text: Option<String>,
    choice: Option<PostedChoice>,
    #[serde(default)]
    opened: bool,
}

#[derive(Deserialize)]
struct PostedChoice {
    id: String,
    label: String,
}

impl WebChat {
    pub fn new(key: SessionKey, allowed_origins: Vec<String>) -> WebChat {
        WebChat {
            key,
            mailbox: Arc::new(MemoryMailbox::default()),
            allowed_origins,
            sessions_per_minute: SESSIONS_PER_MINUTE,
            sessions: Arc::new(SessionLimit::new(SESSIONS_PER_MINUTE)),
            address_header: None,
        }
    }

    /// The chat as `WEB_ALLOWED_ORIGINS`, `WEB_SESSIONS_PER_MINUTE` and
    /// `WEB_CLIENT_ADDRESS_HEADER` configure it (docs/channels.md), signing with `key`.
    pub fn from_env(
        var: &dyn Fn(&str) -> Option<String>,
        key: SessionKey,
    ) -> Result<WebChat, String> {
        let origins = var("WEB_ALLOWED_ORIGINS")
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_string())
            .filter(|o| !o.is_empty())
            .collect();
        let sessions_per_minute = match var("WEB_SESSIONS_PER_MINUTE") {
            None => SESSIONS_PER_MINUTE,
            Some(n) => n.trim().parse().map_err(|_| {
                format!("WEB_SESSIONS_PER_MINUTE must be a whole number (0: no limit), not {n:?}")
            })?,
        };
        let address_header = var("WEB_CLIENT_ADDRESS_HEADER").filter(|h| !h.trim().is_empty());
        Ok(WebChat::new(key, origins).with_session_limit(sessions_per_minute, address_header))
    }

    /// At most `per_minute` new sessions per address (0: no limit), the address taken from
    /// `address_header` when a reverse proxy sets one.
    pub fn with_session_limit(mut self, per_minute: u32, address_header: Option<String>) -> Self {
        self.sessions_per_minute = per_minute;
        self.sessions = Arc::new(SessionLimit::new(per_minute));
        self.address_header = address_header.map(|h| h.to_ascii_lowercase());
        self
    }

    /// The sessions an address may start per minute (0: no limit).
    pub fn sessions_per_minute(&self) -> u32 {
        self.sessions_per_minute
    }

    /// Counts sessions in `counter` instead of in this process: servers that share it
    /// share the limit.
    pub fn with_session_counter(mut self, counter: Arc<dyn SessionCounter>) -> Self {
        self.sessions = counter;
        self
    }

    /// Takes a session for whoever asks, or says how long they must wait. A request whose
    /// address is unknown (no peer, no usable header) is not limited.
    pub async fn start_session(
        &self,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Result<(), Duration> {
        match self.client_address(headers, peer) {
            Some(address) => self.sessions.take(address).await,
            None => Ok(()),
        }
    }

    fn client_address(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        let Some(name) = &self.address_header else {
            return peer.map(|p| p.ip());
        };
        // The proxy appends the address it saw; entries before it are the client's word.
        headers
            .get_all(name.as_str())
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|last| last.trim().parse().ok())
    }

    /// Where this chat's messages wait for browsers (memory unless replaced).
    pub fn with_mailbox(mut self, mailbox: Arc<dyn Mailbox>) -> Self {
        self.mailbox = mailbox;
        self
    }

    pub fn mailbox(&self) -> &dyn Mailbox {
        self.mailbox.as_ref()
    }

    pub fn key(&self) -> &SessionKey {
        &self.key
    }

    pub fn allows_origin(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|o| o == origin)
    }

    /// The visitor a request's bearer token names.
    pub fn visitor(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        self.key.verify(value.strip_prefix("Bearer ")?.trim())
    }
}

#[async_trait]
impl Channel for WebChat {
    fn name(&self) -> &'static str {
        NAME
    }

    fn authenticate(&self, headers: &HeaderMap, _body: &[u8]) -> Result<(), InboundError> {
        self.visitor(headers)
            .map(|_| ())
            .ok_or(InboundError::Unauthorized(
                "missing or unknown session token",
            ))
    }

    fn parse(&self, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, InboundError> {
        let visitor = self.visitor(headers).ok_or(InboundError::Unauthorized(
            "missing or unknown session token",
        ))?;
        let posted: Posted = serde_json::from_slice(body)
            .map_err(|e| InboundError::not_json("web chat message", &e))?;
        let bad = |why: &str| InboundError::Malformed(why.into());
        if posted.id.is_empty() || posted.id.len() > ID_MAX_BYTES {
            return Err(bad("id must be 1 to 128 bytes"));
        }
        let content = match (posted.text, posted.choice, posted.opened) {
            (Some(text), None, false) if text.len() <= TEXT_MAX_BYTES => Content::Text { text },
            (Some(_), None, false) => return Err(bad("text is longer than 4096 bytes")),
            (None, Some(c), false) => Content::Choice {
                id: c.id,
                label: c.label,
            },
            (None, None, true) => Content::Other {
                kind: OPENED.into(),
            },
            _ => return Err(bad("expected exactly one of text, choice or opened")),
        };
        Ok(Parsed {
            messages: vec![Inbound {
                from: Address {
                    channel: NAME.into(),
                    user_id: visitor,
                    via: None,
                },
                message_id: posted.id,
                name: None,
                content,
                sent_at: None,
            }],
            ..Parsed::default()
        })
    }

    async fn forget(&self, user_id: &str) -> Result<(), String> {
        self.mailbox.forget(user_id).await
    }

    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError> {
        let seq = self
            .mailbox
            .push(&to.user_id, message)
            .await
            .map_err(|reason| SendError::Retryable {
                reason,
                retry_after: None,
            })?;
        Ok(Sent {
            provider_message_id: Some(seq.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat() -> (WebChat, HeaderMap) {
        let chat = WebChat::new(SessionKey::new(b"test"), Vec::new());
        let (_, token) = chat.key().issue().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        (chat, headers)
    }

    #[test]
    fn reads_text_choices_and_openings_from_the_visitor_the_token_names() {
        let (chat, headers) = chat();
        let visitor = chat.visitor(&headers).unwrap();
        let parse = |body: &str| chat.parse(&headers, body.as_bytes());
        let text = parse(r#"{"id": "c1", "text": "Olá 😀"}"#).unwrap();
        assert_eq!(text.messages[0].from.user_id, visitor);
        assert_eq!(
            text.messages[0].content,
            Content::Text {
                text: "Olá 😀".into()
            }
        );
        let choice =
            parse(r#"{"id": "c2", "choice": {"id": "agree", "label": "AGREE & PROCEED"}}"#)
                .unwrap();
        assert!(matches!(choice.messages[0].content, Content::Choice { .. }));
        let opened = parse(r#"{"id": "c3", "opened": true}"#).unwrap();
        assert_eq!(
            opened.messages[0].content,
            Content::Other {
                kind: OPENED.into()
            }
        );
    }

    #[test]
    fn refuses_unknown_tokens_and_odd_bodies() {
        let (chat, headers) = chat();
        assert!(chat.authenticate(&HeaderMap::new(), b"").is_err());
        let mut forged = HeaderMap::new();
        forged.insert(header::AUTHORIZATION, "Bearer abc.def".parse().unwrap());
        assert!(chat.authenticate(&forged, b"").is_err());
        for body in [
            r#"{"id": "c", "text": "a", "opened": true}"#,
            r#"{"id": "", "text": "a"}"#,
            r#"{"id": "c"}"#,
            r#"{"id": "c", "text": "a", "extra": 1}"#,
            "not json",
        ] {
            assert!(
                matches!(
                    chat.parse(&headers, body.as_bytes()),
                    Err(InboundError::Malformed(_))
                ),
                "{body}"
            );
        }
        let long = format!(
            r#"{{"id": "c", "text": "{}"}}"#,
            "a".repeat(TEXT_MAX_BYTES + 1)
        );
        assert!(chat.parse(&headers, long.as_bytes()).is_err());
    }

    #[test]
    fn a_missing_field_is_named_and_a_wrong_value_is_not_quoted() {
        let (chat, headers) = chat();
        let reason = |body: &str| match chat.parse(&headers, body.as_bytes()) {
            Err(InboundError::Malformed(reason)) => reason,
            other => panic!("expected a rejection, got {:?}", other.map(|_| ())),
        };
        let missing = reason(r#"{"text": "hello"}"#);
        assert!(missing.contains("missing field `id`"), "{missing}");
        let wrong = reason(r#"{"id": "c", "text": ["my secret answer"]}"#);
        assert!(!wrong.contains("secret"), "{wrong}");
    }
}
