//! `check`'s database half: read-only catalog queries, one line each.

use tokio_postgres::Client;

use super::CheckLine;
use crate::chatwoot::Table;
use crate::config::{how_to_set, Config, DatabaseUrl, Key};
use crate::replication::error::{invalidation_cause, invalidation_prevention};
use crate::replication::SourceDb;
use crate::secret::Secret;
use crate::state::replication as repl_state;

/// Tables whose `additional_attributes` receive GLPI ids.
const WRITTEN_BACK: [Table; 2] = [Table::Contacts, Table::Conversations];

/// A PostgreSQL error's own message (tokio-postgres' `Display` says only
/// "db error").
pub fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// Runs the database checks; returns the connection for the GLPI checks
/// (which read the integration hooks) when the database was reachable.
pub async fn check(config: &Config, lines: &mut Vec<CheckLine>) -> Option<Client> {
    let url = match config.database_url() {
        Ok(url) => url,
        Err(e) => {
            lines.push(CheckLine::fail("database", e.to_string()));
            return None;
        }
    };
    // One SourceDb for both connections, made as `run` makes them (TLS
    // included).
    let connected = match SourceDb::from_url(&Secret::new(url.expose())) {
        Ok(source) => source.connect().await.map(|client| (source, client)),
        Err(e) => Err(e),
    };
    let (source, client) = match connected {
        Ok(connected) => connected,
        Err(e) => {
            // The connection error already says what to check.
            lines.push(CheckLine::fail("database", e.to_string()));
            return None;
        }
    };
    if let Err(e) = catalog_checks(config, url, &client, lines).await {
        lines.push(CheckLine::fail(
            "database",
            format!("a catalog query failed: {}", pg_error_text(&e)),
        ));
    }
    match source.settings().describe_encryption(&client).await {
        Ok(e) if e.encrypted => lines.push(CheckLine::pass("tls", e.description)),
        Ok(e) => lines.push(CheckLine::note("tls", e.description)),
        Err(e) => lines.push(CheckLine::fail(
            "tls",
            format!("cannot read pg_stat_ssl: {}", pg_error_text(&e)),
        )),
    }
    replication_connection(url, &source, config, lines).await;
    Some(client)
}

async fn catalog_checks(
    config: &Config,
    url: &DatabaseUrl,
    client: &Client,
    lines: &mut Vec<CheckLine>,
) -> Result<(), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_user::text, current_database()::text,
                    r.rolsuper, r.rolreplication, current_setting('wal_level'),
                    current_setting('max_replication_slots')::int,
                    (SELECT count(*) FROM pg_replication_slots)::int,
                    has_database_privilege(current_database(), 'CREATE')
             FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        )
        .await?;
    let version: String = row.get(0);
    let role: String = row.get(1);
    let database: String = row.get(2);
    let (superuser, replication): (bool, bool) = (row.get(3), row.get(4));
    let wal_level: String = row.get(5);
    let (max_slots, used_slots): (i32, i32) = (row.get(6), row.get(7));
    let can_create_in_db: bool = row.get(8);

    lines.push(CheckLine::pass(
        "database",
        format!("PostgreSQL {version} at {url}, role {role}, database {database}"),
    ));

    if wal_level == "logical" {
        lines.push(CheckLine::pass("wal_level", "logical"));
    } else {
        lines.push(CheckLine::fail(
            "wal_level",
            format!(
                "is `{wal_level}`; logical replication needs `logical`.\n\
                 As a superuser: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL.\n\
                 With docker compose: command: postgres -c wal_level=logical (see docker/compose.yml)."
            ),
        ));
    }

    if superuser || replication {
        lines.push(CheckLine::pass(
            "role",
            if superuser {
                format!("role {role} is a superuser (a dedicated role is safer: see `setup-sql`)")
            } else {
                format!("role {role} has REPLICATION")
            },
        ));
    } else {
        lines.push(CheckLine::fail(
            "role",
            format!(
                "role {role} may not use replication.\nAs a superuser: ALTER ROLE \"{role}\" WITH REPLICATION; \
                 (or use the role `chatwoot-glpi-bridge setup-sql` creates)"
            ),
        ));
    }

    let names: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
    let written_back: Vec<&str> = WRITTEN_BACK.iter().map(|t| t.name()).collect();
    let rows = client
        .query(
            "SELECT t, c.oid IS NOT NULL,
                    coalesce(has_table_privilege(c.oid, 'SELECT'), false),
                    CASE WHEN t = ANY($2) AND c.oid IS NOT NULL
                         THEN has_column_privilege(c.oid, 'additional_attributes', 'UPDATE')
                         ELSE true END,
                    coalesce(pg_get_userbyid(c.relowner) = current_user, false)
             FROM unnest($1::text[]) WITH ORDINALITY AS w(t, n)
             LEFT JOIN pg_class c ON c.oid = to_regclass(format('public.%I', t))
             ORDER BY n",
            &[&names, &written_back],
        )
        .await?;
    let mut missing = Vec::new();
    let mut unreadable = Vec::new();
    let mut not_updatable = Vec::new();
    let mut not_owned = Vec::new();
    for row in &rows {
        let table: String = row.get(0);
        if !row.get::<_, bool>(1) {
            missing.push(table);
            continue;
        }
        if !row.get::<_, bool>(2) {
            unreadable.push(table.clone());
        }
        if !row.get::<_, bool>(3) {
            not_updatable.push(table.clone());
        }
        if !row.get::<_, bool>(4) {
            not_owned.push(table);
        }
    }
    if missing.is_empty() {
        lines.push(CheckLine::pass(
            "tables",
            format!("Chatwoot's {} are present", names.join(", ")),
        ));
    } else {
        lines.push(CheckLine::fail(
            "tables",
            format!(
                "missing from database {database}: {}.\nIs DATABASE_URL pointing at Chatwoot's database \
                 (usually chatwoot_production), with its migrations applied?",
                missing.join(", ")
            ),
        ));
    }
    if unreadable.is_empty() && not_updatable.is_empty() {
        lines.push(CheckLine::pass(
            "privileges",
            "SELECT on the tables read, UPDATE of additional_attributes on contacts and \
             conversations (write-back)",
        ));
    } else {
        let mut grants = Vec::new();
        if !unreadable.is_empty() {
            grants.push(format!(
                "GRANT SELECT ON {} TO \"{role}\";",
                unreadable.join(", ")
            ));
        }
        if !not_updatable.is_empty() {
            grants.push(format!(
                "GRANT UPDATE (additional_attributes) ON {} TO \"{role}\";",
                not_updatable.join(", ")
            ));
        }
        lines.push(CheckLine::fail(
            "privileges",
            format!(
                "role {role} lacks privileges the bridge needs. As the tables' owner:\n{}",
                grants.join("\n")
            ),
        ));
    }

    // Publication: present with every table, or creatable by `run`.
    let publication = &config.publication_name;
    let existing = client
        .query_opt(
            "SELECT puballtables FROM pg_publication WHERE pubname = $1",
            &[publication],
        )
        .await?;
    match existing {
        Some(row) => {
            let all_tables: bool = row.get(0);
            let published: Vec<String> = client
                .query(
                    "SELECT tablename::text FROM pg_publication_tables
                     WHERE pubname = $1 AND schemaname = 'public'",
                    &[publication],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let lacking: Vec<&str> = names
                .iter()
                .copied()
                .filter(|t| !all_tables && !published.iter().any(|p| p == t))
                .collect();
            if lacking.is_empty() {
                lines.push(CheckLine::pass(
                    "publication",
                    format!("{publication} publishes the tables the bridge reads"),
                ));
            } else {
                lines.push(CheckLine::fail(
                    "publication",
                    format!(
                        "{publication} exists but does not publish {}.\nAs a superuser: \
                         ALTER PUBLICATION {publication} ADD TABLE {};",
                        lacking.join(", "),
                        lacking
                            .iter()
                            .map(|t| format!("public.{t}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        None if superuser || (can_create_in_db && not_owned.is_empty()) => {
            lines.push(CheckLine::note(
                "publication",
                format!("{publication} does not exist yet; `run` creates it"),
            ));
        }
        None => lines.push(CheckLine::fail(
            "publication",
            format!(
                "{publication} does not exist and role {role} cannot create it (creating a \
                 publication needs CREATE on the database and ownership of the tables).\n\
                 Let a superuser run the SQL printed by `chatwoot-glpi-bridge setup-sql`, or \
                 name an existing publication with {}.",
                how_to_set(Key::PublicationName)
            ),
        )),
    }

    // Slot: ours (pgoutput, this database), or room to create it.
    let slot = &config.slot_name;
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, wal_status,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
                    to_jsonb(s) ->> 'invalidation_reason'
             FROM pg_replication_slots s WHERE slot_name = $1",
            &[slot],
        )
        .await?;
    match row {
        Some(row) => {
            let plugin: Option<String> = row.get(0);
            let slot_db: Option<String> = row.get(1);
            let active_pid: Option<i32> = row.get(2);
            let wal_status: Option<String> = row.get(3);
            let lag: Option<i64> = row.get(4);
            // PostgreSQL 17+ only; NULL before (see replication::setup).
            let invalidation_reason: Option<String> = row.get(5);
            if plugin.as_deref() != Some("pgoutput") {
                lines.push(CheckLine::fail(
                    "slot",
                    format!(
                        "{slot} exists but uses the plugin {}, not pgoutput.\nName another slot with {} \
                         or drop it: SELECT pg_drop_replication_slot('{slot}');",
                        plugin.as_deref().unwrap_or("none (a physical slot)"),
                        how_to_set(Key::SlotName)
                    ),
                ));
            } else if slot_db.as_deref() != Some(database.as_str()) {
                lines.push(CheckLine::fail(
                    "slot",
                    format!(
                        "{slot} belongs to database {}, not {database}.\nName another slot with {}.",
                        slot_db.unwrap_or_default(),
                        how_to_set(Key::SlotName)
                    ),
                ));
            } else if wal_status.as_deref() == Some("lost") || invalidation_reason.is_some() {
                let reason = invalidation_reason.as_deref();
                lines.push(CheckLine::fail(
                    "slot",
                    format!(
                        "{slot} is invalidated: {}. Changes since the bridge last confirmed are \
                         gone from the stream.\nDrop it (SELECT pg_drop_replication_slot('{slot}');), \
                         delete the state file, and `run` again: it backfills, and finds the GLPI ids \
                         already written back, so nothing is duplicated. {}.",
                        invalidation_cause(reason),
                        invalidation_prevention(reason)
                    ),
                ));
            } else {
                let reader = match active_pid {
                    Some(pid) => format!("being read by backend pid {pid}"),
                    None => "not being read right now".to_owned(),
                };
                let lag = lag
                    .map(|b| crate::cli::status::human_bytes(b.max(0) as u64))
                    .unwrap_or_else(|| "unknown".into());
                lines.push(CheckLine::pass(
                    "slot",
                    format!("{slot} (pgoutput) exists, {reader}, {lag} of WAL kept for it"),
                ));
            }
        }
        None if used_slots < max_slots => lines.push(CheckLine::note(
            "slot",
            format!(
                "{slot} does not exist yet; `run` creates it ({used_slots} of {max_slots} slots in use)"
            ),
        )),
        None => lines.push(CheckLine::fail(
            "slot",
            format!(
                "{slot} does not exist and all {max_slots} replication slots are in use.\nDrop an \
                 unused one (SELECT slot_name, active FROM pg_replication_slots; then \
                 SELECT pg_drop_replication_slot('name');) or raise max_replication_slots and \
                 restart PostgreSQL."
            ),
        )),
    }
    Ok(())
}

/// A logical replication connection is a different pg_hba.conf match than an
/// ordinary one; try one (IDENTIFY_SYSTEM, nothing started) and compare the
/// system with the one the state file belongs to.
async fn replication_connection(
    url: &DatabaseUrl,
    source: &SourceDb,
    config: &Config,
    lines: &mut Vec<CheckLine>,
) {
    let replication_config = source.replication_config(&config.slot_name, &config.publication_name);
    let identified = async {
        let mut client =
            pgwire_replication::ReplicationClient::connect_gated(replication_config).await?;
        let system = client.identify_system().await;
        client.abort();
        system
    };
    let system = match tokio::time::timeout(std::time::Duration::from_secs(15), identified).await {
        Ok(Ok(system)) => system,
        Ok(Err(e @ pgwire_replication::PgWireError::Tls(_))) => {
            let err = source.wire_error(&config.slot_name, e);
            lines.push(CheckLine::fail("replication", err.to_string()));
            return;
        }
        Ok(Err(e)) => {
            lines.push(CheckLine::fail(
                "replication",
                format!(
                    "a replication connection was refused: {e}\npg_hba.conf matches logical \
                         replication connections on the database column (not the `replication` \
                         keyword): allow this user for database {}.",
                    url.database()
                ),
            ));
            return;
        }
        Err(_) => {
            lines.push(CheckLine::fail(
                "replication",
                "a replication connection did not answer within 15 s",
            ));
            return;
        }
    };
    lines.push(CheckLine::pass(
        "replication",
        format!(
            "replication connections accepted (system {}, timeline {})",
            system.system_id, system.timeline
        ),
    ));
    state_file(config, &system.system_id, &url.database(), lines);
}

/// The state file: absent (created by `run`), or bound to this database.
fn state_file(config: &Config, system_id: &str, database: &str, lines: &mut Vec<CheckLine>) {
    let path = &config.state_file;
    if !path.exists() {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let probe = dir.join(format!(
            ".chatwoot-glpi-bridge-check-{}",
            std::process::id()
        ));
        let writable = std::fs::File::create(&probe).is_ok();
        let _ = std::fs::remove_file(&probe);
        lines.push(if writable {
            CheckLine::note(
                "state file",
                format!("{} does not exist yet; `run` creates it", path.display()),
            )
        } else {
            CheckLine::fail(
                "state file",
                format!(
                    "{} cannot be created: {} is not writable (or does not exist). Choose a \
                     persistent, writable path with {}.",
                    path.display(),
                    dir.display(),
                    how_to_set(Key::StateFile)
                ),
            )
        });
        return;
    }
    let loaded = crate::state::State::open_read_only(path)
        .map_err(|e| e.to_string())
        .and_then(|s| repl_state::load(s.conn()).map_err(|e| e.to_string()));
    match loaded {
        Err(e) => lines.push(CheckLine::fail("state file", e)),
        Ok(state) => match state.source {
            Some(source)
                if source.system_identifier != system_id || source.database_name != database =>
            {
                lines.push(CheckLine::fail(
                    "state file",
                    format!(
                        "{} belongs to database {} of PostgreSQL system {}, but DATABASE_URL points \
                         at database {database} of system {system_id}.\nUse one state file per \
                         Chatwoot database ({}).",
                        path.display(),
                        source.database_name,
                        source.system_identifier,
                        how_to_set(Key::StateFile)
                    ),
                ))
            }
            _ => lines.push(CheckLine::pass(
                "state file",
                format!(
                    "{} (backfill {})",
                    path.display(),
                    if state.backfill.is_complete() {
                        "complete"
                    } else {
                        "not complete"
                    }
                ),
            )),
        },
    }
}
