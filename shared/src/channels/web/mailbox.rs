//! Messages on their way to browsers: per visitor, numbered, kept until they are older
//! than the last [`KEPT_PER_VISITOR`] or the visitor has been away a day. A browser
//! long-polls for what comes after the last number it saw.

use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use crate::engine::{Choice, OutboundMessage};

pub const KEPT_PER_VISITOR: usize = 100;
pub const VISITOR_IDLE_LIMIT: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Delivered {
    pub seq: u64,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
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
pub struct Mailbox {
    queues: Mutex<HashMap<String, Queue>>,
}

impl Mailbox {
    /// Puts a message in `visitor`'s queue; returns its number.
    pub fn push(&self, visitor: &str, message: &OutboundMessage) -> u64 {
        let Ok(mut queues) = self.queues.lock() else {
            return 0;
        };
        queues.retain(|_, q| q.touched.elapsed() < VISITOR_IDLE_LIMIT);
        let queue = queues.entry(visitor.to_string()).or_insert_with(Queue::new);
        let seq = queue.next_seq;
        queue.next_seq += 1;
        let (text, choices) = match message {
            OutboundMessage::Text { text } => (text.clone(), Vec::new()),
            OutboundMessage::Question { text, choices } => (text.clone(), choices.clone()),
        };
        queue.messages.push_back(Delivered { seq, text, choices });
        while queue.messages.len() > KEPT_PER_VISITOR {
            queue.messages.pop_front();
        }
        queue.arrived.notify_waiters();
        seq
    }

    /// What came after `seq`, waiting up to `patience` for something to come.
    pub async fn wait_after(&self, visitor: &str, seq: u64, patience: Duration) -> Vec<Delivered> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let arrived = {
                let Ok(mut queues) = self.queues.lock() else {
                    return Vec::new();
                };
                let queue = queues.entry(visitor.to_string()).or_insert_with(Queue::new);
                queue.touched = Instant::now();
                let waiting = queue.after(seq);
                if !waiting.is_empty() {
                    return waiting;
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
                return Vec::new();
            }
        }
    }

    fn has_after(&self, visitor: &str, seq: u64) -> bool {
        self.queues
            .lock()
            .ok()
            .and_then(|q| q.get(visitor).map(|q| !q.after(seq).is_empty()))
            .unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_browser_gets_what_arrives_and_only_what_is_new() {
        let mailbox = Arc::new(Mailbox::default());
        let waiter = {
            let mailbox = mailbox.clone();
            tokio::spawn(async move { mailbox.wait_after("v", 0, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        mailbox.push(
            "v",
            &OutboundMessage::Text {
                text: "hello".into(),
            },
        );
        let got = waiter.await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].seq, got[0].text.as_str()), (1, "hello"));
        mailbox.push(
            "v",
            &OutboundMessage::Text {
                text: "second".into(),
            },
        );
        let got = mailbox.wait_after("v", 1, Duration::from_secs(30)).await;
        assert_eq!(got.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![2]);
        assert!(
            mailbox
                .wait_after("other", 0, Duration::from_millis(10))
                .await
                .is_empty()
        );
    }

    #[test]
    fn keeps_a_bounded_history() {
        let mailbox = Mailbox::default();
        for i in 0..(KEPT_PER_VISITOR + 5) {
            mailbox.push(
                "v",
                &OutboundMessage::Text {
                    text: i.to_string(),
                },
            );
        }
        let queues = mailbox.queues.lock().unwrap();
        let kept = &queues["v"].messages;
        assert_eq!(kept.len(), KEPT_PER_VISITOR);
        assert_eq!(kept.front().unwrap().seq, 6);
    }
}
