//! What the bridge needs in Chatwoot's PostgreSQL, checked before anything
//! else (invariant 6: misconfiguration fails fast with the fix): logical WAL,
//! a role allowed to replicate, Chatwoot's tables, the publication (created
//! FOR TABLE exactly [`Table::ALL`], never FOR ALL TABLES: Chatwoot's
//! `portals_members` has no primary key and would then refuse UPDATEs), and
//! the slot (pgoutput, this database, a free slot to create it).
//!
//! Also the SQL a DBA can run instead (`setup-sql`), with a least-privilege
//! role.

use tokio_postgres::Client;

use super::error::{pg_reason, ReplicationError};
use crate::chatwoot::Table;

/// Default name of both the publication and the slot.
pub const DEFAULT_NAME: &str = "chatwoot_glpi_bridge";

/// Names of the publication and slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationNames {
    pub slot: String,
    pub publication: String,
}

impl Default for ReplicationNames {
    fn default() -> Self {
        ReplicationNames {
            slot: DEFAULT_NAME.to_owned(),
            publication: DEFAULT_NAME.to_owned(),
        }
    }
}

impl ReplicationNames {
    /// Checks both names are plain identifiers (slot names allow only
    /// `[a-z0-9_]`; the same rule for the publication keeps quoting trivial).
    pub fn validated(slot: &str, publication: &str) -> Result<Self, ReplicationError> {
        check_identifier("replication slot", slot)?;
        check_identifier("publication", publication)?;
        Ok(ReplicationNames {
            slot: slot.to_owned(),
            publication: publication.to_owned(),
        })
    }
}

/// Checks `name` is a lower-case SQL identifier (also used for role names).
pub fn check_identifier(what: &'static str, name: &str) -> Result<(), ReplicationError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(ReplicationError::InvalidName {
            what,
            name: name.to_owned(),
        })
    }
}

/// What the preflight found about the slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotStatus {
    Missing,
    /// Exists with pgoutput in this database; `active_pid` is the process
    /// reading it now, if any. `invalidated`: PostgreSQL invalidated it
    /// (`wal_status = 'lost'`); it can never stream again.
    Exists {
        active_pid: Option<i32>,
        invalidated: Option<SlotInvalidation>,
    },
}

/// Why PostgreSQL invalidated a slot: `pg_replication_slots.invalidation_reason`
/// (PostgreSQL 17+: `wal_removed`, `rows_removed`, `wal_level_insufficient`;
/// 18 adds `idle_timeout`, from `idle_replication_slot_timeout`). `None` on
/// 14-16, which do not say; there a primary's logical slot is invalidated
/// only by `max_slot_wal_keep_size`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInvalidation {
    pub reason: Option<String>,
}

/// Table names of [`Table::ALL`], in order.
pub fn published_table_names() -> Vec<&'static str> {
    Table::ALL.iter().map(|t| t.name()).collect()
}

/// Checks everything and creates the publication if missing. Returns what
/// it found about the slot (creating the slot is the backfill's job: it
/// needs the snapshot exported with it).
pub async fn preflight(
    client: &Client,
    names: &ReplicationNames,
) -> Result<SlotStatus, ReplicationError> {
    let q = |doing| move |e: tokio_postgres::Error| ReplicationError::from_pg(doing, &e);

    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(q("reading wal_level"))?
        .get(0);
    if wal_level != "logical" {
        return Err(ReplicationError::WalLevelNotLogical { current: wal_level });
    }

    let role = client
        .query_one(
            "SELECT current_user::text, rolreplication OR rolsuper, current_database()::text
             FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(q("reading the role's attributes"))?;
    let (role_name, can_replicate, database): (String, bool, String) =
        (role.get(0), role.get(1), role.get(2));
    if !can_replicate {
        return Err(ReplicationError::RoleLacksReplication { role: role_name });
    }

    let wanted = published_table_names();
    let missing: Vec<String> = client
        .query(
            "SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS w(t, n)
             WHERE to_regclass(format('public.%I', t)) IS NULL ORDER BY n",
            &[&wanted],
        )
        .await
        .map_err(q("looking for Chatwoot's tables"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !missing.is_empty() {
        return Err(ReplicationError::MissingTables {
            database,
            tables: missing,
        });
    }

    ensure_publication(client, &names.publication).await?;
    slot_status(client, &names.slot, &database).await
}

/// Creates the publication FOR TABLE [`Table::ALL`] if missing; refuses one
/// that lacks some of them.
async fn ensure_publication(client: &Client, publication: &str) -> Result<(), ReplicationError> {
    let q = |doing| move |e: tokio_postgres::Error| ReplicationError::from_pg(doing, &e);
    let wanted = published_table_names();
    let existing = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(q("looking for the publication"))?;
    match existing {
        Some(row) => {
            let all_tables: bool = row.get(0);
            if all_tables {
                tracing::warn!(
                    publication,
                    "the publication is FOR ALL TABLES; Chatwoot's portals_members has no primary key, so its UPDATEs and DELETEs fail while it is published. Prefer the FOR TABLE list printed by `setup-sql`"
                );
                return Ok(());
            }
            let missing: Vec<String> = client
                .query(
                    "SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS w(t, n)
                     WHERE NOT EXISTS (SELECT 1 FROM pg_publication_tables p
                                       WHERE p.pubname = $2 AND p.schemaname = 'public' AND p.tablename = t)
                     ORDER BY n",
                    &[&wanted, &publication],
                )
                .await
                .map_err(q("reading the publication's tables"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(ReplicationError::PublicationLacksTables {
                    publication: publication.to_owned(),
                    missing,
                })
            }
        }
        None => {
            let sql = create_publication_sql(publication);
            client.batch_execute(&sql).await.map_err(|e| {
                ReplicationError::PublicationCreateDenied {
                    publication: publication.to_owned(),
                    reason: pg_reason(&e),
                }
            })?;
            tracing::info!(publication, "created publication");
            Ok(())
        }
    }
}

/// `CREATE PUBLICATION … FOR TABLE …` for exactly [`Table::ALL`].
pub fn create_publication_sql(publication: &str) -> String {
    format!(
        "CREATE PUBLICATION {publication} FOR TABLE {};",
        published_table_names()
            .iter()
            .map(|t| format!("public.{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Checks an existing slot is usable, or that one can be created.
async fn slot_status(
    client: &Client,
    slot: &str,
    database: &str,
) -> Result<SlotStatus, ReplicationError> {
    let q = |doing| move |e: tokio_postgres::Error| ReplicationError::from_pg(doing, &e);
    // invalidation_reason exists from PostgreSQL 17 on: read through
    // to_jsonb, one query serves every version (NULL where it is missing).
    let row = client
        .query_opt(
            "SELECT coalesce(plugin::text, ''), coalesce(database::text, ''), active_pid,
                    coalesce(wal_status, '') = 'lost'
                        OR to_jsonb(s) ->> 'invalidation_reason' IS NOT NULL,
                    to_jsonb(s) ->> 'invalidation_reason'
             FROM pg_replication_slots s WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(q("looking for the replication slot"))?;
    if let Some(row) = row {
        let (plugin, slot_db, active_pid, lost, reason): (
            String,
            String,
            Option<i32>,
            bool,
            Option<String>,
        ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        let invalidated = lost.then_some(SlotInvalidation { reason });
        if plugin != "pgoutput" {
            return Err(ReplicationError::SlotWrongPlugin {
                slot: slot.to_owned(),
                plugin: if plugin.is_empty() {
                    "(physical slot)".to_owned()
                } else {
                    plugin
                },
            });
        }
        if slot_db != database {
            return Err(ReplicationError::SlotInOtherDatabase {
                slot: slot.to_owned(),
                database: slot_db,
                expected: database.to_owned(),
            });
        }
        return Ok(SlotStatus::Exists {
            active_pid,
            invalidated,
        });
    }
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM pg_replication_slots),
                    current_setting('max_replication_slots')::bigint,
                    current_setting('max_replication_slots')",
            &[],
        )
        .await
        .map_err(q("counting replication slots"))?;
    let (used, max, max_text): (i64, i64, String) = (row.get(0), row.get(1), row.get(2));
    if used >= max {
        return Err(ReplicationError::SlotsExhausted { max: max_text });
    }
    Ok(SlotStatus::Missing)
}

/// Options of `setup-sql`.
#[derive(Clone, Debug)]
pub struct SetupSqlOptions {
    pub names: ReplicationNames,
    /// The least-privilege role to create.
    pub role: String,
    /// Its password; without one the SQL says how to set it.
    pub role_password: Option<crate::secret::Secret>,
    /// Chatwoot's database, for `GRANT CONNECT` (omitted if unknown).
    pub database: Option<String>,
}

/// The SQL a DBA runs as a superuser in Chatwoot's database instead of
/// letting the bridge create what it needs: a least-privilege role and the
/// publication. The slot is created by the bridge itself at first start,
/// because the snapshot exported with it is what the backfill copies.
pub fn setup_sql(options: &SetupSqlOptions) -> String {
    let role = &options.role;
    let read_tables: Vec<&str> = published_table_names()
        .into_iter()
        .chain([
            "inboxes",
            "active_storage_attachments",
            "active_storage_blobs",
        ])
        .collect();
    let mut sql = String::new();
    sql.push_str(
        "-- chatwoot-glpi-bridge: run as a superuser, connected to Chatwoot's database.\n\
         -- 1. Logical WAL (then restart PostgreSQL). Skip if SHOW wal_level says logical.\n\
         --    With docker compose, instead add to the postgres service:\n\
         --      command: postgres -c wal_level=logical\n\
         -- ALTER SYSTEM SET wal_level = logical;\n\n",
    );
    sql.push_str("-- 2. A role that may replicate, read what the bridge reads, and write\n--    back only additional_attributes of contacts and conversations.\n");
    match &options.role_password {
        Some(pw) => sql.push_str(&format!(
            "CREATE ROLE {role} WITH LOGIN REPLICATION PASSWORD {};\n",
            quote_literal(pw.expose())
        )),
        None => sql.push_str(&format!(
            "CREATE ROLE {role} WITH LOGIN REPLICATION;\n\
             -- Set its password (psql): \\password {role}\n"
        )),
    }
    if let Some(db) = &options.database {
        sql.push_str(&format!(
            "GRANT CONNECT ON DATABASE {} TO {role};\n",
            quote_ident(db)
        ));
    }
    sql.push_str(&format!("GRANT USAGE ON SCHEMA public TO {role};\n"));
    sql.push_str(&format!(
        "GRANT SELECT ON {} TO {role};\n",
        read_tables
            .iter()
            .map(|t| format!("public.{t}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    sql.push_str(&format!(
        "GRANT SELECT (id, name, display_name) ON public.users TO {role};\n"
    ));
    sql.push_str(&format!(
        "GRANT UPDATE (additional_attributes) ON public.contacts, public.conversations TO {role};\n"
    ));
    sql.push_str(
        "-- pg_logical_emit_message (marks the bridge's own write-backs) needs no grant.\n\n",
    );
    sql.push_str("-- 3. The publication: exactly these tables, never FOR ALL TABLES\n--    (portals_members has no primary key; publishing it breaks its UPDATEs).\n");
    sql.push_str(&create_publication_sql(&options.names.publication));
    sql.push_str(&format!(
        "\n\n-- 4. The replication slot {:?} is created by the bridge at its first start\n\
         --    (the snapshot exported with it is what it copies existing rows from).\n\
         -- Then run the bridge with DATABASE_URL=postgres://{role}:PASSWORD@HOST:PORT/DATABASE\n",
        options.names.slot
    ));
    sql
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publication_lists_exactly_our_tables() {
        let sql = create_publication_sql("p");
        assert_eq!(
            sql,
            "CREATE PUBLICATION p FOR TABLE public.accounts, public.integrations_hooks, public.contacts, public.conversations, public.messages, public.attachments;"
        );
        assert!(!sql.contains("ALL TABLES"));
    }

    #[test]
    fn names_must_be_plain_identifiers() {
        assert!(ReplicationNames::validated("ok_1", "pub").is_ok());
        assert!(ReplicationNames::validated("Bad", "pub").is_err());
        assert!(ReplicationNames::validated("ok", "x'; drop").is_err());
        assert!(ReplicationNames::validated("", "p").is_err());
    }

    #[test]
    fn setup_sql_grants_least_privilege() {
        let sql = setup_sql(&SetupSqlOptions {
            names: ReplicationNames::default(),
            role: "bridge".into(),
            role_password: Some("it's".into()),
            database: Some("chatwoot".into()),
        });
        assert!(sql.contains("CREATE ROLE bridge WITH LOGIN REPLICATION PASSWORD 'it''s';"));
        assert!(sql.contains("GRANT UPDATE (additional_attributes) ON public.contacts, public.conversations TO bridge;"));
        assert!(sql.contains("GRANT SELECT (id, name, display_name) ON public.users TO bridge;"));
        assert!(!sql.contains("SUPERUSER"));
    }
}
