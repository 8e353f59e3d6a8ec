//! Messaging channels behind one interface: inbound (authenticate, parse into normalized
//! events) and outbound (render within the channel's limits, send). Adding a channel adds
//! a module here and touches nothing in the engine.

pub mod whatsapp;

use async_trait::async_trait;
use axum::http::HeaderMap;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::contact::Address;
use crate::engine::{Inbound, OutboundMessage};
use crate::ports::{ChannelSender, SendError, Sent};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InboundError {
    /// Signature or token missing or wrong: 401, nothing stored.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// A subscription handshake with the wrong verify token: 403.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Not a body this channel sends: 400.
    #[error("malformed body: {0}")]
    Malformed(String),
}

/// A webhook body, normalized.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub messages: Vec<Inbound>,
    /// Delivery receipts (sent, delivered, read): acknowledged, never reach the engine.
    pub statuses: usize,
    /// Entries that could not be used (no sender, no message id): logged and dropped,
    /// so that one odd element does not make the provider retry the whole body forever.
    pub skipped: usize,
}

#[async_trait]
pub trait Channel: Send + Sync {
    /// The name in `/webhooks/{name}` and in [`Address::channel`].
    fn name(&self) -> &'static str;

    /// Answers a subscription handshake (`GET /webhooks/{name}?...`), for channels that
    /// have one; `None`: the route does not exist for this channel.
    fn handshake(&self, _query: &str) -> Option<Result<String, InboundError>> {
        None
    }

    /// Checks the request came from the provider, over the raw body bytes.
    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), InboundError>;

    fn parse(&self, body: &[u8]) -> Result<Parsed, InboundError>;

    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError>;
}

/// The channels a host serves, by name. Sends go to the channel of the address.
#[derive(Default, Clone)]
pub struct Channels {
    by_name: BTreeMap<&'static str, Arc<dyn Channel>>,
}

impl Channels {
    pub fn with(mut self, channel: Arc<dyn Channel>) -> Self {
        self.by_name.insert(channel.name(), channel);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Channel>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_name.keys().copied()
    }
}

#[async_trait]
impl ChannelSender for Channels {
    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError> {
        match self.by_name.get(to.channel.as_str()) {
            Some(channel) => channel.send(to, message).await,
            None => Err(SendError::Retryable {
                reason: format!("channel `{}` is not configured", to.channel),
                retry_after: None,
            }),
        }
    }
}
