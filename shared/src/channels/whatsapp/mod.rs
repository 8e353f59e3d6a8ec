//! WhatsApp Cloud API: webhook verification and parsing, and sends through the Graph API.

mod inbound;
mod outbound;
pub mod sandbox;
mod signature;

use async_trait::async_trait;
use axum::http::HeaderMap;
use std::time::Duration;

use super::{Channel, InboundError, Parsed};
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

pub use signature::sign;

pub const NAME: &str = "whatsapp";
/// The Graph API the Cloud API lives under, with the version this build was written for.
pub const DEFAULT_API_BASE: &str = "https://graph.facebook.com/v23.0";

/// How a WhatsApp channel is set up (from the WHATSAPP_* environment variables).
#[derive(Clone)]
pub struct WhatsAppConfig {
    /// The Meta app secret that signs webhooks. `None` only with `--insecure-dev`.
    pub app_secret: Option<String>,
    /// What `hub.verify_token` must be in the subscription handshake.
    pub verify_token: Option<String>,
    pub access_token: String,
    pub api_base: String,
}

pub struct WhatsApp {
    config: WhatsAppConfig,
    http: reqwest::Client,
}

impl WhatsApp {
    pub fn new(config: WhatsAppConfig) -> Result<WhatsApp, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(WhatsApp { config, http })
    }
}

#[async_trait]
impl Channel for WhatsApp {
    fn name(&self) -> &'static str {
        NAME
    }

    fn handshake(&self, query: &str) -> Option<Result<String, InboundError>> {
        Some(signature::handshake(
            self.config.verify_token.as_deref(),
            query,
        ))
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), InboundError> {
        match &self.config.app_secret {
            Some(secret) => signature::check(secret, headers, body),
            None => Ok(()),
        }
    }

    fn parse(&self, body: &[u8]) -> Result<Parsed, InboundError> {
        inbound::parse(body)
    }

    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError> {
        outbound::send(&self.http, &self.config, to, message).await
    }
}

/// Why a channel is not served, or what to know about how it is.
pub type Notice = String;

/// What a host does with the channel: each needs its own secrets only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Verifies and parses webhooks: WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN.
    Receive,
    /// Sends through the Graph API: WHATSAPP_ACCESS_TOKEN, WHATSAPP_API_BASE.
    Send,
    Both,
}

impl WhatsAppConfig {
    /// Reads the WHATSAPP_* variables `purpose` needs through `var`. Without its required
    /// secret the channel is not served (`Err` says why), unless `insecure_dev` allows it.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        purpose: Purpose,
        insecure_dev: bool,
    ) -> Result<(WhatsAppConfig, Vec<Notice>), Notice> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let receives = purpose != Purpose::Send;
        let sends = purpose != Purpose::Receive;
        let mut notices = Vec::new();
        let mut config = WhatsAppConfig {
            app_secret: None,
            verify_token: None,
            access_token: String::new(),
            api_base: DEFAULT_API_BASE.to_string(),
        };
        if receives {
            config.app_secret = var("WHATSAPP_APP_SECRET");
            if config.app_secret.is_none() {
                if !insecure_dev {
                    return Err("whatsapp: not served, WHATSAPP_APP_SECRET is not set".into());
                }
                notices.push(
                    "whatsapp: INSECURE, webhook signatures are not checked (--insecure-dev)"
                        .into(),
                );
            }
            config.verify_token = var("WHATSAPP_VERIFY_TOKEN");
            if config.verify_token.is_none() {
                notices.push(
                    "whatsapp: WHATSAPP_VERIFY_TOKEN is not set; subscription handshakes get 403"
                        .into(),
                );
            }
        }
        if sends {
            match var("WHATSAPP_ACCESS_TOKEN") {
                Some(token) => config.access_token = token,
                None if insecure_dev => notices.push(
                    "whatsapp: WHATSAPP_ACCESS_TOKEN is not set; the Graph API will refuse sends"
                        .into(),
                ),
                None => return Err("whatsapp: not served, WHATSAPP_ACCESS_TOKEN is not set".into()),
            }
            if let Some(base) = var("WHATSAPP_API_BASE") {
                config.api_base = base;
            }
        }
        Ok((config, notices))
    }
}
