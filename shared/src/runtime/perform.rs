//! Performing the outbox: sends (with retries), timers, then a commit that records what
//! was done. A crash before that commit performs the same effects again on the next run
//! (at-least-once sends); it never decides anything again.

use std::time::Duration;

use crate::contact::Address;
use crate::contact::ContactId;
use crate::engine::{self, ArmTimer, Catalog, ContactState, Effect, Event, OutboundMessage};
use crate::ports::{ChannelSender, SendError, Sent, StoreError};

use super::{Runtime, RuntimeError, log_transition};

enum Performed {
    Done,
    /// Part of the effect is done; this is what remains of it.
    Then(Effect),
}

enum Failed {
    /// The channel refused a message of `run` for good.
    Refused {
        run: u64,
        reason: String,
    },
    Retry(RuntimeError),
}

impl Runtime {
    /// Performs effects in order until the outbox is empty or one must wait; commits the
    /// result either way. Returns how many effects were completed.
    pub(super) async fn perform_outbox(
        &self,
        contact: &ContactId,
        mut state: ContactState,
        version: u64,
        catalog: &Catalog,
    ) -> Result<usize, RuntimeError> {
        if state.outbox.is_empty() {
            return Ok(0);
        }
        let mut done = 0;
        let mut waiting = None;
        while let Some(effect) = state.outbox.first().cloned() {
            match self.perform(contact, effect).await {
                Ok(Performed::Done) => {
                    state.outbox.remove(0);
                    done += 1;
                }
                Ok(Performed::Then(rest)) => state.outbox[0] = rest,
                Err(Failed::Refused { run, reason }) => {
                    tracing::warn!(contact = %contact.log_ref(), run, %reason, "message refused by the channel");
                    // Nothing else of that run can be delivered or makes sense now.
                    state.outbox.retain(|e| e.run() != run);
                    let event = Event::DeliveryFailed { run, reason };
                    let applied = engine::apply(&mut state, &event, self.clock.now(), catalog);
                    log_transition(contact, &event, &applied.transition);
                    state.outbox.extend(applied.effects);
                }
                Err(Failed::Retry(e)) => {
                    waiting = Some(e);
                    break;
                }
            }
        }
        match self.store.commit(contact, &state, version, &[]).await {
            // A concurrent executor committed first: it holds the outbox now and performs
            // what is left (a send may then go out twice, which at-least-once allows).
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        match waiting {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }

    async fn perform(&self, contact: &ContactId, effect: Effect) -> Result<Performed, Failed> {
        match effect {
            Effect::Send {
                run,
                to,
                message,
                then_arm,
            } => {
                self.send_with_retries(&to, &message)
                    .await
                    .map_err(|e| match e {
                        SendError::Permanent { reason } => Failed::Refused { run, reason },
                        SendError::Retryable { reason, .. } => {
                            Failed::Retry(RuntimeError::Send(reason))
                        }
                    })?;
                Ok(match then_arm {
                    // The question is with the channel: its timeout starts now.
                    Some(arm) => Performed::Then(Effect::ArmTimer(ArmTimer {
                        starts_at: Some(self.clock.now()),
                        ..arm
                    })),
                    None => Performed::Done,
                })
            }
            Effect::ArmTimer(arm) => {
                let start = arm.starts_at.unwrap_or_else(|| self.clock.now());
                let deadline = start.plus(Duration::from_secs(arm.after_seconds));
                self.timers
                    .arm(contact, arm.timer, deadline)
                    .await
                    .map_err(|e| Failed::Retry(e.into()))?;
                Ok(Performed::Done)
            }
            Effect::CancelTimer(timer) => {
                if let Err(e) = self.timers.cancel(contact, timer).await {
                    // Tidy-up only: if it fires anyway, the engine ignores it as stale.
                    tracing::warn!(contact = %contact.log_ref(), error = %e, "could not cancel a timer");
                }
                Ok(Performed::Done)
            }
        }
    }

    async fn send_with_retries(
        &self,
        to: &Address,
        message: &OutboundMessage,
    ) -> Result<Sent, SendError> {
        let mut pause = self.config.send_backoff;
        let mut attempt = 1;
        loop {
            match self.channels.send(to, message).await {
                Err(SendError::Retryable {
                    reason,
                    retry_after,
                }) if attempt < self.config.send_attempts => {
                    tracing::info!(channel = %to.channel, attempt, %reason, "send failed, retrying");
                    let wait = retry_after.unwrap_or(pause).min(self.config.max_backoff);
                    tokio::time::sleep(wait).await;
                    pause = (pause * 2).min(self.config.max_backoff);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
