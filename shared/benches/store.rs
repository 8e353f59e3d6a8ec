//! Embedded store commits per second: one event's worth of store work (append an inbox
//! item, load the contact, commit the record consuming it), each a durable transaction,
//! for a new contact each time. Measured on the working directory's disk and, where the
//! machine has one, on tmpfs (/dev/shm), which shows the cost of fsync. Once one event
//! at a time (each waits for its own commit), once 64 contacts at a time (their writes
//! share commits: the group commit). And one pass of the dedup-key pruning that
//! `assent-local` runs every minute (`prune_dedup_keys`): 10,000 keys read, none expired,
//! which is what most passes of a busy store meet.
//! `cargo bench -p assent --bench store`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::atomic::{AtomicU64, Ordering};

use assent::clock::Timestamp;
use assent::contact::{Address, ContactId};
use assent::engine::{Content, Inbound};
use assent::ports::{ContactRecord, InboxItem, InboxStore, StateStore};
use assent::store::EmbeddedStore;

/// How many contacts' events are in flight at once in the concurrent variant.
const CONCURRENT: u64 = 64;

fn cycle(rt: &tokio::runtime::Runtime, store: &EmbeddedStore, n: u64) {
    rt.block_on(event(store, n))
}

fn concurrent_cycles(rt: &tokio::runtime::Runtime, store: &EmbeddedStore, first: u64) {
    rt.block_on(async {
        let tasks: Vec<_> = (first..first + CONCURRENT)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move { event(&store, n).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    })
}

async fn event(store: &EmbeddedStore, n: u64) {
    {
        let contact = ContactId::new("whatsapp", &n.to_string());
        let item = InboxItem::inbound(
            Inbound {
                from: Address {
                    channel: "whatsapp".into(),
                    user_id: n.to_string(),
                    via: Some("p".into()),
                },
                message_id: format!("m{n}"),
                name: None,
                content: Content::Text {
                    text: "Hello".into(),
                },
                sent_at: None,
            },
            Timestamp(1),
        );
        store.append(&contact, item).await.unwrap();
        let loaded = store.load(&contact).await.unwrap();
        let consumed: Vec<_> = loaded.inbox.iter().map(|(id, _)| id.clone()).collect();
        store
            .commit(
                &contact,
                &ContactRecord::new(contact.clone()),
                &loaded.base,
                &consumed,
            )
            .await
            .unwrap();
    }
}

/// Two workers, as on the machine the figures come from.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut places = vec![(
        "disk",
        tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap(),
    )];
    if std::path::Path::new("/dev/shm").is_dir() {
        places.push(("tmpfs", tempfile::tempdir_in("/dev/shm").unwrap()));
    }
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("embedded_store");
    group.throughput(Throughput::Elements(1)); // one event's append + load + commit
    for (name, dir) in &places {
        let store = EmbeddedStore::open(&dir.path().join("bench.redb"), Timestamp(1)).unwrap();
        group.bench_function(format!("event_cycle_{name}"), |b| {
            b.iter(|| cycle(&rt, &store, counter.fetch_add(1, Ordering::Relaxed)))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("embedded_store_concurrent");
    group.throughput(Throughput::Elements(CONCURRENT));
    for (name, dir) in &places {
        let store = EmbeddedStore::open(&dir.path().join("bench.redb"), Timestamp(1)).unwrap();
        group.bench_function(format!("event_cycles_{CONCURRENT}_at_once_{name}"), |b| {
            b.iter(|| {
                let first = counter.fetch_add(CONCURRENT, Ordering::Relaxed);
                concurrent_cycles(&rt, &store, first)
            })
        });
    }
    group.finish();
}

/// Dedup keys the pruning pass reads (the runner's budget), and keys in the store.
const PRUNE_BUDGET: usize = 10_000;
const KEYS_HELD: u64 = 50_000;

fn prune_bench(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = EmbeddedStore::open(&dir.path().join("prune.redb"), Timestamp(1)).unwrap();
    for first in (0..KEYS_HELD).step_by(CONCURRENT as usize) {
        concurrent_cycles(&rt, &store, first);
    }
    let mut group = c.benchmark_group("embedded_store_pruning");
    group.throughput(Throughput::Elements(PRUNE_BUDGET as u64));
    group.bench_function("prune_pass_10000_keys_none_expired_disk", |b| {
        b.iter(|| {
            let removed = rt
                .block_on(store.prune_dedup_keys(Timestamp(1), PRUNE_BUDGET))
                .unwrap();
            assert_eq!(removed, 0);
        })
    });
    group.finish();
}

criterion_group!(benches, bench, prune_bench);
criterion_main!(benches);
