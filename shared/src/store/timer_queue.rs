//! The embedded store's timers in deadline order, kept in memory beside its `timers`
//! table so that the firing loop knows the next deadline without a scan. It changes only
//! after the table did (a write is durable first), and is rebuilt from the table at open.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use tokio::sync::Notify;

use crate::clock::Timestamp;
use crate::contact::ContactId;
use crate::engine::TimerRef;

#[derive(Default)]
struct Queue {
    by_deadline: BTreeSet<(Timestamp, ContactId, TimerRef)>,
    /// Each timer's deadline, to find its place in `by_deadline`.
    deadlines: HashMap<(ContactId, TimerRef), Timestamp>,
}

impl Queue {
    fn insert(&mut self, contact: &ContactId, timer: TimerRef, deadline: Timestamp) {
        self.remove(contact, timer);
        self.by_deadline.insert((deadline, contact.clone(), timer));
        self.deadlines.insert((contact.clone(), timer), deadline);
    }

    fn remove(&mut self, contact: &ContactId, timer: TimerRef) {
        if let Some(deadline) = self.deadlines.remove(&(contact.clone(), timer)) {
            self.by_deadline.remove(&(deadline, contact.clone(), timer));
        }
    }
}

#[derive(Default)]
pub struct TimerQueue {
    queue: Mutex<Queue>,
    /// Woken when a timer is armed, so the firing loop can re-check its next deadline.
    changed: Notify,
}

impl TimerQueue {
    pub fn new(timers: impl IntoIterator<Item = (ContactId, TimerRef, Timestamp)>) -> Self {
        let mut queue = Queue::default();
        for (contact, timer, deadline) in timers {
            queue.insert(&contact, timer, deadline);
        }
        TimerQueue {
            queue: Mutex::new(queue),
            changed: Notify::new(),
        }
    }

    pub fn armed(&self, contact: &ContactId, timer: TimerRef, deadline: Timestamp) {
        self.lock().insert(contact, timer, deadline);
        self.changed.notify_one();
    }

    /// The table no longer holds these timers (cancelled or fired).
    pub fn removed(&self, gone: &[(ContactId, TimerRef)]) {
        let mut queue = self.lock();
        for (contact, timer) in gone {
            queue.remove(contact, *timer);
        }
    }

    /// The contact was erased, and its timers with it.
    pub fn erased(&self, contact: &ContactId) {
        let mut queue = self.lock();
        let gone: Vec<TimerRef> = queue
            .deadlines
            .keys()
            .filter(|(c, _)| c == contact)
            .map(|(_, t)| *t)
            .collect();
        for timer in gone {
            queue.remove(contact, timer);
        }
    }

    /// Timers whose deadline is at or before `now`, earliest first.
    pub fn due(&self, now: Timestamp) -> Vec<(ContactId, TimerRef)> {
        self.lock()
            .by_deadline
            .iter()
            .take_while(|(deadline, _, _)| *deadline <= now)
            .map(|(_, contact, timer)| (contact.clone(), *timer))
            .collect()
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.lock()
            .by_deadline
            .first()
            .map(|(deadline, _, _)| *deadline)
    }

    pub fn len(&self) -> usize {
        self.lock().deadlines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves when a timer was armed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(run: u64) -> TimerRef {
        TimerRef { run, wait_seq: 1 }
    }

    #[test]
    fn due_timers_come_earliest_first_and_rearming_moves_a_timer() {
        let (a, b) = (
            ContactId::new("whatsapp", "1"),
            ContactId::new("whatsapp", "2"),
        );
        let queue = TimerQueue::new([(a.clone(), timer(1), Timestamp(300))]);
        queue.armed(&b, timer(1), Timestamp(200));
        assert_eq!(queue.next_deadline(), Some(Timestamp(200)));
        assert_eq!(queue.due(Timestamp(250)), vec![(b.clone(), timer(1))]);
        // The same timer armed again keeps one entry, at its new deadline.
        queue.armed(&b, timer(1), Timestamp(400));
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.due(Timestamp(350)), vec![(a.clone(), timer(1))]);
        queue.removed(&[(a.clone(), timer(1))]);
        queue.erased(&b);
        assert_eq!((queue.len(), queue.next_deadline()), (0, None));
    }
}
