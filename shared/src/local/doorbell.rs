//! The local doorbell: at most one worker per contact runs that contact's steps, so a
//! contact's events are applied in order and never concurrently. A ring while a worker
//! runs makes it go round once more instead of starting a second one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

use crate::contact::ContactId;
use crate::ports::Doorbell;
use crate::runtime::Runtime;

/// How long a contact waits after a retryable failure (a channel outage, say).
const RETRY_AFTER: Duration = Duration::from_secs(2);

pub struct LocalDoorbell {
    runtime: Arc<Runtime>,
    /// contact -> "rung again while its worker was running"
    active: Mutex<HashMap<ContactId, bool>>,
    idle: Notify,
    this: std::sync::Weak<LocalDoorbell>,
}

impl LocalDoorbell {
    pub fn new(runtime: Arc<Runtime>) -> Arc<LocalDoorbell> {
        // Workers are spawned from `ring(&self)` and need an owned handle to the doorbell.
        Arc::new_cyclic(|this| LocalDoorbell {
            runtime,
            active: Mutex::new(HashMap::new()),
            idle: Notify::new(),
            this: this.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ContactId, bool>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves once no contact is queued or running.
    pub async fn drained(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.lock().is_empty() {
                return;
            }
            idle.await;
        }
    }

    async fn work(self: Arc<Self>, contact: ContactId) {
        loop {
            match self.runtime.run_steps(&contact).await {
                Ok(_) => {}
                Err(e) if e.is_retryable() => {
                    tracing::warn!(contact = %contact.log_ref(), error = %e, "steps will be retried");
                    // Weak: a pending retry must not keep a stopped host (and its store) alive.
                    let this = Arc::downgrade(&self);
                    let retry = contact.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(RETRY_AFTER).await;
                        if let Some(this) = this.upgrade() {
                            this.ring(&retry);
                        }
                    });
                }
                Err(e) => tracing::error!(contact = %contact.log_ref(), error = %e, "steps failed"),
            }
            let mut active = self.lock();
            match active.get_mut(&contact) {
                Some(again) if *again => *again = false,
                _ => {
                    active.remove(&contact);
                    if active.is_empty() {
                        self.idle.notify_waiters();
                    }
                    return;
                }
            }
        }
    }
}

impl Doorbell for LocalDoorbell {
    fn ring(&self, contact: &ContactId) {
        let mut active = self.lock();
        if let Some(again) = active.get_mut(contact) {
            *again = true;
            return;
        }
        let Some(this) = self.this.upgrade() else {
            return;
        };
        active.insert(contact.clone(), false);
        tokio::spawn(this.work(contact.clone()));
    }
}
