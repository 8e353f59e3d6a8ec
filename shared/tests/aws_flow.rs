//! The consent flow wired as AWS wires it, over the AWS wire protocol against the local
//! emulator: API Gateway v2 events into the webhook router, the stream records the table
//! really produced into the step handler (filtered as the event source mapping filters
//! them), and schedules read back from the Scheduler and fired at their time into the
//! timeout handler. Also the cost budget per accepted flow.
#![cfg(feature = "aws")]

mod support;

use aws_sdk_dynamodbstreams::types::AttributeValue as StreamValue;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tower::ServiceExt;

use assent::aws::meter::{self, Meter};
use assent::channels::whatsapp::sandbox::{self, GraphSandbox, SentMessage};
use assent::channels::whatsapp::sign;
use assent::clock::{ManualClock, Timestamp};
use assent::contact::ContactId;
use assent::ports::AdminStore;
use assent::ports::{Clock, LedgerStore, StateStore};
use assent::runtime::Runtime;
use assent::store::DynamoStore;
use assent::store::dynamodb::{
    CONTACT_PREFIX, LEDGER_PREFIX, Parking, RETAINED_MAX, STREAM_FILTER_PATTERN,
};
use assent::timers::Disabled;
use assent::timers::scheduler::TimeoutInput;
use support::aws;

/// The budget per accepted flow (hello, the question, the tap, the acknowledgement).
/// Reasoned minimum for the flow: 2 inbox puts + 2 decision commits + 1 segment entry (+1
/// for its GSI write) = 6 WRU; this design adds 2 commits that record performed effects
/// (8), and the consent ledger 2 records, asked and accepted (10).
const WRU_BUDGET: f64 = 10.0;
/// Two strongly consistent partition queries (one per inbound message) under 4 KiB each.
const RRU_BUDGET: f64 = 4.0;

struct Stack {
    sandbox: GraphSandbox,
    clock: Arc<ManualClock>,
    meter: Meter,
    store: DynamoStore,
    streams: aws_sdk_dynamodbstreams::Client,
    /// Unmetered: the harness's own calls (list, get, delete as the service would) are not
    /// the product's.
    harness: aws_sdk_scheduler::Client,
    group: String,
    table: String,
    shard: Mutex<Option<String>>,
    webhook: axum::Router,
    /// Another warm instance of the webhook function: it shares only the table.
    webhook_elsewhere: axum::Router,
    step: Arc<Runtime>,
    timeout: Arc<Runtime>,
    messages: std::sync::atomic::AtomicU64,
    faults: Option<aws::Faults>,
    /// Batches delivered again after a record failed.
    redelivered: std::sync::atomic::AtomicU64,
}

impl Stack {
    async fn new() -> Stack {
        Stack::build(None).await
    }

    /// With the product's DynamoDB answers lost and throttled now and then.
    async fn with_faults(faults: &aws::Faults) -> Stack {
        Stack::build(Some(faults)).await
    }

    async fn build(faults: Option<&aws::Faults>) -> Stack {
        let sdk = aws::sdk().await;
        let meter = Meter::default();
        let table = aws::table(&aws::dynamodb(&sdk, &meter)).await;
        let dynamodb = match faults {
            Some(faults) => aws::faulty_dynamodb(&sdk, &meter, faults),
            None => aws::dynamodb(&sdk, &meter),
        };
        let store = DynamoStore::new(dynamodb, &table);
        let scheduler = aws::scheduler(&sdk, &meter);
        let group = aws::schedule_group(&scheduler).await;
        let sandbox = support::sandbox().await;
        // From the real time, so that TTLs and the emulator's stream times agree with it.
        let clock = Arc::new(ManualClock::starting_at(assent::clock::SystemClock.now()));
        let (webhook_runtime, step, web) =
            aws::function_runtimes(&store, scheduler.clone(), &group, &sandbox, clock.clone())
                .await;
        let (elsewhere, _, elsewhere_web) =
            aws::function_runtimes(&store, scheduler, &group, &sandbox, clock.clone()).await;
        let timeout = Arc::new(Runtime::new(
            Arc::new(store.clone()),
            Arc::new(Disabled),
            Default::default(),
            clock.clone(),
            Default::default(),
        ));
        Stack {
            sandbox,
            clock,
            meter,
            store,
            streams: aws::streams(&sdk),
            harness: aws::scheduler(&sdk, &Meter::default()),
            group,
            table,
            shard: Mutex::new(None),
            webhook: assent::aws::web_chat::router(webhook_runtime, Some(web)),
            webhook_elsewhere: assent::aws::web_chat::router(elsewhere, Some(elsewhere_web)),
            step,
            timeout,
            messages: Default::default(),
            faults: faults.cloned(),
            redelivered: Default::default(),
        }
    }

    /// A request to the admin API, as the admin function serves it (over this table, its
    /// events woken by the stream). Returns the status and the JSON body.
    async fn admin(&self, method: &str, path: &str) -> (u16, Value) {
        let api = assent::admin::AdminApi {
            runtime: self.timeout.clone(),
            store: Arc::new(self.store.clone()),
            doorbell: Arc::new(assent::aws::StreamDoorbell),
        };
        let request = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = assent::admin::router(api, None)
            .oneshot(request)
            .await
            .unwrap();
        status_and_json(response).await
    }

    /// The channel answers 503 to the next three sends to `wa_id`: one step's tries.
    fn channel_down_for(&self, wa_id: &str) {
        self.sandbox.fail_for(wa_id, 3, 503);
    }

    /// Parks `wa_id` as a long outage does: the sends for its hello fail until its stream
    /// record is past the parking age, and then it is parked with its effects pending.
    async fn parked_after_hello(&self, wa_id: &str) {
        self.post(wa_id, sandbox::text("Hello")).await;
        let records = self.new_records().await;
        for _ in 0..2 {
            self.channel_down_for(wa_id);
            if self.deliver(records.clone()).await.is_empty() {
                break;
            }
            self.two_hours_after(&records[0]);
        }
        let parked = self
            .store
            .parked(&ContactId::new("whatsapp", wa_id))
            .await
            .unwrap();
        assert_eq!(parked.len(), 1, "parked");
        assert!(self.sent_to(wa_id).is_empty());
    }

    /// Moves the clock to two hours after a stream record was written: past
    /// [`assent::aws::step::PARK_AFTER`].
    fn two_hours_after(&self, record: &Value) {
        let created = record["dynamodb"]["ApproximateCreationDateTime"]
            .as_i64()
            .unwrap();
        let later = Timestamp::from_secs(created + 2 * 3600);
        self.clock.advance(self.clock.now().until(later));
    }

    /// POSTs a signed WhatsApp body as an API Gateway HTTP API (v2) event.
    async fn post(&self, wa_id: &str, message: Value) -> u16 {
        self.post_via(Ingress::HttpApi, wa_id, message).await
    }

    /// POSTs a signed WhatsApp body as the event `ingress` delivers.
    async fn post_via(&self, ingress: Ingress, wa_id: &str, message: Value) -> u16 {
        let n = self
            .messages
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.post_message(ingress, wa_id, &format!("wamid.aws.{n}"), message)
            .await
    }

    /// POSTs a signed WhatsApp body carrying the message `id`, as the event `ingress`
    /// delivers: the same id twice is a provider's retry.
    async fn post_message(&self, ingress: Ingress, wa_id: &str, id: &str, message: Value) -> u16 {
        let body = sandbox::message_webhook(
            support::PHONE_NUMBER_ID,
            wa_id,
            "Zoë",
            id,
            1_796_160_000,
            message,
        );
        self.post_body(ingress, &body).await.0
    }

    /// POSTs a signed WhatsApp `body` as the event `ingress` delivers; returns the status
    /// and the answer's JSON.
    async fn post_body(&self, ingress: Ingress, body: &Value) -> (u16, Value) {
        let body = sandbox::meta_json(body);
        let headers = json!({"content-type": "application/json", "x-hub-signature-256": sign(support::SECRET, body.as_bytes())});
        let event = match ingress {
            Ingress::HttpApi => aws::http_api_event(&body),
            // As AWS documents a function URL's request: the same payload format, with no
            // route and no path parameters.
            Ingress::FunctionUrl => json!({
                "version": "2.0", "routeKey": "$default", "rawPath": "/webhooks/whatsapp", "rawQueryString": "",
                "headers": headers,
                "requestContext": {"accountId": "anonymous", "apiId": "abcdefghijklmnopqrstuvwxyz0123", "domainName": "abcdefghijklmnopqrstuvwxyz0123.lambda-url.us-east-1.on.aws", "domainPrefix": "abcdefghijklmnopqrstuvwxyz0123",
                    "http": {"method": "POST", "path": "/webhooks/whatsapp", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "facebookexternalua"},
                    "requestId": "r", "routeKey": "$default", "stage": "$default", "time": "01/Dec/2026:21:00:00 +0000", "timeEpoch": 1_796_160_000_000_i64},
                "body": body, "isBase64Encoded": false
            }),
        };
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("an HTTP (v2) event");
        let response = self.webhook.clone().oneshot(request).await.unwrap();
        status_and_json(response).await
    }

    /// Delivers every new stream record to the step handler, as the event source mapping
    /// would (same filter), until the stream is quiet. Returns how many were delivered.
    async fn pump(&self) -> usize {
        let mut delivered = 0;
        loop {
            let batch = self.new_records().await;
            if batch.is_empty() {
                return delivered;
            }
            delivered += batch.len();
            let mut failed = self.deliver(batch.clone()).await;
            if self.faults.is_none() {
                assert!(failed.is_empty(), "no record failed");
            }
            // Under faults, as the event source mapping does: the batch again from the
            // first failed record.
            for _ in 0..20 {
                let Some(first) = failed.first() else { break };
                let from = batch
                    .iter()
                    .position(|r| r["dynamodb"]["SequenceNumber"] == first.as_str())
                    .unwrap_or(0);
                self.redelivered
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                failed = self.deliver(batch[from..].to_vec()).await;
            }
            assert!(failed.is_empty(), "records still failing: {failed:?}");
        }
    }

    /// New stream records that pass the event source mapping's filter.
    async fn new_records(&self) -> Vec<Value> {
        let mut batch = Vec::new();
        loop {
            let records = self.read_stream().await;
            if records.is_empty() {
                return batch;
            }
            batch.extend(records.into_iter().filter(passes_filter));
        }
    }

    /// One batch into the step handler; returns the sequence numbers it reported failed.
    async fn deliver(&self, batch: Vec<Value>) -> Vec<String> {
        let event: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(json!({"Records": batch})).unwrap();
        let response = assent::aws::step::handle(
            &self.step,
            &self.store,
            lambda_runtime::LambdaEvent::new(event, Default::default()),
        )
        .await
        .unwrap();
        response
            .batch_item_failures
            .into_iter()
            .filter_map(|f| f.item_identifier)
            .collect()
    }

    async fn read_stream(&self) -> Vec<Value> {
        let mut shard = self.shard.lock().await;
        if shard.is_none() {
            let table = self
                .store_client()
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .unwrap();
            let arn = table.table.unwrap().latest_stream_arn.unwrap();
            let stream = self
                .streams
                .describe_stream()
                .stream_arn(&arn)
                .send()
                .await
                .unwrap();
            let shard_id = stream.stream_description.unwrap().shards.unwrap()[0]
                .shard_id
                .clone()
                .unwrap();
            let iterator = self
                .streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard_id)
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .unwrap();
            *shard = iterator.shard_iterator;
        }
        let page = self
            .streams
            .get_records()
            .shard_iterator(shard.clone().unwrap())
            .send()
            .await
            .unwrap();
        *shard = page.next_shard_iterator;
        page.records
            .unwrap_or_default()
            .iter()
            .map(lambda_record)
            .collect()
    }

    fn store_client(&self) -> aws_sdk_dynamodb::Client {
        aws::dynamodb_without_meter()
    }

    /// Fires the schedules that are due by the clock into the timeout handler, and
    /// deletes them as ActionAfterCompletion DELETE would. Returns the schedules checked.
    async fn fire_due(&self) -> Vec<aws_sdk_scheduler::operation::get_schedule::GetScheduleOutput> {
        let listed = self
            .harness
            .list_schedules()
            .group_name(&self.group)
            .send()
            .await
            .unwrap();
        let mut seen = Vec::new();
        for summary in listed.schedules {
            let name = summary.name.unwrap();
            let schedule = self
                .harness
                .get_schedule()
                .name(&name)
                .group_name(&self.group)
                .send()
                .await
                .unwrap();
            let expression = schedule.schedule_expression.clone().unwrap();
            let at = expression
                .strip_prefix("at(")
                .and_then(|e| e.strip_suffix(')'))
                .and_then(Timestamp::parse_utc_datetime)
                .unwrap();
            if self.clock.now() >= at {
                let input: TimeoutInput = serde_json::from_str(
                    schedule.target.as_ref().unwrap().input.as_deref().unwrap(),
                )
                .unwrap();
                assent::aws::timeout::handle(
                    &self.timeout,
                    lambda_runtime::LambdaEvent::new(input, Default::default()),
                )
                .await
                .unwrap();
                self.harness
                    .delete_schedule()
                    .name(&name)
                    .group_name(&self.group)
                    .send()
                    .await
                    .unwrap();
            }
            seen.push(schedule);
        }
        seen
    }

    /// A web chat request from a browser at `source_ip`, as the HTTP API (payload v2)
    /// hands it to the webhook function. Returns the status, the Retry-After header and
    /// the JSON body.
    async fn web(
        &self,
        source_ip: &str,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Option<String>, Value) {
        self.web_on(
            &self.webhook,
            source_ip,
            method,
            path_and_query,
            token,
            body,
            &[],
        )
        .await
    }

    /// A request as [`Stack::web`] makes it, to the webhook function instance `webhook`,
    /// with `extra` headers as the client sent them.
    #[allow(clippy::too_many_arguments)]
    async fn web_on(
        &self,
        webhook: &axum::Router,
        source_ip: &str,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> (u16, Option<String>, Value) {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut headers =
            json!({"content-type": "application/json", "origin": "https://shop.example.com"});
        if let Some(token) = token {
            headers["authorization"] = json!(format!("Bearer {token}"));
        }
        for (name, value) in extra {
            headers[*name] = json!(value);
        }
        let event = json!({
            "version": "2.0", "routeKey": format!("{method} {path}"), "rawPath": path, "rawQueryString": query,
            "headers": headers,
            "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip, "userAgent": "Mozilla/5.0"},
                "requestId": "r", "routeKey": format!("{method} {path}"), "stage": "$default", "time": "01/Dec/2026:21:00:00 +0000", "timeEpoch": 1_796_160_000_000_i64},
            "body": body.map(|b| b.to_string()), "isBase64Encoded": false
        });
        let request =
            lambda_http::request::from_str(&event.to_string()).expect("an HTTP (v2) event");
        let response = webhook.clone().oneshot(request).await.unwrap();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let (status, body) = status_and_json(response).await;
        (status, retry_after, body)
    }

    fn sent_to(&self, wa_id: &str) -> Vec<SentMessage> {
        self.sandbox.sent_to(wa_id)
    }

    async fn record(&self, wa_id: &str) -> assent::ports::ContactRecord {
        self.store
            .load(&ContactId::new("whatsapp", wa_id))
            .await
            .unwrap()
            .record
            .unwrap()
    }
}

/// The event source mapping's filter (STREAM_FILTER_PATTERN), applied to a record.
/// A response's status and its body as JSON (`null` if it is not JSON).
async fn status_and_json(response: axum::response::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn passes_filter(record: &Value) -> bool {
    let pattern: Value = serde_json::from_str(STREAM_FILTER_PATTERN).unwrap();
    let names = pattern["eventName"].as_array().unwrap();
    let prefix = pattern["dynamodb"]["Keys"]["sk"]["S"][0]["prefix"]
        .as_str()
        .unwrap();
    names.contains(&record["eventName"])
        && record["dynamodb"]["Keys"]["sk"]["S"]
            .as_str()
            .is_some_and(|sk| sk.starts_with(prefix))
}

/// A DynamoDB Streams record in the shape Lambda hands to a function.
fn lambda_record(record: &aws_sdk_dynamodbstreams::types::Record) -> Value {
    let change = record.dynamodb.as_ref().unwrap();
    json!({
        "eventID": record.event_id, "eventName": record.event_name.as_ref().map(|n| n.as_str()),
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": change.approximate_creation_date_time.map(|t| t.secs()).unwrap_or(0),
            "Keys": attributes(change.keys.as_ref()), "NewImage": attributes(change.new_image.as_ref()),
            "SequenceNumber": change.sequence_number, "SizeBytes": change.size_bytes.unwrap_or(0), "StreamViewType": "NEW_IMAGE"
        }
    })
}

fn attributes(map: Option<&HashMap<String, StreamValue>>) -> Value {
    let convert = |v: &StreamValue| match v {
        StreamValue::S(s) => json!({"S": s}),
        StreamValue::N(n) => json!({"N": n}),
        StreamValue::Ss(list) => json!({"SS": list}),
        _ => json!({"NULL": true}),
    };
    Value::Object(
        map.into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), convert(v)))
            .collect(),
    )
}

fn agree() -> Value {
    sandbox::button_reply("agree", "AGREE & PROCEED")
}

#[tokio::test]
async fn accept_within_the_cost_budget() {
    let stack = Stack::new().await;
    let a = "4915100000001";
    let before = stack.meter.snapshot();
    assert_eq!(stack.post(a, sandbox::text("Hello")).await, 200);
    assert!(stack.pump().await >= 1);
    let schedules = stack.fire_due().await;
    assert_eq!(schedules.len(), 1, "one schedule for the question");
    let schedule = &schedules[0];
    assert_eq!(
        schedule
            .flexible_time_window
            .as_ref()
            .unwrap()
            .mode
            .as_str(),
        "OFF"
    );
    assert_eq!(
        schedule
            .action_after_completion
            .as_ref()
            .map(|a| a.as_str()),
        Some("DELETE")
    );
    assert_eq!(
        schedule.schedule_expression_timezone.as_deref(),
        Some("UTC")
    );
    let deadline = stack.clock.now().plus(Duration::from_secs(300));
    assert_eq!(
        schedule.schedule_expression.as_deref(),
        Some(format!("at({})", deadline.utc_datetime_ceil()).as_str())
    );
    let target = schedule.target.as_ref().unwrap();
    assert!(target.arn.ends_with(":function:assent-timeout"));
    assert!(target.dead_letter_config.is_some() && target.retry_policy.is_some());

    assert_eq!(stack.post(a, agree()).await, 200);
    stack.pump().await;
    let after = stack.meter.snapshot();

    let sent = stack.sent_to(a);
    assert_eq!(sent.len(), 3, "link, question, acknowledgement");
    assert!(sent[2].text().starts_with("Thank you"));
    assert!(
        stack.fire_due().await.is_empty(),
        "the answered question's schedule was deleted"
    );
    assert!(
        stack
            .record(a)
            .await
            .state
            .profile
            .tags
            .contains("Consent: Privacy")
    );
    assert_eq!(
        stack
            .store
            .segment_page("Consent: Privacy", None, 10)
            .await
            .unwrap()
            .0,
        vec![ContactId::new("whatsapp", a)]
    );

    let t = meter::totals(&before, &after);
    println!(
        "accepted flow: {:.1} WRU, {:.1} RRU, {} DynamoDB calls, {} Scheduler calls (budget {WRU_BUDGET} WRU, {RRU_BUDGET} RRU)",
        t.write_units, t.read_units, t.dynamodb_calls, t.scheduler_calls
    );
    for (operation, usage) in &after {
        println!("  {operation}: {usage:?}");
    }
    assert!(
        t.write_units <= WRU_BUDGET,
        "{} WRU over the budget of {WRU_BUDGET}",
        t.write_units
    );
    assert!(
        t.read_units <= RRU_BUDGET,
        "{} RRU over the budget of {RRU_BUDGET}",
        t.read_units
    );
    assert_eq!(
        t.scheduler_calls, 2,
        "create the question's schedule, delete it after the answer"
    );
}

/// Store answers lost after the write happened (the retry then meets its own write) and
/// throttling, all through a whole accepted flow: the outcome is exactly as without.
#[tokio::test]
async fn lost_and_throttled_store_answers_change_nothing() {
    let faults = aws::Faults::new(3, 4);
    let stack = Stack::with_faults(&faults).await;
    let a = "4915100000077";
    assert_eq!(stack.post(a, sandbox::text("Hello")).await, 200);
    stack.pump().await;
    assert_eq!(
        stack.fire_due().await.len(),
        1,
        "one schedule for the question"
    );
    assert_eq!(stack.post(a, agree()).await, 200);
    stack.pump().await;

    let texts: Vec<String> = stack.sent_to(a).iter().map(|m| m.text()).collect();
    assert_eq!(
        texts.len(),
        3,
        "link, question, thanks, none twice: {texts:?}"
    );
    assert!(texts[2].starts_with("Thank you"));
    // Read back without faults.
    let check = DynamoStore::new(aws::dynamodb_without_meter(), &stack.table);
    let record = check
        .load(&ContactId::new("whatsapp", a))
        .await
        .unwrap()
        .record
        .unwrap();
    assert!(record.state.profile.tags.contains("Consent: Privacy"));
    assert!(record.outbox.is_empty());
    let contact = ContactId::new("whatsapp", a);
    let kinds: Vec<String> = check
        .records(&contact)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            serde_json::to_value(r.kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["asked", "accepted"], "each decision once");
    assert_eq!(
        check
            .segment_page("Consent: Privacy", None, 10)
            .await
            .unwrap()
            .0,
        vec![contact]
    );
    let (lost, throttled) = (
        faults.lost.load(std::sync::atomic::Ordering::SeqCst),
        faults.throttled.load(std::sync::atomic::Ordering::SeqCst),
    );
    let redelivered = stack.redelivered.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "store answers lost: {lost}, throttled: {throttled}; batches redelivered: {redelivered}"
    );
    assert!(lost > 0 && throttled > 0, "faults were injected");
}

#[tokio::test]
async fn four_invalid_answers_fail_and_close() {
    let stack = Stack::new().await;
    let b = "4915100000002";
    stack.post(b, sandbox::text("Hello")).await;
    stack.pump().await;
    for answer in ["yes", "ok", "sure", "👍"] {
        assert_eq!(stack.post(b, sandbox::text(answer)).await, 200);
        stack.pump().await;
    }
    let sent = stack.sent_to(b);
    let questions = sent
        .iter()
        .filter(|m| m.body["type"] == "interactive")
        .count();
    assert_eq!(questions, 4, "1 ask + 3 re-asks");
    assert!(
        sent.last()
            .unwrap()
            .text()
            .starts_with("We could not record your consent")
    );
    let record = stack.record(b).await;
    assert!(record.state.conversation.is_none(), "closed");
    assert!(!record.state.profile.tags.contains("Consent: Privacy"));
    assert!(
        stack.fire_due().await.is_empty(),
        "every re-ask's schedule was deleted"
    );
}

#[tokio::test]
async fn silence_times_out_through_the_scheduler() {
    let stack = Stack::new().await;
    let c = "4915100000003";
    stack.post(c, sandbox::text("Hello")).await;
    stack.pump().await;
    stack.clock.advance(Duration::from_secs(299));
    stack.fire_due().await;
    stack.pump().await;
    assert_eq!(stack.sent_to(c).len(), 2, "not yet");
    stack.clock.advance(Duration::from_secs(2));
    assert_eq!(stack.fire_due().await.len(), 1);
    stack.pump().await;
    let sent = stack.sent_to(c);
    assert_eq!(sent.len(), 3);
    assert!(
        sent[2]
            .text()
            .starts_with("We did not get your answer in time")
    );
    assert!(stack.record(c).await.state.conversation.is_none());
    assert!(
        stack.fire_due().await.is_empty(),
        "fired schedules are gone"
    );
    // The same fire delivered twice (a scheduler retry) changes nothing.
    let input = TimeoutInput {
        contact: format!("whatsapp:{c}"),
        run: 1,
        wait_seq: 1,
    };
    assent::aws::timeout::handle(
        &stack.timeout,
        lambda_runtime::LambdaEvent::new(input, Default::default()),
    )
    .await
    .unwrap();
    stack.pump().await;
    assert_eq!(stack.sent_to(c).len(), 3);
}

/// Erasure while the step is sending the question: the schedule the step then creates
/// would fire for a contact that is gone and bring back an empty record. The step finds
/// the record gone when it commits, and deletes the schedule.
#[tokio::test]
async fn erasing_a_contact_while_its_step_runs_leaves_no_schedule() {
    let stack = Stack::new().await;
    let c = "4915100000051";
    stack.sandbox.answer_after(Duration::from_secs(1));
    assert_eq!(stack.post(c, sandbox::text("Hello")).await, 200);
    let batch = stack.new_records().await;
    let erase = async {
        // The question has reached the provider, which has not answered yet.
        stack
            .sandbox
            .wait_for_to(c, 2, Duration::from_secs(10))
            .await;
        stack
            .store
            .erase(&ContactId::new("whatsapp", c))
            .await
            .unwrap()
    };
    let (failed, erased) = tokio::join!(stack.deliver(batch), erase);
    assert!(erased, "there was a record to erase");
    assert!(failed.is_empty(), "{failed:?}");
    let schedules = stack
        .harness
        .list_schedules()
        .group_name(&stack.group)
        .send()
        .await
        .unwrap()
        .schedules;
    assert!(schedules.is_empty(), "{schedules:?}");
    let loaded = stack
        .store
        .load(&ContactId::new("whatsapp", c))
        .await
        .unwrap();
    assert!(loaded.record.is_none(), "the record stays gone");
}

/// Erasure while the question waits for an answer: the schedule is pending and fires
/// later. Its timeout finds no record and is dropped, so the contact's id is not stored
/// again.
#[tokio::test]
async fn a_schedule_pending_at_erasure_brings_nothing_back() {
    let stack = Stack::new().await;
    let c = "4915100000052";
    assert_eq!(stack.post(c, sandbox::text("Hello")).await, 200);
    stack.pump().await;
    let id = ContactId::new("whatsapp", c);
    assert!(stack.store.erase(&id).await.unwrap());
    stack.clock.advance(Duration::from_secs(301));
    assert_eq!(stack.fire_due().await.len(), 1, "the schedule was pending");
    stack.pump().await;
    assert_eq!(
        stack.sent_to(c).len(),
        2,
        "no failure message to an erased contact"
    );
    let left = stack
        .store_client()
        .query()
        .table_name(&stack.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("{CONTACT_PREFIX}{id}")),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let kept: Vec<&str> = left
        .iter()
        .filter_map(|item| item.get("sk")?.as_s().ok().map(String::as_str))
        .collect();
    assert!(
        kept.iter().all(|sk| sk.starts_with(LEDGER_PREFIX)),
        "only the consent ledger stays: {kept:?}"
    );
}

/// A contact parked after a channel outage that outlasted its retries resumes from the
/// admin API, without waiting for the contact to write again. Nothing is decided twice.
#[tokio::test]
async fn a_parked_contact_resumes_from_the_admin_api() {
    let stack = Stack::new().await;
    let c = "4915100000053";
    let path = |tail: &str| format!("/admin/contacts/whatsapp:{c}{tail}");
    stack.parked_after_hello(c).await;
    let (_, contact) = stack.admin("GET", &path("")).await;
    assert_eq!(
        contact["pending_effects"], 3,
        "link, question (its timer starts once sent), the ledger's record"
    );

    let (status, body) = stack.admin("POST", &path("/resume")).await;
    assert_eq!((status, &body["status"]), (202, &json!("queued")));
    stack.pump().await;
    let sent = stack.sent_to(c);
    assert_eq!(
        sent.len(),
        2,
        "{:?}",
        sent.iter().map(|m| m.text()).collect::<Vec<_>>()
    );
    assert!(sent[0].text().contains("privacy policy"));
    let (status, body) = stack.admin("POST", &path("/resume")).await;
    assert_eq!((status, &body["status"]), (200, &json!("nothing pending")));
    let (status, _) = stack
        .admin("POST", "/admin/contacts/whatsapp:0/resume")
        .await;
    assert_eq!(status, 404);

    stack.post(c, agree()).await;
    stack.pump().await;
    assert!(stack.sent_to(c)[2].text().starts_with("Thank you"));
}

/// After an outage, the admin API lists the parked contacts with why, and resumes them
/// all at once. An erased contact leaves the list with the rest of its data.
#[tokio::test]
async fn parked_contacts_are_listed_and_resumed_together() {
    let stack = Stack::new().await;
    let (p, q, erased) = ("4915100000061", "4915100000062", "4915100000063");
    for c in [p, q, erased] {
        stack.parked_after_hello(c).await;
    }
    let (status, _) = stack
        .admin("DELETE", &format!("/admin/contacts/whatsapp:{erased}"))
        .await;
    assert_eq!(status, 204);
    let listed = stack.store.parked_page(None, 10).await.unwrap().0;
    let ids: Vec<String> = listed.iter().map(|l| l.contact.to_string()).collect();
    assert_eq!(ids, [format!("whatsapp:{p}"), format!("whatsapp:{q}")]);

    let (status, body) = stack.admin("GET", "/admin/parked?limit=1").await;
    assert_eq!(status, 200);
    assert_eq!(body["contacts"][0]["id"], format!("whatsapp:{p}"));
    assert_eq!(body["contacts"][0]["pending_effects"], 3);
    assert!(
        body["contacts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("503"),
        "{body}"
    );
    let next = body["next"].as_str().unwrap();
    let (_, body) = stack
        .admin("GET", &format!("/admin/parked?limit=1&next={next}"))
        .await;
    assert_eq!(body["contacts"][0]["id"], format!("whatsapp:{q}"));

    let (status, body) = stack.admin("POST", "/admin/parked/resume").await;
    assert_eq!((status, &body["queued"]), (202, &json!(2)));
    stack.pump().await;
    for c in [p, q] {
        let sent = stack.sent_to(c);
        assert_eq!(sent.len(), 2, "{c}: link and question, once");
        assert!(sent[0].text().contains("privacy policy"));
    }
    assert!(stack.sent_to(erased).is_empty());
    let (_, body) = stack.admin("GET", "/admin/parked").await;
    assert_eq!(body["contacts"], json!([]));
    let (status, body) = stack.admin("POST", "/admin/parked/resume").await;
    assert_eq!((status, &body["queued"]), (200, &json!(0)));
}

/// A step that fails for a contact being erased at that moment parks nothing: parking
/// checks the record in the same transaction, and erasure deletes the record first. A
/// contact that never got a record is still parked while its inbox holds its message.
#[tokio::test]
async fn parking_an_erased_contact_writes_nothing() {
    let stack = Stack::new().await;
    let (erased, new) = ("4915100000071", "4915100000072");
    stack.post(erased, sandbox::text("Hello")).await;
    stack.pump().await;
    let contact = ContactId::new("whatsapp", erased);
    assert!(stack.store.erase(&contact).await.unwrap());
    let now = stack.clock.now();
    let parked = stack.store.park(&contact, "49", "503", now).await.unwrap();
    assert_eq!(parked, Parking::Erased);
    assert!(stack.store.parked(&contact).await.unwrap().is_empty());
    assert!(
        stack
            .store
            .parked_page(None, 10)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // Its hello stored, no step run yet: no record, but something to come back to.
    stack.post(new, sandbox::text("Hello")).await;
    let contact = ContactId::new("whatsapp", new);
    let parked = stack.store.park(&contact, "50", "503", now).await.unwrap();
    assert_eq!(parked, Parking::Listed);
    assert_eq!(stack.store.parked(&contact).await.unwrap().len(), 1);
    let listed = stack.store.parked_page(None, 10).await.unwrap().0;
    assert_eq!(listed.len(), 1);
}

#[derive(Clone, Copy)]
enum Ingress {
    HttpApi,
    FunctionUrl,
}

/// The template can put the webhook function behind a function URL too (no charge per
/// request): the same handler serves it.
#[tokio::test]
async fn a_webhook_through_a_function_url_starts_the_flow_as_through_the_api() {
    let stack = Stack::new().await;
    let contact = "4915100000041";
    let status = stack
        .post_via(Ingress::FunctionUrl, contact, sandbox::text("Hello"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(stack.pump().await, 1, "one inbox item stored");
    let sent = stack
        .sandbox
        .wait_for_to(contact, 2, Duration::from_secs(10))
        .await;
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(!sent[1].options().is_empty(), "the question: {sent:?}");
}

#[tokio::test]
async fn bad_webhooks_are_refused_over_api_gateway() {
    let stack = Stack::new().await;
    let event = json!({
        "version": "2.0", "routeKey": "POST /webhooks/{channel}", "rawPath": "/webhooks/whatsapp", "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-hub-signature-256": "sha256=00"},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "http": {"method": "POST", "path": "/webhooks/whatsapp", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "x"},
            "requestId": "r", "routeKey": "POST /webhooks/{channel}", "stage": "$default", "time": "t", "timeEpoch": 0},
        "body": "{\"entry\":[]}", "isBase64Encoded": false
    });
    let request = lambda_http::request::from_str(&event.to_string()).unwrap();
    let response = stack.webhook.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(stack.pump().await, 0, "nothing was stored");
}

/// A batch's contacts are served together, not one after another: the invocation lasts
/// about as long as its slowest contact (it is billed by duration), and a slow provider
/// does not hold up a whole shard. Each contact's own messages still go out in order.
#[tokio::test]
async fn a_batch_of_contacts_is_served_together() {
    let stack = Stack::new().await;
    stack.sandbox.answer_after(Duration::from_millis(500));
    let contacts: Vec<String> = (0..10).map(|n| format!("49151000001{n:02}")).collect();
    for c in &contacts {
        assert_eq!(stack.post(c, sandbox::text("Hello")).await, 200);
    }
    let batch = stack.new_records().await;
    assert_eq!(batch.len(), contacts.len());
    assert!(stack.deliver(batch).await.is_empty());
    for c in &contacts {
        let sent = stack.sent_to(c);
        assert_eq!(sent.len(), 2, "{c}: link and question");
        assert!(sent[0].text().contains("privacy policy"));
        assert_eq!(sent[1].options().len(), 1);
    }
    assert!(
        stack.sandbox.peak_in_flight() > 1,
        "sends for different contacts overlapped"
    );
}

#[tokio::test]
async fn a_failing_contact_never_blocks_the_batch_and_is_parked_in_time() {
    let stack = Stack::new().await;
    let (p, q) = ("4915100000004", "4915100000005");
    stack.post(p, sandbox::text("Hello")).await;
    let p_records = stack.new_records().await;
    stack.post(q, sandbox::text("Hello")).await;
    let q_records = stack.new_records().await;
    let batch: Vec<Value> = p_records.iter().chain(&q_records).cloned().collect();
    // The channel is down for P's three tries; Q's sends go through.
    stack.channel_down_for(p);
    let failed = stack.deliver(batch).await;
    let p_sequence = p_records[0]["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        failed,
        vec![p_sequence.clone()],
        "only P's record is retried"
    );
    assert_eq!(stack.sent_to(q).len(), 2, "Q went on in the same batch");
    assert!(stack.sent_to(p).is_empty());

    // Two hours after the record was written, it still fails: it is parked with its error.
    stack.two_hours_after(&p_records[0]);
    stack.channel_down_for(p);
    assert!(
        stack.deliver(p_records.clone()).await.is_empty(),
        "parked, not failed again"
    );
    let parked = stack
        .store
        .parked(&ContactId::new("whatsapp", p))
        .await
        .unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].0, p_sequence);
    assert!(parked[0].1.contains("503"), "{}", parked[0].1);
    // Nothing was lost: P's next message runs what was waiting (the link and the question).
    // It is no answer to a question P never saw, so the question is asked once, and waits.
    stack.post(p, sandbox::text("Hello?")).await;
    stack.pump().await;
    let sent = stack.sent_to(p);
    assert_eq!(
        sent.len(),
        2,
        "{:?}",
        sent.iter().map(|m| m.text()).collect::<Vec<_>>()
    );
    assert!(sent[0].text().contains("privacy policy"));
    assert_eq!(sent[1].options().len(), 1);
    stack.post(p, agree()).await;
    stack.pump().await;
    assert!(stack.sent_to(p)[2].text().starts_with("Thank you"));
}

/// The web chat on AWS: the webhook function serves sessions and polls, the step function
/// puts the chat's messages in the table, and a poll answers at once with the pace the
/// widget should keep (a Lambda function waiting on a long-poll would be billed for it).
#[tokio::test]
async fn a_web_chat_visitor_consents_through_the_table_mailbox() {
    let stack = Stack::new().await;
    let ip = "198.51.100.7";
    let (status, _, session) = stack.web(ip, "POST", "/web/session", None, None).await;
    assert_eq!(status, 201, "{session}");
    let token = session["token"].as_str().unwrap().to_string();
    let visitor = token.split('.').next().unwrap().to_string();
    let token = Some(token.as_str());
    let opened = json!({"id": "o1", "opened": true});
    let (status, _, _) = stack
        .web(ip, "POST", "/webhooks/web", token, Some(opened))
        .await;
    assert_eq!(status, 200);
    assert_eq!(stack.pump().await, 1, "the opening was stored once");

    let (status, _, polled) = stack
        .web(ip, "GET", "/web/messages?after=0", token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(polled["poll_again_ms"], 2000, "{polled}");
    let messages = polled["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        2,
        "the policy link and the question: {polled}"
    );
    assert!(
        messages[0]["text"]
            .as_str()
            .unwrap()
            .contains("https://example.com/privacy")
    );
    let choice = &messages[1]["choices"][0];
    assert_eq!(choice["label"], "AGREE & PROCEED");
    let asked = messages[1]["seq"].as_u64().unwrap();
    assert!(
        asked > messages[0]["seq"].as_u64().unwrap(),
        "numbered in order"
    );

    let tap = json!({"id": "c1", "choice": {"id": choice["id"], "label": choice["label"]}});
    let (status, _, _) = stack
        .web(ip, "POST", "/webhooks/web", token, Some(tap))
        .await;
    assert_eq!(status, 200);
    stack.pump().await;
    let after_question = format!("/web/messages?after={asked}");
    let (_, _, polled) = stack.web(ip, "GET", &after_question, token, None).await;
    let messages = polled["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        1,
        "only what came after the question: {polled}"
    );
    assert!(
        messages[0]["choices"].is_null(),
        "the acknowledgement: {polled}"
    );
    let contact = ContactId::new("web", &visitor);
    let record = stack.store.load(&contact).await.unwrap().record.unwrap();
    assert!(record.state.profile.tags.contains("Consent: Privacy"));

    // Erasure empties the mailbox too: the messages named the visitor's conversation.
    assert!(stack.store.erase(&contact).await.unwrap());
    let (status, _, polled) = stack
        .web(ip, "GET", "/web/messages?after=0", token, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(polled["messages"], json!([]), "{polled}");

    let (status, _, _) = stack
        .web(ip, "GET", "/web/messages?after=0", None, None)
        .await;
    assert_eq!(status, 401, "a poll needs the session token");
}

/// A tab left open asks for what comes after the last number it saw, so numbers keep
/// growing even after an idle mailbox expired (its TTL deletes the counter too).
#[tokio::test]
async fn mailbox_numbers_keep_growing_after_the_mailbox_expired() {
    use assent::channels::web::Mailbox;
    let stack = Stack::new().await;
    let text = |t: &str| assent::engine::OutboundMessage::Text { text: t.into() };
    let first = stack.store.push("v1", &text("one")).await.unwrap();
    let second = stack.store.push("v1", &text("two")).await.unwrap();
    assert_eq!(second, first + 1);
    let seen = stack.store.after("v1", 0, Duration::ZERO).await.unwrap();
    assert_eq!(
        seen.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [first, second]
    );
    let client = stack.store_client();
    for sk in [
        "next".to_string(),
        format!("msg#{first:020}"),
        format!("msg#{second:020}"),
    ] {
        client
            .delete_item()
            .table_name(&stack.table)
            .key(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("w#v1".into()),
            )
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(sk))
            .send()
            .await
            .unwrap();
    }
    let before = stack.meter.snapshot();
    let third = stack.store.push("v1", &text("three")).await.unwrap();
    assert!(third > second, "{third} after {second}");
    let pushed = assent::aws::meter::totals(&before, &stack.meter.snapshot());
    let before = stack.meter.snapshot();
    let seen = stack
        .store
        .after("v1", second, Duration::ZERO)
        .await
        .unwrap();
    let polled = assent::aws::meter::totals(&before, &stack.meter.snapshot());
    // What docs/aws.md prices a web chat message and a poll at.
    assert_eq!(
        (pushed.write_units, pushed.dynamodb_calls),
        (2.0, 2),
        "{pushed:?}"
    );
    assert_eq!(
        (polled.read_units, polled.dynamodb_calls),
        (1.0, 1),
        "{polled:?}"
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].text, "three");
}

/// The session limit counts the address API Gateway saw, not a header the client sets.
#[tokio::test]
async fn web_chat_sessions_are_limited_per_source_address() {
    let stack = Stack::new().await;
    let first = "198.51.100.20";
    for _ in 0..aws::WEB_SESSIONS_PER_MINUTE {
        let (status, _, _) = stack.web(first, "POST", "/web/session", None, None).await;
        assert_eq!(status, 201);
    }
    let (status, retry_after, _) = stack.web(first, "POST", "/web/session", None, None).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    // Naming another address in a header changes nothing: no proxy header is configured.
    let spoofed = [("x-forwarded-for", "198.51.100.99")];
    let (status, _, _) = stack
        .web_on(
            &stack.webhook,
            first,
            "POST",
            "/web/session",
            None,
            None,
            &spoofed,
        )
        .await;
    assert_eq!(status, 429, "a header the client sets is not its address");
    let (status, _, _) = stack
        .web("198.51.100.21", "POST", "/web/session", None, None)
        .await;
    assert_eq!(status, 201, "another address is not held back");
}

/// Warm instances of the webhook function share one allowance per address: it is
/// counted in the table, not in each instance's memory.
#[tokio::test]
async fn web_chat_sessions_are_counted_across_function_instances() {
    let stack = Stack::new().await;
    let address = "198.51.100.30";
    for i in 0..aws::WEB_SESSIONS_PER_MINUTE {
        let instance = [&stack.webhook, &stack.webhook_elsewhere][i as usize % 2];
        let (status, _, _) = stack
            .web_on(instance, address, "POST", "/web/session", None, None, &[])
            .await;
        assert_eq!(status, 201, "session {i}");
    }
    for instance in [&stack.webhook, &stack.webhook_elsewhere] {
        let (status, retry_after, body) = stack
            .web_on(instance, address, "POST", "/web/session", None, None, &[])
            .await;
        assert_eq!(status, 429, "{body}");
        // One session comes back every 15 s at 4 a minute.
        let seconds: u64 = retry_after.unwrap().parse().unwrap();
        assert!((1..=15).contains(&seconds), "Retry-After {seconds}");
    }
}

/// The shared allowance behaves as the local token bucket: a burst of `per_minute`, then
/// one session per interval; IPv6 counted per /64. A fresh address costs one write.
#[tokio::test]
async fn the_shared_session_allowance_is_a_token_bucket() {
    use assent::store::dynamodb::{SharedSessionLimit, TakeError};
    let stack = Stack::new().await;
    let limit = SharedSessionLimit::new(stack.store.clone(), 3);
    let t0 = Timestamp(1_796_160_000_000);
    let at = |s: i64| Timestamp(t0.millis() + s * 1000);
    let a: std::net::IpAddr = "203.0.113.9".parse().unwrap();
    let before = stack.meter.snapshot();
    limit.take_at(a, t0).await.unwrap();
    let fresh = meter::totals(&before, &stack.meter.snapshot());
    assert_eq!((fresh.dynamodb_calls, fresh.write_units), (1, 1.0));
    let before = stack.meter.snapshot();
    limit.take_at(a, t0).await.unwrap();
    let in_burst = meter::totals(&before, &stack.meter.snapshot());
    // The first update's condition fails, and a failed conditional write is billed too.
    assert_eq!((in_burst.dynamodb_calls, in_burst.write_units), (2, 2.0));
    limit.take_at(a, t0).await.unwrap();
    let wait = |r: Result<(), TakeError>| match r {
        Err(TakeError::Wait(wait)) => wait,
        other => panic!("expected a wait, got {other:?}"),
    };
    let before = stack.meter.snapshot();
    assert_eq!(wait(limit.take_at(a, t0).await), Duration::from_secs(20));
    let refused = meter::totals(&before, &stack.meter.snapshot());
    assert_eq!((refused.dynamodb_calls, refused.write_units), (2, 2.0));
    assert_eq!(wait(limit.take_at(a, at(5)).await), Duration::from_secs(15));
    limit.take_at(a, at(20)).await.unwrap();
    assert!(limit.take_at(a, at(20)).await.is_err());
    // Others are not held back by it; hosts of one IPv6 /64 share a bucket.
    limit
        .take_at("203.0.113.10".parse().unwrap(), t0)
        .await
        .unwrap();
    let one = SharedSessionLimit::new(stack.store.clone(), 1);
    one.take_at("2001:db8::1".parse().unwrap(), t0)
        .await
        .unwrap();
    assert!(
        one.take_at("2001:db8::2".parse().unwrap(), t0)
            .await
            .is_err()
    );
    one.take_at("2001:db8:0:1::1".parse().unwrap(), t0)
        .await
        .unwrap();
    // A minute after its last session the whole burst is back.
    for _ in 0..3 {
        limit.take_at(a, at(80)).await.unwrap();
    }
    // No limit: nothing is written.
    let before = stack.meter.snapshot();
    let open = SharedSessionLimit::new(stack.store.clone(), 0);
    for _ in 0..5 {
        open.take_at(a, t0).await.unwrap();
    }
    let none = meter::totals(&before, &stack.meter.snapshot());
    assert_eq!(none.dynamodb_calls, 0);
}

/// A person consents in a real browser with the web chat served as the webhook function
/// serves it, over the table (the stream pumped meanwhile, as the event source mapping
/// would). The widget keeps the pace the server names instead of polling in a loop.
#[tokio::test]
async fn a_person_consents_in_a_real_browser_on_the_aws_path() {
    let chromium = std::env::var("ASSENT_TEST_CHROMIUM").expect(
        "ASSENT_TEST_CHROMIUM is not set: run ./scripts/test, which installs chromium and playwright-core",
    );
    let browser =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../functions/local/tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run ./scripts/test"
    );
    let stack = Stack::new().await;
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = polls.clone();
    let app = stack.webhook.clone().layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            if request.uri().path() == "/web/messages" {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            next.run(request)
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let started = std::time::Instant::now();
    let run = tokio::process::Command::new("node")
        .arg("consent.mjs")
        .arg(&base)
        .current_dir(&browser)
        .env("ASSENT_TEST_CHROMIUM", chromium)
        .output();
    let pump = async {
        loop {
            stack.pump().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let output = tokio::select! {
        output = run => output.expect("node runs"),
        _ = pump => unreachable!(),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let transcript = result["transcript"].as_array().unwrap();
    assert!(
        transcript
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("Thank you")
    );
    let visitor = result["visitor"].as_str().unwrap();
    let contact = ContactId::new("web", visitor);
    let record = stack.store.load(&contact).await.unwrap().record.unwrap();
    assert!(record.state.profile.tags.contains("Consent: Privacy"));
    // One page at a time (a reload starts the next), each polling at most every 2 s while
    // it waits; the bound allows twice that. A widget that polled again at once made 49
    // polls in under 4 s here.
    let polls = polls.load(std::sync::atomic::Ordering::SeqCst);
    let bound = 2 * (started.elapsed().as_secs() as usize / 2 + 2);
    assert!(polls <= bound, "{polls} polls in {:?}", started.elapsed());
}

/// A contact who keeps writing after the consent: a message that decides nothing is
/// committed once, messages cost no more as they add up (processed inbox items are
/// retired instead of being read and listed by every later message), and a provider's
/// late retry of a retired STOP does not withdraw the consent given since.
#[tokio::test]
async fn a_chatty_contact_pays_the_same_per_message_and_old_retries_stay_duplicates() {
    let stack = Stack::new().await;
    let a = "4915100000031";
    let consented = |record: &assent::ports::ContactRecord| {
        record.state.profile.tags.contains("Consent: Privacy")
    };
    stack.post(a, sandbox::text("Hello")).await;
    stack.pump().await;
    stack.post(a, agree()).await;
    stack.pump().await;
    // The same message id each time: the second is a provider's retry.
    let stop = || {
        stack.post_message(
            Ingress::HttpApi,
            a,
            "wamid.chatty.stop",
            sandbox::text("STOP"),
        )
    };
    assert_eq!(stop().await, 200);
    stack.pump().await;
    assert!(!consented(&stack.record(a).await), "STOP withdrew");
    stack.post(a, sandbox::text("Hello again")).await;
    stack.pump().await;
    stack.post(a, agree()).await;
    stack.pump().await;
    assert!(consented(&stack.record(a).await), "consented again");
    let sends = stack.sent_to(a).len();

    let mut costs = Vec::new();
    for i in 1..=40 {
        let before = stack.meter.snapshot();
        let text = format!("Question {i} about my order, with a few more words in it");
        // As long as WhatsApp's own ids, which the record's list of processed keys holds.
        let id = format!("wamid.HBgNNDkxNTEwMDAwMDAzMRUCABIYIDNBQjBDNkU2RjlBQjJEN0QzMjA2{i:04}");
        assert_eq!(
            stack
                .post_message(Ingress::HttpApi, a, &id, sandbox::text(&text))
                .await,
            200
        );
        stack.pump().await;
        costs.push(meter::totals(&before, &stack.meter.snapshot()));
    }
    let writes: Vec<f64> = costs.iter().map(|t| t.write_units).collect();
    let reads: Vec<f64> = costs.iter().map(|t| t.read_units).collect();
    println!("chatty contact, 40 messages: write units {writes:?}, read units {reads:?}");
    let mean = |units: &[f64]| units.iter().sum::<f64>() / units.len() as f64;
    // Each message: its inbox item and one commit; every ninth also retires the items
    // held (a digest item and a delete each), which is the highest a message costs.
    assert_eq!(writes[0], 2.0, "its inbox item and one commit");
    let retirement = 3.0 + RETAINED_MAX as f64 + 1.0;
    assert!(writes.iter().all(|&w| w <= retirement), "{writes:?}");
    assert!(
        mean(&writes[20..]) <= mean(&writes[..20]) + 0.5,
        "write units grow with the messages: {writes:?}"
    );
    assert!(
        reads.iter().all(|&r| r <= reads[0] + 1.0),
        "read units grow with the messages: {reads:?}"
    );

    // Meta retries the STOP it delivered a week ago: its item was retired, so the
    // webhook stores it again, and the step must see it as the duplicate it is.
    assert_eq!(stop().await, 200);
    stack.pump().await;
    assert!(
        consented(&stack.record(a).await),
        "the old STOP was not applied again"
    );
    assert_eq!(
        stack.sent_to(a).len(),
        sends,
        "nothing was sent for any of it"
    );
    let loaded = stack
        .store
        .load(&ContactId::new("whatsapp", a))
        .await
        .unwrap();
    assert!(loaded.inbox.is_empty(), "nothing is left pending");
}

/// A message no key can hold (an id longer than a DynamoDB sort key may be, as no provider
/// sends) is skipped, and an oversized text is cut down: the other messages of the same
/// body are stored and answered, instead of the whole body failing and being retried until
/// the provider gives up on it.
#[tokio::test]
async fn an_unusable_message_is_skipped_and_the_rest_of_its_body_is_kept() {
    let stack = Stack::new().await;
    let (a, b, c, d) = (
        "4915100000041",
        "4915100000042",
        "4915100000043",
        "4915100000044",
    );
    let mut body = sandbox::message_webhook(
        support::PHONE_NUMBER_ID,
        a,
        "A",
        "wamid.body.a",
        1_796_160_000,
        sandbox::text("Hello"),
    );
    let message = |from: &str, id: &str, text: &str| json!({"from": from, "id": id, "timestamp": "1796160000", "type": "text", "text": {"body": text}});
    let messages = body["entry"][0]["changes"][0]["value"]["messages"]
        .as_array_mut()
        .unwrap();
    messages.push(message(b, &"x".repeat(2_000), "Hello"));
    messages.push(message(c, "wamid.body.c", &"a".repeat(500_000)));
    messages.push(message(d, "wamid.body.d", "Hello"));
    let (status, answer) = stack.post_body(Ingress::HttpApi, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].as_u64(), answer["skipped"].as_u64()),
        (Some(3), Some(1))
    );
    stack.pump().await;
    for contact in [a, c, d] {
        assert_eq!(
            stack.sent_to(contact).len(),
            2,
            "{contact}: link and question"
        );
    }
    assert!(stack.sent_to(b).is_empty());
    // The provider's retry of the same body changes nothing.
    let (status, answer) = stack.post_body(Ingress::HttpApi, &body).await;
    assert_eq!(
        (status, answer["duplicates"].as_u64()),
        (200, Some(3)),
        "{answer}"
    );
}

/// API Gateway and function URLs hand a body they take for binary to the function base64
/// encoded (`isBase64Encoded`). The signature is over the bytes the provider sent, so the
/// handler must check it over the decoded body: a body checked as base64 text would be
/// refused with 401 for ever, and every message in it lost.
#[tokio::test]
async fn a_base64_encoded_body_is_checked_and_read_as_sent() {
    use base64::Engine;
    let stack = Stack::new().await;
    let a = "4915100000051";
    let body = sandbox::meta_json(&sandbox::message_webhook(
        support::PHONE_NUMBER_ID,
        a,
        "A",
        "wamid.base64.a",
        1_796_160_000,
        sandbox::text("Hello"),
    ));
    let mut event = aws::http_api_event(&body);
    event["body"] = json!(base64::engine::general_purpose::STANDARD.encode(body.as_bytes()));
    event["isBase64Encoded"] = json!(true);
    let request = lambda_http::request::from_str(&event.to_string()).expect("an HTTP (v2) event");
    let response = stack.webhook.clone().oneshot(request).await.unwrap();
    let (status, answer) = status_and_json(response).await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(1)),
        "{answer}"
    );
    stack.pump().await;
    assert_eq!(stack.sent_to(a).len(), 2, "link and question");
}
