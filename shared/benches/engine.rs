//! Engine transitions per second: a whole accepted consent flow (the opening message,
//! then the tap) applied to a fresh contact through the pure engine, on one core.
//! `cargo bench -p assent --bench engine`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::collections::BTreeMap;
use std::hint::black_box;

use assent::clock::Timestamp;
use assent::contact::{Address, ContactId};
use assent::engine::{self, Catalog, ContactState, Content, Event, Inbound};
use assent::workflow::template;

fn inbound(id: &str, content: Content) -> Event {
    Event::Inbound(Inbound {
        from: Address {
            channel: "whatsapp".into(),
            user_id: "4915112345678".into(),
            via: Some("106540352242922".into()),
        },
        message_id: id.into(),
        name: Some("Zoë".into()),
        content,
        sent_at: None,
    })
}

fn bench(c: &mut Criterion) {
    let params = BTreeMap::from([(
        "policy_url".to_string(),
        "https://example.com/privacy".to_string(),
    )]);
    let workflow = template::build(template::REQUEST_CONSENT_PRIVACY, &params).unwrap();
    let mut catalog = Catalog::default();
    catalog.insert(1, workflow);
    catalog.activate(template::REQUEST_CONSENT_PRIVACY, 1);
    let hello = inbound(
        "m1",
        Content::Text {
            text: "Hello".into(),
        },
    );
    let tap = inbound(
        "m2",
        Content::Choice {
            id: "agree".into(),
            label: "AGREE & PROCEED".into(),
        },
    );
    let contact = ContactId::new("whatsapp", "4915112345678");

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(2)); // two transitions per flow
    group.bench_function("accepted_flow", |b| {
        b.iter(|| {
            let mut state = ContactState::new(contact.clone());
            let first = engine::apply(&mut state, &hello, Timestamp(1), &catalog);
            let second = engine::apply(&mut state, &tap, Timestamp(2), &catalog);
            black_box((first, second, state))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
