//! The website chat through the real `assent-local` binary: sessions, messages and the
//! long-poll over HTTP, then a person in headless Chromium going through the consent flow.

mod support;

use reqwest::{Method, header};
use serde_json::{Value, json};
use std::path::Path;

use assent::channels::sandbox::ApiSandbox;
use support::*;

/// The server, and the (unused) Graph API sandbox it was started with, to keep alive.
async fn server(env: &[(&str, &str)]) -> (ApiSandbox, Server) {
    let unused = graph().await;
    let mut all = vec![("ASSENT_ADMIN_TOKEN", ADMIN_TOKEN)];
    all.extend_from_slice(env);
    let server = Server::start(&unused, &all, &[]).await;
    (unused, server)
}

async fn session(server: &Server) -> String {
    let response = server
        .http
        .post(format!("{}/web/session", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn say(server: &Server, token: &str, body: Value) -> u16 {
    let auth = format!("Bearer {token}");
    let (status, _, _) = server
        .post(
            "/webhooks/web",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            body.to_string(),
        )
        .await;
    status
}

/// Long-polls until `count` messages after `after` have come (or the server's patience
/// ran out and it answered with fewer).
async fn poll(server: &Server, token: &str, after: u64) -> Vec<Value> {
    let response = server
        .http
        .get(format!("{}/web/messages?after={after}", server.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["messages"].as_array().cloned().unwrap_or_default()
}

async fn collect(server: &Server, token: &str, count: usize) -> Vec<Value> {
    let mut got: Vec<Value> = Vec::new();
    while got.len() < count {
        let after = got.last().map(|m| m["seq"].as_u64().unwrap()).unwrap_or(0);
        let more = poll(server, token, after).await;
        assert!(!more.is_empty(), "nothing more came after {got:?}");
        got.extend(more);
    }
    got
}

#[tokio::test]
async fn web_chat_over_http_sessions_duplicates_and_refusals() {
    let (_g, server) = server(&[("WEB_ALLOWED_ORIGINS", "https://shop.example")]).await;

    // Without a server-issued session nothing is accepted or read.
    assert_eq!(
        say(&server, "made-up.token", json!({"id": "1", "opened": true})).await,
        401
    );
    let unauthorized = server
        .http
        .get(format!("{}/web/messages", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let token = session(&server).await;
    assert_eq!(
        say(&server, &token, json!({"id": "o1", "opened": true})).await,
        200
    );
    let got = collect(&server, &token, 2).await;
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("https://example.com/privacy")
    );
    assert_eq!(
        got[1]["choices"],
        json!([{"id": "agree", "label": "AGREE & PROCEED"}])
    );

    // Malformed bodies are refused whole; a retried post (same id) is a duplicate.
    assert_eq!(
        say(
            &server,
            &token,
            json!({"id": "x", "text": "a", "choice": {"id": "agree", "label": "A"}})
        )
        .await,
        400
    );
    assert_eq!(say(&server, &token, json!({"text": "no id"})).await, 400);
    for _ in 0..2 {
        let choice = json!({"id": "c1", "choice": {"id": "agree", "label": "AGREE & PROCEED"}});
        assert_eq!(say(&server, &token, choice).await, 200);
    }
    let got = collect(&server, &token, 3).await;
    assert!(got[2]["text"].as_str().unwrap().starts_with("Thank you"));
    let visitor = token.split('.').next().unwrap();
    let contact = server
        .eventually(&format!("/admin/contacts/web%3A{visitor}"), |b| {
            b["tags"].as_array().is_some_and(|t| !t.is_empty())
        })
        .await;
    assert_eq!(contact["tags"], json!(["Consent: Privacy"]));
    let (_, ledger) = server
        .admin_json(
            Method::GET,
            &format!("/admin/contacts/web%3A{visitor}/consent"),
            None,
        )
        .await;
    let accepted = ledger["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "accepted")
        .count();
    assert_eq!(accepted, 1, "the retried post counted once: {ledger}");

    // Pages on an allowed origin may embed the widget; others get no CORS headers.
    for (origin, allowed) in [
        ("https://shop.example", true),
        ("https://evil.example", false),
    ] {
        let preflight = server
            .http
            .request(Method::OPTIONS, format!("{}/webhooks/web", server.base))
            .header(header::ORIGIN, origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        let allow = preflight
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .cloned();
        assert_eq!(allow.is_some(), allowed, "{origin}");
    }
}

/// Erasure also drops the messages waiting in memory for the visitor's browser; a new
/// conversation afterwards is numbered on, so an open tab gets it.
#[tokio::test]
async fn erasing_a_visitor_drops_the_messages_waiting_for_their_browser() {
    let (_g, server) = server(&[]).await;
    let token = session(&server).await;
    assert_eq!(
        say(&server, &token, json!({"id": "o1", "opened": true})).await,
        200
    );
    let first = collect(&server, &token, 2).await;
    let visitor = token.split('.').next().unwrap();
    let (status, _) = server
        .admin(
            Method::DELETE,
            &format!("/admin/contacts/web%3A{visitor}"),
            None,
        )
        .await;
    assert_eq!(status, 204);

    assert_eq!(
        say(&server, &token, json!({"id": "o2", "opened": true})).await,
        200
    );
    let again = collect(&server, &token, 2).await;
    let last_before = first[1]["seq"].as_u64().unwrap();
    assert!(
        again
            .iter()
            .all(|m| m["seq"].as_u64().unwrap() > last_before),
        "only the new conversation's messages: {again:?}"
    );
    assert!(
        again[0]["text"]
            .as_str()
            .unwrap()
            .contains("privacy policy")
    );
}

/// Where the browser test's tools are: `./scripts/test` installs Debian's chromium and
/// playwright-core (in tests/browser/node_modules) and sets ASSENT_TEST_CHROMIUM.
fn browser_tools() -> (String, std::path::PathBuf) {
    let chromium = std::env::var("ASSENT_TEST_CHROMIUM").expect(
        "ASSENT_TEST_CHROMIUM is not set: run ./scripts/test, which installs chromium and playwright-core",
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run ./scripts/test",
        dir.display()
    );
    (chromium, dir)
}

#[tokio::test]
async fn a_person_consents_in_a_real_browser() {
    let (chromium, dir) = browser_tools();
    let (_g, server) = server(&[]).await;
    let output = tokio::process::Command::new("node")
        .arg("consent.mjs")
        .arg(&server.base)
        .current_dir(&dir)
        .env("ASSENT_TEST_CHROMIUM", chromium)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser run failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log()
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let transcript: Vec<&str> = result["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(
        transcript[0].contains("https://example.com/privacy"),
        "{transcript:?}"
    );
    assert!(transcript.contains(&"AGREE & PROCEED"), "{transcript:?}");
    assert!(
        transcript.last().unwrap().starts_with("Thank you"),
        "{transcript:?}"
    );

    let visitor = result["visitor"].as_str().unwrap();
    let contact = server
        .eventually(&format!("/admin/contacts/web%3A{visitor}"), |b| {
            b["tags"].as_array().is_some_and(|t| !t.is_empty())
        })
        .await;
    assert_eq!(contact["tags"], json!(["Consent: Privacy"]), "{contact}");
}

#[tokio::test]
async fn the_web_chat_can_be_switched_off() {
    let unused = graph().await;
    let server = Server::start(&unused, &[], &["--no-web-chat"]).await;
    for path in ["/", "/widget.js"] {
        let status = server
            .http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = server.post("/webhooks/web", &[], "{}").await;
    assert_eq!(status, 404);
}

/// POST /web/session with `headers`; returns the status and the Retry-After header.
async fn ask_session(server: &Server, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let mut request = server.http.post(format!("{}/web/session", server.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (response.status().as_u16(), retry_after)
}

#[tokio::test]
async fn one_address_may_start_only_so_many_sessions_a_minute() {
    let (_unused, server) = server(&[("WEB_SESSIONS_PER_MINUTE", "3")]).await;
    for _ in 0..3 {
        assert_eq!(ask_session(&server, &[]).await, (201, None));
    }
    let (status, retry_after) = ask_session(&server, &[]).await;
    assert_eq!(status, 429);
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!(
        (1..=20).contains(&seconds),
        "one session every 20 s: {seconds}"
    );
    // A header the server was not told to trust changes nothing.
    let forwarded = [("x-forwarded-for", "198.51.100.7")];
    assert_eq!(ask_session(&server, &forwarded).await.0, 429);
}

#[tokio::test]
async fn behind_a_proxy_the_limit_follows_the_address_the_proxy_names() {
    let env = [
        ("WEB_SESSIONS_PER_MINUTE", "1"),
        ("WEB_CLIENT_ADDRESS_HEADER", "X-Forwarded-For"),
    ];
    let (_unused, server) = server(&env).await;
    // The last entry is the one the proxy added; what comes before is the client's word.
    let asked = [
        ("10.0.0.1", "198.51.100.7", 201),
        ("10.0.0.2", "198.51.100.7", 429),
        ("10.0.0.1", "198.51.100.8", 201),
    ];
    for (claimed, seen, expected) in asked {
        let forwarded = format!("{claimed}, {seen}");
        let headers = [("x-forwarded-for", forwarded.as_str())];
        assert_eq!(
            ask_session(&server, &headers).await.0,
            expected,
            "{forwarded}"
        );
    }
}
