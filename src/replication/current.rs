//! Reading rows as they are now, outside the stream: the backfill's pages
//! and the `resync` command's one-record reads share one way to select a
//! table's columns as text and decode them into the typed rows the stream
//! produces, so a row reads the same whichever way it arrived.

use tokio_postgres::{Client, GenericClient};

use super::error::ReplicationError;
use crate::chatwoot::text::ColumnMap;
use crate::chatwoot::{AttachmentRow, MessageRow, Row, Table};

/// Those of the `wanted` columns of `table` that this database has, in
/// order (an older Chatwoot may lack some: they read as NULL).
pub(super) async fn present_columns(
    client: &impl GenericClient,
    table: Table,
    wanted: &[&str],
) -> Result<Vec<String>, ReplicationError> {
    let rows = client
        .query(
            "SELECT c FROM unnest($1::text[]) WITH ORDINALITY AS w(c, n)
             WHERE EXISTS (SELECT 1 FROM pg_attribute
                           WHERE attrelid = to_regclass(format('public.%I', $2::text))
                             AND attname = c AND attnum > 0 AND NOT attisdropped)
             ORDER BY n",
            &[&wanted, &table.name()],
        )
        .await
        .map_err(|e| ReplicationError::from_pg("reading table columns", &e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// How to read `table` as text: the decoder, the select list (columns of
/// alias `t`, each `::text`), and how many columns it has.
pub(super) async fn text_query(
    client: &impl GenericClient,
    table: Table,
) -> Result<(ColumnMap, String, usize), ReplicationError> {
    let columns = present_columns(client, table, table.columns()).await?;
    let map = ColumnMap::new(table, columns.iter().map(String::as_str));
    let select_list = columns
        .iter()
        .map(|c| format!("t.\"{c}\"::text"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok((map, select_list, columns.len()))
}

/// A conversation's messages and their attachments as Chatwoot has them
/// now, read in one snapshot (rows that cannot be decoded are reported and
/// left out, as the backfill does).
pub async fn conversation_messages(
    client: &mut Client,
    conversation_id: i64,
) -> Result<(Vec<MessageRow>, Vec<AttachmentRow>), ReplicationError> {
    let q = |doing| move |e: tokio_postgres::Error| ReplicationError::from_pg(doing, &e);
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(q("starting a read of the conversation"))?;
    let mut messages = Vec::new();
    let mut attachments = Vec::new();
    for (table, filter) in [
        (Table::Messages, "t.conversation_id = $1::bigint"),
        (
            Table::Attachments,
            "t.message_id IN (SELECT id FROM public.messages WHERE conversation_id = $1::bigint)",
        ),
    ] {
        let (map, select_list, column_count) = text_query(&tx, table).await?;
        let sql = format!(
            "SELECT {select_list} FROM public.{} AS t WHERE {filter} ORDER BY t.id",
            table.name()
        );
        let rows = tx
            .query(&sql, &[&conversation_id])
            .await
            .map_err(q("reading the conversation's rows"))?;
        for row in &rows {
            let values = (0..column_count).map(|i| row.get::<_, Option<&str>>(i));
            match map.build_row(values) {
                Ok(Row::Message(m)) => messages.push(m),
                Ok(Row::Attachment(a)) => attachments.push(a),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "row left out of the resync: it cannot be read")
                }
            }
        }
    }
    tx.commit().await.map_err(q("ending the read"))?;
    Ok((messages, attachments))
}
