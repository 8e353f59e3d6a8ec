//! The Graph API's messages endpoint as a local [`ApiSandbox`], and webhook bodies as the
//! Cloud API sends them. Point `WHATSAPP_API_BASE` at [`ApiSandbox::base_url`].

use axum::http::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

pub use crate::channels::sandbox::meta_json;
use crate::channels::sandbox::{ApiSandbox, Captured, Dialect, str_at};

/// The sandbox for the Graph API, under its old name.
pub type GraphSandbox = ApiSandbox;
pub type SentMessage = Captured;

struct Graph;

impl Dialect for Graph {
    fn accepted(&self, n: u64, message: &Captured) -> (StatusCode, Value) {
        let to = message.to();
        (
            StatusCode::OK,
            json!({"messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": format!("wamid.sandbox.{n}")}]}),
        )
    }

    fn recipient(&self, body: &Value) -> String {
        str_at(body, "/to")
    }

    fn text(&self, body: &Value) -> String {
        body["text"]["body"]
            .as_str()
            .or_else(|| body["interactive"]["body"]["text"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    fn sender(&self, message: &Captured) -> Option<String> {
        Some(message.phone_number_id().to_string())
    }

    /// Reply-button (or list-row) ids and titles, for an interactive message.
    fn options(&self, body: &Value) -> Vec<(String, String)> {
        let action = &body["interactive"]["action"];
        let buttons = action["buttons"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| &b["reply"]);
        let rows = action["sections"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["rows"].as_array().into_iter().flatten());
        buttons
            .chain(rows)
            .map(|o| (str_at(o, "/id"), str_at(o, "/title")))
            .collect()
    }
}

impl ApiSandbox {
    /// A Graph API sandbox: `POST /{version}/{phone_number_id}/messages`.
    pub async fn graph(addr: SocketAddr) -> std::io::Result<ApiSandbox> {
        ApiSandbox::start(addr, Arc::new(Graph)).await
    }
}

impl Captured {
    /// The phone_number_id a Graph API message was sent from (from its path).
    pub fn phone_number_id(&self) -> &str {
        let mut segments = self.path.rsplit('/');
        segments.next();
        segments.next().unwrap_or_default()
    }
}

/// A webhook body with one inbound message, as the Cloud API sends it. `message` holds
/// the type-specific part, e.g. [`text`] or [`button_reply`].
pub fn message_webhook(
    phone_number_id: &str,
    from: &str,
    name: &str,
    message_id: &str,
    timestamp: i64,
    message: Value,
) -> Value {
    let mut msg = json!({"from": from, "id": message_id, "timestamp": timestamp.to_string()});
    if let (Some(m), Some(extra)) = (msg.as_object_mut(), message.as_object()) {
        m.extend(extra.clone());
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WHATSAPP_BUSINESS_ACCOUNT_ID", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
            "contacts": [{"profile": {"name": name}, "wa_id": from}],
            "messages": [msg]}}]}]})
}

/// A webhook body with one status of a message sent from `phone_number_id` to `to`.
/// `failed` statuses carry an error, as the Cloud API sends them.
pub fn status_webhook(phone_number_id: &str, to: &str, wamid: &str, status: &str) -> Value {
    let mut entry =
        json!({"id": wamid, "status": status, "timestamp": "1750000000", "recipient_id": to});
    if status == "failed" {
        entry["errors"] = json!([{"code": 131047, "title": "Re-engagement message",
            "message": "Re-engagement message", "error_data": {"details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}]);
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WHATSAPP_BUSINESS_ACCOUNT_ID", "changes": [{
        "field": "messages",
        "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
            "statuses": [entry]}}]}]})
}

pub fn text(body: &str) -> Value {
    json!({"type": "text", "text": {"body": body}})
}

pub fn button_reply(id: &str, title: &str) -> Value {
    json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}})
}
