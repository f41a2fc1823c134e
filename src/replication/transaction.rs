//! Assembling the pgoutput stream into committed transactions of typed
//! [`Change`]s.
//!
//! [`TransactionAssembler`] takes `pgwire_replication` events
//! ([`TransactionAssembler::handle_event`]) or raw pgoutput messages from any
//! other source ([`TransactionAssembler::handle_pgoutput`]; that is the core,
//! and what the unit tests feed). On each Commit it yields a
//! [`CommittedTransaction`], even one with no change for our tables:
//! invariant 1 lets the caller confirm such a commit LSN, since its contents
//! were deliberately ignored. It also marks the bridge's own write-backs
//! (invariant 4) by their logical message prefix or replication origin.

use bytes::Bytes;
use pgwire_replication::ReplicationEvent;

use super::pgoutput::{self, DecodeError, PgOutputMessage};
use super::relations::{ChangeError, RelationCache};
use crate::chatwoot::text::RowError;
use crate::chatwoot::{Change, CommittedChange, RowOp};
use crate::lsn::Lsn;

/// Prefix of the transactional logical message the write-back emits inside
/// each of its transactions: `pg_logical_emit_message(true, prefix, ...)`.
pub const BRIDGE_MESSAGE_PREFIX: &str = "chatwoot-glpi-bridge.writeback";

/// Replication origin name the write-back may set up on its connection
/// (`pg_replication_origin_session_setup`); its transactions arrive with an
/// Origin message carrying this name.
pub const BRIDGE_ORIGIN_NAME: &str = "chatwoot-glpi-bridge";

/// A source transaction, complete at its Commit.
#[derive(Clone, Debug, PartialEq)]
pub struct CommittedTransaction {
    /// End LSN of the commit: safe to confirm once `changes` are stored.
    pub commit_lsn: Lsn,
    /// The transaction is one of the bridge's own write-backs.
    pub from_bridge: bool,
    /// Changes of our tables, in commit order.
    pub changes: Vec<Change>,
    /// Rows whose values did not parse, to be kept with their reason
    /// (invariant 6); the transaction's other changes are unaffected.
    pub rejected: Vec<(RowOp, RowError)>,
}

impl CommittedTransaction {
    /// The changes tagged with their commit LSN and origin, for the change log.
    pub fn committed_changes(self) -> impl Iterator<Item = CommittedChange> {
        let (commit_lsn, from_bridge) = (self.commit_lsn, self.from_bridge);
        self.changes.into_iter().map(move |change| CommittedChange {
            commit_lsn,
            from_bridge,
            change,
        })
    }
}

/// The stream cannot be decoded. Permanent: the same WAL gives the same
/// error, so the caller must stop without confirming past the transaction.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Change(ChangeError),
    #[error("pgoutput {0} arrived outside a transaction (no Begin before it)")]
    OutsideTransaction(&'static str),
    #[error("pgoutput Begin arrived while a transaction was still open (no Commit before it)")]
    BeginInsideTransaction,
}

/// Turns the pgoutput stream of one replication session into committed
/// transactions. Create a new one for each session: PostgreSQL describes the
/// relations again after a reconnect, and a transaction cut off by a
/// disconnect is sent again in full.
#[derive(Debug, Default)]
pub struct TransactionAssembler {
    relations: RelationCache,
    open: Option<OpenTransaction>,
}

#[derive(Debug, Default)]
struct OpenTransaction {
    from_bridge: bool,
    changes: Vec<Change>,
    rejected: Vec<(RowOp, RowError)>,
}

impl TransactionAssembler {
    pub fn new() -> Self {
        Self::default()
    }

    /// The relations described so far in this session.
    pub fn relations(&self) -> &RelationCache {
        &self.relations
    }

    /// Whether a Begin has been seen without its Commit yet.
    pub fn in_transaction(&self) -> bool {
        self.open.is_some()
    }

    /// Handles one `pgwire_replication` event. Keepalives and `StoppedAt`
    /// are the caller's business and yield nothing here.
    pub fn handle_event(
        &mut self,
        event: ReplicationEvent,
    ) -> Result<Option<CommittedTransaction>, StreamError> {
        match event {
            ReplicationEvent::Begin { .. } => self.begin().map(|()| None),
            ReplicationEvent::Commit { end_lsn, .. } => self.commit(end_lsn.0).map(Some),
            ReplicationEvent::Message {
                transactional,
                prefix,
                ..
            } => {
                self.message(transactional, &prefix);
                Ok(None)
            }
            ReplicationEvent::XLogData { data, .. } => self.handle_pgoutput(&data),
            _ => Ok(None),
        }
    }

    /// Handles one raw pgoutput message (the payload of an XLogData frame).
    pub fn handle_pgoutput(
        &mut self,
        data: &Bytes,
    ) -> Result<Option<CommittedTransaction>, StreamError> {
        // Changes of tables we do not read are dropped after reading the
        // relation id, without decoding their tuples.
        if let Some(relation_id) = pgoutput::change_relation_id(data) {
            let kind = pgoutput::message_name(data[0]).unwrap_or("change");
            self.open_transaction(kind)?;
            let read = self
                .relations
                .is_read(relation_id, kind)
                .map_err(StreamError::Change)?;
            if !read {
                return Ok(None);
            }
        }
        match pgoutput::decode(data)? {
            PgOutputMessage::Begin(_) => self.begin().map(|()| None),
            PgOutputMessage::Commit(c) => self.commit(c.end_lsn).map(Some),
            PgOutputMessage::Message(m) => {
                self.message(m.transactional, &m.prefix);
                Ok(None)
            }
            PgOutputMessage::Origin(o) => {
                self.open_transaction("Origin")?.from_bridge |= o.name == BRIDGE_ORIGIN_NAME;
                Ok(None)
            }
            PgOutputMessage::Relation(r) => {
                self.relations.apply(r);
                Ok(None)
            }
            PgOutputMessage::Type(_) => Ok(None),
            change => {
                let result = self.relations.change(&change);
                let open = self.open_transaction(change.name())?;
                match result {
                    Ok(Some(change)) => open.changes.push(change),
                    Ok(None) => {}
                    Err(ChangeError::Row { op, error }) => open.rejected.push((op, error)),
                    Err(other) => return Err(StreamError::Change(other)),
                }
                Ok(None)
            }
        }
    }

    fn open_transaction(
        &mut self,
        what: &'static str,
    ) -> Result<&mut OpenTransaction, StreamError> {
        self.open
            .as_mut()
            .ok_or(StreamError::OutsideTransaction(what))
    }

    fn begin(&mut self) -> Result<(), StreamError> {
        if self.open.is_some() {
            return Err(StreamError::BeginInsideTransaction);
        }
        self.open = Some(OpenTransaction::default());
        Ok(())
    }

    /// Only a transactional message inside a transaction marks it; other
    /// messages (non-transactional ones arrive between transactions) are
    /// not ours to interpret.
    fn message(&mut self, transactional: bool, prefix: &str) {
        if let Some(open) = &mut self.open {
            open.from_bridge |= transactional && prefix == BRIDGE_MESSAGE_PREFIX;
        }
    }

    fn commit(&mut self, end_lsn: u64) -> Result<CommittedTransaction, StreamError> {
        let open = self
            .open
            .take()
            .ok_or(StreamError::OutsideTransaction("Commit"))?;
        Ok(CommittedTransaction {
            commit_lsn: Lsn(end_lsn),
            from_bridge: open.from_bridge,
            changes: open.changes,
            rejected: open.rejected,
        })
    }
}

#[cfg(test)]
mod tests;
