//! Replication: the publication and slot, the first start's snapshot backfill,
//! the pgoutput stream, and LSN confirmation.
//!
//! Keeps invariant 1 (an LSN is confirmed only once every change at or before
//! it is committed to the local change log) and invariant 5 (zero-config
//! catch-up from a snapshot consistent with the slot).

pub mod pgoutput;
pub mod relations;
pub mod transaction;
