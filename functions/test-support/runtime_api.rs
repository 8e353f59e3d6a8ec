//! A minimal Lambda Runtime API emulator and the helpers to run a function's real binary
//! under it against the local AWS emulator (through `AWS_ENDPOINT_URL`). Included by the
//! functions' tests with `#[path]`.
#![allow(dead_code)] // each test crate uses its own part of this

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Hands out queued events at `/invocation/next` and collects what the function answers.
#[derive(Default)]
pub struct Emulator {
    events: Mutex<VecDeque<(String, Value)>>,
    answers: Mutex<Vec<(String, Result<Value, Value>)>>,
    arrived: Notify,
}

async fn next(State(e): State<Arc<Emulator>>) -> (HeaderMap, String) {
    loop {
        let waiting = e.arrived.notified();
        if let Some((id, event)) = e.events.lock().unwrap().pop_front() {
            let mut headers = HeaderMap::new();
            headers.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_str(&id).unwrap(),
            );
            headers.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from_static("32503680000000"),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:f"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-0-0"),
            );
            return (headers, event.to_string());
        }
        waiting.await;
    }
}

async fn response(
    State(e): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    e.record(id, Ok(serde_json::from_str(&body).unwrap_or(Value::Null)))
}

async fn error(
    State(e): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: String,
) -> &'static str {
    e.record(id, Err(serde_json::from_str(&body).unwrap_or(Value::Null)))
}

pub async fn emulator() -> (Arc<Emulator>, String) {
    let e = Arc::new(Emulator::default());
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(|| async { "{}" }))
        .with_state(e.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (e, addr)
}

impl Emulator {
    fn record(&self, id: String, answer: Result<Value, Value>) -> &'static str {
        self.answers.lock().unwrap().push((id, answer));
        self.arrived.notify_waiters();
        "{}"
    }

    pub fn invoke(&self, id: &str, event: Value) {
        self.events
            .lock()
            .unwrap()
            .push_back((id.to_string(), event));
        self.arrived.notify_waiters();
    }

    pub async fn answer(&self, id: &str) -> Result<Value, Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let waiting = self.arrived.notified();
            if let Some((_, answer)) = self.answers.lock().unwrap().iter().find(|(i, _)| i == id) {
                return answer.clone();
            }
            assert!(Instant::now() < deadline, "no answer to {id}");
            let _ = tokio::time::timeout(Duration::from_millis(200), waiting).await;
        }
    }
}

pub fn endpoint() -> String {
    std::env::var("ASSENT_TEST_AWS_ENDPOINT")
        .expect("run ./scripts/test, which starts the local AWS emulator")
}

pub async fn dynamodb() -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::config::Builder::new()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A new secret in the local AWS emulator holding `keys` (a JSON object); returns its name.
pub async fn channel_secret(keys: &Value) -> String {
    let config = aws_sdk_secretsmanager::config::Builder::new()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_secretsmanager::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    let name = format!("assent/{}", table_name());
    aws_sdk_secretsmanager::Client::from_conf(config)
        .create_secret()
        .name(&name)
        .secret_string(keys.to_string())
        .send()
        .await
        .unwrap();
    name
}

pub fn spawn(binary: &str, runtime_api: &str, env: &[(&str, String)]) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "f")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("ASSENT_LOG", "warn")
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().unwrap()
}

/// A name no other test (or earlier run against the same emulator) uses. The counter
/// tells apart tests of one process that ask within one tick of the clock, as parallel
/// tests do.
pub fn table_name() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("assent-rt-{}-{nanos:x}-{n}", std::process::id())
}

/// What the template sets for the step function (WhatsApp served, its keys in the secret
/// named `secret`), with schedules in `group`.
pub fn step_env(table: &str, secret: &str, group: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ASSENT_CHANNEL_SECRET", secret.to_string()),
        ("ASSENT_CHANNELS", "whatsapp".to_string()),
        ("ASSENT_TABLE", table.to_string()),
        ("ASSENT_SCHEDULE_GROUP", group.to_string()),
        (
            "ASSENT_TIMEOUT_TARGET_ARN",
            "arn:aws:lambda:us-east-1:123456789012:function:t".to_string(),
        ),
        (
            "ASSENT_SCHEDULER_ROLE_ARN",
            "arn:aws:iam::123456789012:role/r".to_string(),
        ),
        (
            "ASSENT_TEMPLATE_PARAMS",
            r#"{"policy_url": "https://example.com/privacy"}"#.to_string(),
        ),
    ]
}
