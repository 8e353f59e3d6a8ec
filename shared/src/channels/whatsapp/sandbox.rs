//! A local stand-in for the Graph API's messages endpoint. It answers like the Cloud API
//! and records what it was sent, so tests, the README walk-through and benchmarks can run
//! without Meta. Point `WHATSAPP_API_BASE` at [`GraphSandbox::base_url`].

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::VecDeque;
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
    failures: Mutex<VecDeque<(StatusCode, Value)>>,
    ids: AtomicU64,
    arrived: Notify,
    print: AtomicBool,
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
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Ok(mut f) = self.shared.failures.lock() {
            f.push_back((status, body));
        }
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
    let failure = shared.failures.lock().ok().and_then(|mut f| f.pop_front());
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
    };
    if shared.print.load(Ordering::SeqCst) {
        print_line(&message);
    }
    let to = message.to().to_string();
    if let Ok(mut sent) = shared.sent.lock() {
        sent.push(message);
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
