//! Group commit for the embedded store: writes queue up for one writer thread, which runs
//! everything queued in one redb transaction and makes it durable with one fsync. Under
//! load many writers share a commit; alone, a write waits for nobody.
//!
//! Each write sees the writes queued before it (one serial order, as if each had its own
//! transaction), and learns its result only once the batch is durable. A write that fails
//! with [`StoreError::Conflict`] has checked before writing anything, so the others go on;
//! any other failure may have left partial writes, so the whole batch is abandoned and
//! every write in it fails (and is retried by its caller; nothing of it was kept).

use redb::{Database, WriteTransaction};
use std::sync::Arc;
use std::sync::mpsc;
use tokio::sync::oneshot;

use crate::ports::StoreError;

/// At most this many writes share a transaction, so that one batch never holds its
/// writers back for long.
pub const MAX_BATCH: usize = 512;

/// A queued write: run inside the batch's transaction, or failed without running.
trait Job: Send {
    fn run(self: Box<Self>, txn: &WriteTransaction) -> Ticket;
    fn fail(self: Box<Self>, error: StoreError);
}

/// How a write that ran is told the batch's fate.
struct Ticket {
    /// `Err` that is not a conflict: the batch must be abandoned.
    poisons: Option<String>,
    tell: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

struct Pending<F, T> {
    f: F,
    caller: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for Pending<F, T>
where
    F: FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, txn: &WriteTransaction) -> Ticket {
        let Pending { f, caller } = *self;
        let result = f(txn);
        let poisons = match &result {
            Ok(_) | Err(StoreError::Conflict) => None,
            Err(e) => Some(e.to_string()),
        };
        Ticket {
            poisons,
            // A write's own error wins over the batch's.
            tell: Box::new(move |batch| {
                let _ = caller.send(result.and_then(|value| batch.map(|_| value)));
            }),
        }
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.caller.send(Err(error));
    }
}

pub struct GroupCommit {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl GroupCommit {
    pub fn start(db: Arc<Database>) -> std::io::Result<GroupCommit> {
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let thread = std::thread::Builder::new()
            .name("assent-store-writer".into())
            .spawn(move || run(&db, &jobs))?;
        Ok(GroupCommit {
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    /// Runs `f` in the next batch; returns its result once the batch is durable.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (caller, answer) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        queue
            .send(Box::new(Pending { f, caller }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

impl Drop for GroupCommit {
    /// Lets the writer finish what is queued and waits for it, so that the file is
    /// closed when the store is gone (and can be opened again at once).
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".into())
}

fn run(db: &Database, jobs: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit(db, batch);
    }
}

fn commit(db: &Database, batch: Vec<Box<dyn Job>>) {
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            let reason = e.to_string();
            for job in batch {
                job.fail(StoreError::Unavailable(reason.clone()));
            }
            return;
        }
    };
    let mut tickets = Vec::with_capacity(batch.len());
    let mut rest = batch.into_iter();
    let mut poisoned = None;
    for job in rest.by_ref() {
        let ticket = job.run(&txn);
        poisoned = ticket.poisons.clone();
        tickets.push(ticket);
        if poisoned.is_some() {
            break;
        }
    }
    let outcome = match poisoned {
        Some(reason) => {
            let _ = txn.abort();
            Err(format!("a write in the same batch failed: {reason}"))
        }
        None => txn.commit().map_err(|e| e.to_string()),
    };
    for job in rest {
        job.fail(StoreError::Unavailable(
            outcome.clone().err().unwrap_or_default(),
        ));
    }
    for ticket in tickets {
        (ticket.tell)(outcome.clone().map_err(StoreError::Unavailable));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableDatabase, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn job<T: Send + 'static>(
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>) {
        let (caller, answer) = oneshot::channel();
        (Box::new(Pending { f, caller }), answer)
    }

    fn put(key: u64) -> impl FnOnce(&WriteTransaction) -> Result<(), StoreError> + Send {
        move |txn| {
            let unavailable = |e: &dyn std::fmt::Display| StoreError::Unavailable(e.to_string());
            let mut table = txn.open_table(T).map_err(|e| unavailable(&e))?;
            table.insert(key, key).map_err(|e| unavailable(&e))?;
            Ok(())
        }
    }

    fn stored(db: &Database, key: u64) -> bool {
        let txn = db.begin_read().unwrap();
        match txn.open_table(T) {
            Ok(t) => t.get(key).unwrap().is_some(),
            Err(_) => false,
        }
    }

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("g.redb")).unwrap();
        (dir, db)
    }

    #[test]
    fn a_conflict_fails_only_its_own_write() {
        let (_dir, db) = db();
        let (a, a_answer) = job(put(1));
        let (b, b_answer) = job(|_| Err::<(), _>(StoreError::Conflict));
        let (c, c_answer) = job(put(3));
        commit(&db, vec![a, b, c]);
        assert!(a_answer.blocking_recv().unwrap().is_ok());
        assert!(matches!(
            b_answer.blocking_recv().unwrap(),
            Err(StoreError::Conflict)
        ));
        assert!(c_answer.blocking_recv().unwrap().is_ok());
        assert!(stored(&db, 1) && stored(&db, 3));
    }

    #[test]
    fn any_other_failure_abandons_the_whole_batch() {
        let (_dir, db) = db();
        let (a, a_answer) = job(put(1));
        let (b, b_answer) = job(|txn| {
            put(2)(txn)?;
            Err::<(), _>(StoreError::Corrupt("half written".into()))
        });
        let (c, c_answer) = job(put(3));
        commit(&db, vec![a, b, c]);
        assert!(matches!(
            a_answer.blocking_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        assert!(
            matches!(
                b_answer.blocking_recv().unwrap(),
                Err(StoreError::Corrupt(_))
            ),
            "its own error"
        );
        assert!(matches!(
            c_answer.blocking_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        assert!(
            !stored(&db, 1) && !stored(&db, 2) && !stored(&db, 3),
            "nothing kept"
        );
    }

    #[tokio::test]
    async fn concurrent_writes_are_all_durable_when_answered() {
        let (_dir, db) = db();
        let db = Arc::new(db);
        let writer = Arc::new(GroupCommit::start(db.clone()).unwrap());
        let writes: Vec<_> = (0..200)
            .map(|key| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.write(put(key)).await })
            })
            .collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        assert!((0..200).all(|key| stored(&db, key)));
    }
}
