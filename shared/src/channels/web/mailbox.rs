//! Messages on their way to browsers, per visitor and numbered. The [`Mailbox`] trait has
//! two homes: [`MemoryMailbox`] for `assent-local`, which browsers long-poll, and the
//! DynamoDB table on AWS (`store::dynamodb::mailbox`), which browsers poll at the pace it
//! names, since a Lambda function waiting on a long-poll would be billed for the wait.
//!
//! The memory mailbox keeps the last [`KEPT_PER_VISITOR`] messages of at most
//! [`VISITORS_MAX`] visitors (about 100 MB at the very most); past that, those away a day
//! go first, then the one away longest.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use crate::engine::{Choice, OutboundMessage};

pub const KEPT_PER_VISITOR: usize = 50;
pub const VISITOR_IDLE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// Sessions are free to make, so the mailbox bounds how many visitors it holds: past this,
/// the visitor away longest is dropped (their conversation stays in the store).
pub const VISITORS_MAX: usize = 10_000;

#[async_trait]
pub trait Mailbox: Send + Sync {
    /// Puts a message in `visitor`'s queue; returns its number, higher than any before.
    async fn push(&self, visitor: &str, message: &OutboundMessage) -> Result<u64, String>;

    /// What came after `seq` (at most [`KEPT_PER_VISITOR`], oldest first). A mailbox that
    /// can wait does so up to `patience` for something to come.
    async fn after(
        &self,
        visitor: &str,
        seq: u64,
        patience: Duration,
    ) -> Result<Vec<Delivered>, String>;

    /// Drops the messages waiting for `visitor` (their contact is erased). Later numbers
    /// stay higher than any given before, so a tab still open gets what comes next.
    async fn forget(&self, visitor: &str) -> Result<(), String>;

    /// How long a browser should pause between polls; `None`: it may poll again at once,
    /// because every poll waits for news.
    fn poll_pause(&self) -> Option<Duration> {
        None
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivered {
    pub seq: u64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
}

impl Delivered {
    pub fn new(seq: u64, message: &OutboundMessage) -> Delivered {
        let (text, choices) = match message {
            OutboundMessage::Text { text } => (text.clone(), Vec::new()),
            OutboundMessage::Question { text, choices } => (text.clone(), choices.clone()),
        };
        Delivered { seq, text, choices }
    }
}

struct Queue {
    messages: VecDeque<Delivered>,
    next_seq: u64,
    arrived: Arc<Notify>,
    touched: Instant,
}

impl Queue {
    fn new() -> Queue {
        Queue {
            messages: VecDeque::new(),
            next_seq: 1,
            arrived: Arc::new(Notify::new()),
            touched: Instant::now(),
        }
    }

    fn after(&self, seq: u64) -> Vec<Delivered> {
        self.messages
            .iter()
            .filter(|m| m.seq > seq)
            .cloned()
            .collect()
    }
}

#[derive(Default)]
pub struct MemoryMailbox {
    queues: Mutex<HashMap<String, Queue>>,
}

#[async_trait]
impl Mailbox for MemoryMailbox {
    async fn push(&self, visitor: &str, message: &OutboundMessage) -> Result<u64, String> {
        let mut queues = self.queues()?;
        let queue = queue_of(&mut queues, visitor);
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.messages.push_back(Delivered::new(seq, message));
        while queue.messages.len() > KEPT_PER_VISITOR {
            queue.messages.pop_front();
        }
        queue.arrived.notify_waiters();
        Ok(seq)
    }

    async fn after(
        &self,
        visitor: &str,
        seq: u64,
        patience: Duration,
    ) -> Result<Vec<Delivered>, String> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let arrived = {
                let mut queues = self.queues()?;
                let queue = queue_of(&mut queues, visitor);
                queue.touched = Instant::now();
                let waiting = queue.after(seq);
                if !waiting.is_empty() {
                    return Ok(waiting);
                }
                queue.arrived.clone()
            };
            let notified = arrived.notified();
            tokio::pin!(notified);
            // Registered first, then checked again: a push that came between the check
            // above and the registration is not missed.
            notified.as_mut().enable();
            if self.has_after(visitor, seq) {
                continue;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn forget(&self, visitor: &str) -> Result<(), String> {
        if let Some(queue) = self.queues()?.get_mut(visitor) {
            queue.messages.clear();
        }
        Ok(())
    }
}

impl MemoryMailbox {
    fn queues(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Queue>>, String> {
        self.queues
            .lock()
            .map_err(|_| "the mailbox is unusable after a panic".to_string())
    }

    fn has_after(&self, visitor: &str, seq: u64) -> bool {
        self.queues
            .lock()
            .ok()
            .and_then(|q| q.get(visitor).map(|q| !q.after(seq).is_empty()))
            .unwrap_or(false)
    }
}

/// `visitor`'s queue, made if need be within [`VISITORS_MAX`].
fn queue_of<'q>(queues: &'q mut HashMap<String, Queue>, visitor: &str) -> &'q mut Queue {
    if !queues.contains_key(visitor) && queues.len() >= VISITORS_MAX {
        queues.retain(|_, q| q.touched.elapsed() < VISITOR_IDLE_LIMIT);
        if queues.len() >= VISITORS_MAX {
            let longest_away = queues
                .iter()
                .min_by_key(|(_, q)| q.touched)
                .map(|(v, _)| v.clone());
            if let Some(v) = longest_away {
                queues.remove(&v);
            }
        }
    }
    queues.entry(visitor.to_string()).or_insert_with(Queue::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_browser_gets_what_arrives_and_only_what_is_new() {
        let mailbox = Arc::new(MemoryMailbox::default());
        let waiter = {
            let mailbox = mailbox.clone();
            tokio::spawn(async move {
                mailbox
                    .after("v", 0, Duration::from_secs(30))
                    .await
                    .unwrap()
            })
        };
        tokio::task::yield_now().await;
        mailbox
            .push(
                "v",
                &OutboundMessage::Text {
                    text: "hello".into(),
                },
            )
            .await
            .unwrap();
        let got = waiter.await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].seq, got[0].text.as_str()), (1, "hello"));
        mailbox
            .push(
                "v",
                &OutboundMessage::Text {
                    text: "second".into(),
                },
            )
            .await
            .unwrap();
        let got = mailbox
            .after("v", 1, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
        assert!(
            mailbox
                .after("other", 0, Duration::from_millis(10))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn holds_a_bounded_number_of_visitors() {
        let mailbox = MemoryMailbox::default();
        for i in 0..=VISITORS_MAX {
            let hi = OutboundMessage::Text { text: "hi".into() };
            mailbox.push(&i.to_string(), &hi).await.unwrap();
        }
        let queues = mailbox.queues.lock().unwrap();
        assert_eq!(queues.len(), VISITORS_MAX);
        assert!(
            queues.contains_key(&VISITORS_MAX.to_string()),
            "the newest stays"
        );
    }

    #[tokio::test]
    async fn keeps_a_bounded_history() {
        let mailbox = MemoryMailbox::default();
        for i in 0..(KEPT_PER_VISITOR + 5) {
            let text = OutboundMessage::Text {
                text: i.to_string(),
            };
            mailbox.push("v", &text).await.unwrap();
        }
        let queues = mailbox.queues.lock().unwrap();
        let kept = &queues["v"].messages;
        assert_eq!(kept.len(), KEPT_PER_VISITOR);
        assert_eq!(kept.front().unwrap().seq, 6);
    }
}
