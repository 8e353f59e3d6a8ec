//! One contract for every store, run against the embedded store and, over the AWS wire,
//! DynamoDB in the local emulator; and races between two executors on one contact.

mod support;

use std::sync::Arc;
use std::time::Duration;

use assent::channels::whatsapp::sandbox::GraphSandbox;
use assent::clock::{ManualClock, Timestamp};
use assent::contact::{Address, ContactId};
use assent::engine::{Content, Inbound, TimerRef};
use assent::ports::{
    Appended, Base, ContactRecord, DeliveryReport, InboxItem, StateStore, Store, StoreError, Timers,
};
use assent::runtime::{Runtime, RuntimeError, StepsRun};
use assent::store::EmbeddedStore;
use assent::timers::LocalTimers;

const T0: Timestamp = Timestamp(1_750_000_000_000);

fn contact() -> ContactId {
    ContactId::new("whatsapp", &support::unique("49151"))
}

fn message(contact: &ContactId, id: &str, content: Content) -> Inbound {
    let user = contact.as_str().trim_start_matches("whatsapp:").to_string();
    Inbound {
        from: Address {
            channel: "whatsapp".into(),
            user_id: user,
            via: Some(support::PHONE_NUMBER_ID.into()),
        },
        message_id: id.into(),
        name: None,
        content,
        sent_at: None,
    }
}

fn text(contact: &ContactId, id: &str, text: &str) -> InboxItem {
    InboxItem::inbound(
        message(contact, id, Content::Text { text: text.into() }),
        T0,
    )
}

async fn contract(store: Arc<dyn Store>) {
    deduplicates_and_keeps_arrival_order(store.as_ref()).await;
    commits_check_the_version(store.as_ref()).await;
    consumed_items_stay_deduplicated(store.as_ref()).await;
    publishing_is_versioned_and_idempotent(store.as_ref()).await;
}

async fn deduplicates_and_keeps_arrival_order(store: &dyn Store) {
    let c = contact();
    assert_eq!(
        store.append(&c, text(&c, "m2", "first")).await.unwrap(),
        Appended::New
    );
    assert_eq!(
        store.append(&c, text(&c, "m1", "second")).await.unwrap(),
        Appended::New
    );
    assert_eq!(
        store.append(&c, text(&c, "m2", "first")).await.unwrap(),
        Appended::Duplicate
    );
    let loaded = store.load(&c).await.unwrap();
    assert!(loaded.record.is_none());
    let keys: Vec<_> = loaded
        .inbox
        .iter()
        .map(|(_, item)| item.key.as_str())
        .collect();
    // Same arrival time: order is still stable, and both are there exactly once.
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&"msg:m1") && keys.contains(&"msg:m2"));
    let later = InboxItem {
        received_at: T0.plus(Duration::from_millis(5)),
        ..text(&c, "m0", "third")
    };
    store.append(&c, later).await.unwrap();
    let loaded = store.load(&c).await.unwrap();
    assert_eq!(
        loaded.inbox.last().unwrap().1.key,
        "msg:m0",
        "later arrivals come later"
    );
}

async fn commits_check_the_version(store: &dyn Store) {
    let c = contact();
    let mut record = ContactRecord::new(c.clone());
    let v1 = store
        .commit(&c, &record, &Base::default(), &[])
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    record.state.profile.name = Some("Zoë".into());
    let v2 = store.commit(&c, &record, &v1, &[]).await.unwrap();
    assert_eq!(v2.version, 2);
    let stale = store.commit(&c, &record, &v1, &[]).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict)),
        "a commit on an old version loses"
    );
    let stale = store.commit(&c, &record, &Base::default(), &[]).await;
    assert!(
        matches!(stale, Err(StoreError::Conflict)),
        "so does a first commit when one exists"
    );
    let loaded = store.load(&c).await.unwrap();
    assert_eq!(loaded.base.version, 2);
    assert_eq!(
        loaded.record.unwrap().state.profile.name.as_deref(),
        Some("Zoë")
    );
}

async fn consumed_items_stay_deduplicated(store: &dyn Store) {
    let c = contact();
    store.append(&c, text(&c, "a", "x")).await.unwrap();
    store.append(&c, text(&c, "b", "y")).await.unwrap();
    let loaded = store.load(&c).await.unwrap();
    let consumed: Vec<_> = loaded.inbox.iter().map(|(id, _)| id.clone()).collect();
    let base = store
        .commit(&c, &ContactRecord::new(c.clone()), &loaded.base, &consumed)
        .await
        .unwrap();
    assert!(
        store.load(&c).await.unwrap().inbox.is_empty(),
        "consumed items are not pending"
    );
    assert_eq!(
        store.append(&c, text(&c, "a", "x")).await.unwrap(),
        Appended::Duplicate,
        "a late retry is still a duplicate"
    );
    store.append(&c, text(&c, "c", "z")).await.unwrap();
    let loaded = store.load(&c).await.unwrap();
    assert_eq!(loaded.inbox.len(), 1);
    assert_eq!(loaded.inbox[0].1.key, "msg:c");
    // Committing on top keeps the earlier ones processed.
    let ids: Vec<_> = loaded.inbox.iter().map(|(id, _)| id.clone()).collect();
    store
        .commit(
            &c,
            &ContactRecord::new(c.clone()),
            &Base {
                version: base.version,
                ..loaded.base
            },
            &ids,
        )
        .await
        .unwrap();
    assert!(store.load(&c).await.unwrap().inbox.is_empty());
}

async fn publishing_is_versioned_and_idempotent(store: &dyn Store) {
    let v1 = store
        .publish(&support::consent_workflow(300), T0)
        .await
        .unwrap();
    let again = store
        .publish(&support::consent_workflow(300), T0)
        .await
        .unwrap();
    let v2 = store
        .publish(&support::consent_workflow(60), T0)
        .await
        .unwrap();
    assert_eq!(again.version, v1.version, "same content, same version");
    assert_eq!(v2.version, v1.version + 1);
    let all = store.published().await.unwrap();
    assert!(
        all.iter().any(|p| p.version == v1.version) && all.iter().any(|p| p.version == v2.version)
    );
    assert_eq!(
        all.iter()
            .find(|p| p.version == v1.version)
            .unwrap()
            .workflow()
            .unwrap(),
        support::consent_workflow(300)
    );
}

/// Runs steps until there is nothing left to do, waiting out a busy executor.
async fn settle(runtime: &Runtime, contact: &ContactId) {
    for _ in 0..200 {
        match runtime.run_steps(contact).await {
            Ok(StepsRun {
                events_applied: 0,
                effects_performed: 0,
            }) => return,
            Ok(_) | Err(RuntimeError::Busy) | Err(RuntimeError::Contended(_)) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("steps did not settle");
}

struct Race {
    sandbox: GraphSandbox,
    a: Arc<Runtime>,
    b: Arc<Runtime>,
    store: Arc<dyn Store>,
}

impl Race {
    async fn new(store: Arc<dyn Store>, timers: [Arc<dyn Timers>; 2]) -> Race {
        let sandbox = support::sandbox().await;
        let clock = Arc::new(ManualClock::starting_at(T0));
        let [ta, tb] = timers;
        let a = support::runtime(
            store.clone(),
            ta,
            support::whatsapp(&sandbox),
            clock.clone(),
        )
        .await;
        let b = support::runtime(store.clone(), tb, support::whatsapp(&sandbox), clock).await;
        Race {
            sandbox,
            a,
            b,
            store,
        }
    }

    async fn both(&self, contact: &ContactId) {
        let _ = tokio::join!(self.a.run_steps(contact), self.b.run_steps(contact));
        settle(&self.a, contact).await;
    }
}

async fn two_executors_apply_each_event_once(race: Race) {
    let c = contact();
    race.store
        .append(&c, text(&c, "hello", "Hello"))
        .await
        .unwrap();
    race.both(&c).await;
    let sent = race.sandbox.sent();
    assert_eq!(
        sent.len(),
        2,
        "link and question, each once: {:?}",
        sent.iter().map(|m| m.text()).collect::<Vec<_>>()
    );
    let record = race.store.load(&c).await.unwrap().record.unwrap();
    assert_eq!(
        record.state.counters.conversations, 1,
        "the message was applied once"
    );
    assert!(record.outbox.is_empty() && record.lease.is_none());
}

async fn an_answer_and_its_timeout_at_the_same_instant(race: Race) {
    let c = contact();
    race.store
        .append(&c, text(&c, "hello", "Hello"))
        .await
        .unwrap();
    settle(&race.a, &c).await;
    assert_eq!(race.sandbox.sent().len(), 2);
    let agree = InboxItem::inbound(
        message(
            &c,
            "agree",
            Content::Choice {
                id: "agree".into(),
                label: "AGREE & PROCEED".into(),
            },
        ),
        T0,
    );
    let timeout = InboxItem::timeout(
        TimerRef {
            run: 1,
            wait_seq: 1,
        },
        T0,
    );
    let (x, y) = tokio::join!(race.store.append(&c, agree), race.store.append(&c, timeout));
    assert_eq!((x.unwrap(), y.unwrap()), (Appended::New, Appended::New));
    race.both(&c).await;
    let sent: Vec<String> = race
        .sandbox
        .sent()
        .iter()
        .map(|m| m.text().to_string())
        .collect();
    let record = race.store.load(&c).await.unwrap().record.unwrap();
    if record.state.profile.tags.contains("Consent: Privacy") {
        // The answer came first; the timeout was stale.
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent[2].starts_with("Thank you"));
    } else {
        // The timeout came first; the answer then opened a new conversation.
        assert_eq!(sent.len(), 5, "{sent:?}");
        assert!(sent[2].starts_with("We did not get your answer in time"));
        assert_eq!(record.state.counters.conversations, 2);
    }
    assert!(record.outbox.is_empty());
}

/// Messages that come in a burst are applied together: the question that the first one
/// triggers is still in the outbox when the others are applied, so they cannot be answers
/// to it. It is asked once, and still waits for its answer.
async fn a_burst_of_messages_is_asked_once(race: Race) {
    let c = contact();
    for (id, words) in [("m1", "Hi"), ("m2", "I would like to order"), ("m3", "ok")] {
        race.store.append(&c, text(&c, id, words)).await.unwrap();
    }
    settle(&race.a, &c).await;
    let sent = race.sandbox.sent();
    let texts: Vec<String> = sent.iter().map(|m| m.text()).collect();
    assert_eq!(texts.len(), 2, "link and question, once: {texts:?}");
    let record = race.store.load(&c).await.unwrap().record.unwrap();
    let run = record.state.active_run().expect("the run goes on");
    assert!(run.wait.is_some(), "the question still waits");
    assert!(run.jumps.is_empty(), "no retry was spent: {:?}", run.jumps);
    let tap = InboxItem::inbound(
        message(
            &c,
            "m4",
            Content::Choice {
                id: "agree".into(),
                label: "AGREE & PROCEED".into(),
            },
        ),
        T0,
    );
    race.store.append(&c, tap).await.unwrap();
    settle(&race.a, &c).await;
    let sent = race.sandbox.sent();
    assert_eq!(sent.len(), 3);
    assert!(
        sent[2].text().starts_with("Thank you"),
        "{}",
        sent[2].text()
    );
}

/// Once the contact has seen the question, a quick second message answers it even while
/// the re-ask that the first (invalid) one caused is still in the outbox.
async fn answers_in_quick_succession_both_count(race: Race) {
    let c = contact();
    race.store.append(&c, text(&c, "m1", "Hi")).await.unwrap();
    settle(&race.a, &c).await;
    assert_eq!(race.sandbox.sent().len(), 2, "link and question");
    for (id, words) in [("m2", "yes"), ("m3", "agree & proceed")] {
        race.store.append(&c, text(&c, id, words)).await.unwrap();
    }
    settle(&race.a, &c).await;
    let record = race.store.load(&c).await.unwrap().record.unwrap();
    assert!(
        record.state.profile.tags.contains("Consent: Privacy"),
        "the typed label accepted the question the contact had seen"
    );
    let sent = race.sandbox.sent();
    assert!(sent.last().unwrap().text().starts_with("Thank you"));
}

/// What was queued for a contact after it was erased (a schedule that was pending, a
/// late status report) is dropped: it brings no record, and so no contact id, back.
async fn leftovers_of_an_erased_contact_bring_no_record_back(race: Race) {
    let c = contact();
    let timer = TimerRef {
        run: 1,
        wait_seq: 1,
    };
    let report = DeliveryReport {
        to: message(&c, "x", Content::Text { text: "x".into() }).from,
        provider_message_id: "wamid.sent-before-erasure".into(),
        reason: "undeliverable".into(),
    };
    race.store
        .append(&c, InboxItem::timeout(timer, T0))
        .await
        .unwrap();
    race.store
        .append(&c, InboxItem::delivery_report(report, T0))
        .await
        .unwrap();
    race.a.run_steps(&c).await.unwrap();
    let loaded = race.store.load(&c).await.unwrap();
    assert!(loaded.record.is_none(), "no record made for them");
    assert!(
        loaded.inbox.is_empty(),
        "and they are gone: {:?}",
        loaded.inbox
    );
    assert!(race.sandbox.sent().is_empty());
    // The contact writing again is a new contact, as after any erasure.
    race.store
        .append(&c, text(&c, "hello-again", "Hello"))
        .await
        .unwrap();
    settle(&race.a, &c).await;
    assert_eq!(race.sandbox.sent().len(), 2, "link and question");
    assert!(race.store.load(&c).await.unwrap().record.is_some());
}

async fn embedded() -> (Arc<dyn Store>, [Arc<dyn Timers>; 2], tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb"), T0).unwrap();
    let timers = |s: EmbeddedStore| Arc::new(LocalTimers::new(s)) as Arc<dyn Timers>;
    let pair = [timers(store.clone()), timers(store.clone())];
    (Arc::new(store), pair, dir)
}

/// The segment index follows the record's tags, through commits that build on a load
/// and on the previous commit.
async fn segment<S: assent::ports::AdminStore>(store: &S) -> Vec<ContactId> {
    store
        .segment_page("Consent: Privacy", None, 100)
        .await
        .unwrap()
        .0
}

async fn segment_entries_follow_the_tags<S: StateStore + assent::ports::AdminStore>(store: &S) {
    let c = contact();
    let mut record = ContactRecord::new(c.clone());
    record.state.profile.tags.insert("Consent: Privacy".into());
    let base = store
        .commit(&c, &record, &Base::default(), &[])
        .await
        .unwrap();
    assert_eq!(segment(store).await, vec![c.clone()]);
    let loaded = store.load(&c).await.unwrap();
    assert_eq!(
        loaded.base.indexed_tags.len(),
        1,
        "the load sees the segment entry"
    );
    // Built on the commit's base: the tag goes.
    record.state.profile.tags.clear();
    let base = store.commit(&c, &record, &base, &[]).await.unwrap();
    assert!(segment(store).await.is_empty());
    // And comes back, built on that commit's base again.
    record.state.profile.tags.insert("Consent: Privacy".into());
    store.commit(&c, &record, &base, &[]).await.unwrap();
    assert_eq!(segment(store).await, vec![c.clone()]);
    // Built on a load.
    record.state.profile.tags.clear();
    let loaded = store.load(&c).await.unwrap();
    store.commit(&c, &record, &loaded.base, &[]).await.unwrap();
    assert!(segment(store).await.is_empty());
}

/// Paging through a segment with its cursor lists every tagged contact exactly once, and
/// the last page says there is no more.
async fn segment_pages_list_every_contact_once<S: StateStore + assent::ports::AdminStore>(
    store: &S,
) {
    let tagged: Vec<ContactId> = (0..40)
        .map(|n| ContactId::new("whatsapp", &format!("4915200000{n:03}")))
        .collect();
    for c in &tagged {
        let mut record = ContactRecord::new(c.clone());
        record.state.profile.tags.insert("Consent: Privacy".into());
        store
            .commit(c, &record, &Base::default(), &[])
            .await
            .unwrap();
    }
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let (page, next) = store
            .segment_page("Consent: Privacy", cursor.as_deref(), 7)
            .await
            .unwrap();
        assert!(page.len() <= 7);
        listed.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let mut expected = tagged.clone();
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn embedded_segment_pages_list_every_contact_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb"), Timestamp(1)).unwrap();
    segment_pages_list_every_contact_once(&store).await;
}

#[tokio::test]
async fn embedded_segment_entries_follow_the_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("s.redb"), Timestamp(1)).unwrap();
    segment_entries_follow_the_tags(&store).await;
}

#[tokio::test]
async fn embedded_store_keeps_the_contract() {
    let (store, _, _dir) = embedded().await;
    contract(store).await;
}

#[tokio::test]
async fn embedded_two_executors_apply_each_event_once() {
    let (store, timers, _dir) = embedded().await;
    two_executors_apply_each_event_once(Race::new(store, timers).await).await;
}

#[tokio::test]
async fn embedded_answer_and_timeout_at_the_same_instant() {
    let (store, timers, _dir) = embedded().await;
    an_answer_and_its_timeout_at_the_same_instant(Race::new(store, timers).await).await;
}

#[tokio::test]
async fn embedded_a_burst_of_messages_is_asked_once() {
    let (store, timers, _dir) = embedded().await;
    a_burst_of_messages_is_asked_once(Race::new(store, timers).await).await;
}

#[tokio::test]
async fn embedded_answers_in_quick_succession_both_count() {
    let (store, timers, _dir) = embedded().await;
    answers_in_quick_succession_both_count(Race::new(store, timers).await).await;
}

#[tokio::test]
async fn embedded_leftovers_of_an_erased_contact_bring_no_record_back() {
    let (store, timers, _dir) = embedded().await;
    leftovers_of_an_erased_contact_bring_no_record_back(Race::new(store, timers).await).await;
}

#[cfg(feature = "aws")]
mod dynamodb {
    use super::*;
    use crate::support::aws;
    use assent::aws::meter::Meter;
    use assent::store::DynamoStore;
    use assent::timers::SchedulerTimers;

    /// A store over a fresh table, with an unmetered client and the table's name, to look
    /// at the table directly.
    async fn dynamo_store() -> (DynamoStore, aws_sdk_dynamodb::Client, String) {
        let sdk = aws::sdk().await;
        let client = aws::dynamodb(&sdk, &Meter::default());
        let table = aws::table(&client).await;
        (DynamoStore::new(client.clone(), &table), client, table)
    }

    async fn dynamo() -> (Arc<dyn Store>, [Arc<dyn Timers>; 2]) {
        let sdk = aws::sdk().await;
        let meter = Meter::default();
        let client = aws::dynamodb(&sdk, &meter);
        let store = DynamoStore::new(client.clone(), aws::table(&client).await);
        let scheduler = aws::scheduler(&sdk, &meter);
        let group = aws::schedule_group(&scheduler).await;
        let clock = Arc::new(ManualClock::starting_at(T0));
        let timers = || -> Arc<dyn Timers> {
            Arc::new(SchedulerTimers::new(
                scheduler.clone(),
                aws::scheduler_config(&group),
                Arc::new(store.clone()),
                clock.clone(),
            ))
        };
        let pair = [timers(), timers()];
        (Arc::new(store), pair)
    }

    #[tokio::test]
    async fn dynamodb_store_keeps_the_contract() {
        let (store, _) = dynamo().await;
        contract(store).await;
    }

    #[tokio::test]
    async fn dynamodb_two_executors_apply_each_event_once() {
        let (store, timers) = dynamo().await;
        two_executors_apply_each_event_once(Race::new(store, timers).await).await;
    }

    #[tokio::test]
    async fn dynamodb_answer_and_timeout_at_the_same_instant() {
        let (store, timers) = dynamo().await;
        an_answer_and_its_timeout_at_the_same_instant(Race::new(store, timers).await).await;
    }

    #[tokio::test]
    async fn dynamodb_a_burst_of_messages_is_asked_once() {
        let (store, timers) = dynamo().await;
        a_burst_of_messages_is_asked_once(Race::new(store, timers).await).await;
    }

    #[tokio::test]
    async fn dynamodb_answers_in_quick_succession_both_count() {
        let (store, timers) = dynamo().await;
        answers_in_quick_succession_both_count(Race::new(store, timers).await).await;
    }

    #[tokio::test]
    async fn dynamodb_leftovers_of_an_erased_contact_bring_no_record_back() {
        let (store, timers) = dynamo().await;
        leftovers_of_an_erased_contact_bring_no_record_back(Race::new(store, timers).await).await;
    }

    #[tokio::test]
    async fn dynamodb_segment_entries_follow_the_tags() {
        let (store, _, _) = dynamo_store().await;
        segment_entries_follow_the_tags(&store).await;
    }

    #[tokio::test]
    async fn dynamodb_segment_pages_list_every_contact_once() {
        let (store, _, _) = dynamo_store().await;
        segment_pages_list_every_contact_once(&store).await;
    }

    /// One tag's entries are spread over several index keys, so that one popular tag is
    /// not one hot key; an entry written before the spreading (under the bare tag) is
    /// still listed.
    #[tokio::test]
    async fn dynamodb_one_tag_is_spread_over_index_keys_and_old_entries_stay_listed() {
        use assent::ports::AdminStore;
        use aws_sdk_dynamodb::types::AttributeValue as V;
        let (store, client, table) = dynamo_store().await;
        let mut tagged = Vec::new();
        for n in 0..20 {
            let c = ContactId::new("whatsapp", &format!("4915300000{n:03}"));
            let mut record = ContactRecord::new(c.clone());
            record.state.profile.tags.insert("Consent: Privacy".into());
            store
                .commit(&c, &record, &Base::default(), &[])
                .await
                .unwrap();
            tagged.push(c);
        }
        let old = ContactId::new("whatsapp", "4915399999999");
        client
            .put_item()
            .table_name(&table)
            .item("pk", V::S(format!("c#{old}")))
            .item("sk", V::S("tag#Consent: Privacy".into()))
            .item("seg", V::S("Consent: Privacy".into()))
            .send()
            .await
            .unwrap();
        tagged.push(old);
        let items = client
            .scan()
            .table_name(&table)
            .send()
            .await
            .unwrap()
            .items
            .unwrap_or_default();
        let keys: std::collections::BTreeSet<String> = items
            .iter()
            .filter_map(|item| item.get("seg")?.as_s().ok().cloned())
            .collect();
        assert!(keys.len() > 1, "{keys:?}");
        let (mut listed, next) = store
            .segment_page("Consent: Privacy", None, 100)
            .await
            .unwrap();
        assert_eq!(next, None);
        listed.sort();
        tagged.sort();
        assert_eq!(listed, tagged);
    }
}
