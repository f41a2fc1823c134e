//! The bridge's local state: one SQLite file (WAL mode) holding the change log
//! handed over by replication, the outbox of jobs, and the Chatwoot↔GLPI
//! mappings.

pub mod mappings;
