//! The AWS hosts: configuration from the environment, the runtimes each Lambda function
//! builds once at cold start, and the handlers for stream and scheduler events.
//! `AWS_ENDPOINT_URL` is honoured (by aws-config), so the same binaries run against a
//! local emulator.

pub mod channel_secret;
pub mod cost;
pub mod meter;
pub mod step;
pub mod timeout;
pub mod web_chat;

use aws_config::{BehaviorVersion, SdkConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::channels::web::WebChat;
use crate::channels::{self, Channels, Purpose};
use crate::clock::SystemClock;
use crate::ports::{Clock, Timers};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::DynamoStore;
use crate::timers::scheduler::SchedulerConfig;
use crate::timers::{Disabled, SchedulerTimers};
use crate::workflow::{Workflow, template};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
}

/// Where configuration comes from: the process environment, or a map in tests (which can
/// then tell exactly which variables a function reads).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

impl<E: Env + ?Sized> Env for &E {
    fn var(&self, name: &str) -> Option<String> {
        (**self).var(name)
    }
}

pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

fn required(env: &dyn Env, name: &'static str) -> Result<String, SetupError> {
    env.var(name).ok_or(SetupError::Missing(name))
}

fn number(env: &dyn Env, name: &'static str, default: i32) -> Result<i32, SetupError> {
    match env.var(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| SetupError::Invalid {
            name,
            message: "expected a whole number".into(),
        }),
    }
}

/// The SDK configuration from the environment (region, credentials, AWS_ENDPOINT_URL).
pub async fn sdk_config() -> SdkConfig {
    aws_config::load_defaults(BehaviorVersion::latest()).await
}

/// The process environment with the channel keys from the secret it names, if any
/// (`channel_secret`): what the webhook and step functions configure themselves from.
pub async fn channel_env(
    sdk: &SdkConfig,
) -> Result<channel_secret::WithSecret<ProcessEnv>, SetupError> {
    channel_secret::load(&aws_sdk_secretsmanager::Client::new(sdk), ProcessEnv).await
}

/// The webhook function's configuration.
pub struct WebhookConfig {
    pub table: String,
    /// The channels whose receiving secrets are set.
    pub channels: Channels,
    /// The web chat, when its session secret is set; its mailbox is set with the store.
    pub web: Option<WebChat>,
}

/// The step function's configuration.
pub struct StepConfig {
    pub table: String,
    pub scheduler: SchedulerConfig,
    pub workflow: Workflow,
    /// The channels whose sending secrets are set.
    pub channels: Channels,
    /// The web chat, when its session secret is set: its messages go to the table.
    pub web: Option<WebChat>,
}

/// The timeout function's configuration.
pub struct TimeoutConfig {
    pub table: String,
}

/// The admin function's configuration.
pub struct AdminConfig {
    pub table: String,
}

impl AdminConfig {
    /// ASSENT_TABLE.
    pub fn from_env(env: &dyn Env) -> Result<Self, SetupError> {
        Ok(AdminConfig {
            table: required(env, "ASSENT_TABLE")?,
        })
    }
}

/// On AWS the table's stream wakes the steps: ringing has nothing to do.
pub struct StreamDoorbell;

impl crate::ports::Doorbell for StreamDoorbell {
    fn ring(&self, _: &crate::contact::ContactId) {}
}

impl WebhookConfig {
    /// ASSENT_TABLE and the channels' receiving secrets.
    pub fn from_env(env: &dyn Env) -> Result<Self, SetupError> {
        Ok(WebhookConfig {
            table: required(env, "ASSENT_TABLE")?,
            channels: served_channels(env, Purpose::Receive),
            web: web_chat::from_env(env)?,
        })
    }
}

impl StepConfig {
    /// ASSENT_TABLE, the scheduler settings, the workflow and the channels' sending secrets.
    pub fn from_env(env: &dyn Env) -> Result<Self, SetupError> {
        Ok(StepConfig {
            table: required(env, "ASSENT_TABLE")?,
            scheduler: scheduler_config(env)?,
            workflow: workflow(env)?,
            channels: served_channels(env, Purpose::Send),
            web: web_chat::sender_from_env(env),
        })
    }
}

impl TimeoutConfig {
    /// ASSENT_TABLE.
    pub fn from_env(env: &dyn Env) -> Result<Self, SetupError> {
        Ok(TimeoutConfig {
            table: required(env, "ASSENT_TABLE")?,
        })
    }
}

/// ASSENT_SCHEDULE_GROUP, ASSENT_TIMEOUT_TARGET_ARN, ASSENT_SCHEDULER_ROLE_ARN,
/// ASSENT_TIMEOUT_DLQ_ARN, ASSENT_SCHEDULE_MAX_RETRIES, ASSENT_SCHEDULE_MAX_EVENT_AGE_SECONDS.
fn scheduler_config(env: &dyn Env) -> Result<SchedulerConfig, SetupError> {
    Ok(SchedulerConfig {
        group: required(env, "ASSENT_SCHEDULE_GROUP")?,
        target_arn: required(env, "ASSENT_TIMEOUT_TARGET_ARN")?,
        role_arn: required(env, "ASSENT_SCHEDULER_ROLE_ARN")?,
        dead_letter_arn: env.var("ASSENT_TIMEOUT_DLQ_ARN"),
        max_retries: number(env, "ASSENT_SCHEDULE_MAX_RETRIES", 10)?,
        max_event_age_seconds: number(env, "ASSENT_SCHEDULE_MAX_EVENT_AGE_SECONDS", 3600)?,
    })
}

/// The channels' variables as for the local runner, the ones `purpose` needs, without an
/// insecure mode.
fn served_channels(env: &dyn Env, purpose: Purpose) -> Channels {
    let configured = channels::from_env(&|name| env.var(name), purpose, false);
    configured
        .notices
        .iter()
        .for_each(|n| tracing::warn!("{n}"));
    if !configured.unconfigured.is_empty() {
        tracing::info!(channels = ?configured.unconfigured, "not configured");
    }
    configured.channels
}

/// ASSENT_TEMPLATE (default request-consent-privacy) with ASSENT_TEMPLATE_PARAMS, a JSON
/// object such as `{"policy_url": "https://example.com/privacy", "timeout_seconds": 300}`.
fn workflow(env: &dyn Env) -> Result<Workflow, SetupError> {
    let name = env
        .var("ASSENT_TEMPLATE")
        .unwrap_or_else(|| template::REQUEST_CONSENT_PRIVACY.into());
    let invalid = |message: String| SetupError::Invalid {
        name: "ASSENT_TEMPLATE_PARAMS",
        message,
    };
    let raw = env
        .var("ASSENT_TEMPLATE_PARAMS")
        .unwrap_or_else(|| "{}".into());
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(&raw) else {
        return Err(invalid("expected a JSON object".into()));
    };
    let params: BTreeMap<String, String> = object
        .into_iter()
        .map(|(k, v)| match v {
            Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect();
    template::build(&name, &params).map_err(|e| invalid(e.to_string()))
}

fn runtime(
    store: &DynamoStore,
    timers: Arc<dyn Timers>,
    channels: Channels,
    clock: Arc<dyn Clock>,
) -> Arc<Runtime> {
    Arc::new(Runtime::new(
        Arc::new(store.clone()),
        timers,
        channels,
        clock,
        RuntimeConfig::default(),
    ))
}

/// The webhook function only accepts: it stores inbound messages, the stream does the rest.
/// It also serves the web chat's pages, sessions and polls when the chat is on.
pub fn webhook_app(sdk: &SdkConfig, config: WebhookConfig) -> axum::Router {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), config.table);
    let (channels, web) = web_chat::added(config.channels, config.web, &store);
    let runtime = runtime(&store, Arc::new(Disabled), channels, Arc::new(SystemClock));
    web_chat::router(runtime, web)
}

/// The timeout function only queues timeout events.
pub fn timeout_runtime(sdk: &SdkConfig, config: TimeoutConfig) -> Arc<Runtime> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), config.table);
    runtime(
        &store,
        Arc::new(Disabled),
        Channels::default(),
        Arc::new(SystemClock),
    )
}

/// The admin API over the table. It decides nothing itself: a withdrawal is queued as an
/// event for the step function, and publishing sets the active version in the table.
pub async fn admin_api(
    sdk: &SdkConfig,
    config: AdminConfig,
) -> Result<crate::admin::AdminApi, SetupError> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), config.table);
    let runtime = runtime(
        &store,
        Arc::new(Disabled),
        Channels::default(),
        Arc::new(SystemClock),
    );
    runtime.load_catalog().await?;
    Ok(crate::admin::AdminApi {
        runtime,
        store: Arc::new(store),
        doorbell: Arc::new(StreamDoorbell),
    })
}

/// The step function runs the engine: it sends, arms schedules and needs the workflows.
/// Loads the published versions; if none is active yet (a new stack), publishes and
/// activates the configured template. After that the admin API decides what is active.
pub async fn step_runtime(
    sdk: &SdkConfig,
    config: StepConfig,
) -> Result<(Arc<Runtime>, DynamoStore), SetupError> {
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), config.table);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let timers = SchedulerTimers::new(
        aws_sdk_scheduler::Client::new(sdk),
        config.scheduler,
        Arc::new(store.clone()),
        clock.clone(),
    );
    let (channels, _) = web_chat::added(config.channels, config.web, &store);
    let runtime = runtime(&store, Arc::new(timers), channels, clock);
    if !runtime.load_catalog().await? {
        runtime.publish_and_activate(&config.workflow).await?;
    }
    Ok((runtime, store))
}
