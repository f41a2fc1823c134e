//! Group commit of job outcomes: one thread owns a connection to the state
//! file and commits, in ONE SQLite transaction, every job completion (the
//! GLPI id in the mappings + the job deleted, invariant 2) and every "about
//! to send" mark that arrived while the previous commit was being made
//! durable. Each item runs in its own savepoint, so one failing record
//! fails alone.
//!
//! Why: the state file commits with `synchronous=FULL` (an fsync each), and
//! a followup needs two writes (started, done). One fsync per write caps
//! the workers far below GLPI's bound (`in_flight / latency`); one fsync per
//! batch does not. A job still learns its write is durable before it goes
//! on (the next job of its queue, the POST after its mark).

use std::path::Path;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use super::job::JobError;
use crate::outbox;
use crate::state::{State, StateError};

/// What a completed job records, inside the shared transaction.
pub type Record = Box<dyn FnOnce(&Connection) -> Result<(), JobError> + Send>;

enum Item {
    /// `outbox::mark_started`.
    Started { job_id: i64 },
    /// The job's record, then the job removed from the outbox.
    Complete { job_id: i64, record: Record },
}

struct Request {
    item: Item,
    reply: oneshot::Sender<Result<(), JobError>>,
}

/// Most items per transaction.
const MAX_BATCH: usize = 512;

/// Handle to the committer thread (cheap to clone). The thread ends when
/// every handle is dropped.
#[derive(Clone)]
pub struct Committer {
    sender: mpsc::UnboundedSender<Request>,
}

impl Committer {
    /// Starts the thread on its own connection to the state file at `path`.
    pub fn start(path: &Path) -> Result<Committer, StateError> {
        let mut state = State::open(path)?;
        let (sender, mut receiver) = mpsc::unbounded_channel::<Request>();
        std::thread::Builder::new()
            .name("outbox-commit".into())
            .spawn(move || {
                while let Some(first) = receiver.blocking_recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match receiver.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    commit_batch(state.conn_mut(), batch);
                }
            })
            .expect("spawn the outbox commit thread");
        Ok(Committer { sender })
    }

    /// Durably marks `job_id` started (before its first GLPI create).
    pub async fn mark_started(&self, job_id: i64) -> Result<(), JobError> {
        self.submit(Item::Started { job_id }).await
    }

    /// Durably records `record` and removes `job_id` from the outbox.
    pub async fn complete(&self, job_id: i64, record: Record) -> Result<(), JobError> {
        self.submit(Item::Complete { job_id, record }).await
    }

    async fn submit(&self, item: Item) -> Result<(), JobError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Request { item, reply })
            .map_err(|_| JobError::Commit("the outbox commit thread has stopped".into()))?;
        answer
            .await
            .map_err(|_| JobError::Commit("the outbox commit thread has stopped".into()))?
    }
}

fn commit_batch(conn: &mut Connection, batch: Vec<Request>) {
    let mut tx = match crate::state::write_transaction(conn) {
        Ok(tx) => tx,
        Err(e) => {
            for request in batch {
                let _ = request.reply.send(Err(JobError::Commit(e.to_string())));
            }
            return;
        }
    };
    let mut done = Vec::with_capacity(batch.len());
    for Request { item, reply } in batch {
        let result = tx
            .savepoint()
            .map_err(JobError::from)
            .and_then(|savepoint| {
                let applied = match item {
                    Item::Started { job_id } => {
                        outbox::mark_started(&savepoint, job_id).map_err(JobError::from)
                    }
                    Item::Complete { job_id, record } => record(&savepoint)
                        .and_then(|()| outbox::finish(&savepoint, job_id).map_err(JobError::from)),
                };
                match applied {
                    Ok(()) => savepoint.commit().map_err(JobError::from),
                    // Dropping the savepoint rolls back this item only.
                    Err(e) => Err(e),
                }
            });
        match result {
            Ok(()) => done.push(reply),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
    match tx.commit() {
        Ok(()) => {
            for reply in done {
                let _ = reply.send(Ok(()));
            }
        }
        Err(e) => {
            for reply in done {
                let _ = reply.send(Err(JobError::Commit(e.to_string())));
            }
        }
    }
}
