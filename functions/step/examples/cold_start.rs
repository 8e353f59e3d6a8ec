//! Cold starts of the four Lambda binaries: each is started fresh under a Lambda Runtime
//! API emulator, against the local AWS emulator, with one invocation queued; the time is
//! from spawning the process to the emulator receiving that invocation's answer. That is
//! what a cold invocation adds on Lambda (minus the platform's own init), measured here.
//! The webhook and step functions include reading the channel secret.
//!
//! `scripts/bench-cold-start [runs]` builds the release binaries, starts the AWS emulator
//! and runs this: `cold_start <binaries dir> <runs>`.

#[path = "../../test-support/runtime_api.rs"]
mod runtime_api;

use serde_json::{Value, json};
use std::time::{Duration, Instant};

use assent::store::DynamoStore;
use runtime_api::*;

const SECRET: &str = "cold-start-app-secret";

fn http_event(method: &str, path: &str, route: &str, headers: Value, body: &str) -> Value {
    json!({
        "version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": "",
        "headers": headers,
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "bench"},
            "requestId": "r", "routeKey": route, "stage": "$default", "time": "01/Dec/2026:21:00:00 +0000", "timeEpoch": 1_796_160_000_000_i64},
        "body": body, "isBase64Encoded": false
    })
}

/// Each function with the environment it needs and one invocation: the webhook stores a
/// signed message, the timeout queues a fire, the admin API lists workflows, and the step
/// function (which checks its workflow is published at init) gets a stream record for a
/// contact with nothing pending, so that no provider is needed.
/// A label, the binary's name, its environment and the invocation to queue.
type Function = (
    &'static str,
    &'static str,
    Vec<(&'static str, String)>,
    Value,
);

fn functions(table: &str, secret: &str, run: usize) -> Vec<Function> {
    let wa_id = format!("49151{run:07}");
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "106540352242922"},
            "messages": [{"from": wa_id, "id": format!("wamid.cold.{run}"), "timestamp": "1796160000", "type": "text", "text": {"body": "hi"}}]}}]}]})
    .to_string();
    let signature = assent::channels::meta_webhook::sign(SECRET, body.as_bytes());
    let webhook = http_event(
        "POST",
        "/webhooks/whatsapp",
        "POST /webhooks/{channel}",
        json!({"content-type": "application/json", "x-hub-signature-256": signature}),
        &body,
    );
    let record = json!({"eventID": "1", "eventName": "INSERT", "awsRegion": "us-east-1", "eventSource": "aws:dynamodb",
        "dynamodb": {"Keys": {"pk": {"S": format!("c#whatsapp:idle{run}")}, "sk": {"S": "in#msg:x"}}, "SequenceNumber": "100", "SizeBytes": 10, "StreamViewType": "NEW_IMAGE"}});
    let admin = http_event(
        "GET",
        "/admin/workflows",
        "ANY /admin/{proxy+}",
        json!({}),
        "",
    );
    let table = table.to_string();
    vec![
        (
            "assent-webhook",
            "assent-webhook",
            vec![
                ("ASSENT_TABLE", table.clone()),
                ("ASSENT_CHANNEL_SECRET", secret.into()),
                ("ASSENT_CHANNELS", "whatsapp".into()),
            ],
            webhook.clone(),
        ),
        // The same without the secret (its key in the environment): what reading it costs.
        (
            "assent-webhook, key from the environment",
            "assent-webhook",
            vec![
                ("ASSENT_TABLE", table.clone()),
                ("WHATSAPP_APP_SECRET", SECRET.into()),
            ],
            webhook,
        ),
        (
            "assent-step",
            "assent-step",
            step_env(&table, secret, "g"),
            json!({"Records": [record]}),
        ),
        (
            "assent-timeout",
            "assent-timeout",
            vec![("ASSENT_TABLE", table.clone())],
            json!({"contact": format!("whatsapp:{wa_id}"), "run": 1, "wait_seq": 1}),
        ),
        (
            "assent-admin",
            "assent-admin",
            vec![("ASSENT_TABLE", table)],
            admin,
        ),
    ]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/release".into());
    let runs: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(30);
    let client = dynamodb().await;
    let table = table_name();
    DynamoStore::create_table(&client, &table).await.unwrap();
    // The webhook and step functions read their channel keys from it at init, as on AWS.
    let secret = channel_secret(&json!({"WHATSAPP_APP_SECRET": SECRET,
        "WHATSAPP_VERIFY_TOKEN": "verify", "WHATSAPP_ACCESS_TOKEN": "token"}))
    .await;
    let mut times: Vec<(&str, &str, Vec<Duration>)> = Vec::new();
    for run in 0..runs {
        for (i, (label, name, env, event)) in
            functions(&table, &secret, run).into_iter().enumerate()
        {
            let (emulator, addr) = emulator().await;
            emulator.invoke("cold", event);
            let started = Instant::now();
            let mut child = spawn(&format!("{dir}/{name}"), &addr, &env);
            let answer = emulator.answer("cold").await;
            let elapsed = started.elapsed();
            let _ = child.kill().await;
            if let Err(e) = &answer {
                panic!("{name} answered with an error: {e}");
            }
            if times.len() <= i {
                times.push((label, name, Vec::new()));
            }
            times[i].2.push(elapsed);
        }
    }
    println!("cold start: process spawn to first finished invocation, {runs} runs each");
    println!("| binary | size (bytes) | p50 | p90 | max |");
    println!("|---|---|---|---|---|");
    for (label, name, mut samples) in times {
        samples.sort();
        let size = std::fs::metadata(format!("{dir}/{name}"))
            .map(|m| m.len())
            .unwrap_or(0);
        println!(
            "| {label} | {size} | {:.1} ms | {:.1} ms | {:.1} ms |",
            percentile(&samples, 0.5).as_secs_f64() * 1000.0,
            percentile(&samples, 0.9).as_secs_f64() * 1000.0,
            samples.last().unwrap().as_secs_f64() * 1000.0
        );
    }
}
