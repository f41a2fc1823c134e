//! Write-back: merges GLPI ids into Chatwoot's `additional_attributes`,
//! touching only the bridge's keys (invariant 4).
//!
//! Each write is one PostgreSQL transaction that first emits the bridge's
//! transactional logical message ([`BRIDGE_MESSAGE_PREFIX`]), so the
//! replication stage marks the resulting row change `from_bridge` and the
//! planner does not turn it into GLPI calls. The merge is server-side
//! (`jsonb ||`, never read-modify-write in the bridge), nested under
//! `external` / `glpi` (Chatwoot validates only top-level values), and skipped
//! when the key already holds the value, so a repeated write-back costs no
//! WAL and no event.
//!
//! [`ChatwootDb`] is a small pool of connections shared with the workers'
//! sender-name lookups; a connection found broken is dropped and a new one
//! opened on next use.

use std::sync::Arc;

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::chatwoot_db::ConnectionSettings;
use crate::replication::error::pg_reason;
use crate::replication::transaction::BRIDGE_MESSAGE_PREFIX;
use crate::state::mappings::GlpiPersonType;

/// Errors talking to Chatwoot's database. All are worth retrying later: the
/// database restarting or a connection being cut must not lose a write-back.
#[derive(Debug, thiserror::Error)]
pub enum WriteBackError {
    // tokio-postgres' own Display says only "db error" or "error performing
    // TLS handshake": show the server's message or the cause (a TLS error
    // says which setting to change).
    #[error("cannot connect to Chatwoot's database: {}", pg_reason(.0))]
    Connect(#[source] tokio_postgres::Error),
    #[error("Chatwoot's database refused the write-back: {}", pg_reason(.0))]
    Query(#[source] tokio_postgres::Error),
}

/// A small pool of connections to Chatwoot's PostgreSQL.
#[derive(Clone)]
pub struct ChatwootDb {
    inner: Arc<PoolInner>,
    /// Where write-backs are counted (`None`: nowhere).
    metrics: Option<Arc<crate::observability::Metrics>>,
}

struct PoolInner {
    config: ConnectionSettings,
    idle: Mutex<Vec<tokio_postgres::Client>>,
    permits: Semaphore,
}

impl std::fmt::Debug for ChatwootDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // ConnectionSettings' Debug shows no password.
        f.debug_struct("ChatwootDb")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// A connection checked out of the pool; it goes back on drop unless it
/// was found closed.
pub struct PooledClient<'a> {
    client: Option<tokio_postgres::Client>,
    pool: &'a PoolInner,
    _permit: SemaphorePermit<'a>,
}

impl std::ops::Deref for PooledClient<'_> {
    type Target = tokio_postgres::Client;
    fn deref(&self) -> &tokio_postgres::Client {
        self.client.as_ref().expect("client present until drop")
    }
}

impl std::ops::DerefMut for PooledClient<'_> {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Client {
        self.client.as_mut().expect("client present until drop")
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                idle.push(client);
            }
        }
    }
}

impl ChatwootDb {
    /// A pool of at most `size` connections (opened lazily).
    pub fn new(config: ConnectionSettings, size: usize) -> ChatwootDb {
        ChatwootDb {
            inner: Arc::new(PoolInner {
                config,
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(size.max(1)),
            }),
            metrics: None,
        }
    }

    /// Counts every write-back in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::observability::Metrics>) -> ChatwootDb {
        self.metrics = Some(metrics);
        self
    }

    /// A connection: an idle one, or a new one.
    pub async fn get(&self) -> Result<PooledClient<'_>, WriteBackError> {
        let permit = self
            .inner
            .permits
            .acquire()
            .await
            .expect("pool semaphore is never closed");
        let reused = {
            let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
            let mut found = None;
            while let Some(client) = idle.pop() {
                if !client.is_closed() {
                    found = Some(client);
                    break;
                }
            }
            found
        };
        let client = match reused {
            Some(client) => client,
            None => self
                .inner
                .config
                .connect()
                .await
                .map_err(WriteBackError::Connect)?,
        };
        Ok(PooledClient {
            client: Some(client),
            pool: &self.inner,
            _permit: permit,
        })
    }

    /// Writes `contacts.additional_attributes.external.glpi_user_id` (or
    /// `.glpi_contact_id`). Returns whether a row changed.
    pub async fn write_contact(
        &self,
        contact_id: i64,
        person_type: GlpiPersonType,
        glpi_id: i64,
    ) -> Result<bool, WriteBackError> {
        let sql = "UPDATE contacts
               SET additional_attributes = COALESCE(additional_attributes, '{}'::jsonb)
                   || jsonb_build_object('external',
                        CASE WHEN jsonb_typeof(additional_attributes -> 'external') = 'object'
                             THEN additional_attributes -> 'external' ELSE '{}'::jsonb END
                        || jsonb_build_object($2::text, $3::bigint))
             WHERE id = $1::int8
               AND (additional_attributes -> 'external' -> $2::text) IS DISTINCT FROM to_jsonb($3::bigint)";
        self.merge(
            "contacts",
            sql,
            &[&contact_id, &person_type.writeback_key(), &glpi_id],
        )
        .await
    }

    /// Writes `conversations.additional_attributes.glpi.ticket_id` and
    /// `.last_synced_message_id`. Returns whether a row changed.
    pub async fn write_conversation(
        &self,
        conversation_id: i64,
        ticket_id: i64,
        last_synced_message_id: Option<i64>,
    ) -> Result<bool, WriteBackError> {
        let sql = "UPDATE conversations
               SET additional_attributes = COALESCE(additional_attributes, '{}'::jsonb)
                   || jsonb_build_object('glpi',
                        CASE WHEN jsonb_typeof(additional_attributes -> 'glpi') = 'object'
                             THEN additional_attributes -> 'glpi' ELSE '{}'::jsonb END
                        || jsonb_strip_nulls(jsonb_build_object('ticket_id', $2::bigint,
                                                               'last_synced_message_id', $3::bigint)))
             WHERE id = $1::int8
               AND ((additional_attributes -> 'glpi' -> 'ticket_id') IS DISTINCT FROM to_jsonb($2::bigint)
                    OR ($3::bigint IS NOT NULL AND (additional_attributes -> 'glpi' -> 'last_synced_message_id')
                        IS DISTINCT FROM to_jsonb($3::bigint)))";
        self.merge(
            "conversations",
            sql,
            &[&conversation_id, &ticket_id, &last_synced_message_id],
        )
        .await
    }

    /// One transaction: the bridge's logical message, then the merge of
    /// the bridge's keys into a row of `table`.
    async fn merge(
        &self,
        table: &'static str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool, WriteBackError> {
        let mut client = self.get().await?;
        let tx = client.transaction().await.map_err(WriteBackError::Query)?;
        tx.execute(
            "SELECT pg_logical_emit_message(true, $1::text, ''::text)",
            &[&BRIDGE_MESSAGE_PREFIX],
        )
        .await
        .map_err(WriteBackError::Query)?;
        let changed = tx
            .execute(sql, params)
            .await
            .map_err(WriteBackError::Query)?;
        tx.commit().await.map_err(WriteBackError::Query)?;
        if let Some(metrics) = &self.metrics {
            metrics.write_back(table, changed > 0);
        }
        Ok(changed > 0)
    }
}
