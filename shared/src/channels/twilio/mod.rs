//! Twilio Programmable Messaging (SMS): form-encoded webhooks signed with
//! `X-Twilio-Signature`, sends through the Messages API. SMS has no buttons, so a question
//! is numbered text ("Reply 1 for AGREE & PROCEED") and the engine accepts the number.

mod inbound;
mod outbound;
pub mod sandbox;
pub mod signature;

use async_trait::async_trait;
use axum::http::HeaderMap;

use super::{Channel, InboundError, Notice, Parsed, Purpose, Settings, provider_http};
use crate::contact::Address;
use crate::engine::OutboundMessage;
use crate::ports::{SendError, Sent};

pub const NAME: &str = "twilio";
/// The variables read to receive, and to send: none of them set means the channel is
/// simply not configured for that purpose.
pub const RECEIVE_VARIABLES: &[&str] = &["TWILIO_AUTH_TOKEN", "TWILIO_PUBLIC_URL"];
pub const SEND_VARIABLES: &[&str] = &["TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID", "TWILIO_API_BASE"];
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";

/// How the Twilio channel is set up (from the TWILIO_* environment variables).
#[derive(Clone)]
pub struct TwilioConfig {
    /// Signs webhooks and authenticates sends. `None` only with `--insecure-dev`.
    pub auth_token: Option<String>,
    /// The webhook URL exactly as configured in Twilio: the signature covers it. `None`:
    /// `https://{Host}/webhooks/twilio` from the request, right behind API Gateway or a
    /// tunnel that keeps the Host header.
    pub public_url: Option<String>,
    pub account_sid: String,
    pub api_base: String,
}

impl TwilioConfig {
    /// TWILIO_AUTH_TOKEN and (optional) TWILIO_PUBLIC_URL to receive; TWILIO_ACCOUNT_SID,
    /// TWILIO_AUTH_TOKEN and TWILIO_API_BASE to send.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        purpose: Purpose,
        insecure_dev: bool,
    ) -> Result<(TwilioConfig, Vec<Notice>), Notice> {
        let mut env = Settings::new(NAME, &var, insecure_dev);
        let mut config = TwilioConfig {
            auth_token: env.required(
                "TWILIO_AUTH_TOKEN",
                "INSECURE, webhook signatures are not checked and sends are refused",
            )?,
            public_url: None,
            account_sid: String::new(),
            api_base: DEFAULT_API_BASE.into(),
        };
        if purpose.receives() {
            config.public_url = env.optional("TWILIO_PUBLIC_URL");
        }
        if purpose.sends() {
            config.account_sid = env
                .required("TWILIO_ACCOUNT_SID", "the Messages API will refuse sends")?
                .unwrap_or_default();
            if let Some(base) = env.optional("TWILIO_API_BASE") {
                config.api_base = base;
            }
        }
        Ok((config, env.notices))
    }
}

pub struct Twilio {
    config: TwilioConfig,
    http: reqwest::Client,
}

impl Twilio {
    pub fn new(config: TwilioConfig) -> Result<Twilio, reqwest::Error> {
        Ok(Twilio {
            config,
            http: provider_http::client()?,
        })
    }
}

#[async_trait]
impl Channel for Twilio {
    fn name(&self) -> &'static str {
        NAME
    }

    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), InboundError> {
        let Some(token) = &self.config.auth_token else {
            return Ok(());
        };
        let url = public_url(self.config.public_url.as_deref(), headers).ok_or(
            InboundError::Unauthorized(
                "no Host header to rebuild the signed URL from; set TWILIO_PUBLIC_URL",
            ),
        )?;
        signature::check(token, &url, headers, body)
    }

    fn parse(&self, _headers: &HeaderMap, body: &[u8]) -> Result<Parsed, InboundError> {
        inbound::parse(body)
    }

    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError> {
        outbound::send(&self.http, &self.config, to, message).await
    }
}

/// The URL Twilio signed: the configured one, or the one this request was sent to.
fn public_url(configured: Option<&str>, headers: &HeaderMap) -> Option<String> {
    if let Some(url) = configured {
        return Some(url.to_string());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("host")?;
    let scheme = header("x-forwarded-proto").unwrap_or("https");
    Some(format!("{scheme}://{host}/webhooks/{NAME}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_url_is_the_configured_one_or_the_one_requested() {
        let mut headers = HeaderMap::new();
        assert_eq!(public_url(None, &headers), None);
        headers.insert(
            "host",
            "abc.execute-api.eu-west-1.amazonaws.com".parse().unwrap(),
        );
        assert_eq!(
            public_url(None, &headers).unwrap(),
            "https://abc.execute-api.eu-west-1.amazonaws.com/webhooks/twilio"
        );
        assert_eq!(
            public_url(Some("https://chat.example/hook"), &headers).unwrap(),
            "https://chat.example/hook"
        );
    }
}
