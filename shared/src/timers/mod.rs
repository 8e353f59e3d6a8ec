//! Timer adapters: [`LocalTimers`] (persisted in the embedded store, fired by the local
//! host) and, with the `aws` feature, `SchedulerTimers` (EventBridge Scheduler one-shot
//! schedules). [`Disabled`] serves hosts that never decide anything.

mod local;
#[cfg(feature = "aws")]
pub mod scheduler;

use async_trait::async_trait;

pub use local::LocalTimers;
#[cfg(feature = "aws")]
pub use scheduler::SchedulerTimers;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::TimerRef;
use crate::ports::{TimerError, Timers};

/// For hosts that only accept events (the webhook and timeout functions): they never
/// perform effects, so asking them to arm a timer is a wiring mistake, reported as such.
pub struct Disabled;

#[async_trait]
impl Timers for Disabled {
    async fn arm(&self, _: &ContactId, _: TimerRef, _: Timestamp) -> Result<(), TimerError> {
        Err(TimerError::Unavailable(
            "this host does not arm timers".into(),
        ))
    }

    async fn cancel(&self, _: &ContactId, _: TimerRef) -> Result<(), TimerError> {
        Err(TimerError::Unavailable(
            "this host does not cancel timers".into(),
        ))
    }
}
