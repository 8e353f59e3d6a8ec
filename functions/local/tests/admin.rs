//! The admin API over HTTP against the real `assent-local`: every route, its errors, and
//! the whole consent story from acceptance to export.

mod support;

use redb::ReadableTable;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

use assent::channels::whatsapp::sandbox;
use support::*;

fn agree() -> Value {
    sandbox::button_reply("agree", "AGREE & PROCEED")
}

/// A contact accepts: hello, the link and question, the tap, the thanks.
async fn accept(
    server: &Server,
    graph: &assent::channels::whatsapp::sandbox::GraphSandbox,
    wa_id: &str,
) {
    server
        .send(wa_id, &format!("wamid.{wa_id}.1"), sandbox::text("Hello"))
        .await;
    wait_for_to(graph, wa_id, 2).await;
    server
        .send(wa_id, &format!("wamid.{wa_id}.2"), agree())
        .await;
    assert_eq!(wait_for_to(graph, wa_id, 3).await.len(), 3);
}

async fn eventually(server: &Server, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    server.eventually(path, done).await
}

const SEGMENT: &str = "/admin/contacts?tag=Consent%3A%20Privacy";

#[tokio::test]
async fn every_admin_route_needs_the_token() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    for (method, path) in assent::admin::ROUTES {
        let path = path.replace("{id}", "whatsapp:1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let url = format!("{}{path}", server.base);
        let none = server
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(
            none.status().as_u16(),
            401,
            "{method} {path} without a token"
        );
        let wrong = server
            .http
            .request(method.clone(), &url)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap();
        assert_eq!(
            wrong.status().as_u16(),
            401,
            "{method} {path} with a wrong token"
        );
    }
    // A path that is no route is not found, whoever asks.
    for path in ["/nope", "/admin/nope"] {
        let (status, body) = answer(server.http.get(format!("{}{path}", server.base))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("Not Found")),
            "{path}"
        );
    }
}

/// A request's status and its body as JSON (`Null` if it is not JSON).
async fn answer(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn what_is_refused_before_any_handler_still_answers_in_json() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    let draft = format!("{}/admin/workflows/mine", server.base);
    let put = || server.http.put(&draft).bearer_auth(ADMIN_TOKEN);
    let cases = [
        (
            put()
                .header("content-type", "application/json")
                .body(r#"{"steps":"#),
            400,
            "parse the request body as JSON",
        ),
        (put().body("{}"), 415, "Content-Type: application/json"),
        (
            server
                .http
                .get(format!("{}/admin/contacts?tag=x&limit=many", server.base))
                .bearer_auth(ADMIN_TOKEN),
            400,
            "limit",
        ),
        (
            server
                .http
                .post(format!("{}/webhooks/whatsapp", server.base))
                .body(vec![b' '; assent::http::MAX_BODY_BYTES + 1]),
            413,
            "length limit exceeded",
        ),
        (
            server
                .http
                .delete(format!("{}/webhooks/whatsapp", server.base)),
            405,
            "Method Not Allowed",
        ),
    ];
    for (request, status, says) in cases {
        let (got, body) = answer(request).await;
        assert_eq!(got, status, "{body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{status}: {body}");
    }
}

#[tokio::test]
async fn without_a_token_configured_the_admin_api_is_off() {
    let graph = graph().await;
    let server = Server::start(
        &graph,
        &[
            ("WHATSAPP_APP_SECRET", SECRET),
            ("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN),
        ],
        &[],
    )
    .await;
    let (status, _) = server.admin(Method::GET, SEGMENT, None).await;
    assert_eq!(status, 404);
    assert!(server.log().contains("admin API off"));
}

#[tokio::test]
async fn the_whole_consent_story() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    let a = "4915112340001";
    let id = format!("whatsapp:{a}");
    accept(&server, &graph, a).await;

    // The segment lists them, with their channel identity.
    let segment = eventually(&server, SEGMENT, |b| {
        b["contacts"].as_array().is_some_and(|c| !c.is_empty())
    })
    .await;
    let listed = &segment["contacts"][0];
    assert_eq!(listed["id"], id);
    assert_eq!(
        (listed["channel"].as_str(), listed["channel_user"].as_str()),
        (Some("whatsapp"), Some(a))
    );
    assert_eq!(listed["name"], "José Ñandú");
    assert_eq!(listed["tags"], json!(["Consent: Privacy"]));

    let (status, contact) = server
        .admin_json(Method::GET, &format!("/admin/contacts/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(contact["conversation"]["run"]["outcome"], "completed");

    // The ledger: asked and accepted, with the exact question, policy and message id.
    let ledger = eventually(&server, &format!("/admin/contacts/{id}/consent"), |b| {
        b["records"].as_array().is_some_and(|r| r.len() >= 2)
    })
    .await;
    let records = ledger["records"].as_array().unwrap();
    assert_eq!(
        records
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["asked", "accepted"]
    );
    assert_eq!(
        records[1]["question"],
        "Do you agree to our privacy policy and to us processing your data as it describes?"
    );
    assert_eq!(records[1]["policy_url"], "https://example.com/privacy");
    assert_eq!(records[1]["provider_message_id"], format!("wamid.{a}.2"));
    assert_eq!(ledger["chain_valid"], true);

    // STOP: out of the segment, withdrawn in the ledger, told so.
    server
        .send(a, &format!("wamid.{a}.3"), sandbox::text("STOP"))
        .await;
    let segment = eventually(&server, SEGMENT, |b| {
        b["contacts"].as_array().is_some_and(|c| c.is_empty())
    })
    .await;
    assert_eq!(segment["contacts"], json!([]));
    let ledger = eventually(&server, &format!("/admin/contacts/{id}/consent"), |b| {
        b["records"].as_array().is_some_and(|r| r.len() == 3)
    })
    .await;
    assert_eq!(ledger["records"][2]["kind"], "withdrawn");
    assert_eq!(ledger["chain_valid"], true);
    assert!(
        wait_for_to(&graph, a, 4).await[3]
            .text()
            .starts_with("You have withdrawn your consent")
    );

    // The export has all of it.
    let (status, jsonl) = server
        .admin(
            Method::GET,
            "/admin/consent/export?format=jsonl&since=2020-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let kinds: Vec<String> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["asked", "accepted", "withdrawn"]);
    let (_, csv) = server
        .admin(Method::GET, "/admin/consent/export?format=csv", None)
        .await;
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("recorded_at,contact,seq,kind,"));
    assert_eq!(rows.len(), 4);
    assert!(rows[2].contains(",accepted,") && rows[2].contains(&format!("wamid.{a}.2")));
    let (_, later) = server
        .admin(
            Method::GET,
            "/admin/consent/export?since=2999-01-01T00:00:00Z",
            None,
        )
        .await;
    assert!(later.is_empty(), "since filters");

    // The report counts it.
    let (status, report) = server
        .admin_json(
            Method::GET,
            "/admin/reports/consent?workflow=request-consent-privacy",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let v1 = &report["versions"][0];
    assert_eq!(
        (
            v1["version"].as_u64(),
            v1["conversations"].as_u64(),
            v1["asked"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(
        (
            v1["accepted"].as_u64(),
            v1["withdrawals"].as_u64(),
            v1["jumps"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert!(v1["median_seconds_to_consent"].as_f64().is_some());
}

#[tokio::test]
async fn the_report_counts_invalid_answers_jumps_and_timeouts() {
    let graph = graph().await;
    let server = Server::signed(&graph, &["--set", "timeout_seconds=1"]).await;
    let (b, c) = ("4915112340002", "4915112340003");
    server.send(b, "wamid.b.0", sandbox::text("hi")).await;
    wait_for_to(&graph, b, 2).await;
    for i in 1..=4 {
        server
            .send(b, &format!("wamid.b.{i}"), sandbox::text("nope"))
            .await;
        wait_for_to(&graph, b, 2 + i).await;
    }
    server.send(c, "wamid.c.0", sandbox::text("hi")).await;
    wait_for_to(&graph, c, 3).await; // link, question, timeout message
    let report = eventually(
        &server,
        "/admin/reports/consent?workflow=request-consent-privacy",
        |r| r["versions"][0]["timeouts"] == 1,
    )
    .await;
    let v = &report["versions"][0];
    assert_eq!(v["conversations"], 2);
    assert_eq!(v["asked"], 5, "4 asks for B, 1 for C");
    assert_eq!(v["invalid_answers"], 4);
    assert_eq!(v["jumps"], 3);
    assert_eq!(v["failed_after_invalid"], 1);
    assert_eq!(v["timeouts"], 1);
    assert_eq!(v["accepted"], 0);
    assert_eq!(v["median_seconds_to_consent"], Value::Null);
}

#[tokio::test]
async fn the_admin_can_withdraw_and_erase_and_the_ledger_stays() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    let d = "4915112340004";
    let id = format!("whatsapp:{d}");
    accept(&server, &graph, d).await;
    let (status, _) = server
        .admin(
            Method::POST,
            &format!("/admin/contacts/{id}/consent/withdraw"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let ledger = eventually(&server, &format!("/admin/contacts/{id}/consent"), |b| {
        b["records"].as_array().is_some_and(|r| r.len() == 3)
    })
    .await;
    assert_eq!(ledger["records"][2]["requested_by"], "admin-api");
    assert!(
        wait_for_to(&graph, d, 4).await[3]
            .text()
            .starts_with("You have withdrawn")
    );

    let (status, _) = server
        .admin(Method::DELETE, &format!("/admin/contacts/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .admin(Method::GET, &format!("/admin/contacts/{id}"), None)
        .await;
    assert_eq!(status, 404, "the profile is gone");
    let (status, ledger) = server
        .admin_json(Method::GET, &format!("/admin/contacts/{id}/consent"), None)
        .await;
    assert_eq!(status, 200, "the ledger is kept as proof");
    assert_eq!(ledger["records"].as_array().unwrap().len(), 3);
    assert_eq!(ledger["chain_valid"], true);
}

#[tokio::test]
async fn unknown_contacts_are_404_and_bad_queries_400() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    for (method, path) in [
        (Method::GET, "/admin/contacts/whatsapp:0"),
        (Method::GET, "/admin/contacts/whatsapp:0/consent"),
        (Method::POST, "/admin/contacts/whatsapp:0/consent/withdraw"),
        (Method::DELETE, "/admin/contacts/whatsapp:0"),
        (Method::GET, "/admin/workflows/nope"),
        (Method::GET, "/admin/workflows/nope/versions"),
        (Method::POST, "/admin/workflows/nope/publish"),
    ] {
        assert_eq!(
            server.admin(method.clone(), path, None).await.0,
            404,
            "{method} {path}"
        );
    }
    for path in [
        "/admin/contacts",
        "/admin/consent/export?format=xml",
        "/admin/consent/export?since=yesterday",
        "/admin/reports/consent",
        "/admin/reports/consent?workflow=x&from=soon",
        // Times that used to panic the parser (a cut inside a character, arithmetic
        // overflow); with `panic = "abort"` that stopped the whole server.
        "/admin/consent/export?since=x%E2%82%AC12345",
        "/admin/consent/export?since=99999999999999999-01-01T00:00:00Z",
        "/admin/consent/export?since=10000-01-01T00:00:00Z",
        "/admin/reports/consent?workflow=x&from=2026-12-01T00:00:00%2B99999999999999999:00",
        "/admin/reports/consent?workflow=x&from=2026-12-01T00:00:00%2B24:00",
    ] {
        assert_eq!(server.admin(Method::GET, path, None).await.0, 400, "{path}");
    }
    let (status, _) = server
        .admin(
            Method::GET,
            "/admin/consent/export?since=2026-12-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, 200, "still serving");
}

#[tokio::test]
async fn segments_are_paginated() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    for n in 1..=3 {
        accept(&server, &graph, &format!("49151123500{n:02}")).await;
    }
    eventually(&server, &format!("{SEGMENT}&limit=10"), |b| {
        b["contacts"].as_array().is_some_and(|c| c.len() == 3)
    })
    .await;
    let (_, first) = server
        .admin_json(Method::GET, &format!("{SEGMENT}&limit=2"), None)
        .await;
    assert_eq!(first["contacts"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().expect("a next token");
    let (_, second) = server
        .admin_json(Method::GET, &format!("{SEGMENT}&limit=2&next={next}"), None)
        .await;
    assert_eq!(second["contacts"].as_array().unwrap().len(), 1);
    assert_eq!(second["next"], Value::Null);
    let mut all: Vec<Value> = first["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["contacts"].as_array().unwrap())
        .map(|c| c["id"].clone())
        .collect();
    all.dedup();
    assert_eq!(all.len(), 3, "no one twice, no one missed");
}

#[tokio::test]
async fn workflows_are_drafted_validated_published_and_versioned() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    let (status, created) = server
        .admin_json(Method::POST, "/admin/workflows", Some(json!({"template": "request-consent-privacy",
            "params": {"policy_url": "https://example.com/v2", "question": "Version two: do you agree?"}})))
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["id"], "request-consent-privacy");

    let (status, bad) = server
        .admin_json(Method::POST, "/admin/workflows", Some(json!({"template": "request-consent-privacy", "params": {"option_label": "I AGREE TO EVERYTHING YOU SAY"}})))
        .await;
    assert_eq!(status, 422, "{bad}");

    let mut definition = created["draft"].clone();
    definition["steps"][1]["options"][0]["next"] = json!("nowhere");
    let (status, problems) = server
        .admin_json(
            Method::PUT,
            "/admin/workflows/request-consent-privacy",
            Some(definition),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(problems["problems"][0]["step"], "request_consent");
    assert_eq!(problems["problems"][0]["field"], "options[0].next");

    let (status, _) = server
        .admin_json(
            Method::PUT,
            "/admin/workflows/request-consent-privacy",
            Some(created["draft"].clone()),
        )
        .await;
    assert_eq!(status, 200);
    let (status, published) = server
        .admin_json(
            Method::POST,
            "/admin/workflows/request-consent-privacy/publish",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(published["version"], 2, "version 1 was published at start");
    let (_, versions) = server
        .admin_json(
            Method::GET,
            "/admin/workflows/request-consent-privacy/versions",
            None,
        )
        .await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert_eq!(versions["active_version"], 2);
    let (_, list) = server
        .admin_json(Method::GET, "/admin/workflows", None)
        .await;
    assert_eq!(list["workflows"][0]["latest_version"], 2);
    let (_, show) = server
        .admin_json(
            Method::GET,
            "/admin/workflows/request-consent-privacy",
            None,
        )
        .await;
    assert_eq!(show["latest_version"], 2);

    // New conversations start on version 2.
    let e = "4915112340005";
    server.send(e, "wamid.e.1", sandbox::text("Hello")).await;
    let sent = wait_for_to(&graph, e, 2).await;
    assert!(sent[0].text().contains("https://example.com/v2"));
    assert_eq!(sent[1].text(), "Version two: do you agree?");
}

#[tokio::test]
async fn editing_a_stored_ledger_record_breaks_the_chain() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    let f = "4915112340006";
    let id = format!("whatsapp:{f}");
    accept(&server, &graph, f).await;
    eventually(&server, &format!("/admin/contacts/{id}/consent"), |b| {
        b["records"].as_array().is_some_and(|r| r.len() == 2)
    })
    .await;
    let data = server.data_dir();
    // Stop, rewrite "accepted" as a different answer in the store file, start again.
    let server = server
        .restart_with(|| {
            let db = redb::Database::create(data.join("assent.redb")).unwrap();
            let table: redb::TableDefinition<(&str, u64), &[u8]> =
                redb::TableDefinition::new("ledger");
            let txn = db.begin_write().unwrap();
            {
                let mut ledger = txn.open_table(table).unwrap();
                let mut record: Value = {
                    let stored = ledger.get((id.as_str(), 2)).unwrap().unwrap();
                    serde_json::from_slice(stored.value()).unwrap()
                };
                record["text"] = json!("I DO NOT AGREE");
                ledger
                    .insert(
                        (id.as_str(), 2),
                        serde_json::to_vec(&record).unwrap().as_slice(),
                    )
                    .unwrap();
            }
            txn.commit().unwrap();
        })
        .await;
    let (_, ledger) = server
        .admin_json(Method::GET, &format!("/admin/contacts/{id}/consent"), None)
        .await;
    assert_eq!(ledger["chain_valid"], false);
    assert_eq!(ledger["chain_break"]["seq"], 2);
}

#[tokio::test]
async fn an_erased_contact_stays_erased_when_its_timer_comes_due() {
    let graph = graph().await;
    let server = Server::signed(&graph, &["--set", "timeout_seconds=1"]).await;
    let g = "4915112340007";
    let id = format!("whatsapp:{g}");
    server.send(g, "wamid.g.1", sandbox::text("Hello")).await;
    wait_for_to(&graph, g, 2).await;
    // Once the question is out and its timer armed, nothing is in flight.
    eventually(&server, &format!("/admin/contacts/{id}"), |c| {
        c["pending_effects"] == 0
    })
    .await;
    let (status, _) = server
        .admin(Method::DELETE, &format!("/admin/contacts/{id}"), None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(
        server
            .admin(Method::GET, &format!("/admin/contacts/{id}"), None)
            .await
            .0,
        404
    );
    tokio::time::sleep(Duration::from_millis(2500)).await; // past the 1 s timeout
    let after = server
        .admin(Method::GET, &format!("/admin/contacts/{id}"), None)
        .await;
    if after.0 != 404 {
        eprintln!(
            "LOG {}\nBODY {}",
            server
                .log()
                .lines()
                .filter(|l| !l.contains("webhook accepted"))
                .collect::<Vec<_>>()
                .join("\n"),
            after.1
        );
    }
    assert_eq!(after.0, 404);
    assert_eq!(
        sent_to(&graph, g).len(),
        2,
        "no timeout message to an erased contact"
    );
}

/// `text` as a URL path segment or query value: every byte but the unreserved ones
/// percent-encoded.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Whatever ids, queries and bodies a client with the token sends, every admin route
/// answers with a status under 500 and the server keeps serving. One query time cut
/// inside a character used to panic, and with `panic = "abort"` stop the whole server.
#[test]
fn odd_admin_requests_get_an_answer_and_stop_nothing() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let (runtime, _graph, server) = blocking_server();
    let text = || "\\PC{0,24}";
    let keys = prop::sample::select(vec![
        "tag", "limit", "next", "format", "since", "workflow", "from", "to",
    ]);
    let strategy = (
        0..assent::admin::ROUTES.len(),
        text(),
        proptest::collection::vec((keys, text()), 0..4),
        proptest::option::of(text()),
    );
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&strategy, |(route, id, query, body)| {
        let (method, path) = assent::admin::ROUTES[route];
        let mut url = path.replace("{id}", &encode(&id));
        let query: Vec<String> = query
            .iter()
            .map(|(key, value)| format!("{key}={}", encode(value)))
            .collect();
        if !query.is_empty() {
            url = format!("{url}?{}", query.join("&"));
        }
        let body = body.map(|b| serde_json::from_str(&b).unwrap_or(Value::String(b)));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, answer) = runtime.block_on(server.admin(method.clone(), &url, body));
        prop_assert!(status < 500, "{} {}: {} {}", method, url, status, answer);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    let (status, _) = runtime.block_on(server.admin(Method::GET, "/admin/workflows", None));
    assert_eq!(status, 200, "still serving");
}
