//! The relation cache: what each pgoutput relation id means, and the typed
//! changes its Insert/Update/Delete/Truncate messages carry.
//!
//! pgoutput describes a table once per session (a Relation message) and then
//! refers to it by id. For the tables in [`Table`] (schema `public`) the cache
//! precomputes which row field each column position feeds, so decoding a
//! tuple does no name comparison or hash lookup per column. Other tables are
//! remembered as "skip": their changes are dropped after reading the relation
//! id. A Relation message that arrives again (after `ALTER TABLE`) replaces
//! the layout. Invariant 6: a change for a relation never described is an
//! error, never a silent drop.

use std::collections::HashMap;

use super::pgoutput::{ColumnValue, OldTupleKind, PgOutputMessage, Relation, TupleData};
use crate::chatwoot::text::{ColumnMap, RowError};
use crate::chatwoot::{Change, RowOp, Table};

/// A relation as last described by PostgreSQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownRelation {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
    /// The typed-row mapping; `None` for tables the bridge does not read.
    map: Option<ColumnMap>,
}

impl KnownRelation {
    /// The Chatwoot table this relation is, if the bridge reads it.
    pub fn table(&self) -> Option<Table> {
        self.map.as_ref().map(ColumnMap::table)
    }
}

/// Why a change message could not become a [`Change`].
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Protocol confusion: PostgreSQL always describes a relation before its
    /// first change in a session, so this WAL cannot be decoded.
    #[error(
        "pgoutput {message} for relation id {relation_id}, which no Relation message described"
    )]
    UnknownRelation {
        message: &'static str,
        relation_id: u32,
    },
    #[error("pgoutput tuple for {schema}.{table} has {found} columns, its Relation message listed {expected}")]
    ColumnCount {
        schema: String,
        table: String,
        expected: usize,
        found: usize,
    },
    /// One row's value did not parse: the row must be reported and parked,
    /// the rest of the stream can go on.
    #[error("cannot read {op:?} row: {error}")]
    Row { op: RowOp, error: RowError },
}

/// Relation id → layout, for one replication session.
#[derive(Debug, Default)]
pub struct RelationCache {
    relations: HashMap<u32, KnownRelation>,
}

impl RelationCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records (or replaces) a relation's layout.
    pub fn apply(&mut self, relation: Relation) {
        let columns: Vec<String> = relation.columns.into_iter().map(|c| c.name).collect();
        let map = Table::from_name(&relation.name)
            .filter(|_| relation.schema == "public")
            .map(|table| ColumnMap::new(table, columns.iter().map(String::as_str)));
        self.relations.insert(
            relation.id,
            KnownRelation {
                schema: relation.schema,
                name: relation.name,
                columns,
                map,
            },
        );
    }

    pub fn get(&self, relation_id: u32) -> Option<&KnownRelation> {
        self.relations.get(&relation_id)
    }

    /// Whether changes of this relation are read (`false`: skip them).
    pub fn is_read(&self, relation_id: u32, message: &'static str) -> Result<bool, ChangeError> {
        Ok(self.known(relation_id, message)?.map.is_some())
    }

    /// The typed change an Insert, Update, Delete or Truncate message carries;
    /// `None` for tables the bridge does not read and for other messages.
    pub fn change(&self, message: &PgOutputMessage) -> Result<Option<Change>, ChangeError> {
        match message {
            PgOutputMessage::Insert(m) => {
                self.row(m.relation_id, "Insert", RowOp::Insert, &m.new, None)
            }
            PgOutputMessage::Update(m) => {
                // With REPLICA IDENTITY FULL the old image is complete, so a
                // value left unchanged in the new image can be taken from it.
                let full_old = match &m.old {
                    Some((OldTupleKind::Full, old)) => Some(old),
                    _ => None,
                };
                self.row(m.relation_id, "Update", RowOp::Update, &m.new, full_old)
            }
            PgOutputMessage::Delete(m) => {
                self.row(m.relation_id, "Delete", RowOp::Delete, &m.old, None)
            }
            PgOutputMessage::Truncate(m) => {
                let mut tables = Vec::new();
                for &id in &m.relation_ids {
                    if let Some(table) = self.known(id, "Truncate")?.table() {
                        if !tables.contains(&table) {
                            tables.push(table);
                        }
                    }
                }
                Ok((!tables.is_empty()).then_some(Change::Truncate { tables }))
            }
            _ => Ok(None),
        }
    }

    fn known(
        &self,
        relation_id: u32,
        message: &'static str,
    ) -> Result<&KnownRelation, ChangeError> {
        self.relations
            .get(&relation_id)
            .ok_or(ChangeError::UnknownRelation {
                message,
                relation_id,
            })
    }

    fn row(
        &self,
        relation_id: u32,
        message: &'static str,
        op: RowOp,
        tuple: &TupleData,
        full_old: Option<&TupleData>,
    ) -> Result<Option<Change>, ChangeError> {
        let relation = self.known(relation_id, message)?;
        let Some(map) = &relation.map else {
            return Ok(None);
        };
        for t in std::iter::once(tuple).chain(full_old) {
            if t.len() != map.source_len() {
                return Err(ChangeError::ColumnCount {
                    schema: relation.schema.clone(),
                    table: relation.name.clone(),
                    expected: map.source_len(),
                    found: t.len(),
                });
            }
        }
        let built = match full_old {
            None => map.build_row(tuple.iter()),
            Some(old) => map.build_row(tuple.iter().zip(old.iter()).map(|(new, old)| {
                if new == ColumnValue::Unchanged {
                    old
                } else {
                    new
                }
            })),
        };
        match built {
            Ok(row) => Ok(Some(Change::Row { op, row })),
            Err(error) => Err(ChangeError::Row { op, error }),
        }
    }
}

#[cfg(test)]
mod tests;
