//! What a warm step invocation lasts (Lambda bills its duration) for a stream batch of k
//! contacts, against the local AWS emulator and a Graph API sandbox that answers every
//! send after a set latency (the provider's round trip, an assumption: pass it).
//!
//! The real `assent-step` binary runs under a Lambda Runtime API emulator. For each k, k
//! new contacts get a hello in their inbox and one batch rings for all of them (the step
//! sends the policy link and the question, and creates the question's schedule); then a
//! tap in each inbox and another batch (the thanks, the tag, the ledger record, and the
//! schedule deleted). The time is from the emulator handing out the batch to receiving the
//! answer. Each batch size is measured `runs` times; the first batch of all warms the
//! process and is not counted.
//!
//! `scripts/bench-step-batch [latency ms, default 100] [runs, default 10]` builds the
//! release binary, starts the AWS emulator and runs this:
//! `batch_duration <binaries dir> <latency ms> <runs>`.

#[path = "../../test-support/runtime_api.rs"]
mod runtime_api;

use serde_json::{Value, json};
use std::time::{Duration, Instant};

use assent::channels::whatsapp::sandbox::GraphSandbox;
use assent::clock::SystemClock;
use assent::contact::{Address, ContactId};
use assent::engine::{Content, Inbound};
use assent::ports::Clock;
use assent::ports::{InboxItem, InboxStore};
use assent::store::DynamoStore;
use runtime_api::*;

const BATCH_SIZES: [usize; 3] = [1, 5, 25];
const PHONE_NUMBER_ID: &str = "106540352242922";
/// The Lambda memory the template gives the step function, for GB-seconds.
const STEP_MEMORY_GB: f64 = 0.25;

struct Bench {
    store: DynamoStore,
    emulator: std::sync::Arc<Emulator>,
    sandbox: GraphSandbox,
    invocations: usize,
    contacts: usize,
}

impl Bench {
    /// Puts `content` in each contact's inbox, rings one batch for them all, and returns
    /// how long the invocation took once every contact has `expect` messages.
    async fn batch(&mut self, contacts: &[Address], content: &Content, expect: usize) -> Duration {
        let mut records = Vec::new();
        for address in contacts {
            self.contacts += 1;
            let message = Inbound {
                from: address.clone(),
                message_id: format!("wamid.batch.{}", self.contacts),
                name: None,
                content: content.clone(),
                sent_at: None,
            };
            let contact = address.contact_id();
            let item = InboxItem::inbound(message, SystemClock.now());
            let key = item.key.clone();
            self.store.append(&contact, item).await.unwrap();
            records.push(stream_record(&contact, &key, self.contacts));
        }
        self.invocations += 1;
        let id = format!("batch-{}", self.invocations);
        let started = Instant::now();
        self.emulator.invoke(&id, json!({"Records": records}));
        let answer = self.emulator.answer(&id).await;
        let elapsed = started.elapsed();
        let failures = answer.expect("the step answered")["batchItemFailures"].clone();
        assert_eq!(failures, json!([]), "no record failed");
        for address in contacts {
            let have = self.sandbox.sent_to(&address.user_id).len();
            assert_eq!(have, expect, "{} has {have} messages", address.user_id);
        }
        elapsed
    }
}

fn stream_record(contact: &ContactId, key: &str, sequence: usize) -> Value {
    json!({"eventID": sequence.to_string(), "eventName": "INSERT", "awsRegion": "us-east-1", "eventSource": "aws:dynamodb",
        "dynamodb": {"ApproximateCreationDateTime": SystemClock.now().0 / 1000,
            "Keys": {"pk": {"S": format!("c#{contact}")}, "sk": {"S": format!("in#{key}")}},
            "SequenceNumber": format!("{sequence:021}"), "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"}})
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/release".into());
    let latency: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(100);
    let runs: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);

    let client = dynamodb().await;
    let table = table_name();
    DynamoStore::create_table(&client, &table).await.unwrap();
    let group = schedule_group().await;
    let secret = channel_secret(&json!({"WHATSAPP_APP_SECRET": "s",
        "WHATSAPP_VERIFY_TOKEN": "verify", "WHATSAPP_ACCESS_TOKEN": "token"}))
    .await;
    let sandbox = GraphSandbox::graph("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    sandbox.answer_after(Duration::from_millis(latency));
    let (emulator, addr) = emulator().await;
    let mut env = step_env(&table, &secret, &group);
    env.push(("WHATSAPP_API_BASE", sandbox.base_url()));
    let _step = spawn(&format!("{dir}/assent-step"), &addr, &env);
    let mut bench = Bench {
        store: DynamoStore::new(client, &table),
        emulator,
        sandbox,
        invocations: 0,
        contacts: 0,
    };
    let hello = Content::Text {
        text: "Hello".into(),
    };
    let tap = Content::Choice {
        id: "agree".into(),
        label: "AGREE & PROCEED".into(),
    };
    let mut next_contact = 0;
    let mut new_contacts = |k: usize| -> Vec<Address> {
        (0..k)
            .map(|_| {
                next_contact += 1;
                Address {
                    channel: "whatsapp".into(),
                    user_id: format!("4915{next_contact:08}"),
                    via: Some(PHONE_NUMBER_ID.into()),
                }
            })
            .collect()
    };
    // Warms the process: connections to the emulator and the sandbox, the workflow.
    let warm = new_contacts(1);
    bench.batch(&warm, &hello, 2).await;

    println!(
        "warm step invocations by batch size: Graph API answers after {latency} ms, {runs} runs each (medians)"
    );
    println!(
        "| contacts in the batch | hello batch | tap batch | per flow (both) | GB-s per flow at {} MB |",
        (STEP_MEMORY_GB * 1024.0) as u32
    );
    println!("|---|---|---|---|---|");
    for k in BATCH_SIZES {
        let (mut hellos, mut taps) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let contacts = new_contacts(k);
            hellos.push(bench.batch(&contacts, &hello, 2).await);
            taps.push(bench.batch(&contacts, &tap, 3).await);
        }
        let (hello_ms, tap_ms) = (ms(median(hellos)), ms(median(taps)));
        let per_flow = (hello_ms + tap_ms) / k as f64;
        println!(
            "| {k} | {hello_ms:.1} ms | {tap_ms:.1} ms | {per_flow:.1} ms | {:.5} |",
            per_flow / 1000.0 * STEP_MEMORY_GB
        );
    }
    println!(
        "Graph API requests at once, at most: {}",
        bench.sandbox.peak_in_flight()
    );
}

/// A schedule group in the emulator (it refuses schedules in a missing group).
async fn schedule_group() -> String {
    let config = aws_sdk_scheduler::config::Builder::new()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(aws_sdk_scheduler::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_scheduler::config::Credentials::new(
            "test", "test", None, None, "bench",
        ))
        .build();
    let name = format!("g-{}", table_name());
    aws_sdk_scheduler::Client::from_conf(config)
        .create_schedule_group()
        .name(&name)
        .send()
        .await
        .unwrap();
    name
}
