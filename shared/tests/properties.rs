//! Property tests through the real runtime on the embedded store: random interleavings of
//! answers, provider duplicates, current and stale timeouts, withdrawals, resumes and executor
//! crashes (a send that reached the channel but whose success was never recorded), then
//! the invariants that make a consent engine trustworthy.

mod support;

use async_trait::async_trait;
use axum::http::HeaderMap;
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use assent::channels::whatsapp::sandbox::GraphSandbox;
use assent::channels::{Channel, Channels, InboundError, Parsed};
use assent::clock::{ManualClock, Timestamp};
use assent::contact::{Address, ContactId};
use assent::engine::{ConsentKind, Content, Inbound, OutboundMessage, TimerRef};
use assent::ports::{InboxItem, InboxStore, LedgerStore, SendError, Sent, StateStore};
use assent::runtime::{Runtime, RuntimeConfig, RuntimeError, StepsRun};
use assent::store::EmbeddedStore;
use assent::timers::LocalTimers;

#[derive(Clone, Debug)]
enum Op {
    Tap,
    TypeLabel,
    TypeNumber,
    Invalid(&'static str),
    Media,
    /// The provider delivers the previous message again.
    Duplicate,
    /// The current wait's timer fires.
    Timeout,
    /// A timer of an earlier wait fires (late, or twice).
    StaleTimeout,
    Stop,
    /// The admin API asks for the pending effects to be tried again.
    Resume,
    /// The next send reaches the channel, then the executor dies before recording it.
    Crash,
    /// The next few store calls fail (the disk or DynamoDB is briefly unavailable).
    StoreOutage(u32),
    Later(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Tap),
        1 => Just(Op::TypeLabel),
        1 => Just(Op::TypeNumber),
        3 => prop_oneof![Just("yes"), Just("ok"), Just("2"), Just("agree"), Just("")].prop_map(Op::Invalid),
        1 => Just(Op::Media),
        2 => Just(Op::Duplicate),
        3 => Just(Op::Timeout),
        1 => Just(Op::StaleTimeout),
        1 => Just(Op::Stop),
        1 => Just(Op::Resume),
        2 => Just(Op::Crash),
        1 => (1u32..4).prop_map(Op::StoreOutage),
        1 => (1u64..400).prop_map(Op::Later),
    ]
}

/// The real WhatsApp channel, with a switch that makes the next send "crash" after it
/// reached the Graph API.
struct Crashing {
    inner: Arc<dyn Channel>,
    crashes_armed: AtomicU32,
    crashes: AtomicU32,
}

#[async_trait]
impl Channel for Crashing {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn authenticate(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), InboundError> {
        self.inner.authenticate(headers, body)
    }
    fn parse(&self, headers: &HeaderMap, body: &[u8]) -> Result<Parsed, InboundError> {
        self.inner.parse(headers, body)
    }
    async fn send(&self, to: &Address, message: &OutboundMessage) -> Result<Sent, SendError> {
        let sent = self.inner.send(to, message).await?;
        let armed = self.crashes_armed.load(Ordering::SeqCst);
        if armed > 0
            && self
                .crashes_armed
                .compare_exchange(armed, armed - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.crashes.fetch_add(1, Ordering::SeqCst);
            return Err(SendError::Retryable {
                reason: "executor died after the send".into(),
                retry_after: None,
            });
        }
        Ok(sent)
    }
}

/// The embedded store, failing its next `outage` calls as unavailable.
#[derive(Clone)]
struct Flaky {
    inner: EmbeddedStore,
    outage: Arc<AtomicU32>,
    failures: Arc<AtomicU32>,
}

impl Flaky {
    fn trip(&self) -> Result<(), assent::ports::StoreError> {
        let left = self.outage.load(Ordering::SeqCst);
        if left > 0
            && self
                .outage
                .compare_exchange(left, left - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return Err(assent::ports::StoreError::Unavailable(
                "injected outage".into(),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl InboxStore for Flaky {
    async fn append(
        &self,
        c: &ContactId,
        item: InboxItem,
    ) -> Result<assent::ports::Appended, assent::ports::StoreError> {
        self.trip()?;
        self.inner.append(c, item).await
    }
}

#[async_trait]
impl StateStore for Flaky {
    async fn load(
        &self,
        c: &ContactId,
    ) -> Result<assent::ports::Loaded, assent::ports::StoreError> {
        self.trip()?;
        self.inner.load(c).await
    }
    async fn commit(
        &self,
        c: &ContactId,
        record: &assent::ports::ContactRecord,
        base: &assent::ports::Base,
        consumed: &[assent::ports::InboxId],
    ) -> Result<assent::ports::Base, assent::ports::StoreError> {
        self.trip()?;
        self.inner.commit(c, record, base, consumed).await
    }
    async fn discard(
        &self,
        c: &ContactId,
        items: &[assent::ports::InboxId],
    ) -> Result<(), assent::ports::StoreError> {
        self.trip()?;
        self.inner.discard(c, items).await
    }
    fn performs_in_commit(&self, effect: &assent::engine::Effect) -> bool {
        self.inner.performs_in_commit(effect)
    }
}

#[async_trait]
impl LedgerStore for Flaky {
    async fn append_record(
        &self,
        c: &ContactId,
        r: &assent::engine::ConsentRecord,
    ) -> Result<(), assent::ports::StoreError> {
        self.trip()?;
        self.inner.append_record(c, r).await
    }
    async fn records(
        &self,
        c: &ContactId,
    ) -> Result<Vec<assent::engine::ConsentRecord>, assent::ports::StoreError> {
        self.inner.records(c).await
    }
    async fn records_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<assent::engine::ConsentRecord>, assent::ports::StoreError> {
        self.inner.records_since(since).await
    }
}

#[async_trait]
impl assent::ports::WorkflowStore for Flaky {
    async fn publish(
        &self,
        w: &assent::workflow::Workflow,
        now: Timestamp,
    ) -> Result<assent::workflow::PublishedWorkflow, assent::ports::StoreError> {
        self.inner.publish(w, now).await
    }
    async fn published(
        &self,
    ) -> Result<Vec<assent::workflow::PublishedWorkflow>, assent::ports::StoreError> {
        self.inner.published().await
    }
    async fn set_active(&self, id: &str, version: u32) -> Result<(), assent::ports::StoreError> {
        self.inner.set_active(id, version).await
    }
    async fn active(&self) -> Result<Option<(String, u32)>, assent::ports::StoreError> {
        self.inner.active().await
    }
}

struct World {
    rt: tokio::runtime::Runtime,
    sandbox: GraphSandbox,
    _dir: tempfile::TempDir,
    store: Flaky,
    timers: Arc<LocalTimers>,
    runtime: Arc<Runtime>,
    crashing: Arc<Crashing>,
    clock: Arc<ManualClock>,
    contacts: AtomicU32,
    /// What the cases reached, to show the generator covers the interesting paths.
    seen: std::sync::Mutex<Vec<ConsentKind>>,
    repeats: AtomicU32,
}

impl World {
    fn new() -> World {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // tmpfs where there is one: thousands of cases, each committing to disk.
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm")
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        let clock = Arc::new(ManualClock::starting_at(Timestamp(1_750_000_000_000)));
        let (sandbox, store, timers, runtime, crashing) = rt.block_on(async {
            let sandbox = support::sandbox().await;
            let embedded = EmbeddedStore::open(&dir.path().join("p.redb"), clock.now_ts()).unwrap();
            let timers = Arc::new(LocalTimers::new(embedded.clone()));
            let store = Flaky {
                inner: embedded,
                outage: Arc::default(),
                failures: Arc::default(),
            };
            let whatsapp = support::whatsapp(&sandbox).get("whatsapp").unwrap().clone();
            let crashing = Arc::new(Crashing {
                inner: whatsapp,
                crashes_armed: AtomicU32::new(0),
                crashes: AtomicU32::new(0),
            });
            let channels = Channels::default().with(crashing.clone());
            let config = RuntimeConfig {
                send_attempts: 1,
                ..RuntimeConfig::default()
            };
            let runtime = Arc::new(Runtime::new(
                Arc::new(store.clone()),
                timers.clone(),
                channels,
                clock.clone(),
                config,
            ));
            runtime
                .publish_and_activate(&support::consent_workflow(300))
                .await
                .unwrap();
            (sandbox, store, timers, runtime, crashing)
        });
        World {
            rt,
            sandbox,
            _dir: dir,
            store,
            timers,
            runtime,
            crashing,
            clock,
            contacts: AtomicU32::new(0),
            seen: Default::default(),
            repeats: AtomicU32::new(0),
        }
    }
}

trait NowTs {
    fn now_ts(&self) -> Timestamp;
}
impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        assent::ports::Clock::now(self)
    }
}

/// Appends as a provider delivers: an unavailable store answers 503, and it tries again.
async fn deliver(world: &World, contact: &ContactId, item: InboxItem) {
    for _ in 0..10 {
        if world.store.append(contact, item.clone()).await.is_ok() {
            return;
        }
    }
    panic!("the store stayed unavailable");
}

/// Runs steps until nothing is left, with no crash armed.
async fn settle(world: &World, contact: &ContactId) {
    world.crashing.crashes_armed.store(0, Ordering::SeqCst);
    world.store.outage.store(0, Ordering::SeqCst);
    for _ in 0..50 {
        match world.runtime.run_steps(contact).await {
            Ok(StepsRun {
                events_applied: 0,
                effects_performed: 0,
            }) => return,
            Ok(_) | Err(RuntimeError::Send(_)) | Err(RuntimeError::Store(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    panic!("did not settle");
}

fn check(world: &World, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let n = world.contacts.fetch_add(1, Ordering::SeqCst);
    let user = format!("49{n:011}");
    let contact = ContactId::new("whatsapp", &user);
    let address = Address {
        channel: "whatsapp".into(),
        user_id: user.clone(),
        via: Some(support::PHONE_NUMBER_ID.into()),
    };
    world.rt.block_on(async {
        let mut messages = 0u32;
        let mut seen_timers: Vec<TimerRef> = Vec::new();
        let mut crashes_before = world.crashing.crashes.load(Ordering::SeqCst);
        let mut outages_before = world.store.failures.load(Ordering::SeqCst);
        let say = |content: Content, messages: &mut u32| {
            *messages += 1;
            InboxItem::inbound(
                Inbound {
                    from: address.clone(),
                    message_id: format!("m{n}.{messages}"),
                    name: None,
                    content,
                    sent_at: None,
                },
                world.clock.now_ts(),
            )
        };
        // Every case starts with the contact writing.
        let hello = say(
            Content::Text {
                text: "Hello".into(),
            },
            &mut messages,
        );
        deliver(world, &contact, hello.clone()).await;
        let mut last = Some(hello);
        let _ = world.runtime.run_steps(&contact).await;
        for op in ops {
            let item = match op {
                Op::Tap => Some(say(
                    Content::Choice {
                        id: "agree".into(),
                        label: "AGREE & PROCEED".into(),
                    },
                    &mut messages,
                )),
                Op::TypeLabel => Some(say(
                    Content::Text {
                        text: " agree & PROCEED".into(),
                    },
                    &mut messages,
                )),
                Op::TypeNumber => Some(say(Content::Text { text: "1".into() }, &mut messages)),
                Op::Invalid(text) => Some(say(Content::Text { text: text.into() }, &mut messages)),
                Op::Media => Some(say(
                    Content::Other {
                        kind: "sticker".into(),
                    },
                    &mut messages,
                )),
                Op::Stop => Some(say(
                    Content::Text {
                        text: "STOP".into(),
                    },
                    &mut messages,
                )),
                Op::Resume => {
                    let now = world.clock.now_ts();
                    let item = InboxItem {
                        key: format!("resume:{}", now.millis()),
                        received_at: now,
                        event: assent::engine::Event::Resume {
                            requested_by: "admin-api".into(),
                        },
                    };
                    deliver(world, &contact, item).await;
                    None
                }
                Op::Duplicate => last.clone(),
                Op::Timeout => {
                    let due: Vec<TimerRef> = world
                        .timers
                        .due(Timestamp(i64::MAX))
                        .into_iter()
                        .filter(|(c, _)| *c == contact)
                        .map(|(_, t)| t)
                        .collect();
                    if let Some(timer) = due.last().copied() {
                        deliver(
                            world,
                            &contact,
                            InboxItem::timeout(timer, world.clock.now_ts()),
                        )
                        .await;
                        assent::ports::Timers::cancel(world.timers.as_ref(), &contact, timer)
                            .await
                            .unwrap();
                        seen_timers.push(timer);
                    }
                    None
                }
                Op::StaleTimeout => {
                    if let Some(timer) = seen_timers.first().copied() {
                        // A timer that fires again, or late: it has a new key only if it is
                        // a different wait; either way the engine must ignore it.
                        deliver(world, &contact, InboxItem::timeout(timer, world.clock.now_ts())).await;
                    }
                    None
                }
                Op::Crash => {
                    world.crashing.crashes_armed.store(1, Ordering::SeqCst);
                    None
                }
                Op::StoreOutage(calls) => {
                    world.store.outage.store(calls, Ordering::SeqCst);
                    None
                }
                Op::Later(secs) => {
                    world.clock.advance(Duration::from_secs(secs));
                    None
                }
            };
            if let Some(item) = item {
                deliver(world, &contact, item.clone()).await;
                last = Some(item);
            }
            let _ = world.runtime.run_steps(&contact).await;
        }
        settle(world, &contact).await;
        crashes_before = world.crashing.crashes.load(Ordering::SeqCst) - crashes_before;
        outages_before = world.store.failures.load(Ordering::SeqCst) - outages_before;

        // Every accepted message processed, every decided effect performed.
        let loaded = world.store.load(&contact).await.unwrap();
        prop_assert!(
            loaded.inbox.is_empty(),
            "inbox left: {:?}",
            loaded.inbox.len()
        );
        let record = loaded.record.unwrap();
        prop_assert!(record.outbox.is_empty(), "outbox left: {:?}", record.outbox);

        let records = world.store.records(&contact).await.unwrap();
        prop_assert_eq!(assent::engine::ledger::verify(&records), Ok(()));
        let mut by_run: BTreeMap<u64, Vec<ConsentKind>> = BTreeMap::new();
        for r in &records {
            by_run.entry(r.run.unwrap_or(0)).or_default().push(r.kind);
        }
        for (run, kinds) in &by_run {
            let asks = kinds.iter().filter(|k| **k == ConsentKind::Asked).count();
            prop_assert!(asks <= 4, "run {run}: {asks} asks, more than max_jumps + 1");
            let terminal = kinds
                .iter()
                .filter(|k| {
                    matches!(
                        k,
                        ConsentKind::Accepted | ConsentKind::TimedOut | ConsentKind::DeliveryFailed
                    )
                })
                .count();
            prop_assert!(terminal <= 1, "run {run}: more than one outcome {kinds:?}");
        }
        // The tag is there iff the last decision is an acceptance not withdrawn since.
        let last_decision = records
            .iter()
            .rev()
            .find(|r| matches!(r.kind, ConsentKind::Accepted | ConsentKind::Withdrawn))
            .map(|r| r.kind);
        let tagged = record.state.profile.tags.contains("Consent: Privacy");
        prop_assert_eq!(
            tagged,
            last_decision == Some(ConsentKind::Accepted),
            "tag {} vs ledger {:?}",
            tagged,
            last_decision
        );
        // Every run that ended has exactly one outcome.
        if let Some(run) = record.state.latest_run() {
            prop_assert_eq!(run.outcome.is_some(), run.ended_at.is_some());
        }
        // No message applied twice: each provider message id answers at most once.
        let mut ids = HashSet::new();
        for r in records
            .iter()
            .filter_map(|r| r.provider_message_id.as_ref())
        {
            prop_assert!(ids.insert(r.clone()), "message {r} applied twice");
        }
        // Questions sent = questions asked, plus at most one repeat per crash.
        let questions = world
            .sandbox
            .sent_to(&user)
            .iter()
            .filter(|m| !m.options().is_empty())
            .count();
        let asked = records
            .iter()
            .filter(|r| r.kind == ConsentKind::Asked)
            .count();
        prop_assert!(
            questions >= asked,
            "{questions} questions sent for {asked} asked"
        );
        // A crash, or a store failure on the commit that records a send, repeats that send
        // (at least once); nothing else may.
        let may_repeat = (crashes_before + outages_before) as usize;
        prop_assert!(
            questions <= asked + may_repeat,
            "{questions} sent, {asked} asked, {crashes_before} crashes, {outages_before} store failures"
        );
        world
            .seen
            .lock()
            .unwrap()
            .extend(records.iter().map(|r| r.kind));
        if questions > asked {
            world.repeats.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    })
}

#[test]
fn the_consent_invariants_hold_under_any_interleaving() {
    let world = World::new();
    let config = support::proptest_config();
    proptest!(config, |(ops in proptest::collection::vec(op(), 0..14))| {
        check(&world, ops)?;
    });
    // The cases reached every kind of decision, crashes and the repeats they cause.
    let seen = world.seen.lock().unwrap();
    for kind in [
        ConsentKind::Asked,
        ConsentKind::Accepted,
        ConsentKind::InvalidAnswer,
        ConsentKind::TimedOut,
        ConsentKind::Withdrawn,
    ] {
        assert!(seen.contains(&kind), "no case reached {kind:?}");
    }
    assert!(
        world.crashing.crashes.load(Ordering::SeqCst) > 0,
        "no crash was injected"
    );
    assert!(
        world.repeats.load(Ordering::SeqCst) > 0,
        "no crash led to a repeated send"
    );
    println!(
        "{} cases: {} decisions, {} crashes injected, {} cases with a repeated send, {} store calls failed",
        support::proptest_cases(),
        seen.len(),
        world.crashing.crashes.load(Ordering::SeqCst),
        world.repeats.load(Ordering::SeqCst),
        world.store.failures.load(Ordering::SeqCst)
    );
}
