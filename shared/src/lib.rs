//! Assent: consent-first conversational workflows on messaging channels.
//!
//! Layers, inside out (see docs/architecture.md):
//! - [`workflow`]: the definition format, its validation and the built-in templates;
//! - [`engine`]: the pure state machine `(state, event, now) -> (state', effects)`;
//! - [`ports`]: the traits the runtime needs (store, timers, channel sender, clock, doorbell);
//! - adapters: [`store`], [`timers`], [`channels`];
//! - [`runtime`]: the use cases every host calls (accept a webhook, run steps, fire a timeout);
//! - [`local`]: the one-process host over the embedded store.

pub mod admin;
#[cfg(feature = "aws")]
pub mod aws;
pub mod channels;
pub mod clock;
pub mod contact;
pub mod engine;
pub mod http;
pub mod local;
pub mod logging;
pub mod ports;
pub mod runtime;
pub mod store;
pub mod timers;
pub mod workflow;
