//! WhatsApp Cloud API: webhook verification and parsing, and sends through the Graph API.

mod inbound;
mod outbound;
pub mod sandbox;

use async_trait::async_trait;
use axum::http::HeaderMap;

use super::meta_webhook::MetaApp;
use super::{Channel, InboundError, Notice, Parsed, Purpose, Settings, meta_webhook};
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

pub use crate::channels::meta_webhook::sign;

pub const NAME: &str = "whatsapp";
/// The variables read to receive, and to send: none of them set means the channel is
/// simply not configured for that purpose.
pub const RECEIVE_VARIABLES: &[&str] = &["WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN"];
pub const SEND_VARIABLES: &[&str] = &["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_API_BASE"];
/// The Graph API the Cloud API lives under.
pub const DEFAULT_API_BASE: &str = meta_webhook::GRAPH_API_BASE;

/// How a WhatsApp channel is set up (from the WHATSAPP_* environment variables).
#[derive(Clone)]
pub struct WhatsAppConfig {
    /// The app secret and verify token its webhooks are checked with.
    pub app: MetaApp,
    pub access_token: String,
    pub api_base: String,
}

pub struct WhatsApp {
    config: WhatsAppConfig,
    http: reqwest::Client,
}

impl WhatsApp {
    pub fn new(config: WhatsAppConfig) -> Result<WhatsApp, reqwest::Error> {
        Ok(WhatsApp {
            config,
            http: super::provider_http::client()?,
        })
    }
}

#[async_trait]
impl Channel for WhatsApp {
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

impl WhatsAppConfig {
    /// Reads the WHATSAPP_* variables `purpose` needs through `var`. Without its required
    /// secret the channel is not served (`Err` says why), unless `insecure_dev` allows it.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        purpose: Purpose,
        insecure_dev: bool,
    ) -> Result<(WhatsAppConfig, Vec<Notice>), Notice> {
        let mut env = Settings::new(NAME, &var, insecure_dev);
        let mut config = WhatsAppConfig {
            app: MetaApp::default(),
            access_token: String::new(),
            api_base: DEFAULT_API_BASE.to_string(),
        };
        if purpose.receives() {
            config.app = MetaApp::from_env(&mut env, "WHATSAPP")?;
        }
        if purpose.sends() {
            config.access_token = env
                .required("WHATSAPP_ACCESS_TOKEN", "the Graph API will refuse sends")?
                .unwrap_or_default();
            if let Some(base) = env.optional("WHATSAPP_API_BASE") {
                config.api_base = base;
            }
        }
        Ok((config, env.notices))
    }
}
