//! End to end: the real `assent-local` binary, webhooks signed as Meta signs them (compact
//! JSON, non-ASCII escaped as \uXXXX, HMAC-SHA256 over those exact bytes), and a local
//! HTTP server standing in for the Graph API.

mod support;

use serde_json::json;
use std::time::Duration;

use assent::channels::whatsapp::sandbox;
use support::*;

#[tokio::test]
async fn accept_and_four_invalid_answers_end_to_end() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;

    // Contact A writes with non-ASCII and emoji, then taps the button.
    let a = "4915112345678";
    assert_eq!(
        server
            .send(
                a,
                "wamid.a1",
                sandbox::text("Olá, José! 😀 Ich möchte bestellen")
            )
            .await
            .0,
        200
    );
    let sent = wait_for_to(&graph, a, 2).await;
    assert!(
        sent[0].text().contains("https://example.com/privacy"),
        "{:?}",
        sent[0].body
    );
    assert_eq!(
        sent[1].body["interactive"]["action"]["buttons"][0]["reply"]["title"],
        "AGREE & PROCEED"
    );
    assert_eq!(sent[1].phone_number_id(), PNID);
    assert_eq!(
        sent[1].authorization.as_deref(),
        Some(format!("Bearer {ACCESS_TOKEN}").as_str())
    );
    server
        .send(
            a,
            "wamid.a2",
            sandbox::button_reply("agree", "AGREE & PROCEED"),
        )
        .await;
    let sent = wait_for_to(&graph, a, 3).await;
    assert!(
        sent[2].text().starts_with("Thank you"),
        "{:?}",
        sent[2].body
    );

    // Contact B answers four times with something else.
    let b = "447700900123";
    server.send(b, "wamid.b0", sandbox::text("hi")).await;
    wait_for_to(&graph, b, 2).await;
    for (i, answer) in ["yes", "ok", "sí, claro", "👍"].iter().enumerate() {
        server
            .send(b, &format!("wamid.b{}", i + 1), sandbox::text(answer))
            .await;
        wait_for_to(&graph, b, 3 + i).await;
    }
    let sent = sent_to(&graph, b);
    let questions = sent
        .iter()
        .filter(|m| m.body["type"] == "interactive")
        .count();
    assert_eq!(questions, 4, "1 ask + 3 re-asks");
    assert!(
        sent.last()
            .unwrap()
            .text()
            .starts_with("We could not record your consent")
    );
    assert_eq!(sent.len(), 6);

    let log = server.log();
    for secret in [
        SECRET,
        ACCESS_TOKEN,
        "Ich möchte",
        "bestellen",
        "sí, claro",
        a,
        b,
    ] {
        assert!(!log.contains(secret), "the log must not contain {secret:?}");
    }
    assert!(
        log.contains("\"happened\":\"answered\""),
        "one structured line per transition"
    );
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn a_question_reported_undelivered_later_ends_the_run_as_a_delivery_failure() {
    let graph = graph().await;
    // A long timeout: only the failure report can end this run within the test.
    let server = Server::signed(&graph, &["--set", "timeout_seconds=3600"]).await;
    let a = "4915112349999";
    server.send(a, "wamid.x1", sandbox::text("hi")).await;
    wait_for_to(&graph, a, 2).await;
    // The sandbox numbers what it accepts: the question was the second.
    let question = "wamid.sandbox.2";
    let post_status = |status: &'static str, id: &'static str| {
        let body = sandbox::meta_json(&sandbox::status_webhook(PNID, a, id, status)).into_bytes();
        let signature = meta_signature(&body);
        let server = &server;
        async move { server.post_raw(body, Some(signature)).await }
    };
    // Statuses out of order (read before delivered) for the link change nothing.
    for status in ["read", "delivered", "sent"] {
        assert_eq!(post_status(status, "wamid.sandbox.1").await.0, 200);
    }
    let (status, body) = post_status("failed", question).await;
    assert_eq!(status, 200);
    assert!(body.contains(r#""failures":1"#), "{body}");
    assert!(
        body.contains(r#""accepted":0"#),
        "a report is not a message: {body}"
    );
    let ledger = server
        .eventually(&format!("/admin/contacts/whatsapp%3A{a}/consent"), |b| {
            b["records"].as_array().is_some_and(|r| r.len() == 2)
        })
        .await;
    let failed = &ledger["records"][1];
    assert_eq!(failed["kind"], "delivery_failed", "{ledger}");
    assert!(
        failed["payload"].as_str().unwrap().contains("131047"),
        "{failed}"
    );
    let contact = server
        .eventually(&format!("/admin/contacts/whatsapp%3A{a}"), |b| {
            b["conversation"].is_null()
        })
        .await;
    assert!(contact["conversation"].is_null(), "closed: {contact}");
    // Meta sends a status more than once: the second changes nothing.
    post_status("failed", question).await;
    assert_eq!(
        sent_to(&graph, a).len(),
        2,
        "no failure message to someone unreachable"
    );
}

#[tokio::test]
async fn silence_times_out_end_to_end() {
    let graph = graph().await;
    let server = Server::signed(&graph, &["--set", "timeout_seconds=1"]).await;
    let c = "5511987654321";
    server.send(c, "wamid.c1", sandbox::text("oi")).await;
    let sent = wait_for_to(&graph, c, 3).await;
    assert_eq!(sent.len(), 3, "link, question, timeout message");
    assert!(
        sent[2]
            .text()
            .starts_with("We did not get your answer in time")
    );
    // The late tap opens a new conversation.
    server
        .send(
            c,
            "wamid.c2",
            sandbox::button_reply("agree", "AGREE & PROCEED"),
        )
        .await;
    let sent = wait_for_to(&graph, c, 5).await;
    assert!(sent[3].text().contains("privacy policy"));
}

#[tokio::test]
async fn bad_requests_are_refused_and_store_nothing() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    let d = "4930123456789";
    let body = sandbox::meta_json(&sandbox::message_webhook(
        PNID,
        d,
        "D",
        "wamid.d1",
        1_750_000_000,
        sandbox::text("hi"),
    ))
    .into_bytes();

    assert_eq!(
        server.post_raw(body.clone(), None).await.0,
        401,
        "missing signature"
    );
    assert_eq!(
        server
            .post_raw(body.clone(), Some("sha256=00ff".into()))
            .await
            .0,
        401,
        "wrong signature"
    );
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    assert_eq!(
        server
            .post_raw(tampered, Some(meta_signature(&body)))
            .await
            .0,
        401,
        "signature over other bytes"
    );
    let malformed = b"{\"object\":\"whatsapp_business_account\",\"entry\":[".to_vec();
    let signature = meta_signature(&malformed);
    assert_eq!(
        server.post_raw(malformed, Some(signature)).await.0,
        400,
        "malformed JSON"
    );
    let huge = vec![b' '; (1 << 20) + 1];
    let signature = meta_signature(&huge);
    assert_eq!(
        server.post_raw(huge, Some(signature)).await.0,
        413,
        "over 1 MiB"
    );

    // None of that reached a conversation: the first accepted message opens one now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(graph.sent().is_empty(), "nothing was stored or sent");
    let (status, reply) = server
        .post_raw(body.clone(), Some(meta_signature(&body)))
        .await;
    assert_eq!(status, 200, "{reply}");
    assert!(reply.contains("\"accepted\":1"), "{reply}");
    assert_eq!(wait_for_to(&graph, d, 2).await.len(), 2);

    let verify = |token: &str| {
        format!(
            "{}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
            server.base
        )
    };
    let ok = server.http.get(verify(VERIFY_TOKEN)).send().await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    assert_eq!(
        server
            .http
            .get(verify("wrong"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    assert_eq!(server.post_raw(b"{}".to_vec(), None).await.0, 401);
    let unknown = server
        .http
        .post(format!("{}/webhooks/carrier-pigeon", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
}

#[tokio::test]
async fn a_channel_without_its_secret_is_not_served_unless_insecure_dev() {
    let graph = graph().await;
    let server = Server::start(&graph, &[("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN)], &[]).await;
    let body = sandbox::meta_json(&sandbox::message_webhook(
        PNID,
        "1",
        "E",
        "wamid.e1",
        1,
        sandbox::text("hi"),
    ))
    .into_bytes();
    assert_eq!(server.post_raw(body.clone(), None).await.0, 404);
    assert!(server.log().contains("WHATSAPP_APP_SECRET is not set"));

    let insecure = Server::start(
        &graph,
        &[("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN)],
        &["--insecure-dev"],
    )
    .await;
    assert_eq!(insecure.post_raw(body, None).await.0, 200);
    assert!(
        insecure.log().contains("INSECURE"),
        "says so on every start"
    );
}

#[tokio::test]
async fn sigterm_finishes_accepted_work_before_exiting() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    // A slow Graph API, so that the signal surely comes while the work is under way.
    graph.answer_after(Duration::from_millis(400));
    let f = "61412345678";
    assert_eq!(
        server.send(f, "wamid.f1", sandbox::text("hello")).await.0,
        200
    );
    graph.wait_for(1, PATIENCE).await;
    assert_eq!(sent_to(&graph, f).len(), 1, "the signal comes mid-work");
    let status = server.stop().await;
    assert!(status.success(), "{status:?}");
    let sent = sent_to(&graph, f);
    assert_eq!(
        sent.len(),
        2,
        "the accepted message was processed before exit"
    );
}

#[test]
fn workflow_files_with_problems_are_refused_with_step_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    let definition = json!({"spec_version": 1, "id": "bad", "name": "Bad", "trigger": {"type": "conversation_opened"},
        "steps": [{"id": "ask", "type": "ask_question", "text": "Agree?", "options": [{"id": "y", "label": "Yes", "next": "nowhere"}],
                   "timeout_seconds": 60, "on_invalid": "ask", "on_timeout": "ask"}]});
    std::fs::write(&path, definition.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_assent-local"))
        .arg("--workflow")
        .arg(&path)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("step `ask`, field `options[0].next`: unknown step `nowhere`"),
        "{stderr}"
    );
}

/// Huge pages doubled the webhook ack p99 under load (docs/PERFORMANCE.md, "A seventh period").
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_server_runs_without_transparent_huge_pages() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    let Some(thp) = status.lines().find(|l| l.starts_with("THP_enabled:")) else {
        // Kernels before 5.0 do not report it; there is nothing to check against.
        eprintln!("this kernel does not report THP_enabled");
        return;
    };
    assert_eq!(thp.split_whitespace().nth(1), Some("0"), "{thp}");
}

#[path = "../../../shared/tests/support/mangle.rs"]
#[allow(dead_code)]
mod mangle;

/// Bodies signed with the app secret, so past the signature check, with any text or
/// button in them and then mangled: each gets 200 or 400 (never a 5xx, which Meta would
/// retry for days), whatever was read reaches the engine and is run without a panic, and
/// the server keeps serving.
#[test]
fn signed_but_odd_bodies_get_an_answer_and_stop_nothing() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let (runtime, graph, server) = blocking_server();
    let text = || {
        prop_oneof![
            "\\PC{0,40}",
            Just("AGREE & PROCEED".to_string()),
            (0usize..6000).prop_map(|n| format!("{}{}", mangle::MARK, "é".repeat(n))),
        ]
    };
    let message = prop_oneof![
        text().prop_map(|t| sandbox::text(&t)),
        (text(), text()).prop_map(|(id, title)| sandbox::button_reply(&id, &title)),
    ];
    // Few contacts, so that most messages answer a question (a contact's first message
    // opens the conversation); the mangling is left out of some cases, so that every
    // kind of odd content is read.
    let strategy = (
        0u32..10,
        message,
        proptest::collection::vec(mangle::mangle(), 0..3),
    );
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicU32::new(0);
    let outcome = runner.run(&strategy, |(contact, message, mangles)| {
        let n = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut body = sandbox::message_webhook(
            PNID,
            &format!("49151000{contact:05}"),
            "José Ñandú",
            &format!("wamid.odd.{n}"),
            1_750_000_000,
            message,
        );
        for m in &mangles {
            mangle::apply_to_json(&mut body, m);
        }
        let mut bytes = sandbox::meta_json(&body).into_bytes();
        for m in &mangles {
            mangle::apply_to_bytes(&mut bytes, m);
        }
        let signature = meta_signature(&bytes);
        let (status, answer) = runtime.block_on(server.post_raw(bytes, Some(signature)));
        prop_assert!(status == 200 || status == 400, "{}: {}", status, answer);
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    // The steps run after the answers: give them a moment, then ask again.
    std::thread::sleep(Duration::from_millis(500));
    let (status, _) =
        runtime.block_on(server.admin(reqwest::Method::GET, "/admin/workflows", None));
    assert_eq!(status, 200, "still serving");
    assert!(!server.log().contains("panicked"), "a panic in the log");
    assert!(
        !graph.sent().is_empty(),
        "the bodies that were read reached the engine"
    );
}
