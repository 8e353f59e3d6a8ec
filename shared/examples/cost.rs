//! Cost of 1,000 accepted consent flows on the AWS path, measured, and the same flows on
//! Step Functions Standard (prices and what each side pays for: `assent::aws::cost`).
//!
//! Each flow goes through the AWS path in-process against the local AWS emulator: signed
//! webhooks as API Gateway events into the webhook handler, stream batches into the step
//! handler (as the event source mapping delivers them, `contacts` contacts a batch), the
//! Scheduler for the question's timeout, and a Graph API sandbox that answers every send
//! after `latency` ms. The channel's status reports (sent, delivered, read for every
//! message sent) are posted too. The meter counts DynamoDB units and calls; every handler
//! call is timed and billed as Lambda bills it, rounded up to the millisecond, at the
//! template's memory sizes. A Step Functions send task is billed for one timed send.
//!
//! `scripts/bench-cost [latency ms, default 100] [contacts per batch, default 1] [flows]`

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

use assent::aws::cost::{self, FlowUsage, Line, Part};
use assent::aws::meter::{self, Meter};
use assent::channels::whatsapp::sandbox::{self, GraphSandbox};
use assent::clock::SystemClock;
use assent::contact::{Address, ContactId};
use assent::engine::OutboundMessage;
use assent::ports::{ChannelSender, Clock};
use assent::runtime::Runtime;
use assent::store::DynamoStore;
use support::aws;

/// The template's memory sizes (GB).
const WEBHOOK_GB: f64 = 0.125;
const STEP_GB: f64 = 0.25;
const STATUSES: [&str; 3] = ["sent", "delivered", "read"];

struct Bench {
    webhook: axum::Router,
    step: Arc<Runtime>,
    store: DynamoStore,
    sandbox: GraphSandbox,
    posted: u64,
    webhook_seconds: f64,
    batches: u64,
    step_seconds: f64,
    /// Messages per contact whose status reports were posted.
    reported: std::collections::HashMap<String, usize>,
}

/// What Lambda bills for a call that took `d`: whole milliseconds, rounded up.
fn billed(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).ceil() / 1000.0
}

impl Bench {
    /// POSTs a signed WhatsApp body as an HTTP API (v2) event, as one webhook invocation.
    async fn post(&mut self, body: &Value) {
        let event = aws::http_api_event(&sandbox::meta_json(body));
        let started = Instant::now();
        let request = lambda_http::request::from_str(&event.to_string()).expect("an HTTP event");
        let response = self.webhook.clone().oneshot(request).await.unwrap();
        self.webhook_seconds += billed(started.elapsed());
        self.posted += 1;
        assert_eq!(response.status(), 200);
    }

    /// Each contact writes `message`; one stream batch then rings for all of them.
    async fn round(&mut self, contacts: &[String], message: &Value) {
        let mut records = Vec::new();
        for c in contacts {
            let wamid = format!("wamid.cost.{}", self.posted);
            let body = sandbox::message_webhook(
                support::PHONE_NUMBER_ID,
                c,
                "Zoë",
                &wamid,
                1_796_160_000,
                message.clone(),
            );
            self.post(&body).await;
            let contact = ContactId::new("whatsapp", c);
            records.push(json!({"eventID": wamid, "eventName": "INSERT", "awsRegion": "us-east-1", "eventSource": "aws:dynamodb",
                "dynamodb": {"ApproximateCreationDateTime": SystemClock.now().0 / 1000,
                    "Keys": {"pk": {"S": format!("c#{contact}")}, "sk": {"S": format!("in#msg:{wamid}")}},
                    "SequenceNumber": format!("{:021}", self.posted), "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"}}));
        }
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(json!({"Records": records})).unwrap();
        let started = Instant::now();
        let response = assent::aws::step::handle(
            &self.step,
            &self.store,
            lambda_runtime::LambdaEvent::new(event, Default::default()),
        )
        .await
        .unwrap();
        self.step_seconds += billed(started.elapsed());
        self.batches += 1;
        assert!(response.batch_item_failures.is_empty());
    }

    /// The channel's status reports for every message sent to `contacts` that has not
    /// had them yet.
    async fn statuses(&mut self, contacts: &[String]) {
        for c in contacts {
            let sent = self.sandbox.sent_to(c).len();
            let reported = self.reported.insert(c.clone(), sent).unwrap_or(0);
            for n in reported..sent {
                for status in STATUSES {
                    let wamid = format!("wamid.out.{c}.{n}");
                    let body = sandbox::status_webhook(support::PHONE_NUMBER_ID, c, &wamid, status);
                    self.post(&body).await;
                }
            }
        }
    }
}

/// The average time of one send to the sandbox: what a Step Functions send task would
/// spend on it.
async fn send_seconds(sandbox: &GraphSandbox) -> f64 {
    let channels = support::whatsapp(sandbox);
    let to = Address {
        channel: "whatsapp".into(),
        user_id: "4915999999999".into(),
        via: Some(support::PHONE_NUMBER_ID.into()),
    };
    let message = OutboundMessage::Text {
        text: "Thank you.".into(),
    };
    let mut total = 0.0;
    for _ in 0..10 {
        let started = Instant::now();
        channels.send(&to, &message).await.unwrap();
        total += billed(started.elapsed());
    }
    total / 10.0
}

fn print(title: &str, lines: &[Line]) {
    println!("{title}");
    for l in lines {
        let part = match l.part {
            Part::Ingress => "ingress",
            Part::Orchestration => "orchestration",
        };
        println!("  {:<13} {:<62} ${:.5}", part, l.item, l.per_1000);
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let latency: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let per_batch: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let flows: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(20);
    let rounds = flows.div_ceil(per_batch.max(1));

    let sdk = aws::sdk().await;
    let meter = Meter::default();
    let table = aws::table(&aws::dynamodb(&sdk, &meter)).await;
    let store = DynamoStore::new(aws::dynamodb(&sdk, &meter), &table);
    let scheduler = aws::scheduler(&sdk, &meter);
    let group = aws::schedule_group(&scheduler).await;
    let sandbox = support::sandbox().await;
    sandbox.answer_after(Duration::from_millis(latency));
    let (webhook_runtime, step, _web) =
        aws::function_runtimes(&store, scheduler, &group, &sandbox, Arc::new(SystemClock)).await;
    let mut bench = Bench {
        webhook: assent::http::router(webhook_runtime),
        step,
        store,
        sandbox,
        posted: 0,
        webhook_seconds: 0.0,
        batches: 0,
        step_seconds: 0.0,
        reported: Default::default(),
    };

    let before = meter.snapshot();
    let sends_before = bench.sandbox.requests();
    let mut next = 0;
    for _ in 0..rounds {
        let contacts: Vec<String> = (0..per_batch)
            .map(|_| {
                next += 1;
                format!("4916{next:08}")
            })
            .collect();
        bench.round(&contacts, &sandbox::text("Hello")).await;
        bench.statuses(&contacts).await;
        let tap = sandbox::button_reply("agree", "AGREE & PROCEED");
        bench.round(&contacts, &tap).await;
        bench.statuses(&contacts).await;
        for c in &contacts {
            let sent = bench.sandbox.sent_to(c);
            assert_eq!(sent.len(), 3, "{c}: link, question, thanks");
            assert!(sent[2].text().starts_with("Thank you"));
        }
    }
    let after = meter.snapshot();
    let measured = (rounds * per_batch) as f64;
    let t = meter::totals(&before, &after);
    let usage = FlowUsage {
        write_units: t.write_units / measured,
        read_units: t.read_units / measured,
        webhooks: bench.posted as f64 / measured,
        webhook_gb_seconds: bench.webhook_seconds * WEBHOOK_GB / measured,
        step_invocations: bench.batches as f64 / measured,
        step_gb_seconds: bench.step_seconds * STEP_GB / measured,
        // An answered question's schedule is deleted before it fires.
        scheduler_invocations: 0.0,
        sends: (bench.sandbox.requests() - sends_before) as f64 / measured,
        send_seconds: send_seconds(&bench.sandbox).await,
    };
    println!(
        "{measured} accepted flows, {per_batch} contact(s) a stream batch, Graph API answering after {latency} ms"
    );
    println!(
        "per flow: {:.1} WRU, {:.1} RRU, {} Scheduler API calls in all; {:.0} webhooks at {:.1} ms; {:.2} step invocations at {:.1} ms; {:.0} sends, one send {:.1} ms",
        usage.write_units,
        usage.read_units,
        t.scheduler_calls,
        usage.webhooks,
        bench.webhook_seconds * 1000.0 / bench.posted as f64,
        usage.step_invocations,
        bench.step_seconds * 1000.0 / bench.batches as f64,
        usage.sends,
        usage.send_seconds * 1000.0
    );
    let prices = cost::US_EAST_1;
    for http_api in [false, true] {
        let ingress = if http_api {
            "webhooks through the HTTP API"
        } else {
            "webhooks through a function URL"
        };
        let ours = cost::assent(&usage, &prices, http_api);
        let theirs = cost::step_functions(&usage, &prices, http_api);
        println!();
        print(&format!("Assent, {ingress}, per 1,000 flows:"), &ours);
        print(
            &format!("Step Functions Standard, {ingress}, per 1,000 flows:"),
            &theirs,
        );
        let whole = [Part::Ingress, Part::Orchestration];
        let (a, s) = (cost::total(&ours, &whole), cost::total(&theirs, &whole));
        println!(
            "whole flow: Assent ${a:.5}, Step Functions ${s:.5}: {:.1}x",
            s / a
        );
    }
    let ours = cost::assent(&usage, &prices, false);
    let theirs = cost::step_functions(&usage, &prices, false);
    let (a, s) = (
        cost::total(&ours, &[Part::Orchestration]),
        cost::total(&theirs, &[Part::Orchestration]),
    );
    println!(
        "orchestration alone: Assent ${a:.5}, Step Functions ${s:.5}: {:.1}x",
        s / a
    );
}
