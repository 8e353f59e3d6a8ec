//! Webhook bodies no provider would send: each channel's parser, fed bodies that start as
//! real ones and are then mangled (values swapped for others of any type, fields dropped,
//! bytes cut, flipped or inserted), answers with messages or a malformed-body error. It
//! never panics, never says "unauthorized" for a body it was given to read, never repeats
//! the body's text in its error (which is logged), and what it accepts fits the store.
//! And a body with a forged signature or token is refused as unauthorized, whatever it holds.

mod support;

use axum::http::{HeaderMap, HeaderValue, header};
use proptest::prelude::*;
use serde_json::{Value, json};

use assent::channels::limits::{self, MESSAGE_ID_MAX_BYTES, TEXT_MAX_BYTES, USER_ID_MAX_BYTES};
use assent::channels::messenger::{Messenger, MessengerConfig, sandbox as fb};
use assent::channels::meta_webhook::MetaApp;
use assent::channels::telegram::{Telegram, TelegramConfig, sandbox as tg};
use assent::channels::twilio::{Twilio, TwilioConfig, sandbox as tw};
use assent::channels::web::{SessionKey, WebChat};
use assent::channels::whatsapp::{WhatsApp, WhatsAppConfig, sandbox as wa};
use assent::channels::{Channel, InboundError};
use assent::engine::Content;
use support::mangle::{MARK, Mangle, apply_to_bytes, apply_to_json, mangle};

/// A real body of each kind each channel sends, as JSON (Twilio's form as an object).
fn samples() -> Vec<(usize, Value)> {
    vec![
        (
            WHATSAPP,
            wa::message_webhook(
                "1065",
                "4915100000001",
                "Zoë",
                "wamid.1",
                1_750_000_000,
                wa::text("Hello"),
            ),
        ),
        (
            WHATSAPP,
            wa::message_webhook(
                "1065",
                "4915100000001",
                "Zoë",
                "wamid.2",
                1_750_000_000,
                wa::button_reply("agree", "AGREE & PROCEED"),
            ),
        ),
        (
            WHATSAPP,
            wa::status_webhook("1065", "4915100000001", "wamid.3", "failed"),
        ),
        (
            MESSENGER,
            fb::batch(
                "page",
                vec![
                    fb::text("2400", "m_1", "Hello"),
                    fb::quick_reply("2400", "m_2", "agree", "AGREE & PROCEED"),
                    fb::echo("2400", "m_3"),
                ],
            ),
        ),
        (TELEGRAM, tg::text_update(1, 4242, "Hello")),
        (TELEGRAM, tg::callback_update(2, 4242, "q1", "agree")),
        (
            TWILIO,
            Value::Object(
                tw::sms("+4915100000001", "SM1", "Hello")
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
            ),
        ),
        (WEB, json!({"id": "c1", "text": "Hello"})),
        (
            WEB,
            json!({"id": "c2", "choice": {"id": "agree", "label": "AGREE & PROCEED"}}),
        ),
        (WEB, json!({"id": "c3", "opened": true})),
    ]
}

const WHATSAPP: usize = 0;
const MESSENGER: usize = 1;
const TELEGRAM: usize = 2;
const TWILIO: usize = 3;
const WEB: usize = 4;

struct Parsers {
    channels: Vec<Box<dyn Channel>>,
    web_session: HeaderMap,
}

impl Parsers {
    fn new() -> Parsers {
        let app = MetaApp {
            app_secret: Some("app-secret".into()),
            verify_token: None,
        };
        let base = "http://127.0.0.1:9".to_string();
        let key = SessionKey::new(&[7; 32]);
        let (_, token) = key.issue().unwrap();
        let mut web_session = HeaderMap::new();
        web_session.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let channels: Vec<Box<dyn Channel>> = vec![
            Box::new(
                WhatsApp::new(WhatsAppConfig {
                    app: app.clone(),
                    access_token: "t".into(),
                    api_base: base.clone(),
                })
                .unwrap(),
            ),
            Box::new(
                Messenger::new(MessengerConfig {
                    app,
                    page_token: "t".into(),
                    api_base: base.clone(),
                })
                .unwrap(),
            ),
            Box::new(
                Telegram::new(TelegramConfig {
                    secret_token: Some("s".into()),
                    bot_token: "t".into(),
                    api_base: base.clone(),
                })
                .unwrap(),
            ),
            Box::new(
                Twilio::new(TwilioConfig {
                    auth_token: Some("t".into()),
                    public_url: None,
                    account_sid: "AC1".into(),
                    api_base: base,
                })
                .unwrap(),
            ),
            Box::new(WebChat::new(key, Vec::new())),
        ];
        Parsers {
            channels,
            web_session,
        }
    }

    fn headers(&self, channel: usize) -> HeaderMap {
        match channel {
            WEB => self.web_session.clone(),
            _ => HeaderMap::new(),
        }
    }
}

/// The bytes a provider would send for `body`.
fn encode(channel: usize, body: &Value) -> Vec<u8> {
    match (channel, body) {
        (TWILIO, Value::Object(params)) => {
            let pairs: Vec<(String, String)> = params
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), String::from),
                    )
                })
                .collect();
            tw::form_body(&pairs).into_bytes()
        }
        _ => body.to_string().into_bytes(),
    }
}

/// Sample `sample`, mangled: its channel and the bytes to send.
fn mangled(sample: usize, mangles: &[Mangle]) -> (usize, Vec<u8>) {
    let (channel, mut body) = samples().swap_remove(sample);
    for mangle in mangles {
        apply_to_json(&mut body, mangle);
    }
    let mut bytes = encode(channel, &body);
    for mangle in mangles {
        apply_to_bytes(&mut bytes, mangle);
    }
    (channel, bytes)
}

fn check(parsers: &Parsers, sample: usize, mangles: &[Mangle]) -> Result<(), TestCaseError> {
    let (channel, bytes) = mangled(sample, mangles);
    let parser = &parsers.channels[channel];
    match parser.parse(&parsers.headers(channel), &bytes) {
        Ok(parsed) => {
            let parsed = limits::fit(parsed);
            for message in &parsed.messages {
                prop_assert_eq!(&message.from.channel, parser.name());
                prop_assert!(!message.from.user_id.is_empty());
                prop_assert!(message.from.user_id.len() <= USER_ID_MAX_BYTES);
                prop_assert!(!message.message_id.is_empty());
                prop_assert!(message.message_id.len() <= MESSAGE_ID_MAX_BYTES);
                if let Content::Text { text } = &message.content {
                    prop_assert!(text.len() <= TEXT_MAX_BYTES);
                }
            }
            for failure in &parsed.failures {
                prop_assert!(!failure.provider_message_id.is_empty());
                prop_assert!(!failure.to.user_id.is_empty());
            }
        }
        Err(InboundError::Malformed(reason)) => {
            prop_assert!(
                !reason.contains(MARK),
                "the reason repeats the body: {}",
                reason
            );
        }
        Err(other) => prop_assert!(false, "{} answered {other:?}", parser.name()),
    }
    Ok(())
}

#[test]
fn every_sample_is_read_as_a_provider_sends_it() {
    let parsers = Parsers::new();
    for (i, (channel, body)) in samples().into_iter().enumerate() {
        let parser = &parsers.channels[channel];
        let parsed = parser
            .parse(&parsers.headers(channel), &encode(channel, &body))
            .unwrap_or_else(|e| panic!("sample {i} ({}): {e}", parser.name()));
        assert!(
            !parsed.messages.is_empty() || !parsed.failures.is_empty(),
            "sample {i} ({}) carries a message or a failure: {parsed:?}",
            parser.name()
        );
    }
}

#[test]
fn mangled_bodies_get_messages_or_a_clear_error() {
    let parsers = Parsers::new();
    let config = support::proptest_config();
    let count = samples().len();
    proptest!(config, |(sample in 0..count, mangles in proptest::collection::vec(mangle(), 1..5))| {
        check(&parsers, sample, &mangles)?;
    });
}

/// What a forger might put where a signature or token goes: any bytes, or the shape a real
/// one has (Meta's `sha256=` and 64 hex digits, Twilio's base64 of 20 bytes, a session
/// token's two parts).
fn forged_credential() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        "[0-9a-f]{64}".prop_map(|hex| format!("sha256={hex}").into_bytes()),
        "[A-Za-z0-9+/]{27}=".prop_map(String::into_bytes),
        "[0-9a-f]{32}\\.[0-9a-f]{64}".prop_map(|token| format!("Bearer {token}").into_bytes()),
    ]
}

/// Bodies with credentials that were not made with the channel's secret: every channel
/// answers "unauthorized" (401, nothing stored) before it reads anything, whatever the
/// body holds.
#[test]
fn forged_credentials_are_refused_whatever_the_body() {
    let parsers = Parsers::new();
    let config = support::proptest_config();
    let count = samples().len();
    proptest!(config, |(
        sample in 0..count,
        mangles in proptest::collection::vec(mangle(), 0..3),
        credential in forged_credential(),
    )| {
        let (_, bytes) = mangled(sample, &mangles);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("chat.example"));
        if let Ok(value) = HeaderValue::from_bytes(&credential) {
            for name in [
                "x-hub-signature-256",
                "x-twilio-signature",
                "x-telegram-bot-api-secret-token",
                "authorization",
            ] {
                headers.insert(name, value.clone());
            }
        }
        for parser in &parsers.channels {
            match parser.authenticate(&headers, &bytes) {
                Err(InboundError::Unauthorized(_)) => {}
                other => prop_assert!(false, "{} answered {:?}", parser.name(), other),
            }
        }
    });
}
