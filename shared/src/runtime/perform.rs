//! Performing the outbox: sends (with retries), timers, then a commit that records what
//! was done and lets go of the lease. A crash before that commit performs the same
//! effects again later (at-least-once sends); it never decides anything again.

use std::collections::BTreeMap;

use crate::contact::{Address, ContactId};
use crate::engine::{self, ArmTimer, Catalog, Effect, Event, OutboundMessage, TimerRef};
use crate::ports::{Base, ChannelSender, ContactRecord, SendError, Sent, SentRef, StoreError};

use super::{Runtime, RuntimeError, log_transition};

enum Performed {
    Done,
    /// Part of the effect is done; this is what remains of it.
    Then(Effect),
}

/// What performing an effect did: how far it got, and the message it sent, if any.
struct Outcome {
    performed: Performed,
    sent: Option<SentRef>,
}

impl From<Performed> for Outcome {
    fn from(performed: Performed) -> Self {
        Outcome {
            performed,
            sent: None,
        }
    }
}

enum Failed {
    /// The channel refused a message of `run` for good.
    Refused {
        run: u64,
        reason: String,
    },
    Retry(RuntimeError),
}

/// What this executor did to the outbox since its last successful commit.
#[derive(Default)]
struct Progress {
    done: Vec<u64>,
    replaced: BTreeMap<u64, Effect>,
    /// DeliveryFailed events applied: a record reloaded after a conflict needs them too.
    refusals: Vec<Event>,
    /// Messages sent, to remember in whichever record is committed.
    sent: Vec<SentRef>,
    /// Timers this executor armed itself, to cancel if the contact was erased meanwhile.
    armed: Vec<TimerRef>,
}

impl Runtime {
    /// Performs effects in order until the outbox is empty or one must wait, and commits
    /// the result, releasing the lease. If another executor committed meanwhile (it
    /// applied new events), folds what was done into its record and goes on with what it
    /// added. Returns how many effects were completed.
    pub(super) async fn perform_outbox(
        &self,
        contact: &ContactId,
        mut record: ContactRecord,
        mut base: Base,
        catalog: &Catalog,
    ) -> Result<usize, RuntimeError> {
        let mut completed = 0;
        loop {
            let mut progress = Progress::default();
            let waiting = self
                .perform_all(contact, &mut record, &mut progress, catalog)
                .await;
            completed += progress.done.len();
            record.lease = None;
            match self.store.commit(contact, &record, &base, &[]).await {
                Ok(_) => return waiting.map_or(Ok(completed), Err),
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            let loaded = self.store.load(contact).await?;
            let Some(mut fresh) = loaded.record else {
                // Erased while its effects were performed: a timer armed for it would
                // fire later and bring back an empty record.
                for timer in &progress.armed {
                    if let Err(e) = self.timers.cancel(contact, *timer).await {
                        tracing::warn!(contact = %contact.log_ref(), error = %e, "could not cancel an erased contact's timer");
                    }
                }
                return Ok(completed);
            };
            fresh
                .outbox
                .retain(|entry| !progress.done.contains(&entry.id));
            for entry in &mut fresh.outbox {
                if let Some(rest) = progress.replaced.remove(&entry.id) {
                    entry.effect = rest;
                }
            }
            for sent in &progress.sent {
                fresh.remember_sent(sent.id.clone(), sent.run);
            }
            for event in &progress.refusals {
                if let Event::DeliveryFailed { run, .. } = event {
                    fresh.outbox.retain(|e| !e.effect.serves_delivery_of(*run));
                }
                let applied = engine::apply(&mut fresh.state, event, self.clock.now(), catalog);
                fresh.record(applied.effects);
            }
            if let Some(e) = waiting {
                fresh.lease = None;
                let _ = self.store.commit(contact, &fresh, &loaded.base, &[]).await;
                return Err(e);
            }
            if !self.take_lease(&mut fresh) {
                // Our lease ran out and another executor took over: it performs the rest.
                return Ok(completed);
            }
            record = fresh;
            base = loaded.base;
        }
    }

    /// Performs outbox entries in order, except those the store performs when it commits
    /// the record. Returns the error that made it stop, if any.
    async fn perform_all(
        &self,
        contact: &ContactId,
        record: &mut ContactRecord,
        progress: &mut Progress,
        catalog: &Catalog,
    ) -> Option<RuntimeError> {
        let mine = |record: &ContactRecord| {
            record
                .outbox
                .iter()
                .position(|e| !self.store.performs_in_commit(&e.effect))
        };
        while let Some(index) = mine(record) {
            let entry = record.outbox[index].clone();
            let arms = match &entry.effect {
                Effect::ArmTimer(arm) => Some(arm.timer),
                _ => None,
            };
            let outcome = self.perform(contact, entry.effect).await;
            if let Ok(Outcome {
                sent: Some(sent), ..
            }) = &outcome
            {
                record.remember_sent(sent.id.clone(), sent.run);
                progress.sent.push(sent.clone());
            }
            match outcome.map(|o| o.performed) {
                Ok(Performed::Done) => {
                    record.outbox.remove(index);
                    progress.done.push(entry.id);
                    progress.armed.extend(arms);
                }
                Ok(Performed::Then(rest)) => {
                    record.outbox[index].effect = rest.clone();
                    progress.replaced.insert(entry.id, rest);
                }
                Err(Failed::Refused { run, reason }) => {
                    tracing::warn!(contact = %contact.log_ref(), run, %reason, "message refused by the channel");
                    // Nothing else of that run can be delivered or makes sense now.
                    for dropped in record
                        .outbox
                        .iter()
                        .filter(|e| e.effect.serves_delivery_of(run))
                    {
                        progress.done.push(dropped.id);
                    }
                    record.outbox.retain(|e| !e.effect.serves_delivery_of(run));
                    let event = Event::DeliveryFailed { run, reason };
                    let applied =
                        engine::apply(&mut record.state, &event, self.clock.now(), catalog);
                    log_transition(contact, &event, &applied.transition);
                    record.record(applied.effects);
                    progress.refusals.push(event);
                }
                Err(Failed::Retry(e)) => return Some(e),
            }
        }
        None
    }

    async fn perform(&self, contact: &ContactId, effect: Effect) -> Result<Outcome, Failed> {
        match effect {
            Effect::Send {
                run,
                to,
                message,
                then_arm,
            } => {
                let sent = self
                    .send_with_retries(&to, &message)
                    .await
                    .map_err(|e| match e {
                        SendError::Permanent { reason } => Failed::Refused { run, reason },
                        SendError::Retryable { reason, .. } => {
                            Failed::Retry(RuntimeError::Send(reason))
                        }
                    })?;
                let performed = match then_arm {
                    // The question is with the channel: its timeout starts now.
                    Some(arm) => Performed::Then(Effect::ArmTimer(ArmTimer {
                        starts_at: Some(self.clock.now()),
                        ..arm
                    })),
                    None => Performed::Done,
                };
                Ok(Outcome {
                    performed,
                    sent: sent.provider_message_id.map(|id| SentRef { id, run }),
                })
            }
            Effect::ArmTimer(arm) => {
                self.timers
                    .arm(contact, arm.timer, arm.deadline(self.clock.now()))
                    .await
                    .map_err(|e| Failed::Retry(e.into()))?;
                Ok(Performed::Done.into())
            }
            Effect::Record(record) => {
                self.store
                    .append_record(contact, &record)
                    .await
                    .map_err(|e| Failed::Retry(e.into()))?;
                Ok(Performed::Done.into())
            }
            Effect::CancelTimer(timer) => {
                if let Err(e) = self.timers.cancel(contact, timer).await {
                    // Tidy-up only: if it fires anyway, the engine ignores it as stale.
                    tracing::warn!(contact = %contact.log_ref(), error = %e, "could not cancel a timer");
                }
                Ok(Performed::Done.into())
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
