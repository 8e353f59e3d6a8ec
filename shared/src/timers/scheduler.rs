//! EventBridge Scheduler timers: one one-shot `at()` schedule per wait, in UTC, with
//! FlexibleTimeWindow OFF and ActionAfterCompletion DELETE. The schedule invokes the
//! timeout function with a [`TimeoutInput`]; that function queues the timeout event.

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode,
    RetryPolicy, Target,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::TimerRef;
use crate::ports::{Clock, InboxItem, InboxStore, TimerError, Timers};

/// What a schedule hands the timeout function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutInput {
    pub contact: String,
    pub run: u64,
    pub wait_seq: u64,
}

#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// ASSENT_SCHEDULE_GROUP: the schedule group (it must exist).
    pub group: String,
    /// ASSENT_TIMEOUT_TARGET_ARN: the timeout function.
    pub target_arn: String,
    /// ASSENT_SCHEDULER_ROLE_ARN: the role the scheduler assumes to invoke it.
    pub role_arn: String,
    /// ASSENT_TIMEOUT_DLQ_ARN: where undeliverable fires go, if set.
    pub dead_letter_arn: Option<String>,
    /// ASSENT_SCHEDULE_MAX_RETRIES (default 10).
    pub max_retries: i32,
    /// ASSENT_SCHEDULE_MAX_EVENT_AGE_SECONDS (default 3600).
    pub max_event_age_seconds: i32,
}

pub struct SchedulerTimers {
    client: Client,
    config: SchedulerConfig,
    inbox: Arc<dyn InboxStore>,
    clock: Arc<dyn Clock>,
}

/// A deterministic schedule name, at most 64 of `[0-9a-zA-Z-_.]`: the same timer always
/// gets the same name, so creating it twice is detected.
pub fn schedule_name(contact: &ContactId, timer: TimerRef) -> String {
    let digest = Sha256::digest(contact.as_str().as_bytes());
    format!(
        "t-{}-{}-{}",
        hex::encode(&digest[..8]),
        timer.run,
        timer.wait_seq
    )
}

fn unavailable<E, R>(e: aws_sdk_scheduler::error::SdkError<E, R>) -> TimerError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    TimerError::Unavailable(DisplayErrorContext(e).to_string())
}

fn code<E: ProvideErrorMetadata, R>(e: &aws_sdk_scheduler::error::SdkError<E, R>) -> Option<&str> {
    e.as_service_error().and_then(|e| e.code())
}

impl SchedulerTimers {
    pub fn new(
        client: Client,
        config: SchedulerConfig,
        inbox: Arc<dyn InboxStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        SchedulerTimers {
            client,
            config,
            inbox,
            clock,
        }
    }

    fn target(&self, input: String) -> Result<Target, TimerError> {
        let retry = RetryPolicy::builder()
            .maximum_retry_attempts(self.config.max_retries)
            .maximum_event_age_in_seconds(self.config.max_event_age_seconds)
            .build();
        let mut target = Target::builder()
            .arn(&self.config.target_arn)
            .role_arn(&self.config.role_arn)
            .input(input)
            .retry_policy(retry);
        if let Some(dlq) = &self.config.dead_letter_arn {
            target = target.dead_letter_config(DeadLetterConfig::builder().arn(dlq).build());
        }
        target
            .build()
            .map_err(|e| TimerError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Timers for SchedulerTimers {
    async fn arm(
        &self,
        contact: &ContactId,
        timer: TimerRef,
        deadline: Timestamp,
    ) -> Result<(), TimerError> {
        let now = self.clock.now();
        if deadline <= now {
            // Already due (the send took long, or a retry came late): no schedule can
            // fire in the past, so the timeout goes straight into the inbox.
            self.inbox
                .append(contact, InboxItem::timeout(timer, now))
                .await
                .map_err(|e| TimerError::Unavailable(e.to_string()))?;
            return Ok(());
        }
        let input = serde_json::to_string(&TimeoutInput {
            contact: contact.to_string(),
            run: timer.run,
            wait_seq: timer.wait_seq,
        })
        .map_err(|e| TimerError::Unavailable(e.to_string()))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| TimerError::Unavailable(e.to_string()))?;
        let result = self
            .client
            .create_schedule()
            .name(schedule_name(contact, timer))
            .group_name(&self.config.group)
            .schedule_expression(format!("at({})", deadline.utc_datetime_ceil()))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(self.target(input)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Armed before (a retried effect): the same name, the same timer.
            Err(e) if code(&e) == Some("ConflictException") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn cancel(&self, contact: &ContactId, timer: TimerRef) -> Result<(), TimerError> {
        let result = self
            .client
            .delete_schedule()
            .name(schedule_name(contact, timer))
            .group_name(&self.config.group)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_names_are_deterministic_short_and_plain() {
        let contact = ContactId::new("whatsapp", "+4915112345678");
        let timer = TimerRef {
            run: u64::MAX,
            wait_seq: u64::MAX,
        };
        let name = schedule_name(&contact, timer);
        assert_eq!(name, schedule_name(&contact, timer));
        assert!(name.len() <= 64, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
        assert_ne!(
            name,
            schedule_name(&ContactId::new("whatsapp", "+4915112345679"), timer)
        );
    }
}
