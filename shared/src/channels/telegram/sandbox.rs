//! The Bot API's `sendMessage` as a local [`ApiSandbox`], and updates as Telegram posts
//! them. Point `TELEGRAM_API_BASE` at [`ApiSandbox::base_url`].

use axum::http::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::channels::sandbox::{ApiSandbox, Captured, Dialect, str_at};

struct BotApi;

impl Dialect for BotApi {
    fn accepted(&self, n: u64, message: &Captured) -> (StatusCode, Value) {
        let chat = message.body["chat_id"].clone();
        (
            StatusCode::OK,
            json!({"ok": true, "result": {"message_id": n, "date": 1_750_000_000,
                "chat": {"id": chat, "type": "private"}, "text": message.text()}}),
        )
    }

    fn recipient(&self, body: &Value) -> String {
        match &body["chat_id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    fn text(&self, body: &Value) -> String {
        str_at(body, "/text")
    }

    fn options(&self, body: &Value) -> Vec<(String, String)> {
        body["reply_markup"]["inline_keyboard"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_array().into_iter().flatten())
            .map(|b| (str_at(b, "/callback_data"), str_at(b, "/text")))
            .collect()
    }
}

impl ApiSandbox {
    /// A Bot API sandbox: `POST /bot{token}/sendMessage`.
    pub async fn telegram(addr: SocketAddr) -> std::io::Result<ApiSandbox> {
        ApiSandbox::start(addr, Arc::new(BotApi)).await
    }
}

fn user() -> Value {
    json!({"id": 4242, "is_bot": false, "first_name": "José", "last_name": "Ñandú", "language_code": "pt"})
}

/// A private-chat text message update.
pub fn text_update(update_id: i64, chat_id: i64, text: &str) -> Value {
    json!({"update_id": update_id, "message": {
        "message_id": update_id + 1000, "from": user(), "date": 1_750_000_000,
        "chat": {"id": chat_id, "first_name": "José", "type": "private"}, "text": text}})
}

/// A tap on the inline button `data` of the consent question.
pub fn callback_update(update_id: i64, chat_id: i64, query_id: &str, data: &str) -> Value {
    json!({"update_id": update_id, "callback_query": {
        "id": query_id, "from": user(), "chat_instance": "-8000",
        "message": {"message_id": 2, "date": 1_750_000_000, "text": "Do you agree?",
            "chat": {"id": chat_id, "type": "private"},
            "reply_markup": {"inline_keyboard": [[{"text": "AGREE & PROCEED", "callback_data": "agree"}]]}},
        "data": data}})
}
