//! Meta's webhook checks, shared by WhatsApp, Messenger and Instagram: `X-Hub-Signature-256`
//! (HMAC-SHA256 of the raw body with the app secret) and the `hub.verify_token` handshake.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;

use crate::channels::{InboundError, Notice, Settings, same_secret};

/// The Graph API that Meta's send APIs live under, with the version this build was written for.
pub const GRAPH_API_BASE: &str = "https://graph.facebook.com/v23.0";

/// The receiving side of a Meta app, the same for WhatsApp, Messenger and Instagram.
#[derive(Clone, Default)]
pub struct MetaApp {
    /// The app secret that signs webhooks. `None` only with `--insecure-dev`.
    pub app_secret: Option<String>,
    /// What `hub.verify_token` must be in the subscription handshake.
    pub verify_token: Option<String>,
}

impl MetaApp {
    /// `{PREFIX}_APP_SECRET` (required) and `{PREFIX}_VERIFY_TOKEN`.
    pub fn from_env(env: &mut Settings<'_>, prefix: &str) -> Result<MetaApp, Notice> {
        let app_secret = env.required(
            &format!("{prefix}_APP_SECRET"),
            "INSECURE, webhook signatures are not checked",
        )?;
        let verify_token = env.optional(&format!("{prefix}_VERIFY_TOKEN"));
        if verify_token.is_none() {
            env.note(&format!(
                "{prefix}_VERIFY_TOKEN is not set; subscription handshakes get 403"
            ));
        }
        Ok(MetaApp {
            app_secret,
            verify_token,
        })
    }

    pub fn handshake(&self, query: &str) -> Option<Result<String, InboundError>> {
        Some(handshake(self.verify_token.as_deref(), query))
    }

    pub fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), InboundError> {
        match &self.app_secret {
            Some(secret) => check(secret, headers, body),
            None => Ok(()),
        }
    }
}

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// The header value Meta sends for `body`: `sha256=<hex>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn check(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), InboundError> {
    let header = headers
        .get(SIGNATURE_HEADER)
        .ok_or(InboundError::Unauthorized("missing X-Hub-Signature-256"))?;
    let given = header
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .and_then(|v| hex::decode(v).ok())
        .ok_or(InboundError::Unauthorized("malformed X-Hub-Signature-256"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| InboundError::Unauthorized("unusable app secret"))?;
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&given)
        .map_err(|_| InboundError::Unauthorized("signature does not match"))
}

/// `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C` answers C when T matches.
pub fn handshake(verify_token: Option<&str>, query: &str) -> Result<String, InboundError> {
    let params: HashMap<String, String> = serde_urlencoded::from_str(query)
        .map_err(|_| InboundError::Malformed("unreadable query string".into()))?;
    let (Some(mode), Some(token), Some(challenge)) = (
        params.get("hub.mode"),
        params.get("hub.verify_token"),
        params.get("hub.challenge"),
    ) else {
        return Err(InboundError::Malformed(
            "expected hub.mode, hub.verify_token and hub.challenge".into(),
        ));
    };
    let Some(expected) = verify_token else {
        return Err(InboundError::Forbidden(
            "no verify token is set for this channel",
        ));
    };
    let matches = same_secret(token.as_bytes(), expected);
    if mode != "subscribe" || !matches {
        return Err(InboundError::Forbidden("verify token does not match"));
    }
    Ok(challenge.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, value.parse().unwrap());
        h
    }

    #[test]
    fn accepts_the_signature_meta_computes_and_nothing_else() {
        let body = br#"{"entry":[]}"#;
        assert!(check("s3cret", &headers(&sign("s3cret", body)), body).is_ok());
        assert!(check("other", &headers(&sign("s3cret", body)), body).is_err());
        assert!(
            check(
                "s3cret",
                &headers(&sign("s3cret", body)),
                b"{\"entry\": []}"
            )
            .is_err()
        );
        assert!(check("s3cret", &headers("sha256=zz"), body).is_err());
        assert!(check("s3cret", &headers("sha1=abcd"), body).is_err());
        assert!(check("s3cret", &HeaderMap::new(), body).is_err());
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256(key="key", "The quick brown fox jumps over the lazy dog")
        assert_eq!(
            sign("key", b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn handshake_echoes_the_challenge_only_for_the_right_token() {
        let q = "hub.mode=subscribe&hub.verify_token=tok&hub.challenge=1158201444";
        assert_eq!(handshake(Some("tok"), q), Ok("1158201444".into()));
        assert!(matches!(
            handshake(Some("nope"), q),
            Err(InboundError::Forbidden(_))
        ));
        assert!(matches!(
            handshake(None, q),
            Err(InboundError::Forbidden(_))
        ));
        assert!(matches!(
            handshake(Some("tok"), "hub.mode=subscribe"),
            Err(InboundError::Malformed(_))
        ));
    }
}
