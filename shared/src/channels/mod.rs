//! Messaging channels behind one interface: inbound (authenticate, parse into normalized
//! events) and outbound (render within the channel's limits, send). Adding a channel adds
//! a module here and touches nothing in the engine.

pub mod limits;
pub mod messenger;
pub mod meta_webhook;
pub mod provider_http;
pub mod sandbox;
pub mod telegram;
pub mod twilio;
pub mod web;
pub mod whatsapp;

use async_trait::async_trait;
use axum::http::HeaderMap;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::contact::{Address, ContactId};
use crate::engine::{Inbound, OutboundMessage};
use crate::ports::{ChannelSender, DeliveryReport, SendError, Sent};

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
    /// Receipts (sent, delivered, read) and the other events that are not messages for
    /// Assent (a page's own echoes, Telegram's edits and membership changes):
    /// acknowledged, never reach the engine.
    pub statuses: usize,
    /// Receipts saying a message was not delivered: they end the run that sent it.
    pub failures: Vec<DeliveryReport>,
    /// Entries that could not be used (no sender, no message id): logged and dropped,
    /// so that one odd element does not make the provider retry the whole body forever.
    pub skipped: usize,
    /// What to answer the provider instead of the JSON summary, for providers that read
    /// the answer (Twilio expects TwiML; Telegram runs a Bot API method given there).
    pub reply: Option<Reply>,
}

/// A webhook answer body a channel chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: String,
}

/// Why a channel is not served, or what to know about how it is.
pub type Notice = String;

/// What a host does with a channel: each host gets only the secrets it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Verifies and parses webhooks (the webhook function).
    Receive,
    /// Sends through the provider's API (the step function).
    Send,
    /// Both (`assent-local`).
    Both,
}

impl Purpose {
    pub fn receives(self) -> bool {
        self != Purpose::Send
    }

    pub fn sends(self) -> bool {
        self != Purpose::Receive
    }
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

    /// Reads an authenticated body; `headers` are there for channels whose sender is
    /// named outside the body (the web chat's session token).
    fn parse(&self, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, InboundError>;

    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError>;

    /// Drops what the channel itself holds for a user whose contact is erased (the web
    /// chat's messages waiting for a browser). Most channels hold nothing.
    async fn forget(&self, _user_id: &str) -> Result<(), String> {
        Ok(())
    }
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

    /// Has the contact's channel drop what it holds for them (see [`Channel::forget`]).
    pub async fn forget(&self, contact: &ContactId) -> Result<(), String> {
        let Some((channel, user_id)) = contact.parts() else {
            return Ok(());
        };
        match self.by_name.get(channel) {
            Some(channel) => channel.forget(user_id).await,
            None => Ok(()),
        }
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

impl InboundError {
    /// A body that is not JSON of the expected shape. The reason names the error's kind
    /// and place, never the value: a body can hold message text, and this reason is logged.
    /// A missing field is named: the name is the expected shape's, not the body's.
    pub fn not_json(what: &str, e: &serde_json::Error) -> InboundError {
        let message = e.to_string();
        if message.starts_with("missing field `") {
            return InboundError::Malformed(format!("not a {what} ({message})"));
        }
        InboundError::Malformed(format!(
            "not a {what} ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    }
}

/// Reads one channel's variables and says what is missing: a channel without its
/// required secrets is not served, unless `--insecure-dev` allows it (with a notice).
pub struct Settings<'a> {
    channel: &'static str,
    var: &'a dyn Fn(&str) -> Option<String>,
    insecure_dev: bool,
    pub notices: Vec<Notice>,
}

impl<'a> Settings<'a> {
    pub fn new(
        channel: &'static str,
        var: &'a dyn Fn(&str) -> Option<String>,
        insecure_dev: bool,
    ) -> Self {
        Settings {
            channel,
            var,
            insecure_dev,
            notices: Vec::new(),
        }
    }

    /// A set, non-blank variable.
    pub fn optional(&self, name: &str) -> Option<String> {
        (self.var)(name).filter(|v| !v.trim().is_empty())
    }

    /// A variable the channel needs: `Err` (not served) when missing, unless insecure mode
    /// is on; then `Ok(None)` and a notice saying `without` what happens.
    pub fn required(&mut self, name: &str, without: &str) -> Result<Option<String>, Notice> {
        match self.optional(name) {
            Some(value) => Ok(Some(value)),
            None if self.insecure_dev => {
                self.note(&format!("{name} is not set: {without} (--insecure-dev)"));
                Ok(None)
            }
            None => Err(format!("{}: not served, {name} is not set", self.channel)),
        }
    }

    pub fn note(&mut self, text: &str) {
        self.notices.push(format!("{}: {text}", self.channel));
    }
}

/// Compares a shared secret from a request in constant time.
pub fn same_secret(given: &[u8], expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.ct_eq(expected.as_bytes()).into()
}

/// A channel made from its variables, with what to know about it; or why it is not served.
type Built = Result<(Arc<dyn Channel>, Vec<Notice>), Notice>;

/// The channels a host can serve, from its environment.
pub struct Configured {
    pub channels: Channels,
    /// What is wrong or unsafe with a channel that is (partly) configured.
    pub notices: Vec<Notice>,
    /// Channels none of whose variables are set: not served, nothing to warn about.
    pub unconfigured: Vec<&'static str>,
}

/// Every provider channel whose variables are set, configured for `purpose`. (The web chat
/// is added by the host that serves it.) With `insecure_dev` every channel is served.
pub fn from_env(
    var: &dyn Fn(&str) -> Option<String>,
    purpose: Purpose,
    insecure_dev: bool,
) -> Configured {
    let mut out = Configured {
        channels: Channels::default(),
        notices: Vec::new(),
        unconfigured: Vec::new(),
    };
    let set = |names: &[&str]| {
        names
            .iter()
            .any(|v| var(v).is_some_and(|value| !value.trim().is_empty()))
    };
    let mut add =
        |name: &'static str, (receives, sends): (&[&str], &[&str]), build: &dyn Fn() -> Built| {
            let any_set = (purpose.receives() && set(receives)) || (purpose.sends() && set(sends));
            if !any_set && !insecure_dev {
                out.unconfigured.push(name);
                return;
            }
            match build() {
                Ok((channel, more)) => {
                    out.notices.extend(more);
                    out.channels = std::mem::take(&mut out.channels).with(channel);
                }
                Err(why) => out.notices.push(why),
            }
        };
    add(
        whatsapp::NAME,
        (whatsapp::RECEIVE_VARIABLES, whatsapp::SEND_VARIABLES),
        &|| {
            let (c, n) = whatsapp::WhatsAppConfig::from_env(var, purpose, insecure_dev)?;
            Ok((client(whatsapp::NAME, whatsapp::WhatsApp::new(c))?, n))
        },
    );
    add(
        telegram::NAME,
        (telegram::RECEIVE_VARIABLES, telegram::SEND_VARIABLES),
        &|| {
            let (c, n) = telegram::TelegramConfig::from_env(var, purpose, insecure_dev)?;
            Ok((client(telegram::NAME, telegram::Telegram::new(c))?, n))
        },
    );
    add(
        messenger::NAME,
        (messenger::RECEIVE_VARIABLES, messenger::SEND_VARIABLES),
        &|| {
            let (c, n) = messenger::MessengerConfig::from_env(var, purpose, insecure_dev)?;
            Ok((client(messenger::NAME, messenger::Messenger::new(c))?, n))
        },
    );
    add(
        twilio::NAME,
        (twilio::RECEIVE_VARIABLES, twilio::SEND_VARIABLES),
        &|| {
            let (c, n) = twilio::TwilioConfig::from_env(var, purpose, insecure_dev)?;
            Ok((client(twilio::NAME, twilio::Twilio::new(c))?, n))
        },
    );
    out
}

fn client<C: Channel + 'static>(
    name: &str,
    built: Result<C, reqwest::Error>,
) -> Result<Arc<dyn Channel>, Notice> {
    built
        .map(|c| Arc::new(c) as Arc<dyn Channel>)
        .map_err(|e| format!("{name}: not served, its HTTP client could not be built: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(vars: &[(&str, &str)], purpose: Purpose, insecure: bool) -> Configured {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        from_env(&|name| vars.get(name).cloned(), purpose, insecure)
    }

    #[test]
    fn untouched_channels_are_quietly_unconfigured_and_half_set_ones_say_why() {
        let c = configure(
            &[
                ("TELEGRAM_SECRET_TOKEN", "s"),
                ("TELEGRAM_BOT_TOKEN", "b"),
                ("WHATSAPP_ACCESS_TOKEN", "t"),
            ],
            Purpose::Both,
            false,
        );
        assert_eq!(c.channels.names().collect::<Vec<_>>(), ["telegram"]);
        assert_eq!(c.unconfigured, ["messenger", "twilio"]);
        assert_eq!(
            c.notices,
            ["whatsapp: not served, WHATSAPP_APP_SECRET is not set"]
        );
    }

    #[test]
    fn a_host_looks_only_at_the_variables_of_its_purpose() {
        // The step function (sends) with only a receiving secret: not configured for it.
        let c = configure(&[("TELEGRAM_SECRET_TOKEN", "s")], Purpose::Send, false);
        assert!(c.channels.names().next().is_none());
        assert!(c.unconfigured.contains(&"telegram") && c.notices.is_empty());
    }

    #[test]
    fn insecure_dev_serves_every_channel_and_says_so() {
        let c = configure(&[], Purpose::Both, true);
        assert_eq!(c.channels.names().count(), 4);
        assert!(c.unconfigured.is_empty());
        assert!(c.notices.iter().any(|n| n.contains("INSECURE")));
    }
}
