//! Messenger and Instagram messaging (one Meta app, one page): webhooks signed like
//! WhatsApp's, and sends through the Send API with quick replies. Instagram contacts come
//! in with `object: "instagram"` and are answered through the same page token.

mod inbound;
mod outbound;
pub mod sandbox;

use crate::channels::meta_webhook::MetaApp;
use async_trait::async_trait;
use axum::http::HeaderMap;

use super::{
    Channel, InboundError, Notice, Parsed, Purpose, Settings, meta_webhook, provider_http,
};
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

pub const NAME: &str = "messenger";
/// The variables read to receive, and to send: none of them set means the channel is
/// simply not configured for that purpose.
pub const RECEIVE_VARIABLES: &[&str] = &["MESSENGER_APP_SECRET", "MESSENGER_VERIFY_TOKEN"];
pub const SEND_VARIABLES: &[&str] = &["MESSENGER_PAGE_TOKEN", "MESSENGER_API_BASE"];

/// How the Messenger channel is set up (from the MESSENGER_* environment variables).
#[derive(Clone)]
pub struct MessengerConfig {
    /// The app secret and verify token its webhooks are checked with.
    pub app: MetaApp,
    pub page_token: String,
    pub api_base: String,
}

impl MessengerConfig {
    /// MESSENGER_APP_SECRET and MESSENGER_VERIFY_TOKEN to receive; MESSENGER_PAGE_TOKEN
    /// and MESSENGER_API_BASE to send.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        purpose: Purpose,
        insecure_dev: bool,
    ) -> Result<(MessengerConfig, Vec<Notice>), Notice> {
        let mut env = Settings::new(NAME, &var, insecure_dev);
        let mut config = MessengerConfig {
            app: MetaApp::default(),
            page_token: String::new(),
            api_base: meta_webhook::GRAPH_API_BASE.into(),
        };
        if purpose.receives() {
            config.app = MetaApp::from_env(&mut env, "MESSENGER")?;
        }
        if purpose.sends() {
            config.page_token = env
                .required("MESSENGER_PAGE_TOKEN", "the Send API will refuse sends")?
                .unwrap_or_default();
            if let Some(base) = env.optional("MESSENGER_API_BASE") {
                config.api_base = base;
            }
        }
        Ok((config, env.notices))
    }
}

pub struct Messenger {
    config: MessengerConfig,
    http: reqwest::Client,
}

impl Messenger {
    pub fn new(config: MessengerConfig) -> Result<Messenger, reqwest::Error> {
        Ok(Messenger {
            config,
            http: provider_http::client()?,
        })
    }
}

#[async_trait]
impl Channel for Messenger {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handshake(&self, query: &str) -> Option<Result<String, InboundError>> {
        self.config.app.handshake(query)
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), InboundError> {
        self.config.app.authenticate(headers, body)
    }

    fn parse(&self, _headers: &HeaderMap, body: &[u8]) -> Result<Parsed, InboundError> {
        inbound::parse(body)
    }

    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError> {
        outbound::send(&self.http, &self.config, to, message).await
    }
}
