//! The web chat's session limit on AWS, counted in the table, so that every warm instance
//! of the webhook function draws from the same allowance per address. Counted in each
//! instance's memory, the limit would be per instance, and a script would get it once
//! for every instance it kept warm.
//!
//! | item | pk | sk | attributes |
//! |---|---|---|---|
//! | an address's allowance | `sessions#{address}` | `tat` | `tat` (ms), `expires` (TTL) |
//!
//! The allowance is the local one's token bucket, kept as one number (the generic cell
//! rate algorithm): `tat` is when the address will have its whole burst back. A session
//! is one interval (a minute divided by the sessions allowed in it), and is allowed while
//! `tat` is at most a burst of intervals (less one) ahead of now. A take is at most two
//! conditional updates. The first serves a new address, or one whose allowance is full
//! again (`tat` is past), and starts from now: one write unit. Otherwise the second moves
//! `tat` on by an interval if that stays within the burst; if it does not, its failure
//! names the old `tat`, and so the wait.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure};
use std::net::IpAddr;
use std::time::Duration;

use super::{DynamoStore, PK, SK, TTL_ATTRIBUTE, is_condition_failure, n, number, s, unavailable};
use crate::channels::web::{SessionCounter, network};
use crate::clock::{SystemClock, Timestamp};
use crate::ports::{Clock, StoreError};

const SESSIONS_PREFIX: &str = "sessions#";
const TAT: &str = "tat";
/// Kept this long after the allowance is full again (it says nothing a new item would
/// not), so the table does not collect every address that ever opened the chat.
const KEPT_AFTER_FULL_SECONDS: i64 = 60;

/// Sessions per address, counted in the table.
pub struct SharedSessionLimit {
    store: DynamoStore,
    per_minute: u32,
}

/// What an address may do, in milliseconds.
struct Allowance {
    interval: i64,
    /// How far ahead of now `tat` may be for a session to be allowed.
    burst: i64,
}

impl Allowance {
    fn per_minute(per_minute: u32) -> Allowance {
        let per_minute = i64::from(per_minute.max(1));
        // At least a millisecond, so that the wait below always has a range.
        let interval = (60_000 / per_minute).max(1);
        Allowance {
            interval,
            burst: interval * (per_minute - 1),
        }
    }
}

/// How one conditional update went.
enum Update {
    Done,
    /// Its condition did not hold; the item's `tat`, if it has one.
    Refused(Option<i64>),
}

impl SharedSessionLimit {
    /// `per_minute` 0: no limit (nothing is written).
    pub fn new(store: DynamoStore, per_minute: u32) -> SharedSessionLimit {
        SharedSessionLimit { store, per_minute }
    }

    /// Takes one session for `address` at `now`, or says how long until one is free.
    pub async fn take_at(&self, address: IpAddr, now: Timestamp) -> Result<(), TakeError> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let allowance = Allowance::per_minute(self.per_minute);
        let now = now.millis();
        let pk = format!("{SESSIONS_PREFIX}{}", network(address));
        // Whatever the update, `tat` ends at most a burst and an interval from now.
        let expires = (now + allowance.burst + allowance.interval) / 1000 + KEPT_AFTER_FULL_SECONDS;
        let fresh = self
            .update(
                &pk,
                "SET tat = :start, #expires = :expires",
                "attribute_not_exists(tat) OR tat <= :now",
                &[
                    (":start", now + allowance.interval),
                    (":now", now),
                    (":expires", expires),
                ],
            )
            .await?;
        if let Update::Done = fresh {
            return Ok(());
        }
        let next = self
            .update(
                &pk,
                "SET tat = tat + :interval, #expires = :expires",
                "tat <= :latest",
                &[
                    (":interval", allowance.interval),
                    (":latest", now + allowance.burst),
                    (":expires", expires),
                ],
            )
            .await?;
        match next {
            Update::Done => Ok(()),
            Update::Refused(tat) => {
                // Free again once `tat` is back within the burst; at most one interval.
                let wait = tat.map_or(allowance.interval, |tat| tat - now - allowance.burst);
                let wait = wait.clamp(1, allowance.interval);
                Err(TakeError::Wait(Duration::from_millis(wait as u64)))
            }
        }
    }

    async fn update(
        &self,
        pk: &str,
        expression: &str,
        condition: &str,
        values: &[(&str, i64)],
    ) -> Result<Update, StoreError> {
        let mut request = self
            .store
            .client
            .update_item()
            .table_name(&self.store.table)
            .key(PK, s(pk))
            .key(SK, s(TAT))
            .update_expression(expression)
            .condition_expression(condition)
            .expression_attribute_names("#expires", TTL_ATTRIBUTE)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        for (name, value) in values {
            request = request.expression_attribute_values(*name, n(value));
        }
        match request.send().await {
            Ok(_) => Ok(Update::Done),
            Err(e) if is_condition_failure(&e) => {
                let old = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item().and_then(|item| number(item, TAT).ok())
                    }
                    _ => None,
                };
                Ok(Update::Refused(old))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// Why a session was not taken.
#[derive(Debug)]
pub enum TakeError {
    /// The address has started its allowance: one is free after this long.
    Wait(Duration),
    /// The table could not be asked.
    Store(StoreError),
}

impl From<StoreError> for TakeError {
    fn from(e: StoreError) -> Self {
        TakeError::Store(e)
    }
}

#[async_trait]
impl SessionCounter for SharedSessionLimit {
    /// A table that cannot be asked does not keep a person out: the limit is there against
    /// scripts, and the session's messages need the table anyway (they get a 503 if it is
    /// still down).
    async fn take(&self, address: IpAddr) -> Result<(), Duration> {
        match self.take_at(address, SystemClock.now()).await {
            Ok(()) => Ok(()),
            Err(TakeError::Wait(wait)) => Err(wait),
            Err(TakeError::Store(e)) => {
                tracing::warn!(error = %e, "web chat: could not count a new session; allowed");
                Ok(())
            }
        }
    }
}
