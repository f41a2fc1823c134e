//! Parsing PostgreSQL text-format values (`t`/`f`, integers, json) into
//! [`super::Field`]s, and building typed rows from columns matched by name.
//! Owned by the replication stage; the backfill uses the same functions.
