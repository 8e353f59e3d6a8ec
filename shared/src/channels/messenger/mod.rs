//! Messenger and Instagram messaging (one Meta app, one page): webhooks signed like
//! WhatsApp's, and sends through the Send API with quick replies. Instagram contacts come
//! in with `object: "instagram"` and are answered through the same page token.

mod inbound;
mod outbound;
pub mod sandbox;

use async_trait::async_trait;
use axum::http::HeaderMap;

use super::{
    Channel, InboundError, Notice, Parsed, Purpose, Settings, meta_webhook, provider_http,
};
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

pub const NAME: &str = "messenger";

/// How the Messenger channel is set up (from the MESSENGER_* environment variables).
#[derive(Clone)]
pub struct MessengerConfig {
    /// The Meta app secret that signs webhooks. `None` only with `--insecure-dev`.
    pub app_secret: Option<String>,
    pub verify_token: Option<String>,
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
            app_secret: None,
            verify_token: None,
            page_token: String::new(),
            api_base: meta_webhook::GRAPH_API_BASE.into(),
        };
        if purpose.receives() {
            config.app_secret = env.required(
                "MESSENGER_APP_SECRET",
                "INSECURE, webhook signatures are not checked",
            )?;
            config.verify_token = env.optional("MESSENGER_VERIFY_TOKEN");
            if config.verify_token.is_none() {
                env.note("MESSENGER_VERIFY_TOKEN is not set; subscription handshakes get 403");
            }
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
        Some(meta_webhook::handshake(
            self.config.verify_token.as_deref(),
            query,
        ))
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), InboundError> {
        match &self.config.app_secret {
            Some(secret) => meta_webhook::check(secret, headers, body),
            None => Ok(()),
        }
    }

    fn parse(&self, _headers: &HeaderMap, body: &[u8]) -> Result<Parsed, InboundError> {
        inbound::parse(body)
    }

    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError> {
        outbound::send(&self.http, &self.config, to, message).await
    }
}
