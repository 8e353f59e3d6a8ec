//! The AWS hosts: configuration from the environment, the runtimes each Lambda function
//! builds once at cold start, and the handlers for stream and scheduler events.
//! `AWS_ENDPOINT_URL` is honoured (by aws-config), so the same binaries run against a
//! local emulator.

pub mod meter;
pub mod step;
pub mod timeout;

use aws_config::{BehaviorVersion, SdkConfig};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::channels::Channels;
use crate::channels::whatsapp::{WhatsApp, WhatsAppConfig};
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

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn required(name: &'static str) -> Result<String, SetupError> {
    var(name).ok_or(SetupError::Missing(name))
}

fn number(name: &'static str, default: i32) -> Result<i32, SetupError> {
    match var(name) {
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

/// ASSENT_TABLE.
pub fn store_from_env(sdk: &SdkConfig) -> Result<DynamoStore, SetupError> {
    Ok(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        required("ASSENT_TABLE")?,
    ))
}

/// ASSENT_SCHEDULE_GROUP, ASSENT_TIMEOUT_TARGET_ARN, ASSENT_SCHEDULER_ROLE_ARN,
/// ASSENT_TIMEOUT_DLQ_ARN, ASSENT_SCHEDULE_MAX_RETRIES, ASSENT_SCHEDULE_MAX_EVENT_AGE_SECONDS.
pub fn scheduler_config_from_env() -> Result<SchedulerConfig, SetupError> {
    Ok(SchedulerConfig {
        group: required("ASSENT_SCHEDULE_GROUP")?,
        target_arn: required("ASSENT_TIMEOUT_TARGET_ARN")?,
        role_arn: required("ASSENT_SCHEDULER_ROLE_ARN")?,
        dead_letter_arn: var("ASSENT_TIMEOUT_DLQ_ARN"),
        max_retries: number("ASSENT_SCHEDULE_MAX_RETRIES", 10)?,
        max_event_age_seconds: number("ASSENT_SCHEDULE_MAX_EVENT_AGE_SECONDS", 3600)?,
    })
}

/// The channels whose secrets are set (WHATSAPP_*, as for the local runner; there is no
/// insecure mode on AWS).
pub fn channels_from_env() -> Channels {
    let mut channels = Channels::default();
    match WhatsAppConfig::from_env(var, false) {
        Ok((config, notices)) => {
            notices.iter().for_each(|n| tracing::warn!("{n}"));
            match WhatsApp::new(config) {
                Ok(whatsapp) => channels = channels.with(Arc::new(whatsapp)),
                Err(e) => tracing::error!(error = %e, "whatsapp: client could not be built"),
            }
        }
        Err(why) => tracing::warn!("{why}"),
    }
    channels
}

/// ASSENT_TEMPLATE (default request-consent-privacy) with ASSENT_TEMPLATE_PARAMS, a JSON
/// object such as `{"policy_url": "https://example.com/privacy", "timeout_seconds": 300}`.
pub fn workflow_from_env() -> Result<Workflow, SetupError> {
    let name = var("ASSENT_TEMPLATE").unwrap_or_else(|| template::REQUEST_CONSENT_PRIVACY.into());
    let invalid = |message: String| SetupError::Invalid {
        name: "ASSENT_TEMPLATE_PARAMS",
        message,
    };
    let raw = var("ASSENT_TEMPLATE_PARAMS").unwrap_or_else(|| "{}".into());
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
pub fn webhook_runtime(sdk: &SdkConfig) -> Result<Arc<Runtime>, SetupError> {
    let store = store_from_env(sdk)?;
    Ok(runtime(
        &store,
        Arc::new(Disabled),
        channels_from_env(),
        Arc::new(SystemClock),
    ))
}

/// The timeout function only queues timeout events.
pub fn timeout_runtime(sdk: &SdkConfig) -> Result<Arc<Runtime>, SetupError> {
    let store = store_from_env(sdk)?;
    Ok(runtime(
        &store,
        Arc::new(Disabled),
        Channels::default(),
        Arc::new(SystemClock),
    ))
}

/// The step function runs the engine: it sends, arms schedules and needs the workflows.
/// Publishes the configured workflow (a no-op when unchanged) and loads every version.
pub async fn step_runtime(sdk: &SdkConfig) -> Result<(Arc<Runtime>, DynamoStore), SetupError> {
    let store = store_from_env(sdk)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let timers = SchedulerTimers::new(
        aws_sdk_scheduler::Client::new(sdk),
        scheduler_config_from_env()?,
        Arc::new(store.clone()),
        clock.clone(),
    );
    let runtime = runtime(&store, Arc::new(timers), channels_from_env(), clock);
    runtime.publish_and_activate(&workflow_from_env()?).await?;
    Ok((runtime, store))
}
