//! Loading and committing a contact's record, with the outbox effects the commit performs
//! itself.

use async_trait::async_trait;
use redb::ReadableTable;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::{ArmTimer, Effect, TimerRef};
use crate::ports::{Base, ContactRecord, InboxId, Loaded, StateStore, StoreError};
use crate::store::TimerQueue;

use super::inbox::{inbox_seqs, mark_pending, remove_from_inbox};
use super::ledger::insert_record;
use super::stored_record::{StoredRecord, version_of};
use super::tables::{CONTACTS, INBOX, LEDGER, PENDING, SEGMENTS, TIMERS};
use super::{EmbeddedStore, decode, encode};

#[async_trait]
impl StateStore for EmbeddedStore {
    async fn load(&self, contact: &ContactId) -> Result<Loaded, StoreError> {
        let contact = contact.clone();
        self.read(|txn| {
            let stored = match txn.open_table(CONTACTS)?.get(contact.as_str())? {
                Some(bytes) => Some(StoredRecord::decode(bytes.value())?),
                None => None,
            };
            let table = txn.open_table(INBOX)?;
            let mut inbox = Vec::new();
            for entry in table.range((contact.as_str(), 0)..=(contact.as_str(), u64::MAX))? {
                let (key, bytes) = entry?;
                inbox.push((InboxId(key.value().1.to_string()), decode(bytes.value())?));
            }
            // Consumed items are deleted at commit: nothing processed is still held.
            let (record, version) = match stored {
                Some(s) => (Some(s.record), s.version),
                None => (None, 0),
            };
            let base = Base {
                version,
                indexed_tags: record
                    .as_ref()
                    .map(|r: &ContactRecord| r.state.profile.tags.clone())
                    .unwrap_or_default(),
                ..Base::default()
            };
            Ok(Loaded {
                record,
                base,
                inbox,
            })
        })
    }

    async fn commit(
        &self,
        contact: &ContactId,
        record: &ContactRecord,
        base: &Base,
        consumed: &[InboxId],
    ) -> Result<Base, StoreError> {
        let contact = contact.clone();
        let expected = base.version;
        let (stored, effects) = InCommit::split(record)?;
        let outbox_empty = stored.outbox.is_empty();
        let bytes = StoredRecord {
            version: expected + 1,
            record: stored,
        }
        .encode()?;
        let new_tags = record.state.profile.tags.clone();
        // The tags the segment index holds: those of the record at `expected`, which the
        // version check below makes sure is what is stored.
        let old_tags = base.indexed_tags.clone();
        let consumed = inbox_seqs(consumed)?;
        self.write(move |txn| {
            let mut contacts = txn.open_table(CONTACTS)?;
            let current = match contacts.get(contact.as_str())? {
                Some(bytes) => version_of(bytes.value())?,
                None => 0,
            };
            if current != expected {
                return Err(StoreError::Conflict);
            }
            if old_tags != new_tags {
                let mut segments = txn.open_table(SEGMENTS)?;
                for gone in old_tags.difference(&new_tags) {
                    segments.remove((gone.as_str(), contact.as_str()))?;
                }
                for added in new_tags.difference(&old_tags) {
                    segments.insert((added.as_str(), contact.as_str()), 1)?;
                }
            }
            contacts.insert(contact.as_str(), bytes.as_slice())?;
            let inbox_empty = remove_from_inbox(txn, &contact, consumed)?;
            mark_pending(txn, &contact, !(inbox_empty && outbox_empty))?;
            effects.write(txn, &contact)?;
            let base = Base {
                version: expected + 1,
                indexed_tags: new_tags,
                ..Base::default()
            };
            Ok((base, contact, effects))
        })
        .await
        .map(|(base, contact, effects)| {
            effects.update(&self.timers, &contact);
            base
        })
    }

    async fn discard(&self, contact: &ContactId, items: &[InboxId]) -> Result<(), StoreError> {
        let contact = contact.clone();
        let seqs = inbox_seqs(items)?;
        self.write(move |txn| {
            let inbox_empty = remove_from_inbox(txn, &contact, seqs)?;
            // A record committed meanwhile keeps its own pending mark.
            let has_record = txn.open_table(CONTACTS)?.get(contact.as_str())?.is_some();
            if inbox_empty && !has_record {
                mark_pending(txn, &contact, false)?;
            }
            Ok(())
        })
        .await
    }

    fn performs_in_commit(&self, effect: &Effect) -> bool {
        match effect {
            Effect::Record(_) | Effect::CancelTimer(_) => true,
            // Its deadline is known: the question it times was handed over.
            Effect::ArmTimer(arm) => arm.starts_at.is_some(),
            Effect::Send { .. } => false,
        }
    }
}

/// The outbox effects a commit performs in its own transaction: the ledger and the
/// timers are tables of this file.
#[derive(Default)]
struct InCommit {
    /// (seq, encoded record)
    records: Vec<(u64, Vec<u8>)>,
    armed: Vec<(TimerRef, Timestamp)>,
    cancelled: Vec<TimerRef>,
}

impl InCommit {
    /// The record as stored (without these effects in its outbox), and the effects.
    fn split(record: &ContactRecord) -> Result<(ContactRecord, InCommit), StoreError> {
        let mut stored = record.clone();
        let mut effects = InCommit::default();
        let mut kept = Vec::with_capacity(stored.outbox.len());
        for entry in stored.outbox {
            match &entry.effect {
                Effect::Record(consent) => effects.records.push((consent.seq, encode(consent)?)),
                Effect::CancelTimer(timer) => effects.cancelled.push(*timer),
                Effect::ArmTimer(
                    arm @ ArmTimer {
                        starts_at: Some(start),
                        ..
                    },
                ) => effects.armed.push((arm.timer, arm.deadline(*start))),
                _ => kept.push(entry),
            }
        }
        stored.outbox = kept;
        Ok((stored, effects))
    }

    fn write(&self, txn: &redb::WriteTransaction, contact: &ContactId) -> Result<(), StoreError> {
        if !self.records.is_empty() {
            let mut ledger = txn.open_table(LEDGER)?;
            for (seq, bytes) in &self.records {
                insert_record(&mut ledger, contact, *seq, bytes)?;
            }
        }
        if !self.armed.is_empty() || !self.cancelled.is_empty() {
            let mut timers = txn.open_table(TIMERS)?;
            for timer in &self.cancelled {
                timers.remove((contact.as_str(), timer.run, timer.wait_seq))?;
            }
            for (timer, deadline) in &self.armed {
                timers.insert(
                    (contact.as_str(), timer.run, timer.wait_seq),
                    deadline.millis(),
                )?;
            }
        }
        Ok(())
    }

    /// After the commit is durable: the in-memory queue follows the table.
    fn update(&self, queue: &TimerQueue, contact: &ContactId) {
        let cancelled: Vec<_> = self
            .cancelled
            .iter()
            .map(|t| (contact.clone(), *t))
            .collect();
        queue.removed(&cancelled);
        for (timer, deadline) in &self.armed {
            queue.armed(contact, *timer, *deadline);
        }
    }
}

impl EmbeddedStore {
    /// Contacts with inbox items or outbox effects left over (after a crash or a stop).
    pub async fn contacts_with_pending_work(&self) -> Result<Vec<ContactId>, StoreError> {
        self.read(|txn| {
            let pending = txn.open_table(PENDING)?;
            let mut out = Vec::new();
            for entry in pending.iter()? {
                out.push(ContactId::from_stored(entry?.0.value()));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ConsentRecord;
    use crate::ports::LedgerStore;

    fn consent(contact: &ContactId) -> ConsentRecord {
        ConsentRecord {
            seq: 1,
            kind: crate::engine::ConsentKind::Asked,
            contact: contact.clone(),
            channel: "whatsapp".into(),
            channel_user: "1".into(),
            workflow_id: Some("w".into()),
            workflow_version: Some(1),
            run: Some(1),
            question: Some("Agree?".into()),
            options: vec!["AGREE".into()],
            policy_url: None,
            policy_version: None,
            provider_message_id: None,
            payload: None,
            text: None,
            requested_by: None,
            provider_at: None,
            recorded_at: Timestamp(1_000),
            prev_hash: String::new(),
            hash: "h".into(),
        }
    }

    #[tokio::test]
    async fn a_commit_writes_the_outboxs_ledger_records_and_timers_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), Timestamp(0)).unwrap();
        let contact = ContactId::new("whatsapp", "1");
        let (answered, next, pause) = (
            TimerRef {
                run: 1,
                wait_seq: 1,
            },
            TimerRef {
                run: 1,
                wait_seq: 2,
            },
            TimerRef {
                run: 1,
                wait_seq: 3,
            },
        );
        store
            .put_timer(&contact, answered, Timestamp(5_000))
            .await
            .unwrap();
        let send = Effect::Send {
            run: 1,
            to: crate::contact::Address {
                channel: "whatsapp".into(),
                user_id: "1".into(),
                via: None,
            },
            message: crate::engine::OutboundMessage::Text { text: "hi".into() },
            then_arm: None,
        };
        // A pause's clock starts when it is armed: the runtime arms it, not the commit.
        let unstarted = Effect::ArmTimer(ArmTimer {
            timer: pause,
            after_seconds: 60,
            starts_at: None,
        });
        let mut record = ContactRecord::new(contact.clone());
        record.record(vec![
            Effect::CancelTimer(answered),
            send.clone(),
            Effect::Record(Box::new(consent(&contact))),
            Effect::ArmTimer(ArmTimer {
                timer: next,
                after_seconds: 300,
                starts_at: Some(Timestamp(1_000)),
            }),
            unstarted.clone(),
        ]);
        let kept: Vec<Effect> = record
            .outbox
            .iter()
            .filter(|e| !store.performs_in_commit(&e.effect))
            .map(|e| e.effect.clone())
            .collect();
        assert_eq!(kept, vec![send, unstarted]);

        store
            .commit(&contact, &record, &Base::default(), &[])
            .await
            .unwrap();
        let stored = store.load(&contact).await.unwrap().record.unwrap();
        let stored: Vec<Effect> = stored.outbox.into_iter().map(|e| e.effect).collect();
        assert_eq!(stored, kept);
        assert_eq!(
            store.records(&contact).await.unwrap(),
            vec![consent(&contact)]
        );
        let timers = vec![(contact.clone(), next, Timestamp(301_000))];
        assert_eq!(store.stored_timers().unwrap(), timers);
        assert_eq!(
            store.timer_queue().due(Timestamp(i64::MAX)),
            vec![(contact, next)]
        );
    }

    #[tokio::test]
    async fn a_conflicting_commit_writes_none_of_its_effects() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(&dir.path().join("s.redb"), Timestamp(0)).unwrap();
        let contact = ContactId::new("whatsapp", "1");
        let mut record = ContactRecord::new(contact.clone());
        record.record(vec![Effect::Record(Box::new(consent(&contact)))]);
        let stale = Base {
            version: 3,
            ..Base::default()
        };
        let result = store.commit(&contact, &record, &stale, &[]).await;
        assert!(matches!(result, Err(StoreError::Conflict)));
        assert!(store.records(&contact).await.unwrap().is_empty());
    }
}
