//! Workers: run outbox jobs against GLPI, one conversation at a time each,
//! many conversations at once, all paced by the GLPI client's rate limiter.
//!
//! Keeps invariant 2 (a job's GLPI id is recorded in the SQLite transaction
//! that completes it; a retried create looks the record up first) and
//! invariant 3 (per-conversation order comes from the outbox queues; the
//! per-contact lock keeps two conversations of one contact from creating two
//! GLPI users).

pub mod commit;
pub mod contact;
pub mod content;
pub mod followup;
pub mod job;
pub mod person;
pub mod requester;
pub mod resync;
pub mod runtime;
pub mod senders;
pub mod ticket;
