//! The Send API as a local [`ApiSandbox`], and webhook bodies as Messenger and Instagram
//! post them. Point `MESSENGER_API_BASE` at [`ApiSandbox::base_url`].

use axum::http::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::channels::sandbox::{ApiSandbox, Captured, Dialect, str_at};

pub const PAGE_ID: &str = "1029384756";

struct SendApi;

impl Dialect for SendApi {
    fn accepted(&self, n: u64, message: &Captured) -> (StatusCode, Value) {
        (
            StatusCode::OK,
            json!({"recipient_id": message.to(), "message_id": format!("m_sandbox_{n}")}),
        )
    }

    fn recipient(&self, body: &Value) -> String {
        str_at(body, "/recipient/id")
    }

    fn text(&self, body: &Value) -> String {
        str_at(body, "/message/text")
    }

    fn options(&self, body: &Value) -> Vec<(String, String)> {
        body["message"]["quick_replies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|q| (str_at(q, "/payload"), str_at(q, "/title")))
            .collect()
    }
}

impl ApiSandbox {
    /// A Send API sandbox: `POST /{version}/me/messages`.
    pub async fn messenger(addr: SocketAddr) -> std::io::Result<ApiSandbox> {
        ApiSandbox::start(addr, Arc::new(SendApi)).await
    }
}

/// A webhook body for `object` ("page" or "instagram") with `events` in one entry.
pub fn batch(object: &str, events: Vec<Value>) -> Value {
    json!({"object": object, "entry": [{"id": PAGE_ID, "time": 1_750_000_000_000i64, "messaging": events}]})
}

pub fn text(sender: &str, mid: &str, text: &str) -> Value {
    json!({"sender": {"id": sender}, "recipient": {"id": PAGE_ID}, "timestamp": 1_750_000_000_000i64,
        "message": {"mid": mid, "text": text}})
}

pub fn quick_reply(sender: &str, mid: &str, payload: &str, label: &str) -> Value {
    json!({"sender": {"id": sender}, "recipient": {"id": PAGE_ID}, "timestamp": 1_750_000_000_000i64,
        "message": {"mid": mid, "text": label, "quick_reply": {"payload": payload}}})
}

/// The page's own message coming back: never an answer.
pub fn echo(recipient: &str, mid: &str) -> Value {
    json!({"sender": {"id": PAGE_ID}, "recipient": {"id": recipient}, "timestamp": 1_750_000_000_000i64,
        "message": {"mid": mid, "is_echo": true, "app_id": 1517776481860111i64, "text": "Do you agree?"}})
}
