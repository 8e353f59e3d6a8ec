//! The real `assent-timeout` and `assent-step` binaries under a minimal Lambda Runtime API
//! emulator, against the local AWS emulator through `AWS_ENDPOINT_URL`: they start, take
//! events, write to DynamoDB, and answer. Also prints the time from process start to the
//! first finished invocation (of this debug build: a smoke figure, not a benchmark).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use assent::contact::ContactId;
use assent::ports::StateStore;
use assent::store::DynamoStore;

/// Hands out queued events at `/invocation/next` and collects what the function answers.
#[derive(Default)]
struct Emulator {
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

async fn emulator() -> (Arc<Emulator>, String) {
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

    fn invoke(&self, id: &str, event: Value) {
        self.events
            .lock()
            .unwrap()
            .push_back((id.to_string(), event));
        self.arrived.notify_waiters();
    }

    async fn answer(&self, id: &str) -> Result<Value, Value> {
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

fn endpoint() -> String {
    std::env::var("ASSENT_TEST_AWS_ENDPOINT")
        .expect("run ./scripts/test, which starts the local AWS emulator")
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
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

fn spawn(binary: &str, runtime_api: &str, env: &[(&str, String)]) -> tokio::process::Child {
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

fn table_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("assent-rt-{}-{nanos:x}", std::process::id())
}

#[tokio::test]
async fn the_timeout_binary_runs_under_the_runtime_api_against_the_emulator() {
    let client = dynamodb().await;
    let table = table_name();
    DynamoStore::create_table(&client, &table).await.unwrap();
    let (emulator, addr) = emulator().await;
    let contact = "whatsapp:4915100000042";
    emulator.invoke(
        "inv-1",
        json!({"contact": contact, "run": 1, "wait_seq": 1}),
    );
    let started = Instant::now();
    let _child = spawn(
        env!("CARGO_BIN_EXE_assent-timeout"),
        &addr,
        &[("ASSENT_TABLE", table.clone())],
    );
    assert!(emulator.answer("inv-1").await.is_ok());
    println!(
        "assent-timeout (debug build): start to first finished invocation {:?}",
        started.elapsed()
    );
    let loaded = DynamoStore::new(client, &table)
        .load(&ContactId::from_stored(contact))
        .await
        .unwrap();
    assert_eq!(
        loaded.inbox.len(),
        1,
        "the timeout is queued in the contact's inbox"
    );
    assert_eq!(loaded.inbox[0].1.key, "timeout:1:1");

    // A malformed event is answered with an error, and the function keeps serving.
    emulator.invoke("inv-2", json!({"contact": contact}));
    assert!(emulator.answer("inv-2").await.is_err());
    emulator.invoke(
        "inv-3",
        json!({"contact": contact, "run": 1, "wait_seq": 1}),
    );
    assert!(
        emulator.answer("inv-3").await.is_ok(),
        "a repeated fire is success (deduplicated)"
    );
}

#[tokio::test]
async fn the_step_binary_publishes_its_workflow_and_answers_a_stream_batch() {
    let client = dynamodb().await;
    let table = table_name();
    DynamoStore::create_table(&client, &table).await.unwrap();
    let (emulator, addr) = emulator().await;
    // A doorbell for a contact with nothing pending: the function runs, finds no work,
    // and answers with no batch item failures.
    let record = json!({"eventID": "1", "eventName": "INSERT", "awsRegion": "us-east-1", "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": {"pk": {"S": "c#whatsapp:1"}, "sk": {"S": "in#msg:x"}}, "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}});
    emulator.invoke("batch-1", json!({"Records": [record]}));
    let started = Instant::now();
    let env = [
        ("ASSENT_TABLE", table.clone()),
        ("ASSENT_SCHEDULE_GROUP", "g".to_string()),
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
    ];
    // Built beside this package's binary by `cargo test --workspace`.
    let step =
        std::path::Path::new(env!("CARGO_BIN_EXE_assent-timeout")).with_file_name("assent-step");
    assert!(
        step.exists(),
        "{} is missing: run the workspace's tests (./scripts/test)",
        step.display()
    );
    let _child = spawn(step.to_str().unwrap(), &addr, &env);
    let answer = emulator.answer("batch-1").await.expect("a batch response");
    println!(
        "assent-step (debug build): start to first finished invocation {:?}",
        started.elapsed()
    );
    assert_eq!(answer["batchItemFailures"], json!([]));
    // It published the template at cold start, into the table.
    let store = DynamoStore::new(client, &table);
    let published = assent::ports::WorkflowStore::published(&store)
        .await
        .unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].id, "request-consent-privacy");
}
