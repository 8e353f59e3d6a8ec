//! The deployment template against the code: every variable a function reads is set for
//! it (and nothing else), every AWS action its code calls is granted to it, and nothing it
//! does not call is. The actions are observed, not listed: each function's runtime runs a
//! scenario against the local AWS emulator with a meter on its clients.
#![cfg(feature = "aws")]

mod support;

use serde_json::{Value, json};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use assent::aws::channel_secret::{self, WithSecret};
use assent::aws::meter::Meter;
use assent::aws::{AdminConfig, Env, StepConfig, TimeoutConfig, WebhookConfig};
use assent::channels::web::Mailbox;
use assent::clock::{ManualClock, Timestamp};
use assent::contact::ContactId;
use assent::engine::{Content, Inbound, OutboundMessage};
use assent::ports::AdminStore;
use assent::ports::{Clock, InboxItem, InboxStore};
use assent::runtime::Runtime;
use assent::store::DynamoStore;
use assent::store::dynamodb::{
    Parking, SEGMENT_INDEX, SEGMENT_KEY, STREAM_FILTER_PATTERN, TTL_ATTRIBUTE,
};
use assent::timers::{Disabled, SchedulerTimers};
use assent::workflow::Workflow;
use support::aws;
use tower::ServiceExt;

const FUNCTIONS: [&str; 4] = [
    "WebhookFunction",
    "StepFunction",
    "TimeoutFunction",
    "AdminFunction",
];

/// Actions the platform performs with a function's role, not the function's code.
const PLATFORM: &[(&str, &str, &str)] = &[
    (
        "*",
        "logs:CreateLogStream",
        "Lambda writes the function's logs",
    ),
    (
        "*",
        "logs:PutLogEvents",
        "Lambda writes the function's logs",
    ),
    (
        "StepFunction",
        "dynamodb:DescribeStream",
        "the event source mapping polls the stream",
    ),
    (
        "StepFunction",
        "dynamodb:GetRecords",
        "the event source mapping polls the stream",
    ),
    (
        "StepFunction",
        "dynamodb:GetShardIterator",
        "the event source mapping polls the stream",
    ),
    (
        "StepFunction",
        "dynamodb:ListStreams",
        "the event source mapping polls the stream",
    ),
    (
        "StepFunction",
        "sqs:SendMessage",
        "the event source mapping's on-failure destination",
    ),
];

/// The template as JSON, CloudFormation's short tags kept as `{"!Ref": ...}` objects.
fn template() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    to_json(yaml)
}

fn to_json(yaml: serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => json!(b),
        Y::Number(n) => serde_json::to_value(&n).unwrap_or(Value::Null),
        Y::String(s) => json!(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    (
                        k.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("{k:?}")),
                        to_json(v),
                    )
                })
                .collect(),
        ),
        Y::Tagged(tagged) => json!({ tagged.tag.to_string(): to_json(tagged.value) }),
    }
}

/// An environment that has a value for everything and remembers what was asked.
struct Recording {
    read: RefCell<BTreeSet<String>>,
}

impl Env for Recording {
    fn var(&self, name: &str) -> Option<String> {
        self.read.borrow_mut().insert(name.to_string());
        Some(match name {
            "ASSENT_TEMPLATE" => "request-consent-privacy".into(),
            channel_secret::CHANNELS_VAR => "whatsapp,telegram,messenger,twilio,web".into(),
            "WEB_SESSIONS_PER_MINUTE" => "20".into(),
            "ASSENT_TEMPLATE_PARAMS" => r#"{"policy_url": "https://example.com/privacy"}"#.into(),
            n if n.starts_with("ASSENT_SCHEDULE_MAX") => "5".into(),
            _ => "value".into(),
        })
    }
}

/// An environment with just these variables.
struct Named(BTreeMap<&'static str, String>);

impl Env for Named {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}

fn read_by(function: &str) -> BTreeSet<String> {
    let env = Recording {
        read: RefCell::default(),
    };
    // The webhook and step functions take the channel keys from the secret.
    let with_secret = || {
        let source = channel_secret::source(&env).unwrap().unwrap();
        WithSecret::new(&env, &source, &all_channel_keys().to_string()).unwrap()
    };
    match function {
        "WebhookFunction" => drop(WebhookConfig::from_env(&with_secret()).unwrap()),
        "StepFunction" => drop(StepConfig::from_env(&with_secret()).unwrap()),
        "TimeoutFunction" => drop(TimeoutConfig::from_env(&env).unwrap()),
        "AdminFunction" => drop(AdminConfig::from_env(&env).unwrap()),
        other => panic!("{other}"),
    }
    let mut read = env.read.into_inner();
    read.insert(assent::logging::FILTER_VAR.to_string());
    read
}

/// A channel secret with a value for every key of every channel.
fn all_channel_keys() -> Value {
    channel_secret::KEYS
        .iter()
        .flat_map(|(_, keys)| keys.iter())
        .map(|key| (key.to_string(), json!("value")))
        .collect()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn every_variable_a_function_reads_is_set_for_it_and_no_other() {
    let t = template();
    let global = keys(&t["Globals"]["Function"]["Environment"]["Variables"]);
    for function in FUNCTIONS {
        let own = keys(&t["Resources"][function]["Properties"]["Environment"]["Variables"]);
        let set: BTreeSet<String> = global.union(&own).cloned().collect();
        let read = read_by(function);
        let missing: Vec<_> = read.difference(&set).collect();
        let unused: Vec<_> = set.difference(&read).collect();
        assert!(
            missing.is_empty(),
            "{function} reads {missing:?}, which the template does not set"
        );
        assert!(
            unused.is_empty(),
            "{function} is given {unused:?}, which it never reads"
        );
    }
}

fn actions(statement: &Value) -> Vec<String> {
    match &statement["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Array(list) => list
            .iter()
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn statements(t: &Value, function: &str) -> Vec<Value> {
    let role = t["Resources"][function]["Properties"]["Role"]["!GetAtt"]
        .as_str()
        .unwrap()
        .trim_end_matches(".Arn")
        .to_string();
    t["Resources"][&role]["Properties"]["Policies"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_array().unwrap().clone())
        .collect()
}

fn granted(t: &Value, function: &str) -> BTreeSet<String> {
    statements(t, function).iter().flat_map(actions).collect()
}

/// IAM actions from the operations a meter saw.
fn called(meter: &Meter) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for operation in meter.snapshot().keys() {
        let (service, op) = operation.split_once('.').unwrap();
        let prefix = match service {
            "DynamoDB" => "dynamodb",
            "Scheduler" => "scheduler",
            "SecretsManager" => "secretsmanager",
            other => panic!("a call to {other}, which no grant covers"),
        };
        out.insert(format!("{prefix}:{op}"));
        if operation == "Scheduler.CreateSchedule" {
            out.insert("iam:PassRole".into()); // a schedule names the role it runs as
        }
        if operation == "DynamoDB.TransactWriteItems" {
            // IAM knows no such action: a transaction needs the grants of its parts, which
            // for the step function's parking are a condition check and puts.
            out.remove("dynamodb:TransactWriteItems");
            out.insert("dynamodb:ConditionCheckItem".into());
            out.insert("dynamodb:PutItem".into());
        }
    }
    out
}

/// A workflow that adds the tag, asks again, then removes it: every write the step
/// function's code can make (records, inbox, segment entries put and deleted, schedules).
fn tag_and_untag() -> Workflow {
    Workflow::from_value(json!({
        "spec_version": 1, "id": "tag-untag", "name": "Tag and untag", "trigger": {"type": "conversation_opened"},
        "steps": [
            {"id": "ask", "type": "ask_question", "text": "In or out?", "timeout_seconds": 60,
             "options": [{"id": "in", "label": "In", "next": "tag"}, {"id": "out", "label": "Out", "next": "untag"}],
             "on_invalid": "close", "on_timeout": "close"},
            {"id": "tag", "type": "update_contact_tag", "action": "add", "tag": "T", "next": "again"},
            {"id": "again", "type": "jump_to", "target": "ask", "max_jumps": 1, "next": "close"},
            {"id": "untag", "type": "update_contact_tag", "action": "remove", "tag": "T", "next": "close"},
            {"id": "close", "type": "close_conversation"}
        ]}))
    .unwrap()
}

async fn observed_actions() -> HashMap<&'static str, BTreeSet<String>> {
    let sdk = aws::sdk().await;
    let setup = aws::dynamodb_without_meter();
    let table = aws::table(&setup).await;
    let group = aws::schedule_group(&aws::scheduler(&sdk, &Meter::default())).await;
    let sandbox = support::sandbox().await;
    let clock = Arc::new(ManualClock::starting_at(Timestamp(1_796_160_000_000)));
    let meters: HashMap<&str, Meter> = FUNCTIONS.iter().map(|f| (*f, Meter::default())).collect();
    let store = |f: &str| DynamoStore::new(aws::dynamodb(&sdk, &meters[f]), &table);

    // webhook and step: read the channel keys at cold start.
    let secret = aws::channel_secret(&sdk, &all_channel_keys()).await;
    for function in ["WebhookFunction", "StepFunction"] {
        let env = Named(BTreeMap::from([
            (channel_secret::SECRET_VAR, secret.clone()),
            (channel_secret::CHANNELS_VAR, "whatsapp".to_string()),
        ]));
        let client = aws::secrets(&sdk, &meters[function]);
        let env = channel_secret::load(&client, env).await.unwrap();
        assert_eq!(env.var("WHATSAPP_APP_SECRET").as_deref(), Some("value"));
    }
    // webhook: stores inbound messages.
    let webhook = store("WebhookFunction");
    let contact = ContactId::new("whatsapp", "4915100000009");
    let inbound = |id: &str, content: Content| {
        InboxItem::inbound(
            Inbound {
                from: assent::contact::Address {
                    channel: "whatsapp".into(),
                    user_id: "4915100000009".into(),
                    via: Some(support::PHONE_NUMBER_ID.into()),
                },
                message_id: id.into(),
                name: None,
                content,
                sent_at: None,
            },
            clock.now(),
        )
    };
    // step: publishes at start, then runs the contact through every kind of write.
    let step_store = store("StepFunction");
    // web chat: the step function puts a message in a visitor's mailbox, the webhook
    // function's poll reads it.
    let hello = OutboundMessage::Text { text: "hi".into() };
    Mailbox::push(&step_store, "visitor", &hello).await.unwrap();
    let polled = Mailbox::after(&webhook, "visitor", 0, Duration::ZERO).await;
    assert_eq!(polled.unwrap().len(), 1);
    // web chat: the webhook function counts a visitor's new session.
    let sessions = assent::store::dynamodb::SharedSessionLimit::new(webhook.clone(), 1);
    let visitor_address = "203.0.113.9".parse().unwrap();
    assert!(sessions.take_at(visitor_address, clock.now()).await.is_ok());
    let timers = SchedulerTimers::new(
        aws::scheduler(&sdk, &meters["StepFunction"]),
        aws::scheduler_config(&group),
        Arc::new(step_store.clone()),
        clock.clone(),
    );
    let step = Arc::new(Runtime::new(
        Arc::new(step_store.clone()),
        Arc::new(timers),
        support::whatsapp(&sandbox),
        clock.clone(),
        Default::default(),
    ));
    step.publish_and_activate(&tag_and_untag()).await.unwrap();
    for (id, content) in [
        ("m1", Content::Text { text: "hi".into() }),
        (
            "m2",
            Content::Choice {
                id: "in".into(),
                label: "In".into(),
            },
        ),
        (
            "m3",
            Content::Choice {
                id: "out".into(),
                label: "Out".into(),
            },
        ),
    ] {
        webhook
            .append(&contact, inbound(id, content))
            .await
            .unwrap();
        let record = json!({"eventID": id, "eventName": "INSERT", "awsRegion": "us-east-1",
            "dynamodb": {"Keys": {"pk": {"S": format!("c#{contact}")}, "sk": {"S": format!("in#msg:{id}")}}, "SequenceNumber": id, "SizeBytes": 100, "StreamViewType": "NEW_IMAGE"}});
        let event = serde_json::from_value(json!({"Records": [record]})).unwrap();
        assent::aws::step::handle(
            &step,
            &step_store,
            lambda_runtime::LambdaEvent::new(event, Default::default()),
        )
        .await
        .unwrap();
    }
    assert!(
        step_store
            .segment_page("T", None, 10)
            .await
            .unwrap()
            .0
            .is_empty(),
        "the scenario tagged and untagged"
    );
    // step: parks a record it gives up on.
    let parked = step_store.park(&contact, "m9", "503", clock.now()).await;
    assert_eq!(parked.unwrap(), Parking::Listed);
    // timeout: queues a fired timer.
    let timeout = Runtime::new(
        Arc::new(store("TimeoutFunction")),
        Arc::new(Disabled),
        Default::default(),
        clock.clone(),
        Default::default(),
    );
    let input = assent::timers::scheduler::TimeoutInput {
        contact: contact.to_string(),
        run: 1,
        wait_seq: 1,
    };
    assent::aws::timeout::handle(
        &timeout,
        lambda_runtime::LambdaEvent::new(input, Default::default()),
    )
    .await
    .unwrap();
    // admin: every route once, on the contact above.
    let admin_store = store("AdminFunction");
    let admin_runtime = Arc::new(Runtime::new(
        Arc::new(admin_store.clone()),
        Arc::new(Disabled),
        Default::default(),
        clock.clone(),
        Default::default(),
    ));
    admin_runtime.load_catalog().await.unwrap();
    let api = assent::admin::AdminApi {
        runtime: admin_runtime,
        store: Arc::new(admin_store),
        doorbell: Arc::new(assent::aws::StreamDoorbell),
    };
    let router = assent::admin::router(api, None);
    let id = contact.to_string();
    let draft = serde_json::to_string(&tag_and_untag().to_value()).unwrap();
    for (method, path, body) in [
        ("GET", "/admin/contacts?tag=T".to_string(), None),
        ("GET", format!("/admin/contacts/{id}"), None),
        ("GET", format!("/admin/contacts/{id}/consent"), None),
        ("POST", format!("/admin/contacts/{id}/consent/withdraw"), None),
        ("POST", format!("/admin/contacts/{id}/resume"), None),
        ("GET", "/admin/consent/export".to_string(), None),
        ("GET", "/admin/reports/consent?workflow=tag-untag".to_string(), None),
        ("GET", "/admin/workflows".to_string(), None),
        ("POST", "/admin/workflows".to_string(), Some(r#"{"template": "request-consent-privacy", "params": {"policy_url": "https://example.com/p"}}"#.to_string())),
        ("PUT", "/admin/workflows/tag-untag".to_string(), Some(draft)),
        ("POST", "/admin/workflows/tag-untag/publish".to_string(), None),
        ("GET", "/admin/workflows/tag-untag/versions".to_string(), None),
        ("GET", "/admin/workflows/tag-untag".to_string(), None),
        ("DELETE", format!("/admin/contacts/{id}"), None),
    ] {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(&path)
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.unwrap_or_default()))
            .unwrap();
        let status = router.clone().oneshot(request).await.unwrap().status();
        assert!(status.is_success(), "{method} {path}: {status}");
    }
    FUNCTIONS.iter().map(|f| (*f, called(&meters[f]))).collect()
}

#[tokio::test]
async fn each_function_is_granted_exactly_what_its_code_calls() {
    let t = template();
    let observed = observed_actions().await;
    for function in FUNCTIONS {
        let granted = granted(&t, function);
        let called = &observed[function];
        let platform: BTreeSet<String> = PLATFORM
            .iter()
            .filter(|(f, _, _)| *f == "*" || *f == function)
            .map(|(_, a, _)| a.to_string())
            .collect();
        let missing: Vec<_> = called.difference(&granted).collect();
        let extra: Vec<_> = granted
            .difference(called)
            .filter(|a| !platform.contains(*a))
            .collect();
        assert!(
            missing.is_empty(),
            "{function} calls {missing:?} without the grant"
        );
        assert!(
            extra.is_empty(),
            "{function} is granted {extra:?}, which its code never calls"
        );
        assert!(!called.is_empty());
    }
}

#[test]
fn grants_are_scoped_to_the_stack_resources() {
    let t = template();
    for function in FUNCTIONS {
        for statement in statements(&t, function) {
            let resource = &statement["Resource"];
            assert_ne!(
                resource,
                &json!("*"),
                "{function}: no statement on every resource"
            );
            for action in actions(&statement) {
                match action.split(':').next().unwrap() {
                    "dynamodb"
                        if action.contains("Stream")
                            || action.ends_with("GetRecords")
                            || action.ends_with("GetShardIterator") =>
                    {
                        assert_eq!(
                            resource,
                            &json!({"!GetAtt": "Table.StreamArn"}),
                            "{function} {action}"
                        )
                    }
                    "dynamodb" => {
                        // The table, and for the admin API the segments index too.
                        let table = json!({"!GetAtt": "Table.Arn"});
                        let index = json!({"!Sub": "${Table.Arn}/index/segments"});
                        let scoped = resource == &table || resource == &json!([table, index]);
                        assert!(scoped, "{function} {action}: {resource}");
                    }
                    "scheduler" => assert!(
                        resource["!Sub"]
                            .as_str()
                            .unwrap()
                            .contains("schedule/${ScheduleGroup}/*"),
                        "{function} {action}"
                    ),
                    "secretsmanager" => assert!(
                        resource["!Sub"]
                            .as_str()
                            .unwrap()
                            .ends_with(":secret:${ChannelSecretName}-??????"),
                        "{function} {action}: the channel secret only"
                    ),
                    "iam" => {
                        assert_eq!(resource, &json!({"!GetAtt": "SchedulerRole.Arn"}));
                        assert_eq!(
                            statement["Condition"]["StringEquals"]["iam:PassedToService"],
                            "scheduler.amazonaws.com"
                        );
                    }
                    _ => {}
                }
            }
        }
    }
    // The scheduler's role can invoke the timeout function and nothing else.
    let scheduler = &t["Resources"]["SchedulerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"];
    assert_eq!(
        scheduler[0]["Resource"],
        json!({"!GetAtt": "TimeoutFunction.Arn"})
    );
}

#[test]
fn the_table_and_stream_match_what_the_code_expects() {
    let t = template();
    let table = &t["Resources"]["Table"]["Properties"];
    assert_eq!(table["BillingMode"], "PAY_PER_REQUEST");
    assert_eq!(table["StreamSpecification"]["StreamViewType"], "NEW_IMAGE");
    assert_eq!(
        table["TimeToLiveSpecification"]["AttributeName"],
        TTL_ATTRIBUTE
    );
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(table["SSESpecification"]["SSEEnabled"], true);
    let index = &table["GlobalSecondaryIndexes"][0];
    assert_eq!(index["IndexName"], SEGMENT_INDEX);
    assert_eq!(index["KeySchema"][0]["AttributeName"], SEGMENT_KEY);
    let stream = &t["Resources"]["StepFunction"]["Properties"]["Events"]["Inbox"]["Properties"];
    let pattern: Value = serde_json::from_str(
        stream["FilterCriteria"]["Filters"][0]["Pattern"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        pattern,
        serde_json::from_str::<Value>(STREAM_FILTER_PATTERN).unwrap()
    );
    assert_eq!(
        stream["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(stream["BisectBatchOnFunctionError"], true);
    assert!(stream["MaximumRetryAttempts"].as_u64().is_some());
    // A batch's contacts all run together only if a batch holds at most CONTACTS_AT_ONCE.
    let batch = stream["BatchSize"].as_u64().unwrap();
    assert!(
        batch as usize <= assent::aws::step::CONTACTS_AT_ONCE,
        "{batch}"
    );
    assert!(stream["DestinationConfig"]["OnFailure"]["Destination"].is_object());
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Handler"], "bootstrap");
    for function in FUNCTIONS {
        assert_eq!(
            t["Resources"][function]["Metadata"]["BuildMethod"],
            "rust-cargolambda"
        );
    }
}

#[test]
fn no_secret_is_a_template_parameter_or_a_variable() {
    let t = template();
    for (name, parameter) in t["Parameters"].as_object().unwrap() {
        let upper = name.to_uppercase();
        // A parameter may name where a secret lives, never hold one.
        let names_a_secret = upper.contains("SECRET") && upper.ends_with("NAME");
        let holds_secret = (upper.contains("SECRET") && !names_a_secret) || upper.contains("TOKEN");
        assert!(!holds_secret, "{name}: {parameter}");
    }
    for function in FUNCTIONS {
        let variables = &t["Resources"][function]["Properties"]["Environment"]["Variables"];
        for (name, value) in variables.as_object().into_iter().flatten() {
            // Resolved into a variable, a key is readable with GetFunctionConfiguration.
            assert!(
                !channel_secret::is_key(name),
                "{function} {name}: read from the secret at cold start instead"
            );
            assert!(
                !value.to_string().contains("{{resolve:"),
                "{function} {name}: a resolved secret"
            );
        }
        if function == "WebhookFunction" || function == "StepFunction" {
            assert_eq!(
                variables[channel_secret::SECRET_VAR],
                json!({"!Ref": "ChannelSecretName"}),
                "{function}"
            );
        }
    }
}

#[test]
fn the_webhook_function_url_is_off_unless_asked_for_and_opens_the_webhook_only() {
    let t = template();
    assert_eq!(t["Parameters"]["WebhookFunctionUrl"]["Default"], "false");
    let resources = t["Resources"].as_object().unwrap();
    let public: Vec<(&String, &Value)> = resources
        .iter()
        .filter(|(_, r)| {
            r["Type"] == "AWS::Lambda::Url"
                || (r["Type"] == "AWS::Lambda::Permission" && r["Properties"]["Principal"] == "*")
        })
        .collect();
    assert_eq!(public.len(), 3, "the URL and its two grants");
    for (name, resource) in public {
        assert_eq!(resource["Condition"], "UseWebhookFunctionUrl", "{name}");
        let properties = &resource["Properties"];
        let target = if resource["Type"] == "AWS::Lambda::Url" {
            assert_eq!(properties["AuthType"], "NONE");
            properties["TargetFunctionArn"].clone()
        } else {
            // Each grant holds for calls through a function URL only.
            let through_url = properties["FunctionUrlAuthType"] == "NONE"
                || properties["InvokedViaFunctionUrl"] == true;
            assert!(through_url, "{name}: {properties}");
            properties["FunctionName"].clone()
        };
        let webhook = target == json!({"!GetAtt": "WebhookFunction.Arn"})
            || target == json!({"!Ref": "WebhookFunction"});
        assert!(webhook, "{name} opens {target}");
    }
}
