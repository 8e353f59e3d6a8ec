//! The Messages API as a local [`ApiSandbox`], and inbound SMS webhooks as Twilio posts
//! them. Point `TWILIO_API_BASE` at [`ApiSandbox::base_url`].

use axum::http::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::channels::sandbox::{ApiSandbox, Captured, Dialect, str_at};

/// The business's number in fixtures.
pub const NUMBER: &str = "+15005550006";
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";

struct MessagesApi;

impl Dialect for MessagesApi {
    fn accepted(&self, n: u64, message: &Captured) -> (StatusCode, Value) {
        (
            StatusCode::CREATED,
            json!({"sid": format!("SMsandbox{n:026}"), "status": "queued",
                "to": message.to(), "from": str_at(&message.body, "/From")}),
        )
    }

    fn recipient(&self, body: &Value) -> String {
        str_at(body, "/To")
    }

    fn sender(&self, message: &Captured) -> Option<String> {
        Some(str_at(&message.body, "/From"))
    }

    fn text(&self, body: &Value) -> String {
        str_at(body, "/Body")
    }

    /// The numbered lines of a question: ("1", "AGREE & PROCEED").
    fn options(&self, body: &Value) -> Vec<(String, String)> {
        self.text(body)
            .lines()
            .filter_map(|line| line.strip_prefix("Reply "))
            .filter_map(|rest| rest.split_once(" for "))
            .map(|(n, label)| (n.to_string(), label.to_string()))
            .collect()
    }
}

impl ApiSandbox {
    /// A Messages API sandbox: `POST /2010-04-01/Accounts/{sid}/Messages.json`.
    pub async fn twilio(addr: SocketAddr) -> std::io::Result<ApiSandbox> {
        ApiSandbox::start(addr, Arc::new(MessagesApi)).await
    }
}

/// The parameters of an inbound SMS webhook.
pub fn sms(from: &str, sid: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("SmsMessageSid", sid),
        ("NumMedia", "0"),
        ("SmsSid", sid),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", NUMBER),
        ("NumSegments", "1"),
        ("MessageSid", sid),
        ("AccountSid", ACCOUNT_SID),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub fn form_body(params: &[(String, String)]) -> String {
    serde_urlencoded::to_string(params).unwrap_or_default()
}
