//! The runtime over real parts: the embedded store on disk, the WhatsApp client against a
//! local Graph API sandbox, local timers, on a manual clock.

mod support;

use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use assent::channels::whatsapp::sandbox::{self, GraphSandbox, SentMessage};
use assent::channels::whatsapp::sign;
use assent::clock::{ManualClock, Timestamp};
use assent::contact::ContactId;
use assent::engine::TimerRef;
use assent::local::LocalApp;
use assent::ports::Appended;
use assent::runtime::{RuntimeConfig, WebhookRequest, WebhookResponse};

use support::{PHONE_NUMBER_ID, SECRET};

const WA_ID: &str = "4915112345678";

struct Setup {
    sandbox: GraphSandbox,
    clock: Arc<ManualClock>,
    dir: tempfile::TempDir,
    messages: u64,
}

impl Setup {
    async fn new() -> Setup {
        Setup {
            sandbox: GraphSandbox::graph("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap(),
            clock: Arc::new(ManualClock::starting_at(Timestamp(1_750_000_000_000))),
            dir: tempfile::tempdir().unwrap(),
            messages: 0,
        }
    }

    async fn open(&self) -> LocalApp {
        open_app(self.dir.path(), &self.sandbox, self.clock.clone()).await
    }

    fn body(&mut self, message: Value) -> Vec<u8> {
        self.messages += 1;
        let value = sandbox::message_webhook(
            PHONE_NUMBER_ID,
            WA_ID,
            "Zoë",
            &format!("wamid.{}", self.messages),
            1_750_000_000,
            message,
        );
        sandbox::meta_json(&value).into_bytes()
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

async fn open_app(dir: &Path, sandbox: &GraphSandbox, clock: Arc<ManualClock>) -> LocalApp {
    let config = RuntimeConfig {
        send_backoff: Duration::from_millis(10),
        ..RuntimeConfig::default()
    };
    let workflow = support::consent_workflow(300);
    LocalApp::open(dir, support::whatsapp(sandbox), clock, config, &workflow)
        .await
        .unwrap()
        .0
}

fn signed(body: &[u8]) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    headers.insert("x-hub-signature-256", sign(SECRET, body).parse().unwrap());
    WebhookRequest {
        method: Method::POST,
        query: None,
        headers,
        body: body.to_vec().into(),
    }
}

/// Accepts a signed body and waits until it is processed.
async fn post(app: &LocalApp, body: &[u8]) -> WebhookResponse {
    let response = app.accept_webhook("whatsapp", signed(body)).await;
    app.drain().await;
    response
}

fn texts(sent: &[SentMessage]) -> Vec<String> {
    sent.iter().map(|m| m.text().to_string()).collect()
}

fn agree() -> Value {
    sandbox::button_reply("agree", "AGREE & PROCEED")
}

#[tokio::test]
async fn a_provider_retry_is_applied_once() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    let body = s.body(sandbox::text("Hello"));
    let first = post(&app, &body).await;
    let again = post(&app, &body).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(again.body.contains(r#""duplicates":1"#), "{}", again.body);
    let sent = s.sandbox.sent();
    assert_eq!(
        sent.len(),
        2,
        "one link and one question, not two of each: {:?}",
        texts(&sent)
    );
    assert_eq!(app.pending_timers(), 1);
}

#[tokio::test]
async fn the_whole_accept_flow_over_the_graph_api() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    post(&app, &s.body(sandbox::text("Hello"))).await;
    let sent = s.sandbox.sent();
    assert_eq!(
        sent[0].phone_number_id(),
        PHONE_NUMBER_ID,
        "answers from the number the contact wrote to"
    );
    assert_eq!(sent[0].to(), WA_ID);
    assert_eq!(sent[0].authorization.as_deref(), Some("Bearer token"));
    assert!(sent[0].text().contains("https://example.com/privacy"));
    assert_eq!(
        sent[1].options(),
        vec![("agree".to_string(), "AGREE & PROCEED".to_string())]
    );
    post(&app, &s.body(agree())).await;
    let sent = s.sandbox.sent();
    assert_eq!(sent.len(), 3);
    assert!(sent[2].text().starts_with("Thank you"));
    assert_eq!(
        app.pending_timers(),
        0,
        "the answered question's timer is cancelled"
    );
}

#[tokio::test]
async fn a_restart_keeps_the_wait_and_its_answer_still_counts() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    post(&app, &s.body(sandbox::text("Hello"))).await;
    drop(app);
    let app = s.open().await;
    assert_eq!(app.pending_timers(), 1, "the timer was restored from disk");
    post(&app, &s.body(agree())).await;
    assert!(
        texts(&s.sandbox.sent())
            .last()
            .unwrap()
            .starts_with("Thank you")
    );
}

#[tokio::test]
async fn a_restart_keeps_timers_and_overdue_ones_fire_at_once() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    post(&app, &s.body(sandbox::text("Hello"))).await;
    drop(app);
    s.advance(301); // the deadline passes while nothing runs
    let app = s.open().await;
    assert_eq!(app.fire_due_timers().await, 1);
    app.drain().await;
    let sent = s.sandbox.sent();
    assert_eq!(sent.len(), 3);
    assert!(
        sent[2]
            .text()
            .starts_with("We did not get your answer in time")
    );
    assert_eq!(app.pending_timers(), 0);
    // The answer arrives after the timeout was applied: a new conversation starts.
    post(&app, &s.body(agree())).await;
    let sent = s.sandbox.sent();
    assert_eq!(sent.len(), 5, "{:?}", texts(&sent));
    assert!(sent[3].text().contains("privacy policy"));
}

#[tokio::test]
async fn timers_wait_for_their_deadline() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    post(&app, &s.body(sandbox::text("Hello"))).await;
    s.advance(299);
    assert_eq!(app.fire_due_timers().await, 0, "not yet");
    s.advance(1);
    assert_eq!(app.fire_due_timers().await, 1);
}

#[tokio::test]
async fn a_stale_timeout_changes_nothing() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    post(&app, &s.body(sandbox::text("Hello"))).await;
    post(&app, &s.body(agree())).await;
    let contact = ContactId::new("whatsapp", WA_ID);
    let timer = TimerRef {
        run: 1,
        wait_seq: 1,
    };
    let fired = app.runtime().fire_timeout(&contact, timer).await.unwrap();
    assert_eq!(fired, Appended::New);
    let again = app.runtime().fire_timeout(&contact, timer).await.unwrap();
    assert_eq!(
        again,
        Appended::Duplicate,
        "a second fire of the same timer is deduplicated"
    );
    app.runtime().run_steps(&contact).await.unwrap();
    assert_eq!(
        s.sandbox.sent().len(),
        3,
        "no failure message after acceptance"
    );
}

#[tokio::test]
async fn a_question_the_channel_refuses_starts_no_timeout() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    // The link goes through; the question is refused for good (undeliverable).
    s.sandbox.fail_in(
        2,
        400,
        json!({"error": {"message": "Message undeliverable", "code": 131026}}),
    );
    post(&app, &s.body(sandbox::text("Hello"))).await;
    assert_eq!(s.sandbox.sent().len(), 1);
    assert_eq!(
        app.pending_timers(),
        0,
        "no timeout for a question nobody received"
    );
    // The run ended and the conversation closed: the next message starts over.
    post(&app, &s.body(sandbox::text("Hello?"))).await;
    assert_eq!(s.sandbox.sent().len(), 3);
}

#[tokio::test]
async fn a_rate_limited_send_is_retried_and_sent_once() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    s.sandbox.fail_next(
        429,
        json!({"error": {"message": "rate limit", "code": 130429}}),
    );
    s.sandbox.fail_in(2, 503, json!({}));
    post(&app, &s.body(sandbox::text("Hello"))).await;
    let sent = s.sandbox.sent();
    assert_eq!(
        s.sandbox.requests(),
        4,
        "two failures, then link and question"
    );
    assert_eq!(texts(&sent).len(), 2);
    assert!(sent[0].text().contains("privacy policy"));
    assert_eq!(sent[1].options().len(), 1);
}

#[tokio::test]
async fn an_outage_longer_than_the_retries_keeps_the_message_for_later() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    for n in 1..=3 {
        s.sandbox.fail_in(n, 500, json!({}));
    }
    let response = post(&app, &s.body(sandbox::text("Hello"))).await;
    assert_eq!(
        response.status,
        StatusCode::OK,
        "accepted even though the channel is down"
    );
    drop(app);
    // A restart finds the outbox and performs it.
    let app = s.open().await;
    app.drain().await;
    let sent = s.sandbox.sent();
    assert_eq!(sent.len(), 2, "{:?}", texts(&sent));
    assert!(sent[0].text().contains("privacy policy"));
}

/// The contact writes again while the channel is down and the question not sent: those
/// messages are not (invalid) answers to a question they never saw. Once the channel is
/// back the question goes out once, and the contact's tap answers it.
#[tokio::test]
async fn messages_during_an_outage_do_not_answer_the_unsent_question() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    for n in 1..=3 {
        s.sandbox.fail_in(n, 503, json!({}));
    }
    post(&app, &s.body(sandbox::text("Hello"))).await;
    assert!(s.sandbox.sent().is_empty(), "the channel is down");
    post(&app, &s.body(sandbox::text("Hello?"))).await;
    let sent = s.sandbox.sent();
    assert_eq!(texts(&sent).len(), 2, "{:?}", texts(&sent));
    assert_eq!(sent[1].options().len(), 1, "the question, asked once");
    post(&app, &s.body(agree())).await;
    let sent = s.sandbox.sent();
    assert_eq!(sent.len(), 3, "{:?}", texts(&sent));
    assert!(sent[2].text().starts_with("Thank you"));
}

#[tokio::test]
async fn after_an_outage_the_doorbell_tries_again_by_itself() {
    let mut s = Setup::new().await;
    let app = s.open().await;
    for n in 1..=3 {
        s.sandbox.fail_in(n, 502, json!({}));
    }
    post(&app, &s.body(sandbox::text("Hello"))).await;
    let sent = s.sandbox.wait_for(2, Duration::from_secs(30)).await;
    assert_eq!(
        texts(&sent).len(),
        2,
        "link and question once the channel is back"
    );
    app.drain().await; // the worker arms the timer right after the send
    assert_eq!(app.pending_timers(), 1);
}

/// Erasure while the question is on its way: the commit that would arm its timer finds the
/// record gone, so no timer is left to fire later and recreate the contact.
#[tokio::test]
async fn erasing_a_contact_while_its_question_is_being_sent_leaves_no_timer() {
    use tower::ServiceExt;
    let mut s = Setup::new().await;
    let app = s.open().await.with_admin("admin".into());
    s.sandbox.answer_after(Duration::from_secs(1));
    let hello = s.body(sandbox::text("Hello"));
    app.accept_webhook("whatsapp", signed(&hello)).await;
    // The question has reached the provider, which has not answered yet.
    assert_eq!(
        s.sandbox.wait_for(2, Duration::from_secs(10)).await.len(),
        2
    );
    let contact = ContactId::new("whatsapp", WA_ID);
    let erase = axum::http::Request::delete(format!("/admin/contacts/{contact}"))
        .header("authorization", "Bearer admin")
        .body(axum::body::Body::empty())
        .unwrap();
    let erased = app.router().oneshot(erase).await.unwrap();
    assert_eq!(erased.status(), StatusCode::NO_CONTENT);
    app.drain().await;
    assert_eq!(app.pending_timers(), 0, "no timer for an erased contact");
    let show = axum::http::Request::get(format!("/admin/contacts/{contact}"))
        .header("authorization", "Bearer admin")
        .body(axum::body::Body::empty())
        .unwrap();
    let shown = app.router().oneshot(show).await.unwrap();
    assert_eq!(
        shown.status(),
        StatusCode::NOT_FOUND,
        "the record stays gone"
    );
}
