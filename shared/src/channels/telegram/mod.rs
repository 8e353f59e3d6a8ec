//! Telegram Bot API: webhooks checked by the secret token Telegram echoes in
//! `X-Telegram-Bot-Api-Secret-Token`, and sends through `sendMessage` with an inline
//! keyboard. Contacts are private chats; groups and channels are not consent conversations.

mod inbound;
mod outbound;
pub mod sandbox;

use async_trait::async_trait;
use axum::http::HeaderMap;

use super::{Channel, InboundError, Notice, Parsed, Purpose, Settings, provider_http, same_secret};
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

pub const NAME: &str = "telegram";
/// The variables read to receive, and to send: none of them set means the channel is
/// simply not configured for that purpose.
pub const RECEIVE_VARIABLES: &[&str] = &["TELEGRAM_SECRET_TOKEN"];
pub const SEND_VARIABLES: &[&str] = &["TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE"];
pub const DEFAULT_API_BASE: &str = "https://api.telegram.org";
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// How the Telegram channel is set up (from the TELEGRAM_* environment variables).
#[derive(Clone)]
pub struct TelegramConfig {
    /// The `secret_token` given to `setWebhook`. `None` only with `--insecure-dev`.
    pub secret_token: Option<String>,
    /// The bot token from @BotFather; it is part of every API URL, so URLs are never logged.
    pub bot_token: String,
    pub api_base: String,
}

impl TelegramConfig {
    /// TELEGRAM_SECRET_TOKEN to receive; TELEGRAM_BOT_TOKEN and TELEGRAM_API_BASE to send.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        purpose: Purpose,
        insecure_dev: bool,
    ) -> Result<(TelegramConfig, Vec<Notice>), Notice> {
        let mut env = Settings::new(NAME, &var, insecure_dev);
        let mut config = TelegramConfig {
            secret_token: None,
            bot_token: String::new(),
            api_base: DEFAULT_API_BASE.into(),
        };
        if purpose.receives() {
            config.secret_token = env.required(
                "TELEGRAM_SECRET_TOKEN",
                "INSECURE, webhook secret tokens are not checked",
            )?;
        }
        if purpose.sends() {
            config.bot_token = env
                .required("TELEGRAM_BOT_TOKEN", "the Bot API will refuse sends")?
                .unwrap_or_default();
            if let Some(base) = env.optional("TELEGRAM_API_BASE") {
                config.api_base = base;
            }
        }
        Ok((config, env.notices))
    }
}

pub struct Telegram {
    config: TelegramConfig,
    http: reqwest::Client,
}

impl Telegram {
    pub fn new(config: TelegramConfig) -> Result<Telegram, reqwest::Error> {
        Ok(Telegram {
            config,
            http: provider_http::client()?,
        })
    }
}

#[async_trait]
impl Channel for Telegram {
    fn name(&self) -> &'static str {
        NAME
    }

    fn authenticate(&self, headers: &HeaderMap, _body: &[u8]) -> Result<(), InboundError> {
        let Some(expected) = &self.config.secret_token else {
            return Ok(());
        };
        let given = headers
            .get(SECRET_HEADER)
            .ok_or(InboundError::Unauthorized(
                "missing X-Telegram-Bot-Api-Secret-Token",
            ))?;
        if same_secret(given.as_bytes(), expected) {
            Ok(())
        } else {
            Err(InboundError::Unauthorized("secret token does not match"))
        }
    }

    fn parse(&self, _headers: &HeaderMap, body: &[u8]) -> Result<Parsed, InboundError> {
        inbound::parse(body)
    }

    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError> {
        outbound::send(&self.http, &self.config, to, message).await
    }
}
