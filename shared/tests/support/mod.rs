//! Shared by the integration tests: the AWS emulator, unique names, runtimes over a store.
#![allow(dead_code)] // each test crate uses its own part of this

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use assent::channels::Channels;
use assent::channels::meta_webhook::MetaApp;
use assent::channels::whatsapp::sandbox::GraphSandbox;
use assent::channels::whatsapp::{WhatsApp, WhatsAppConfig};
use assent::ports::{Clock, Store, Timers};
use assent::runtime::{Runtime, RuntimeConfig};
use assent::workflow::{Workflow, template};

pub const SECRET: &str = "test-app-secret";
pub const PHONE_NUMBER_ID: &str = "106540352242922";

/// How many cases each property test runs: `ASSENT_PROPTEST_CASES`, or 5,000.
pub fn proptest_cases() -> u32 {
    std::env::var("ASSENT_PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(5000)
}

/// The property tests' configuration: [`proptest_cases`] cases, and no files of failed
/// cases written into the tree.
pub fn proptest_config() -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: proptest_cases(),
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}

/// A name no other test (or earlier run against the same emulator) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn consent_workflow(timeout_seconds: u64) -> Workflow {
    let params = BTreeMap::from([
        (
            "policy_url".to_string(),
            "https://example.com/privacy".to_string(),
        ),
        ("timeout_seconds".to_string(), timeout_seconds.to_string()),
    ]);
    template::build(template::REQUEST_CONSENT_PRIVACY, &params).unwrap()
}

pub async fn sandbox() -> GraphSandbox {
    GraphSandbox::graph("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub fn whatsapp(sandbox: &GraphSandbox) -> Channels {
    let whatsapp = WhatsApp::new(WhatsAppConfig {
        app: MetaApp {
            app_secret: Some(SECRET.into()),
            verify_token: Some("verify".into()),
        },
        access_token: "token".into(),
        api_base: sandbox.base_url(),
    })
    .unwrap();
    Channels::default().with(Arc::new(whatsapp))
}

/// A runtime over `store` with the consent template published and active.
pub async fn runtime(
    store: Arc<dyn Store>,
    timers: Arc<dyn Timers>,
    channels: Channels,
    clock: Arc<dyn Clock>,
) -> Arc<Runtime> {
    let config = RuntimeConfig {
        send_backoff: Duration::from_millis(10),
        ..RuntimeConfig::default()
    };
    let runtime = Arc::new(Runtime::new(store, timers, channels, clock, config));
    runtime
        .publish_and_activate(&consent_workflow(300))
        .await
        .unwrap();
    runtime
}

pub mod mangle;

#[cfg(feature = "aws")]
pub mod aws {
    use assent::aws::meter::Meter;
    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_sdk_dynamodb::config::Credentials;
    use aws_smithy_runtime_api::box_error::BoxError;
    use aws_smithy_runtime_api::client::interceptors::Intercept;
    use aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::config_bag::ConfigBag;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The local AWS emulator that `./scripts/test` starts.
    pub fn endpoint() -> String {
        std::env::var("ASSENT_TEST_AWS_ENDPOINT").expect(
            "ASSENT_TEST_AWS_ENDPOINT is not set: run ./scripts/test, which starts the local AWS emulator",
        )
    }

    pub async fn sdk() -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await
    }

    pub fn dynamodb(sdk: &SdkConfig, meter: &Meter) -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(meter.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    pub fn scheduler(sdk: &SdkConfig, meter: &Meter) -> aws_sdk_scheduler::Client {
        let config = aws_sdk_scheduler::config::Builder::from(sdk)
            .interceptor(meter.clone())
            .build();
        aws_sdk_scheduler::Client::from_conf(config)
    }

    /// A client whose answers are lost or throttled now and then (`faults`), retried by
    /// the SDK with short pauses so that a test stays quick. Its retry budget is its own
    /// (the SDK shares one per partition across every client of the process), so what
    /// other tests running at the same time retry does not change how its calls fare.
    pub fn faulty_dynamodb(
        sdk: &SdkConfig,
        meter: &Meter,
        faults: &Faults,
    ) -> aws_sdk_dynamodb::Client {
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(6)
            .with_initial_backoff(std::time::Duration::from_millis(10))
            .with_max_backoff(std::time::Duration::from_millis(100));
        let config = aws_sdk_dynamodb::config::Builder::from(sdk)
            .interceptor(meter.clone())
            .interceptor(faults.clone())
            .retry_config(retry)
            .retry_partition(aws_smithy_runtime::client::retries::RetryPartition::new(
                format!("dynamodb-faults-{:p}", Arc::as_ptr(&faults.calls)),
            ))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// Replaces some DynamoDB answers, after the service did the work: every `lose_every`th
    /// call gets a 500 (the write happened, the caller cannot know), every
    /// `throttle_every`th a throttling error. Counts what it did.
    #[derive(Clone, Debug)]
    pub struct Faults {
        pub lose_every: u64,
        pub throttle_every: u64,
        calls: Arc<AtomicU64>,
        pub lost: Arc<AtomicU64>,
        pub throttled: Arc<AtomicU64>,
    }

    impl Faults {
        pub fn new(lose_every: u64, throttle_every: u64) -> Faults {
            Faults {
                lose_every,
                throttle_every,
                calls: Arc::default(),
                lost: Arc::default(),
                throttled: Arc::default(),
            }
        }
    }

    impl Intercept for Faults {
        fn name(&self) -> &'static str {
            "InjectedFaults"
        }

        fn modify_before_deserialization(
            &self,
            context: &mut BeforeDeserializationInterceptorContextMut<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            let (status, kind, counter) = if n % self.lose_every == 0 {
                (500, "InternalServerError", &self.lost)
            } else if n % self.throttle_every == 0 {
                (
                    400,
                    "ProvisionedThroughputExceededException",
                    &self.throttled,
                )
            } else {
                return Ok(());
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let response = context.response_mut();
            *response.status_mut() = StatusCode::try_from(status)?;
            response
                .headers_mut()
                .insert("x-amzn-ErrorType", format!("{kind}:"));
            *response.body_mut() = SdkBody::from(format!(
                r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected"}}"#
            ));
            Ok(())
        }
    }

    pub fn secrets(sdk: &SdkConfig, meter: &Meter) -> aws_sdk_secretsmanager::Client {
        let config = aws_sdk_secretsmanager::config::Builder::from(sdk)
            .interceptor(meter.clone())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    }

    /// A fresh channel secret holding `keys` (a JSON object); returns its name.
    pub async fn channel_secret(sdk: &SdkConfig, keys: &serde_json::Value) -> String {
        let name = super::unique("assent/channels");
        aws_sdk_secretsmanager::Client::new(sdk)
            .create_secret()
            .name(&name)
            .secret_string(keys.to_string())
            .send()
            .await
            .unwrap();
        name
    }

    /// A client for set-up calls that should not count against a budget.
    pub fn dynamodb_without_meter() -> aws_sdk_dynamodb::Client {
        let config = aws_sdk_dynamodb::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    pub fn streams(sdk: &SdkConfig) -> aws_sdk_dynamodbstreams::Client {
        aws_sdk_dynamodbstreams::Client::new(sdk)
    }

    /// A fresh table, as the infra template makes it.
    pub async fn table(client: &aws_sdk_dynamodb::Client) -> String {
        let name = super::unique("assent");
        assent::store::DynamoStore::create_table(client, &name)
            .await
            .unwrap();
        name
    }

    /// A fresh schedule group (the emulator refuses schedules in a missing one).
    pub async fn schedule_group(client: &aws_sdk_scheduler::Client) -> String {
        let name = super::unique("assent");
        client
            .create_schedule_group()
            .name(&name)
            .send()
            .await
            .unwrap();
        name
    }

    pub fn scheduler_config(group: &str) -> assent::timers::scheduler::SchedulerConfig {
        assent::timers::scheduler::SchedulerConfig {
            group: group.to_string(),
            target_arn: "arn:aws:lambda:us-east-1:123456789012:function:assent-timeout".into(),
            role_arn: "arn:aws:iam::123456789012:role/assent-scheduler".into(),
            dead_letter_arn: Some("arn:aws:sqs:us-east-1:123456789012:assent-timeout-dlq".into()),
            max_retries: 10,
            max_event_age_seconds: 3600,
        }
    }

    /// The webhook and step functions' runtimes over `store`, as their mains build them:
    /// the webhook's arms no timers, the step's arms them in the Scheduler's `group`.
    /// The web chat's session secret in the AWS tests.
    pub const WEB_SECRET: &str = "web-session-secret-for-tests";

    /// New web chat sessions per address and minute in the AWS tests: few, so that one
    /// comes back only every 15 s and a slow run cannot see a refill mid-test.
    pub const WEB_SESSIONS_PER_MINUTE: u32 = 4;

    /// The environment that turns the web chat on with that limit, and nothing else.
    struct WebEnv;

    impl assent::aws::Env for WebEnv {
        fn var(&self, name: &str) -> Option<String> {
            match name {
                "WEB_SESSION_SECRET" => Some(WEB_SECRET.to_string()),
                "WEB_SESSIONS_PER_MINUTE" => Some(WEB_SESSIONS_PER_MINUTE.to_string()),
                _ => None,
            }
        }
    }

    /// The runtimes the webhook and step functions build, over `store`, sending WhatsApp
    /// to `sandbox`, and the web chat with its mailbox in the table (as `WEB_SESSION_SECRET`
    /// turns it on).
    pub async fn function_runtimes(
        store: &assent::store::DynamoStore,
        scheduler: aws_sdk_scheduler::Client,
        group: &str,
        sandbox: &super::GraphSandbox,
        clock: Arc<dyn assent::ports::Clock>,
    ) -> (
        Arc<assent::runtime::Runtime>,
        Arc<assent::runtime::Runtime>,
        Arc<assent::channels::web::WebChat>,
    ) {
        // One chat per function, as in separate processes: they meet only in the table.
        let with_chat = || {
            let chat = assent::aws::web_chat::from_env(&WebEnv).unwrap();
            assent::aws::web_chat::added(super::whatsapp(sandbox), chat, store)
        };
        let (channels, web) = with_chat();
        let webhook = Arc::new(assent::runtime::Runtime::new(
            Arc::new(store.clone()),
            Arc::new(assent::timers::Disabled),
            channels,
            clock.clone(),
            Default::default(),
        ));
        let timers = assent::timers::SchedulerTimers::new(
            scheduler,
            scheduler_config(group),
            Arc::new(store.clone()),
            clock.clone(),
        );
        let (channels, _) = with_chat();
        let step = super::runtime(Arc::new(store.clone()), Arc::new(timers), channels, clock).await;
        (webhook, step, web.unwrap())
    }

    /// A signed WhatsApp webhook `body` as the HTTP API (payload v2) hands it to the
    /// webhook function.
    pub fn http_api_event(body: &str) -> serde_json::Value {
        let signature = assent::channels::whatsapp::sign(super::SECRET, body.as_bytes());
        serde_json::json!({
            "version": "2.0", "routeKey": "POST /webhooks/{channel}", "rawPath": "/webhooks/whatsapp", "rawQueryString": "",
            "headers": {"content-type": "application/json", "x-hub-signature-256": signature},
            "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
                "http": {"method": "POST", "path": "/webhooks/whatsapp", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "facebookexternalua"},
                "requestId": "r", "routeKey": "POST /webhooks/{channel}", "stage": "$default", "time": "01/Dec/2026:21:00:00 +0000", "timeEpoch": 1_796_160_000_000_i64},
            "pathParameters": {"channel": "whatsapp"}, "body": body, "isBase64Encoded": false
        })
    }
}
