//! chatwoot-glpi-bridge: keeps GLPI in step with a self-hosted Chatwoot by
//! reading Chatwoot's PostgreSQL change stream (a logical replication slot).
//!
//! The modules follow the data, in order:
//!
//! ```text
//! replication  slot + snapshot backfill + pgoutput decoding → typed changes
//! state        the local SQLite file: change log, outbox, mappings
//! planner      per-account settings; "what must GLPI see now?" → jobs
//! outbox       durable jobs with idempotency keys, per-conversation order
//! worker       runs jobs against GLPI, paced and bounded
//! glpi         the GLPI REST client
//! writeback    GLPI ids merged into Chatwoot's additional_attributes
//! ```
//!
//! `glpi_emulator` is a faithful stand-in for GLPI used by the tests, the demo
//! and `glpi-sandbox`.

pub mod chatwoot;
pub mod chatwoot_db;
pub mod cli;
pub mod config;
pub mod glpi;
pub mod glpi_emulator;
pub mod lsn;
pub mod observability;
pub mod outbox;
pub mod planner;
pub mod replication;
pub mod sandbox_postgres;
pub mod secret;
pub mod state;
pub mod worker;
pub mod writeback;
