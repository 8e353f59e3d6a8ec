use crate::contact::ContactId;
use crate::engine::TimerRef;
use crate::ports::{Appended, InboxItem};

use super::{Runtime, RuntimeError};

impl Runtime {
    /// A timer fired: queue a timeout event for the contact. Idempotent: a timer that
    /// fires twice (a retry, a restart) lands once. Whether it still matters is the
    /// engine's call (a timeout for an old wait is ignored).
    pub async fn fire_timeout(
        &self,
        contact: &ContactId,
        timer: TimerRef,
    ) -> Result<Appended, RuntimeError> {
        let item = InboxItem::timeout(timer, self.clock.now());
        Ok(self.store.append(contact, item).await?)
    }
}
