//! Faults through the real `assent-local` binary: the process killed while it works, and a
//! provider that takes the message but never answers. Afterwards nothing accepted is lost,
//! no decision is taken twice, and the only repeats are sends whose outcome was unknown.

mod support;

use std::time::Duration;

use assent::channels::whatsapp::sandbox::{self, GraphSandbox, SentMessage};
use support::*;

fn contact(i: usize) -> String {
    format!("4915100{i:05}")
}

/// The ledger's record kinds for a WhatsApp contact, once it has `at_least` records
/// (records are performed after the sends decided with them).
async fn ledger_kinds(server: &Server, wa_id: &str, at_least: usize) -> Vec<String> {
    let ledger = server
        .eventually(
            &format!("/admin/contacts/whatsapp%3A{wa_id}/consent"),
            |l| l["records"].as_array().is_some_and(|r| r.len() >= at_least),
        )
        .await;
    assert_eq!(ledger["chain_valid"], true, "{ledger}");
    ledger["records"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Each text once, in the order first seen: what the contact was told, whatever was
/// sent again (a crash repeats the outbox from its last committed point).
fn distinct(texts: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for text in texts {
        if !out.contains(&text) {
            out.push(text);
        }
    }
    out
}

/// Everything sent to `wa_id` once the question is among it (repeats may come first).
async fn wait_until_asked(graph: &GraphSandbox, wa_id: &str) -> Vec<SentMessage> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let sent = sent_to(graph, wa_id);
        let asked = sent.iter().any(|m| !m.options().is_empty());
        if asked || tokio::time::Instant::now() > deadline {
            return sent;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn killed_while_working_loses_nothing_and_decides_nothing_twice() {
    const N: usize = 40;
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    // A slow Graph API: when the process dies, sends are in flight for sure.
    graph.answer_after(Duration::from_millis(300));

    // Every hello is acknowledged: from then on it must not be lost.
    let posts: Vec<_> = (0..N)
        .map(|i| {
            let request =
                server.signed_request(&contact(i), &format!("wamid.k{i}"), sandbox::text("hi"));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for post in posts {
        assert_eq!(post.await.unwrap().unwrap(), 200);
    }
    // Killed while sends are in flight: some reached the Graph API, none is answered yet.
    graph.wait_for(N / 2, PATIENCE).await;
    let server = server.crash_and_restart().await;
    graph.answer_after(Duration::ZERO);

    let mut repeats = 0;
    for i in 0..N {
        let wa_id = contact(i);
        let sent = wait_until_asked(&graph, &wa_id).await;
        let texts: Vec<String> = sent.iter().map(|m| m.text()).collect();
        assert!(texts.len() >= 2, "{wa_id} got {texts:?}\n{}", server.log());
        repeats += texts.len() - 2;
        let seen = distinct(texts);
        assert_eq!(seen.len(), 2, "{wa_id}: {seen:?}");
        assert!(seen[0].contains("https://example.com/privacy"), "{seen:?}");
        assert!(
            sent.last()
                .unwrap()
                .options()
                .iter()
                .any(|(id, _)| id == "agree")
        );
    }
    // One decision each: asked once, whatever was sent again.
    for i in 0..N {
        assert_eq!(
            ledger_kinds(&server, &contact(i), 1).await,
            ["asked"],
            "{}",
            contact(i)
        );
    }

    // The conversations go on after the restart.
    for i in 0..N {
        server
            .send(
                &contact(i),
                &format!("wamid.t{i}"),
                sandbox::button_reply("agree", "AGREE & PROCEED"),
            )
            .await;
    }
    for i in 0..N {
        let sent = wait_for_to(&graph, &contact(i), 3).await;
        assert!(
            sent.last().unwrap().text().starts_with("Thank you"),
            "{}",
            contact(i)
        );
        // A repeated decision would show here as a second `asked`.
        assert_eq!(
            ledger_kinds(&server, &contact(i), 2).await,
            ["asked", "accepted"]
        );
    }
    // Repeats are only sends the crash left unconfirmed; say how many there were.
    println!(
        "messages sent again after the crash: {repeats} (of {})",
        2 * N
    );
    // Sends were in flight when it died, so some were repeated; never more than all.
    assert!(
        repeats > 0,
        "the crash came after all work was done: it tested nothing"
    );
    assert!(repeats <= N * 2, "more repeats than messages in flight");
}

#[tokio::test]
async fn a_send_whose_answer_never_comes_is_retried_and_the_flow_goes_on() {
    let graph = graph().await;
    let server = Server::signed(&graph, &[]).await;
    let a = "4915112300001";
    // The Graph API takes the link but answers after the client's 10 s timeout.
    graph.stall_next(Duration::from_secs(15));
    server.send(a, "wamid.s1", sandbox::text("hi")).await;
    let sent = wait_for_to(&graph, a, 3).await;
    let texts: Vec<String> = sent.iter().map(|m| m.text()).collect();
    // At least once: the link twice (its first send's outcome was unknown), then the question.
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert_eq!(texts[0], texts[1]);
    assert!(sent[2].options().iter().any(|(id, _)| id == "agree"));
    server
        .send(
            a,
            "wamid.s2",
            sandbox::button_reply("agree", "AGREE & PROCEED"),
        )
        .await;
    let sent = wait_for_to(&graph, a, 4).await;
    assert!(sent[3].text().starts_with("Thank you"));
    assert_eq!(ledger_kinds(&server, a, 2).await, ["asked", "accepted"]);
    let log = server.log();
    assert!(log.contains("send failed, retrying"), "the retry is logged");
}
