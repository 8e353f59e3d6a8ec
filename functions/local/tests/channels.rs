//! Every provider channel end to end through the real `assent-local` binary: webhooks in
//! each provider's documented format (signed or token-checked as the provider does),
//! outbound captured by a local server that answers like the provider's API.

mod support;

use reqwest::Method;
use serde_json::{Value, json};

use assent::channels::messenger::sandbox as messenger;
use assent::channels::sandbox::{ApiSandbox, Captured};
use assent::channels::telegram::sandbox as telegram;
use assent::channels::twilio::sandbox as twilio;
use assent::channels::twilio::signature;
use support::*;

const POLICY: &str = "https://example.com/privacy";

/// The link, then the question with AGREE & PROCEED as its option `payload`.
async fn asked(sandbox: &ApiSandbox, to: &str, payload: &str) -> Vec<Captured> {
    let sent = sandbox.wait_for_to(to, 2, PATIENCE).await;
    assert!(sent[0].text().contains(POLICY), "{:?}", sent[0]);
    assert_eq!(
        sent[1].options(),
        vec![(payload.to_string(), "AGREE & PROCEED".to_string())],
        "{:?}",
        sent[1]
    );
    sent
}

async fn acknowledged(sandbox: &ApiSandbox, to: &str) {
    let sent = sandbox.wait_for_to(to, 3, PATIENCE).await;
    assert!(sent[2].text().starts_with("Thank you"), "{:?}", sent[2]);
}

async fn tagged(server: &Server, contact: &str) -> bool {
    let path = format!("/admin/contacts/{}", urlencode(contact));
    let body = server
        .eventually(&path, |b| {
            b["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "Consent: Privacy"))
        })
        .await;
    body["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "Consent: Privacy"))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn field(body: &str, name: &str) -> Value {
    serde_json::from_str::<Value>(body).unwrap_or_default()[name].clone()
}

// ------------------------------------------------------------------------- Telegram

const TG_SECRET: &str = "tg-secret-token_42";
const TG_BOT: &str = "123456:AAbot-token";

async fn telegram_server(sandbox: &ApiSandbox, args: &[&str]) -> Server {
    let base = sandbox.base_url();
    let env = [
        ("TELEGRAM_SECRET_TOKEN", TG_SECRET),
        ("TELEGRAM_BOT_TOKEN", TG_BOT),
        ("TELEGRAM_API_BASE", base.as_str()),
        ("ASSENT_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    Server::start(sandbox, &env, args).await
}

async fn post_update(server: &Server, update: &Value, secret: Option<&str>) -> (u16, String) {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(secret) = secret {
        headers.push(("x-telegram-bot-api-secret-token", secret));
    }
    let (status, _, body) = server
        .post("/webhooks/telegram", &headers, update.to_string())
        .await;
    (status, body)
}

#[tokio::test]
async fn telegram_consent_end_to_end() {
    let sandbox = ApiSandbox::telegram("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let server = telegram_server(&sandbox, &[]).await;
    let start = telegram::text_update(100, 4242, "/start 👋 Olá");

    assert_eq!(post_update(&server, &start, None).await.0, 401);
    assert_eq!(post_update(&server, &start, Some("wrong")).await.0, 401);
    let (status, body) = post_update(&server, &start, Some(TG_SECRET)).await;
    assert_eq!((status, field(&body, "accepted")), (200, json!(1)));

    let sent = asked(&sandbox, "4242", "agree").await;
    assert_eq!(sent[1].path, format!("/bot{TG_BOT}/sendMessage"));

    // Telegram redelivers an update it got no answer for: the same update_id.
    let (_, body) = post_update(&server, &start, Some(TG_SECRET)).await;
    assert_eq!(field(&body, "duplicates"), json!(1));

    // The tap is answered in the webhook response (no spinner left on the button).
    let tap = telegram::callback_update(101, 4242, "cbq-77", "agree");
    let (status, body) = post_update(&server, &tap, Some(TG_SECRET)).await;
    assert_eq!(status, 200);
    assert_eq!(field(&body, "method"), "answerCallbackQuery");
    assert_eq!(field(&body, "callback_query_id"), "cbq-77");
    acknowledged(&sandbox, "4242").await;
    assert!(tagged(&server, "telegram:4242").await);
    assert_eq!(sandbox.sent_to("4242").len(), 3, "nothing sent twice");

    // A group chat is not a consent conversation.
    let mut group = telegram::text_update(102, -1001, "hi all");
    group["message"]["chat"]["type"] = json!("supergroup");
    let (_, body) = post_update(&server, &group, Some(TG_SECRET)).await;
    assert_eq!(field(&body, "skipped"), json!(1));
}

#[tokio::test]
async fn telegram_throttling_is_waited_out_and_a_blocked_bot_fails_the_run() {
    let sandbox = ApiSandbox::telegram("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let server = telegram_server(&sandbox, &[]).await;

    // 429 with retry_after on the first send: it is sent once, after the wait.
    sandbox.fail_next(
        429,
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}),
    );
    let hello = telegram::text_update(200, 5001, "hi");
    post_update(&server, &hello, Some(TG_SECRET)).await;
    asked(&sandbox, "5001", "agree").await;
    assert_eq!(sandbox.sent_to("5001").len(), 2);

    // The bot was blocked before the question went out: the run ends as a delivery
    // failure with the reason, and no timeout waits for an answer that cannot come.
    let requests = sandbox.requests();
    sandbox.fail_in(
        2,
        403,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    );
    post_update(
        &server,
        &telegram::text_update(201, 5002, "hi"),
        Some(TG_SECRET),
    )
    .await;
    let ledger = server
        .eventually("/admin/contacts/telegram%3A5002/consent", |b| {
            b["records"].as_array().is_some_and(|r| r.len() == 2)
        })
        .await;
    // The question was asked (decided), then could not be delivered.
    let kinds: Vec<&Value> = ledger["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["kind"])
        .collect();
    assert_eq!(
        kinds,
        [&json!("asked"), &json!("delivery_failed")],
        "{ledger}"
    );
    let record = &ledger["records"][1];
    assert!(
        record["payload"].as_str().unwrap().contains("blocked"),
        "{record}"
    );
    assert_eq!(
        sandbox.requests(),
        requests + 2,
        "no retry of a permanent failure"
    );
    let contact = server
        .eventually("/admin/contacts/telegram%3A5002", |b| {
            b["conversation"].is_null()
        })
        .await;
    assert!(contact["conversation"].is_null(), "closed: {contact}");
    let (_, report) = server
        .admin_json(
            Method::GET,
            "/admin/reports/consent?workflow=request-consent-privacy",
            None,
        )
        .await;
    assert_eq!(report["versions"][0]["delivery_failures"], 1, "{report}");
}

// ------------------------------------------------------------------------ Messenger

const FB_SECRET: &str = "fb-app-secret-9";
const FB_PAGE_TOKEN: &str = "fb-page-token-3";

#[tokio::test]
async fn messenger_and_instagram_consent_end_to_end() {
    let sandbox = ApiSandbox::messenger("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = sandbox.base_url();
    let env = [
        ("MESSENGER_APP_SECRET", FB_SECRET),
        ("MESSENGER_VERIFY_TOKEN", "fb-verify"),
        ("MESSENGER_PAGE_TOKEN", FB_PAGE_TOKEN),
        ("MESSENGER_API_BASE", base.as_str()),
        ("ASSENT_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let server = Server::start(&sandbox, &env, &[]).await;
    let post = |body: Value, secret: &'static str| {
        let bytes = assent::channels::sandbox::meta_json(&body).into_bytes();
        let signature = assent::channels::meta_webhook::sign(secret, &bytes);
        let server = &server;
        async move {
            server
                .post(
                    "/webhooks/messenger",
                    &[
                        ("content-type", "application/json"),
                        ("x-hub-signature-256", &signature),
                    ],
                    bytes,
                )
                .await
        }
    };

    // The subscription handshake.
    let handshake = server
        .http
        .get(format!(
            "{}/webhooks/messenger?hub.mode=subscribe&hub.verify_token=fb-verify&hub.challenge=31337",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(handshake.text().await.unwrap(), "31337");

    // One body, two people, the page's echo and receipts read-before-delivered.
    let batch = messenger::batch(
        "page",
        vec![
            json!({"sender": {"id": "PSID-A"}, "recipient": {"id": messenger::PAGE_ID}, "read": {"watermark": 2}}),
            json!({"sender": {"id": "PSID-A"}, "recipient": {"id": messenger::PAGE_ID}, "delivery": {"mids": ["m_0"], "watermark": 1}}),
            messenger::text("PSID-A", "m_a1", "Hallo 😀 Grüße"),
            messenger::echo("PSID-A", "m_echo"),
            messenger::text("PSID-B", "m_b1", "hi"),
        ],
    );
    assert_eq!(post(batch.clone(), "wrong-secret").await.0, 401);
    let (status, _, body) = post(batch.clone(), FB_SECRET).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (field(&body, "accepted"), field(&body, "statuses")),
        (json!(2), json!(3))
    );
    let sent = asked(&sandbox, "PSID-A", "agree").await;
    assert_eq!(
        sent[1].authorization.as_deref(),
        Some(format!("Bearer {FB_PAGE_TOKEN}").as_str())
    );
    assert!(sent[1].path.ends_with("/me/messages"));
    asked(&sandbox, "PSID-B", "agree").await;

    // Meta redelivers the whole batch: nothing new.
    let (_, _, body) = post(batch, FB_SECRET).await;
    assert_eq!(field(&body, "duplicates"), json!(2));

    // A taps the quick reply; B taps a postback button.
    post(
        messenger::batch(
            "page",
            vec![messenger::quick_reply(
                "PSID-A",
                "m_a2",
                "agree",
                "AGREE & PROCEED",
            )],
        ),
        FB_SECRET,
    )
    .await;
    acknowledged(&sandbox, "PSID-A").await;
    post(
        messenger::batch("page", vec![json!({"sender": {"id": "PSID-B"}, "recipient": {"id": messenger::PAGE_ID},
            "timestamp": 1_750_000_000_500i64, "postback": {"mid": "m_b2", "title": "AGREE & PROCEED", "payload": "agree"}})]),
        FB_SECRET,
    )
    .await;
    acknowledged(&sandbox, "PSID-B").await;
    assert!(tagged(&server, "messenger:PSID-A").await);
    assert!(tagged(&server, "messenger:PSID-B").await);

    // Instagram comes through the same app and is answered the same way.
    post(
        messenger::batch(
            "instagram",
            vec![messenger::text("IGSID-C", "aWdf1", "olá")],
        ),
        FB_SECRET,
    )
    .await;
    asked(&sandbox, "IGSID-C", "agree").await;
    for who in ["PSID-A", "PSID-B"] {
        assert_eq!(sandbox.sent_to(who).len(), 3, "{who}: nothing sent twice");
    }
}

// --------------------------------------------------------------------------- Twilio

const TW_TOKEN: &str = "twilio-auth-token-5";
/// Twilio signs the URL it was given, which a proxy in front may not pass on unchanged.
const TW_PUBLIC_URL: &str = "https://assent.example.com/webhooks/twilio";

async fn post_sms(
    server: &Server,
    params: &[(String, String)],
    token: &str,
) -> (u16, String, String) {
    let signature = signature::sign(token, TW_PUBLIC_URL, params);
    server
        .post(
            "/webhooks/twilio",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-twilio-signature", &signature),
            ],
            twilio::form_body(params),
        )
        .await
}

#[tokio::test]
async fn twilio_sms_consent_end_to_end() {
    let sandbox = ApiSandbox::twilio("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let base = sandbox.base_url();
    let env = [
        ("TWILIO_AUTH_TOKEN", TW_TOKEN),
        ("TWILIO_PUBLIC_URL", TW_PUBLIC_URL),
        ("TWILIO_ACCOUNT_SID", twilio::ACCOUNT_SID),
        ("TWILIO_API_BASE", base.as_str()),
        ("ASSENT_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let server = Server::start(&sandbox, &env, &[]).await;
    let person = "+4915112345678";
    let hello = twilio::sms(person, "SM0001", "Hi 👋 ñ");

    assert_eq!(post_sms(&server, &hello, "not-the-token").await.0, 401);
    let (status, content_type, body) = post_sms(&server, &hello, TW_TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/xml");
    assert!(
        body.contains("<Response></Response>"),
        "TwiML that sends nothing: {body}"
    );

    let sent = asked(&sandbox, person, "1").await;
    assert!(
        sent[1].text().contains("Reply 1 for AGREE & PROCEED"),
        "{:?}",
        sent[1]
    );
    assert_eq!(sent[1].body["From"], twilio::NUMBER);
    assert_eq!(
        sent[1].path,
        format!("/2010-04-01/Accounts/{}/Messages.json", twilio::ACCOUNT_SID)
    );
    assert!(
        sent[1]
            .authorization
            .as_deref()
            .unwrap_or_default()
            .starts_with("Basic ")
    );

    // Status callbacks, delivered before sent: acknowledged, nothing more.
    for status in ["delivered", "sent"] {
        let callback: Vec<(String, String)> = [
            ("MessageSid", "SMsandbox1"),
            ("MessageStatus", status),
            ("SmsStatus", status),
            ("To", person),
            ("From", twilio::NUMBER),
            ("AccountSid", twilio::ACCOUNT_SID),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(post_sms(&server, &callback, TW_TOKEN).await.0, 200);
    }
    // A redelivered SMS is a duplicate.
    post_sms(&server, &hello, TW_TOKEN).await;

    post_sms(&server, &twilio::sms(person, "SM0002", " 1 "), TW_TOKEN).await;
    acknowledged(&sandbox, person).await;
    assert!(tagged(&server, &format!("twilio:{person}")).await);
    assert_eq!(sandbox.sent_to(person).len(), 3, "nothing sent twice");
}
