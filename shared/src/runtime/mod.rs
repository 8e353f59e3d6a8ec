//! The use cases every host calls: accept a webhook, run a contact's steps, fire a
//! timeout, publish a workflow. Hosts (the local runner, the Lambda functions) only
//! translate their events into these calls.

mod accept_webhook;
mod fire_timeout;
mod perform;
mod run_steps;
mod workflows;

pub use accept_webhook::{WebhookRequest, WebhookResponse};
pub use run_steps::StepsRun;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::channels::Channels;
use crate::contact::ContactId;
use crate::engine::{Catalog, Event, Transition};
use crate::ports::{Clock, Store, StoreError, TimerError, Timers};

#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Tries per send before a retryable failure is handed back to the host.
    pub send_attempts: u32,
    /// First pause between tries; doubles each time, capped by `max_backoff`.
    pub send_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            send_attempts: 3,
            send_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Timers(#[from] TimerError),
    #[error("{0}")]
    Send(String),
    #[error("gave up after {0} version conflicts in a row")]
    Contended(u32),
    /// Another executor is performing this contact's effects right now.
    #[error("another executor holds this contact's outbox")]
    Busy,
}

impl RuntimeError {
    /// Whether running the same call later can succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RuntimeError::Store(e) => e.is_retryable(),
            RuntimeError::Timers(_)
            | RuntimeError::Send(_)
            | RuntimeError::Contended(_)
            | RuntimeError::Busy => true,
        }
    }
}

pub struct Runtime {
    store: Arc<dyn Store>,
    timers: Arc<dyn Timers>,
    channels: Channels,
    clock: Arc<dyn Clock>,
    catalog: RwLock<Arc<Catalog>>,
    catalog_loaded_at: std::sync::Mutex<Option<std::time::Instant>>,
    config: RuntimeConfig,
    /// Names this runtime in outbox leases.
    executor: String,
}

impl Runtime {
    pub fn new(
        store: Arc<dyn Store>,
        timers: Arc<dyn Timers>,
        channels: Channels,
        clock: Arc<dyn Clock>,
        config: RuntimeConfig,
    ) -> Runtime {
        Runtime {
            store,
            timers,
            channels,
            clock,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            catalog_loaded_at: std::sync::Mutex::new(None),
            config,
            executor: executor_id(),
        }
    }

    /// The runtime's clock reading (hosts use it for their own bookkeeping).
    pub fn now(&self) -> crate::clock::Timestamp {
        self.clock.now()
    }

    pub fn channels(&self) -> &Channels {
        &self.channels
    }

    /// The workflow id and version new conversations start, if any.
    pub fn active_workflow(&self) -> Option<(String, u32)> {
        self.catalog().active().map(|(id, v)| (id.to_string(), v))
    }

    fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Unique enough per runtime instance: process id, start time and a counter.
fn executor_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One structured line per applied event: who (pseudonymised), what, from where to where.
/// Never the message content.
fn log_transition(contact: &ContactId, event: &Event, t: &Transition) {
    tracing::info!(
        target: "assent::transition",
        contact = %contact.log_ref(),
        event = event.kind(),
        happened = snake(&t.happened),
        run = t.run,
        from = t.from.as_deref(),
        to = t.to.as_deref(),
        outcome = t.outcome.map(|o| snake(&o)),
        "transition"
    );
}

/// The serde (snake_case) name of a unit enum value, as the JSON API spells it.
fn snake<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::from("?"),
    }
}
