//! The outbox: durable GLPI jobs with idempotency keys (invariant 2), applied
//! in commit order per conversation (invariant 3).
