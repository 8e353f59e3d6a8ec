//! A local stand-in for a provider's send API: it answers as the provider does and records
//! what it was sent, so tests, the README walk-through and benchmarks run without the
//! provider. Each channel module brings its [`Dialect`] (what success looks like, where the
//! recipient and text are) and a constructor, e.g. `ApiSandbox::graph`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::Notify;

/// How one provider's API looks from the outside.
pub trait Dialect: Send + Sync + 'static {
    /// The answer to the `n`th message accepted (1-based): status and JSON body.
    fn accepted(&self, n: u64, message: &Captured) -> (StatusCode, Value);
    /// Who the message is for.
    fn recipient(&self, body: &Value) -> String;
    /// The text a person reads.
    fn text(&self, body: &Value) -> String;
    /// The options offered as (payload, label), in order.
    fn options(&self, body: &Value) -> Vec<(String, String)>;
    /// Who it is sent from, where the provider names it (a phone number's id or number).
    fn sender(&self, _message: &Captured) -> Option<String> {
        None
    }
}

/// One request as the sandbox received it.
#[derive(Clone)]
pub struct Captured {
    pub path: String,
    pub authorization: Option<String>,
    /// The JSON body, or a form body as an object of strings.
    pub body: Value,
    /// When the sandbox received it (for lateness measurements).
    pub received_at: SystemTime,
    dialect: Arc<dyn Dialect>,
}

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.path, self.body)
    }
}

impl Captured {
    pub fn to(&self) -> String {
        self.dialect.recipient(&self.body)
    }

    pub fn text(&self) -> String {
        self.dialect.text(&self.body)
    }

    pub fn options(&self) -> Vec<(String, String)> {
        self.dialect.options(&self.body)
    }
}

struct Shared {
    dialect: Arc<dyn Dialect>,
    sent: Mutex<Vec<Captured>>,
    /// request number (1-based, counted over all requests) -> the answer to give instead
    failures: Mutex<BTreeMap<u64, (StatusCode, Value)>>,
    /// recipient -> how many of its next requests get this answer instead (a provider
    /// failing for one contact whatever else it is sent meanwhile)
    failures_for: Mutex<HashMap<String, (u64, StatusCode)>>,
    /// request number -> how long to wait before answering (a provider that hangs)
    stalls: Mutex<BTreeMap<u64, Duration>>,
    requests: AtomicU64,
    accepted: AtomicU64,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    /// How long every accepted request waits for its answer (a slow provider).
    latency: Mutex<Duration>,
    arrived: Notify,
    print: AtomicBool,
    /// Each recipient's messages (their places in `sent`), and a wake-up for waits on
    /// that one recipient: waking every waiter on every message costs a busy bench most of
    /// a core, and finding a recipient's messages by scanning them all made long property
    /// runs quadratic.
    per_recipient: Mutex<HashMap<String, Recipient>>,
}

#[derive(Default)]
struct Recipient {
    /// Indices into `Shared::sent`, in arrival order.
    messages: Vec<usize>,
    arrived: Arc<Notify>,
}

pub struct ApiSandbox {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl ApiSandbox {
    pub async fn start(addr: SocketAddr, dialect: Arc<dyn Dialect>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            dialect,
            sent: Mutex::default(),
            failures: Mutex::default(),
            failures_for: Mutex::default(),
            stalls: Mutex::default(),
            requests: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            latency: Mutex::new(Duration::ZERO),
            arrived: Notify::new(),
            print: AtomicBool::new(false),
            per_recipient: Mutex::default(),
        });
        let app = Router::new().fallback(receive).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(ApiSandbox {
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

    pub fn sent(&self) -> Vec<Captured> {
        self.shared
            .sent
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// The messages sent to `to`, in order.
    pub fn sent_to(&self, to: &str) -> Vec<Captured> {
        let indices = match self.shared.per_recipient.lock() {
            Ok(recipients) => recipients
                .get(to)
                .map(|r| r.messages.clone())
                .unwrap_or_default(),
            Err(_) => return Vec::new(),
        };
        let Ok(sent) = self.shared.sent.lock() else {
            return Vec::new();
        };
        indices
            .iter()
            .filter_map(|&i| sent.get(i).cloned())
            .collect()
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

    /// The next `times` requests for `to` are answered with `status` (and an empty JSON
    /// body) instead of success, however requests for others interleave with them.
    pub fn fail_for(&self, to: &str, times: u64, status: u16) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if let Ok(mut f) = self.shared.failures_for.lock() {
            f.insert(to.to_string(), (times, status));
        }
    }

    /// The next request is recorded (as the provider would deliver it) but answered only
    /// after `stall`: longer than the client's timeout, it is a send whose answer was lost.
    pub fn stall_next(&self, stall: Duration) {
        let at = self.shared.requests.load(Ordering::SeqCst) + 1;
        if let Ok(mut s) = self.shared.stalls.lock() {
            s.insert(at, stall);
        }
    }

    /// Every message from now on is recorded at once but answered after `latency`.
    pub fn answer_after(&self, latency: Duration) {
        if let Ok(mut l) = self.shared.latency.lock() {
            *l = latency;
        }
    }

    /// Requests received, failed ones included.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The most requests that were being answered at the same time.
    pub fn peak_in_flight(&self) -> u64 {
        self.shared.peak_in_flight.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` messages arrived, or `patience` ran out, and returns
    /// what arrived. A wait for an outcome, not a timing claim.
    pub async fn wait_for(&self, count: usize, patience: Duration) -> Vec<Captured> {
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

    /// Waits until `to` has been sent at least `count` messages, or `patience` ran out.
    /// Returns how many it has.
    pub async fn wait_for_recipient(&self, to: &str, count: usize, patience: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + patience;
        let recipient = |shared: &Shared| {
            shared.per_recipient.lock().ok().map(|mut recipients| {
                let recipient = recipients.entry(to.to_string()).or_default();
                (recipient.messages.len(), recipient.arrived.clone())
            })
        };
        let Some((_, arrived)) = recipient(&self.shared) else {
            return 0;
        };
        loop {
            // Created before the count is read, so a message arriving in between wakes it.
            let notified = arrived.notified();
            let have = recipient(&self.shared).map_or(0, |(received, _)| received);
            if have >= count || tokio::time::Instant::now() >= deadline {
                return have;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Waits for `to` to have `count` messages and returns them all.
    pub async fn wait_for_to(&self, to: &str, count: usize, patience: Duration) -> Vec<Captured> {
        self.wait_for_recipient(to, count, patience).await;
        self.sent_to(to)
    }
}

impl Drop for ApiSandbox {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let number = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let _answering = InFlight::enter(&shared);
    let stall = shared
        .stalls
        .lock()
        .ok()
        .and_then(|mut s| s.remove(&number));
    let failure = shared
        .failures
        .lock()
        .ok()
        .and_then(|mut f| f.remove(&number));
    if let Some((status, body)) = failure {
        return json_response(status, &body);
    }
    let message = Captured {
        path: uri.path().to_string(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body: decode(&headers, &body),
        received_at: SystemTime::now(),
        dialect: shared.dialect.clone(),
    };
    let to = message.to();
    if let Some(status) = failure_for(&shared, &to) {
        return json_response(status, &Value::Object(Default::default()));
    }
    let n = shared.accepted.fetch_add(1, Ordering::SeqCst) + 1;
    let (status, answer) = shared.dialect.accepted(n, &message);
    if shared.print.load(Ordering::SeqCst) {
        print_line(&message);
    }
    let index = shared.sent.lock().ok().map(|mut sent| {
        sent.push(message);
        sent.len() - 1
    });
    if let (Some(index), Ok(mut recipients)) = (index, shared.per_recipient.lock()) {
        let recipient = recipients.entry(to).or_default();
        recipient.messages.push(index);
        recipient.arrived.notify_waiters();
    }
    shared.arrived.notify_waiters();
    let latency = shared.latency.lock().map(|l| *l).unwrap_or_default();
    if let Some(wait) = stall.or((!latency.is_zero()).then_some(latency)) {
        tokio::time::sleep(wait).await;
    }
    json_response(status, &answer)
}

/// The answer a request for `to` gets instead of success, counting it against its failures.
fn failure_for(shared: &Shared, to: &str) -> Option<StatusCode> {
    let mut failures = shared.failures_for.lock().ok()?;
    let (left, status) = failures.get_mut(to)?;
    let status = *status;
    *left -= 1;
    if *left == 0 {
        failures.remove(to);
    }
    Some(status)
}

/// Counts a request as in flight until it is answered.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn decode(headers: &HeaderMap, body: &[u8]) -> Value {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        let fields: BTreeMap<String, String> =
            serde_urlencoded::from_bytes(body).unwrap_or_default();
        return serde_json::to_value(fields).unwrap_or(Value::Null);
    }
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn print_line(message: &Captured) {
    let mut line = format!("→ to {}", message.to());
    if let Some(sender) = message.dialect.sender(message) {
        line.push_str(&format!(" from {sender}"));
    }
    line.push_str(&format!(": {}", message.text()));
    for (id, title) in message.options() {
        line.push_str(&format!(" [{title}] (id {id})"));
    }
    println!("{line}");
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

/// A JSON string field, or "".
pub fn str_at(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meta_json_escapes_non_ascii_and_stays_the_same_json() {
        let value = json!({"name": "José 😀", "plain": "a\"b"});
        let escaped = meta_json(&value);
        assert!(escaped.is_ascii());
        assert!(escaped.contains(r"Jos\u00e9 \ud83d\ude00"), "{escaped}");
        assert_eq!(serde_json::from_str::<Value>(&escaped).unwrap(), value);
    }
}
