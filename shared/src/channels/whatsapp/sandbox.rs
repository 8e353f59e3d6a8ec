//! A local stand-in for the Graph API's messages endpoint. It answers like the Cloud API
//! and records what it was sent, so tests, the README walk-through and benchmarks can run
//! without Meta. Point `WHATSAPP_API_BASE` at [`GraphSandbox::base_url`].

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// One message as the sandbox received it.
#[derive(Clone, Debug)]
pub struct SentMessage {
    pub phone_number_id: String,
    pub authorization: Option<String>,
    pub body: Value,
    /// When the sandbox received it (for lateness measurements).
    pub received_at: std::time::SystemTime,
}

impl SentMessage {
    pub fn to(&self) -> &str {
        self.body["to"].as_str().unwrap_or_default()
    }

    /// The text a person reads: a text body or an interactive message's body.
    pub fn text(&self) -> &str {
        self.body["text"]["body"]
            .as_str()
            .or_else(|| self.body["interactive"]["body"]["text"].as_str())
            .unwrap_or_default()
    }

    /// Reply-button (or list-row) ids and titles, for an interactive message.
    pub fn options(&self) -> Vec<(String, String)> {
        let action = &self.body["interactive"]["action"];
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
            .map(|o| {
                (
                    o["id"].as_str().unwrap_or_default().to_string(),
                    o["title"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}

#[derive(Default)]
struct Shared {
    sent: Mutex<Vec<SentMessage>>,
    /// request number (1-based, counted over all requests) -> the answer to give instead
    failures: Mutex<BTreeMap<u64, (StatusCode, Value)>>,
    requests: AtomicU64,
    ids: AtomicU64,
    arrived: Notify,
    print: AtomicBool,
    /// Messages received per recipient, for waits on one contact.
    per_recipient: Mutex<std::collections::HashMap<String, usize>>,
}

pub struct GraphSandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl GraphSandbox {
    pub async fn start(addr: SocketAddr) -> std::io::Result<GraphSandbox> {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/{phone_number_id}/messages", post(receive))
            .route(
                "/{version}/{phone_number_id}/messages",
                post(receive_versioned),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GraphSandbox {
            addr,
            shared,
            server,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Prints one line per message received (for the README walk-through).
    pub fn print_messages(&self) {
        self.shared.print.store(true, Ordering::SeqCst);
    }

    pub fn sent(&self) -> Vec<SentMessage> {
        self.shared
            .sent
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The next request is answered with `status` and `body` instead of success.
    pub fn fail_next(&self, status: u16, body: Value) {
        self.fail_in(1, status, body)
    }

    /// The `n`th request from now (1: the next) is answered with `status` and `body`.
    pub fn fail_in(&self, n: u64, status: u16, body: Value) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let at = self.shared.requests.load(Ordering::SeqCst) + n;
        if let Ok(mut f) = self.shared.failures.lock() {
            f.insert(at, (status, body));
        }
    }

    /// Requests received, failed ones included.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` messages arrived, or `patience` ran out, and returns
    /// what arrived. A wait for an outcome, not a timing claim.
    pub async fn wait_for(&self, count: usize, patience: Duration) -> Vec<SentMessage> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let notified = self.shared.arrived.notified();
            let sent = self.sent();
            if sent.len() >= count || tokio::time::Instant::now() >= deadline {
                return sent;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

impl GraphSandbox {
    /// Waits until `to` has been sent at least `count` messages, or `patience` ran out.
    /// Returns how many it has.
    pub async fn wait_for_recipient(&self, to: &str, count: usize, patience: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let notified = self.shared.arrived.notified();
            let have = self
                .shared
                .per_recipient
                .lock()
                .map(|c| c.get(to).copied().unwrap_or(0))
                .unwrap_or(0);
            if have >= count || tokio::time::Instant::now() >= deadline {
                return have;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }
}

impl Drop for GraphSandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive_versioned(
    state: State<Arc<Shared>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Json<Value>,
) -> (StatusCode, Json<Value>) {
    receive(state, Path(phone_number_id), headers, body).await
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Path(phone_number_id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let number = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let failure = shared
        .failures
        .lock()
        .ok()
        .and_then(|mut f| f.remove(&number));
    if let Some((status, body)) = failure {
        return (status, Json(body));
    }
    let id = format!(
        "wamid.sandbox.{}",
        shared.ids.fetch_add(1, Ordering::SeqCst) + 1
    );
    let message = SentMessage {
        phone_number_id,
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
        received_at: std::time::SystemTime::now(),
    };
    if shared.print.load(Ordering::SeqCst) {
        print_line(&message);
    }
    let to = message.to().to_string();
    if let Ok(mut sent) = shared.sent.lock() {
        sent.push(message);
    }
    if let Ok(mut counts) = shared.per_recipient.lock() {
        *counts.entry(to.clone()).or_default() += 1;
    }
    shared.arrived.notify_waiters();
    (
        StatusCode::OK,
        Json(json!({"messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": id}]})),
    )
}

fn print_line(message: &SentMessage) {
    let options: Vec<String> = message
        .options()
        .into_iter()
        .map(|(id, title)| format!("[{title}] (id {id})"))
        .collect();
    println!(
        "→ to {} from {}: {} {}",
        message.to(),
        message.phone_number_id,
        message.text(),
        options.join(" ")
    );
}

/// Serializes `value` as Meta does: compact JSON with every non-ASCII character escaped
/// as `\uXXXX` (a surrogate pair beyond the BMP). Signatures cover these exact bytes.
pub fn meta_json(value: &Value) -> String {
    use std::fmt::Write;
    let compact = value.to_string();
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
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

pub fn text(body: &str) -> Value {
    json!({"type": "text", "text": {"body": body}})
}

pub fn button_reply(id: &str, title: &str) -> Value {
    json!({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_json_escapes_non_ascii_and_stays_the_same_json() {
        let value = json!({"name": "José 😀", "plain": "a\"b"});
        let escaped = meta_json(&value);
        assert!(escaped.is_ascii());
        assert!(escaped.contains(r"Jos\u00e9 \ud83d\ude00"), "{escaped}");
        assert_eq!(serde_json::from_str::<Value>(&escaped).unwrap(), value);
    }
}
