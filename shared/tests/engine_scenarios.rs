//! The consent flow through the pure engine, on a manual clock: every branch of
//! Request Consent: Privacy, timer semantics, and the step cap.

use std::collections::BTreeMap;

use assent::clock::Timestamp;
use assent::contact::{Address, ContactId};
use assent::engine::{
    self, ArmTimer, Catalog, ConsentKind, ConsentRecord, ContactState, Content, Effect, Event,
    Happened, Inbound, OutboundMessage, RunOutcome, TimerRef, Transition, ledger,
};
use assent::workflow::{Workflow, template};

/// One contact talking to the engine. Effects are "performed" at once: sends are
/// recorded, a question's timer is armed as soon as it is sent.
struct Chat {
    state: ContactState,
    catalog: Catalog,
    now: Timestamp,
    sent: Vec<OutboundMessage>,
    armed: Vec<(TimerRef, Timestamp)>,
    cancelled: Vec<TimerRef>,
    records: Vec<ConsentRecord>,
    messages: u32,
}

const START: Timestamp = Timestamp(1_750_000_000_000);

fn consent_template(params: &[(&str, &str)]) -> Workflow {
    let mut given: BTreeMap<String, String> = BTreeMap::from([(
        "policy_url".to_string(),
        "https://example.com/privacy".to_string(),
    )]);
    for (k, v) in params {
        given.insert(k.to_string(), v.to_string());
    }
    template::build(template::REQUEST_CONSENT_PRIVACY, &given).expect("template builds")
}

impl Chat {
    fn new(workflow: Workflow) -> Chat {
        let mut catalog = Catalog::default();
        let id = workflow.id.clone();
        catalog.insert(1, workflow);
        catalog.activate(&id, 1);
        Chat {
            state: ContactState::new(ContactId::new("whatsapp", "4915112345678")),
            catalog,
            now: START,
            sent: Vec::new(),
            armed: Vec::new(),
            cancelled: Vec::new(),
            records: Vec::new(),
            messages: 0,
        }
    }

    fn consent() -> Chat {
        Chat::new(consent_template(&[]))
    }

    fn apply(&mut self, event: Event) -> Transition {
        let applied = engine::apply(&mut self.state, &event, self.now, &self.catalog);
        for effect in applied.effects {
            match effect {
                Effect::Send {
                    message, then_arm, ..
                } => {
                    self.sent.push(message);
                    if let Some(arm) = then_arm {
                        self.arm(arm);
                    }
                }
                Effect::ArmTimer(arm) => self.arm(arm),
                Effect::CancelTimer(timer) => self.cancelled.push(timer),
                Effect::Record(record) => self.records.push(*record),
            }
        }
        applied.transition
    }

    fn arm(&mut self, arm: ArmTimer) {
        let deadline = self
            .now
            .plus(std::time::Duration::from_secs(arm.after_seconds));
        self.armed.push((arm.timer, deadline));
    }

    /// The contact's next message, from `name`, written to the business number `via`.
    fn message(&mut self, content: Content, via: &str, name: &str) -> Inbound {
        self.messages += 1;
        Inbound {
            from: Address {
                channel: "whatsapp".into(),
                user_id: "4915112345678".into(),
                via: Some(via.into()),
            },
            message_id: format!("wamid.{}", self.messages),
            name: Some(name.into()),
            content,
            sent_at: Some(self.now),
        }
    }

    fn receive(&mut self, content: Content) -> Transition {
        let message = self.message(content, "PNID", "Zoë");
        self.apply(Event::Inbound(message))
    }

    fn say(&mut self, text: &str) -> Transition {
        self.receive(Content::Text { text: text.into() })
    }

    /// A message the runtime applies while the question is still in the outbox, from
    /// another display name and to another business number.
    fn say_before_the_question(&mut self, text: &str) -> Transition {
        let message = self.message(Content::Text { text: text.into() }, "PNID2", "Zoë B.");
        self.apply(Event::InboundBeforeQuestion(message))
    }

    fn tap(&mut self, id: &str, label: &str) -> Transition {
        self.receive(Content::Choice {
            id: id.into(),
            label: label.into(),
        })
    }

    /// Moves the clock past the latest timer's deadline and fires it.
    fn time_out(&mut self) -> Transition {
        let (timer, deadline) = *self.armed.last().expect("a timer is armed");
        self.now = deadline;
        self.apply(Event::Timeout(timer))
    }

    fn texts(&self) -> Vec<&str> {
        self.sent
            .iter()
            .map(|m| match m {
                OutboundMessage::Text { text } | OutboundMessage::Question { text, .. } => {
                    text.as_str()
                }
            })
            .collect()
    }

    fn questions(&self) -> usize {
        self.sent
            .iter()
            .filter(|m| matches!(m, OutboundMessage::Question { .. }))
            .count()
    }

    fn tagged(&self) -> bool {
        self.state.profile.tags.contains("Consent: Privacy")
    }

    fn outcome(&self) -> Option<RunOutcome> {
        self.state.latest_run().and_then(|r| r.outcome)
    }
}

#[test]
fn opening_sends_the_policy_link_then_the_question_with_its_button() {
    let mut chat = Chat::consent();
    let t = chat.say("Hello");
    assert_eq!(t.happened, Happened::ConversationOpened);
    assert_eq!(t.to.as_deref(), Some("request_consent"));
    assert!(chat.texts()[0].contains("https://example.com/privacy"));
    match &chat.sent[1] {
        OutboundMessage::Question { choices, .. } => {
            assert_eq!(choices.len(), 1);
            assert_eq!(
                (choices[0].id.as_str(), choices[0].label.as_str()),
                ("agree", "AGREE & PROCEED")
            );
        }
        other => panic!("expected the question, got {other:?}"),
    }
    assert_eq!(chat.armed.len(), 1, "one timeout, armed with the question");
    assert_eq!(
        chat.armed[0].1,
        START.plus(std::time::Duration::from_secs(300))
    );
    assert!(!chat.tagged());
    assert_eq!(chat.state.profile.name.as_deref(), Some("Zoë"));
}

fn assert_accepted(chat: &Chat) {
    assert!(chat.tagged(), "accepted contacts carry the tag");
    assert_eq!(chat.outcome(), Some(RunOutcome::Completed));
    assert!(chat.texts().last().unwrap().starts_with("Thank you"));
    assert!(
        chat.state.conversation.is_some(),
        "the conversation stays open for the business"
    );
    assert_eq!(
        chat.cancelled.len(),
        chat.questions(),
        "every answered question's timer is cancelled"
    );
}

#[test]
fn accept_by_tapping_the_button() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    let t = chat.tap("agree", "AGREE & PROCEED");
    assert_eq!(t.happened, Happened::Answered);
    assert_eq!(t.outcome, Some(RunOutcome::Completed));
    assert_accepted(&chat);
}

#[test]
fn accept_by_typing_the_label_in_any_case_and_spacing() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    assert_eq!(chat.say("  agree &proceed ").happened, Happened::Answered);
    assert_accepted(&chat);
}

#[test]
fn accept_by_option_number() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    assert_eq!(chat.say("1").happened, Happened::Answered);
    assert_accepted(&chat);
}

#[test]
fn up_to_three_invalid_answers_re_ask_and_acceptance_still_counts() {
    for invalid in 1..=3 {
        let mut chat = Chat::consent();
        chat.say("Hello");
        for _ in 0..invalid {
            assert_eq!(chat.say("yes").happened, Happened::AnswerInvalid);
            assert!(!chat.tagged());
        }
        assert_eq!(chat.questions(), 1 + invalid, "each invalid answer re-asks");
        chat.tap("agree", "AGREE & PROCEED");
        assert_accepted(&chat);
        assert_eq!(chat.state.latest_run().unwrap().asks as usize, 1 + invalid);
    }
}

#[test]
fn a_fourth_invalid_answer_fails_and_closes() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    for _ in 0..3 {
        chat.say("maybe");
    }
    let t = chat.say("no");
    assert_eq!(t.outcome, Some(RunOutcome::FailedInvalid));
    assert_eq!(chat.questions(), 4, "1 ask + 3 re-asks, never more");
    assert!(
        chat.texts()
            .last()
            .unwrap()
            .starts_with("We could not record your consent")
    );
    assert!(chat.state.conversation.is_none(), "closed");
    assert!(!chat.tagged());
}

#[test]
fn media_is_an_invalid_answer() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    let t = chat.receive(Content::Other {
        kind: "sticker".into(),
    });
    assert_eq!(t.happened, Happened::AnswerInvalid);
}

#[test]
fn silence_times_out_fails_and_closes_without_consent() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    let t = chat.time_out();
    assert_eq!(t.happened, Happened::TimedOut);
    assert_eq!(t.outcome, Some(RunOutcome::FailedTimeout));
    assert!(
        chat.texts()
            .last()
            .unwrap()
            .starts_with("We did not get your answer in time")
    );
    assert!(chat.state.conversation.is_none());
    assert!(!chat.tagged(), "silence is never consent");
}

#[test]
fn every_re_ask_gets_a_fresh_timeout_and_the_old_one_goes_stale() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    chat.now = chat.now.plus(std::time::Duration::from_secs(200));
    chat.say("what?");
    assert_eq!(chat.armed.len(), 2);
    let (first, first_deadline) = chat.armed[0];
    let (second, second_deadline) = chat.armed[1];
    assert_ne!(first, second, "a new wait");
    assert_eq!(
        chat.cancelled,
        vec![first],
        "the first wait's timer is cancelled"
    );
    assert_eq!(
        second_deadline,
        chat.now.plus(std::time::Duration::from_secs(300))
    );
    // The first timer fires anyway (cancel is best-effort): nothing happens.
    chat.now = first_deadline;
    let sent_before = chat.sent.len();
    assert_eq!(
        chat.apply(Event::Timeout(first)).happened,
        Happened::StaleTimeout
    );
    assert_eq!(chat.sent.len(), sent_before);
    assert!(
        chat.state.active_run().is_some(),
        "still waiting for the answer"
    );
    // The contact can still accept within the second window.
    chat.tap("agree", "AGREE & PROCEED");
    assert_accepted(&chat);
}

#[test]
fn a_timeout_after_the_answer_is_stale() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    chat.tap("agree", "AGREE & PROCEED");
    let (timer, _) = chat.armed[0];
    let sent_before = chat.sent.len();
    assert_eq!(
        chat.apply(Event::Timeout(timer)).happened,
        Happened::StaleTimeout
    );
    assert_eq!(chat.sent.len(), sent_before);
    assert_accepted(&chat);
}

#[test]
fn an_answer_after_the_timeout_opens_a_new_conversation() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    chat.time_out();
    let t = chat.tap("agree", "AGREE & PROCEED");
    assert_eq!(
        t.happened,
        Happened::ConversationOpened,
        "the late tap starts over"
    );
    assert_eq!(chat.state.conversation.as_ref().unwrap().id, 2);
    assert_eq!(chat.state.active_run().unwrap().id, 2);
    assert!(
        !chat.tagged(),
        "a late tap is not consent to the closed question"
    );
    assert!(chat.texts()[chat.sent.len() - 2].contains("privacy policy"));
}

#[test]
fn messages_after_acceptance_change_nothing() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    chat.tap("agree", "AGREE & PROCEED");
    let sent = chat.sent.len();
    assert_eq!(chat.say("thanks").happened, Happened::NotWaiting);
    assert_eq!(chat.sent.len(), sent);
}

#[test]
fn a_delivery_failure_ends_the_run_and_closes() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    let run = chat.state.active_run().unwrap().id;
    let t = chat.apply(Event::DeliveryFailed {
        run,
        reason: "131026".into(),
    });
    assert_eq!(t.outcome, Some(RunOutcome::FailedDelivery));
    assert!(chat.state.conversation.is_none());
    assert_eq!(
        chat.apply(Event::DeliveryFailed {
            run,
            reason: "again".into()
        })
        .happened,
        Happened::StaleDeliveryFailure
    );
}

#[test]
fn a_failure_reported_after_the_hand_off_cancels_the_armed_timeout() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    let (timer, _) = chat.armed[0];
    let t = chat.apply(Event::DeliveryFailed {
        run: timer.run,
        reason: "status failed, error 131047".into(),
    });
    assert_eq!(t.outcome, Some(RunOutcome::FailedDelivery));
    assert_eq!(chat.cancelled, vec![timer]);
    // Were it to fire anyway, it is stale.
    assert_eq!(
        chat.apply(Event::Timeout(timer)).happened,
        Happened::StaleTimeout
    );
}

#[test]
fn a_report_no_run_is_known_for_changes_nothing() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    let sent = chat.sent.len();
    let t = chat.apply(Event::DeliveryReported {
        provider_message_id: "wamid.unknown".into(),
        reason: "status failed".into(),
    });
    assert_eq!(t.happened, Happened::StaleDeliveryFailure);
    assert!(chat.state.active_run().is_some());
    assert_eq!(chat.sent.len(), sent);
}

#[test]
fn template_parameters_change_limits_and_texts() {
    let mut chat = Chat::new(consent_template(&[
        ("max_jumps", "1"),
        ("timeout_seconds", "60"),
        ("tag", "GDPR ok"),
    ]));
    chat.say("Hello");
    assert_eq!(
        chat.armed[0].1,
        START.plus(std::time::Duration::from_secs(60))
    );
    chat.say("x");
    chat.say("y");
    assert_eq!(chat.questions(), 2);
    assert_eq!(chat.outcome(), Some(RunOutcome::FailedInvalid));
}

#[test]
fn a_run_stays_on_the_version_it_started_with() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    // Version 2 changes the question text; the running conversation keeps version 1.
    let v2 = consent_template(&[("option_label", "I AGREE")]);
    chat.catalog.insert(2, v2);
    chat.catalog.activate("request-consent-privacy", 2);
    assert_eq!(
        chat.tap("agree", "AGREE & PROCEED").happened,
        Happened::Answered
    );
    assert_eq!(chat.state.latest_run().unwrap().workflow_version, 1);
    // Once closed, the next conversation starts on version 2.
    chat.state.conversation = None;
    chat.say("Hello again");
    assert_eq!(chat.state.active_run().unwrap().workflow_version, 2);
}

fn custom(steps: serde_json::Value) -> Workflow {
    Workflow::from_value(serde_json::json!({
        "spec_version": 1, "id": "custom", "name": "Custom",
        "trigger": {"type": "conversation_opened"}, "steps": steps
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn wait_branch_and_fields_steer_the_run() {
    let workflow = custom(serde_json::json!([
        {"id": "mark", "type": "update_contact_field", "field": "source", "value": "whatsapp", "next": "pause"},
        {"id": "pause", "type": "wait", "seconds": 30, "next": "route"},
        {"id": "route", "type": "branch", "cases": [
            {"when": {"all": [{"field_equals": {"field": "source", "value": "whatsapp"}}, {"lacks_tag": "vip"}]}, "next": "regular"}
        ], "else": "vip"},
        {"id": "regular", "type": "send_message", "text": "regular"},
        {"id": "vip", "type": "send_message", "text": "vip"}
    ]));
    let mut chat = Chat::new(workflow);
    chat.say("hi");
    assert!(chat.sent.is_empty(), "waiting");
    assert_eq!(
        chat.say("are you there?").happened,
        Happened::NotWaiting,
        "messages do not end a wait"
    );
    assert_eq!(chat.time_out().happened, Happened::DelayOver);
    assert_eq!(chat.texts(), vec!["regular"]);
    assert_eq!(
        chat.state.profile.fields.get("source").map(String::as_str),
        Some("whatsapp")
    );
    assert_eq!(chat.outcome(), Some(RunOutcome::Completed));
}

#[test]
fn no_event_runs_more_steps_than_the_cap() {
    let steps: Vec<serde_json::Value> = (0..150)
        .map(|i| serde_json::json!({"id": format!("s{i}"), "type": "send_message", "text": "x", "next": format!("s{}", i + 1)}))
        .chain([serde_json::json!({"id": "s150", "type": "close_conversation"})])
        .collect();
    let mut chat = Chat::new(custom(serde_json::Value::Array(steps)));
    let t = chat.say("hi");
    assert_eq!(t.outcome, Some(RunOutcome::StepLimit));
    assert_eq!(
        chat.sent.len(),
        engine::MAX_STEPS_PER_EVENT as usize,
        "at most the cap of steps ran"
    );
}

fn kinds(chat: &Chat) -> Vec<ConsentKind> {
    chat.records.iter().map(|r| r.kind).collect()
}

#[test]
fn the_ledger_records_the_question_and_the_accepting_answer() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    chat.tap("agree", "AGREE & PROCEED");
    assert_eq!(
        kinds(&chat),
        vec![ConsentKind::Asked, ConsentKind::Accepted]
    );
    let accepted = &chat.records[1];
    assert_eq!(
        accepted.policy_url.as_deref(),
        Some("https://example.com/privacy")
    );
    assert!(
        accepted
            .question
            .as_deref()
            .unwrap()
            .starts_with("Do you agree")
    );
    assert_eq!(accepted.options, vec!["AGREE & PROCEED"]);
    assert_eq!(accepted.provider_message_id.as_deref(), Some("wamid.2"));
    assert_eq!(accepted.payload.as_deref(), Some("agree"));
    assert_eq!(
        (accepted.workflow_id.as_deref(), accepted.workflow_version),
        (Some("request-consent-privacy"), Some(1))
    );
    assert_eq!(
        (accepted.channel.as_str(), accepted.channel_user.as_str()),
        ("whatsapp", "4915112345678")
    );
    assert_eq!(ledger::verify(&chat.records), Ok(()));
    assert_eq!(chat.state.ledger.seq, 2);
}

#[test]
fn the_ledger_records_invalid_answers_and_timeouts_and_never_consent_from_silence() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    for answer in ["yes", "ok", "fine", "no"] {
        chat.say(answer);
    }
    let expected: Vec<ConsentKind> = (0..4)
        .flat_map(|_| [ConsentKind::Asked, ConsentKind::InvalidAnswer])
        .collect();
    assert_eq!(kinds(&chat), expected);
    assert_eq!(chat.records[1].text.as_deref(), Some("yes"));

    let mut chat = Chat::consent();
    chat.say("Hello");
    chat.time_out();
    assert_eq!(
        kinds(&chat),
        vec![ConsentKind::Asked, ConsentKind::TimedOut]
    );
    assert_eq!(ledger::verify(&chat.records), Ok(()));
}

#[test]
fn a_delivery_failure_of_the_question_is_recorded() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    let run = chat.state.active_run().unwrap().id;
    chat.apply(Event::DeliveryFailed {
        run,
        reason: "131026 undeliverable".into(),
    });
    assert_eq!(
        kinds(&chat),
        vec![ConsentKind::Asked, ConsentKind::DeliveryFailed]
    );
}

#[test]
fn stop_withdraws_consent_removes_the_tag_and_confirms() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    chat.tap("agree", "AGREE & PROCEED");
    assert!(chat.tagged());
    let t = chat.say(" stop ");
    assert_eq!(t.happened, Happened::Withdrawn);
    assert!(!chat.tagged());
    assert_eq!(
        kinds(&chat),
        vec![
            ConsentKind::Asked,
            ConsentKind::Accepted,
            ConsentKind::Withdrawn
        ]
    );
    assert_eq!(chat.records[2].text.as_deref(), Some(" stop "));
    assert!(
        chat.texts()
            .last()
            .unwrap()
            .starts_with("You have withdrawn your consent")
    );
    assert!(chat.state.conversation.is_none());
    assert_eq!(ledger::verify(&chat.records), Ok(()));
    // The next message asks again.
    assert_eq!(chat.say("Hi again").happened, Happened::ConversationOpened);
}

#[test]
fn revoke_during_the_question_ends_the_run_without_a_record_to_withdraw() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    assert_eq!(chat.say("REVOKE").happened, Happened::Withdrawn);
    assert_eq!(chat.outcome(), Some(RunOutcome::Withdrawn));
    assert_eq!(
        kinds(&chat),
        vec![ConsentKind::Asked],
        "nothing was given, so nothing is withdrawn"
    );
    assert!(
        chat.texts()
            .last()
            .unwrap()
            .starts_with("You have withdrawn")
    );
}

#[test]
fn a_message_before_the_question_is_no_answer_but_a_withdrawal_still_counts() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    let sent = chat.sent.len();
    let early = chat.say_before_the_question("agree & proceed");
    assert_eq!(early.happened, Happened::BeforeQuestion);
    assert_eq!(chat.sent.len(), sent, "nothing sent, nothing re-asked");
    assert!(
        !chat.tagged(),
        "typed before the question existed: no consent"
    );
    let profile = &chat.state.profile;
    assert_eq!(
        profile.name.as_deref(),
        Some("Zoë B."),
        "who wrote is noted"
    );
    assert_eq!(
        profile.address.as_ref().and_then(|a| a.via.as_deref()),
        Some("PNID2")
    );
    chat.tap("agree", "AGREE & PROCEED");
    assert_accepted(&chat);

    let mut chat = Chat::consent();
    chat.say("Hello");
    assert_eq!(
        chat.say_before_the_question("STOP").happened,
        Happened::Withdrawn
    );
    assert_eq!(chat.outcome(), Some(RunOutcome::Withdrawn));
}

#[test]
fn the_admin_can_withdraw_too() {
    let mut chat = Chat::consent();
    chat.say("Hello");
    chat.tap("agree", "AGREE & PROCEED");
    chat.apply(Event::Withdraw {
        requested_by: "admin".into(),
    });
    assert!(!chat.tagged());
    let withdrawn = chat.records.last().unwrap();
    assert_eq!(
        (withdrawn.kind, withdrawn.requested_by.as_deref()),
        (ConsentKind::Withdrawn, Some("admin"))
    );
}
