//! Decoding of pgoutput (protocol version 1) messages: raw replication bytes
//! to [`PgOutputMessage`]s.
//!
//! Everything works on [`Bytes`]: tuple values and message contents are
//! slices of the buffer the walsender sent, never copies. Malformed or
//! truncated input is a [`DecodeError`] that names the message, the field and
//! the byte offset; decoding never panics (invariant 6: bad input gets a clear
//! error, it never takes the process down).
//!
//! Only protocol version 1 is handled (what `pgwire-replication` 0.5 asks
//! for): no streamed in-progress transactions, so no xid in change messages.

use bytes::Bytes;

use crate::chatwoot::text::{TextValue, ToTextValue, ValueProblem};
use reader::Reader;

/// One decoded pgoutput message.
#[derive(Clone, Debug, PartialEq)]
pub enum PgOutputMessage {
    Begin(Begin),
    Commit(Commit),
    Origin(Origin),
    Relation(Relation),
    Type(TypeInfo),
    Insert(Insert),
    Update(Update),
    Delete(Delete),
    Truncate(Truncate),
    Message(LogicalMessage),
}

impl PgOutputMessage {
    /// The message kind's name (`Insert`, `Relation`, ...), for errors.
    pub fn name(&self) -> &'static str {
        match self {
            PgOutputMessage::Begin(_) => "Begin",
            PgOutputMessage::Commit(_) => "Commit",
            PgOutputMessage::Origin(_) => "Origin",
            PgOutputMessage::Relation(_) => "Relation",
            PgOutputMessage::Type(_) => "Type",
            PgOutputMessage::Insert(_) => "Insert",
            PgOutputMessage::Update(_) => "Update",
            PgOutputMessage::Delete(_) => "Delete",
            PgOutputMessage::Truncate(_) => "Truncate",
            PgOutputMessage::Message(_) => "Message",
        }
    }
}

/// `B`: start of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begin {
    /// LSN of the transaction's commit record.
    pub final_lsn: u64,
    /// Commit time, microseconds since 2000-01-01 UTC.
    pub commit_time_micros: i64,
    pub xid: u32,
}

/// `C`: end of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub flags: u8,
    /// LSN of the commit record.
    pub commit_lsn: u64,
    /// End LSN of the transaction: what a consumer confirms.
    pub end_lsn: u64,
    pub commit_time_micros: i64,
}

/// `O`: the transaction was written under a replication origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub commit_lsn: u64,
    pub name: String,
}

/// `R`: the layout of a table, sent before its first change in a session and
/// again whenever it changes (e.g. after `ALTER TABLE ... ADD COLUMN`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub id: u32,
    pub schema: String,
    pub name: String,
    /// `d` default, `n` nothing, `f` full, `i` index.
    pub replica_identity: u8,
    pub columns: Vec<RelationColumn>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// Bit 1 set: the column is part of the replica identity key.
    pub flags: u8,
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
}

/// `Y`: a non-built-in data type used by a relation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeInfo {
    pub oid: u32,
    pub schema: String,
    pub name: String,
}

/// `I`: a new row.
#[derive(Clone, Debug, PartialEq)]
pub struct Insert {
    pub relation_id: u32,
    pub new: TupleData,
}

/// Which old row image an UPDATE or DELETE carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OldTupleKind {
    /// `K`: only the replica identity key columns (others are null).
    Key,
    /// `O`: the whole old row (REPLICA IDENTITY FULL).
    Full,
}

/// `U`: a changed row.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub relation_id: u32,
    /// Present only if the key changed or the table has REPLICA IDENTITY FULL.
    pub old: Option<(OldTupleKind, TupleData)>,
    pub new: TupleData,
}

/// `D`: a deleted row.
#[derive(Clone, Debug, PartialEq)]
pub struct Delete {
    pub relation_id: u32,
    pub old_kind: OldTupleKind,
    pub old: TupleData,
}

/// `T`: one or more tables were truncated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncate {
    /// Bit 1: CASCADE, bit 2: RESTART IDENTITY.
    pub options: u8,
    pub relation_ids: Vec<u32>,
}

/// `M`: a logical decoding message (`pg_logical_emit_message`).
#[derive(Clone, Debug, PartialEq)]
pub struct LogicalMessage {
    /// Emitted with `transactional = true`: delivered inside its transaction.
    pub transactional: bool,
    pub lsn: u64,
    pub prefix: String,
    pub content: Bytes,
}

/// The columns of one row image, validated at decode time and read lazily so
/// that decoding allocates nothing per column.
#[derive(Clone, Debug, PartialEq)]
pub struct TupleData {
    /// The column entries (after the column count).
    raw: Bytes,
    count: u16,
}

/// One column of a [`TupleData`], borrowing from the message buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnValue<'a> {
    /// `n`: SQL NULL.
    Null,
    /// `u`: unchanged TOASTed value (not sent; keep the previous one).
    Unchanged,
    /// `t`: text format, as PostgreSQL's output function prints it.
    Text(&'a [u8]),
    /// `b`: binary format (only sent when the `binary` option is on).
    Binary(&'a [u8]),
}

impl TupleData {
    /// Number of columns in the tuple (the relation's column count).
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The columns in relation order.
    pub fn iter(&self) -> TupleIter<'_> {
        TupleIter {
            rest: &self.raw,
            left: self.count,
        }
    }

    /// A column's bytes as a [`Bytes`] sharing the message buffer (no copy).
    /// `slice` must come from this tuple's [`TupleData::iter`].
    pub fn share(&self, slice: &[u8]) -> Bytes {
        self.raw.slice_ref(slice)
    }
}

/// Iterator over a [`TupleData`]'s columns.
pub struct TupleIter<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for TupleIter<'a> {
    type Item = ColumnValue<'a>;

    fn next(&mut self) -> Option<ColumnValue<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The layout was validated when the tuple was decoded; the checked
        // accessors only keep this panic-free.
        let (&kind, rest) = self.rest.split_first()?;
        self.rest = rest;
        match kind {
            b'n' => Some(ColumnValue::Null),
            b'u' => Some(ColumnValue::Unchanged),
            _ => {
                let len = u32::from_be_bytes(self.rest.get(..4)?.try_into().ok()?) as usize;
                let value = self.rest.get(4..4 + len)?;
                self.rest = &self.rest[4 + len..];
                Some(if kind == b'b' {
                    ColumnValue::Binary(value)
                } else {
                    ColumnValue::Text(value)
                })
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

impl<'a> ToTextValue<'a> for ColumnValue<'a> {
    /// Text values must be UTF-8 (Chatwoot databases are); binary values are
    /// never requested, so one arriving is an error for the column.
    fn to_text_value(self) -> Result<TextValue<'a>, ValueProblem> {
        match self {
            ColumnValue::Null => Ok(TextValue::Null),
            ColumnValue::Unchanged => Ok(TextValue::Unchanged),
            ColumnValue::Text(bytes) => std::str::from_utf8(bytes)
                .map(TextValue::Text)
                .map_err(|_| ValueProblem::NotUtf8),
            ColumnValue::Binary(_) => Err(ValueProblem::Binary),
        }
    }
}

/// What was wrong with a pgoutput message, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput {message} message at byte {offset} ({field}): {problem}")]
pub struct DecodeError {
    /// The message kind being decoded (`Insert`, `Relation`, ...).
    pub message: &'static str,
    /// The field being read.
    pub field: &'static str,
    /// Byte offset into the message (the tag is byte 0).
    pub offset: usize,
    pub problem: DecodeProblem,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeProblem {
    #[error("the message is empty")]
    Empty,
    #[error("unknown message tag {0:#04x}")]
    UnknownTag(u8),
    #[error("truncated: needs {needed} bytes, {available} left")]
    Truncated { needed: usize, available: usize },
    #[error("string has no NUL terminator")]
    UnterminatedString,
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("unexpected byte {found:#04x}, expected {expected}")]
    UnexpectedByte { found: u8, expected: &'static str },
    #[error("negative count {0}")]
    NegativeCount(i64),
    #[error("{0} bytes left over after the message")]
    TrailingBytes(usize),
}

/// Decodes one pgoutput message (the payload of an XLogData frame).
pub fn decode(data: &Bytes) -> Result<PgOutputMessage, DecodeError> {
    let Some(&tag) = data.first() else {
        return Err(DecodeError {
            message: "(empty)",
            field: "tag",
            offset: 0,
            problem: DecodeProblem::Empty,
        });
    };
    let Some(message) = message_name(tag) else {
        return Err(DecodeError {
            message: "(unknown)",
            field: "tag",
            offset: 0,
            problem: DecodeProblem::UnknownTag(tag),
        });
    };
    let mut r = Reader {
        data,
        pos: 1,
        message,
    };
    let decoded = match tag {
        b'B' => PgOutputMessage::Begin(Begin {
            final_lsn: r.u64("final LSN")?,
            commit_time_micros: r.i64("commit timestamp")?,
            xid: r.u32("xid")?,
        }),
        b'C' => PgOutputMessage::Commit(Commit {
            flags: r.u8("flags")?,
            commit_lsn: r.u64("commit LSN")?,
            end_lsn: r.u64("end LSN")?,
            commit_time_micros: r.i64("commit timestamp")?,
        }),
        b'O' => PgOutputMessage::Origin(Origin {
            commit_lsn: r.u64("commit LSN")?,
            name: r.string("origin name")?,
        }),
        b'R' => PgOutputMessage::Relation(r.relation()?),
        b'Y' => PgOutputMessage::Type(TypeInfo {
            oid: r.u32("type oid")?,
            schema: r.string("type schema")?,
            name: r.string("type name")?,
        }),
        b'I' => {
            let relation_id = r.u32("relation id")?;
            r.expect(b"N", "tuple marker", "'N'")?;
            PgOutputMessage::Insert(Insert {
                relation_id,
                new: r.tuple()?,
            })
        }
        b'U' => {
            let relation_id = r.u32("relation id")?;
            let marker = r.expect(b"KON", "tuple marker", "'K', 'O' or 'N'")?;
            let old = match marker {
                b'N' => None,
                kind => {
                    let old = r.tuple()?;
                    r.expect(b"N", "new tuple marker", "'N'")?;
                    Some((old_kind(kind), old))
                }
            };
            PgOutputMessage::Update(Update {
                relation_id,
                old,
                new: r.tuple()?,
            })
        }
        b'D' => {
            let relation_id = r.u32("relation id")?;
            let kind = r.expect(b"KO", "old tuple marker", "'K' or 'O'")?;
            PgOutputMessage::Delete(Delete {
                relation_id,
                old_kind: old_kind(kind),
                old: r.tuple()?,
            })
        }
        b'T' => {
            let count = r.count_i32("relation count")?;
            let options = r.u8("options")?;
            // Each id is 4 bytes: check before allocating for a bogus count.
            r.need(count.saturating_mul(4), "relation ids")?;
            let mut relation_ids = Vec::with_capacity(count);
            for _ in 0..count {
                relation_ids.push(r.u32("relation id")?);
            }
            PgOutputMessage::Truncate(Truncate {
                options,
                relation_ids,
            })
        }
        _ => {
            let flags = r.u8("flags")?;
            let lsn = r.u64("message LSN")?;
            let prefix = r.string("prefix")?;
            let len = r.count_i32("content length")?;
            let content = r.bytes(len, "content")?;
            PgOutputMessage::Message(LogicalMessage {
                transactional: flags & 1 != 0,
                lsn,
                prefix,
                content,
            })
        }
    };
    r.finish()?;
    Ok(decoded)
}

/// The name of the message kind a tag byte starts (`Insert` for `I`, ...).
pub fn message_name(tag: u8) -> Option<&'static str> {
    Some(match tag {
        b'B' => "Begin",
        b'C' => "Commit",
        b'O' => "Origin",
        b'R' => "Relation",
        b'Y' => "Type",
        b'I' => "Insert",
        b'U' => "Update",
        b'D' => "Delete",
        b'T' => "Truncate",
        b'M' => "Message",
        _ => return None,
    })
}

/// The relation id of an Insert, Update or Delete message, read without
/// decoding its tuples (so changes of tables we do not read cost nothing).
/// `None` for other message kinds or a message too short to hold one.
pub fn change_relation_id(data: &[u8]) -> Option<u32> {
    match data.first()? {
        b'I' | b'U' | b'D' => Some(u32::from_be_bytes(data.get(1..5)?.try_into().ok()?)),
        _ => None,
    }
}

fn old_kind(marker: u8) -> OldTupleKind {
    if marker == b'O' {
        OldTupleKind::Full
    } else {
        OldTupleKind::Key
    }
}

mod reader;

#[cfg(test)]
mod tests;

/// Message builders for tests and benchmarks.
pub mod encode;
