//! Micro-benchmark of the pgoutput → typed `Change` path: decodes ~1M
//! synthetic Insert messages of Chatwoot's `messages` table (all 19 columns,
//! ~200-byte content, json attributes) through the `TransactionAssembler`,
//! 1000 rows per transaction, and prints rows/s. No assertion on speed.
//!
//! `cargo run --release --example decode_bench [rows]`

use std::time::Instant;

use bytes::Bytes;
use chatwoot_glpi_bridge::replication::pgoutput::encode::{self, Col};
use chatwoot_glpi_bridge::replication::transaction::TransactionAssembler;

const MESSAGES: u32 = 16_700;
const ROWS_PER_TRANSACTION: usize = 1000;

/// Chatwoot 4.15's `messages` columns, in table order.
const COLUMNS: &[&str] = &[
    "id",
    "content",
    "account_id",
    "inbox_id",
    "conversation_id",
    "message_type",
    "created_at",
    "updated_at",
    "private",
    "status",
    "source_id",
    "content_type",
    "content_attributes",
    "sender_type",
    "sender_id",
    "external_source_ids",
    "additional_attributes",
    "processed_message_content",
    "sentiment",
];

fn insert(id: u64) -> Bytes {
    let id = id.to_string();
    let conversation = (id.len() * 7 % 500 + 1).to_string();
    let content = format!(
        "Hello, my order #{id} has not arrived yet. Could you please check the delivery status and tell me when I can expect it? Thanks a lot for your help, have a nice day!"
    );
    Bytes::from(encode::insert(
        MESSAGES,
        &[
            Col::Text(&id),
            Col::Text(&content),
            Col::Text("1"),
            Col::Text("1"),
            Col::Text(&conversation),
            Col::Text("0"),
            Col::Text("2026-11-28 06:44:32.123456"),
            Col::Text("2026-11-28 06:44:32.123456"),
            Col::Text("f"),
            Col::Text("0"),
            Col::Null,
            Col::Text("0"),
            Col::Text(r#"{"in_reply_to": null}"#),
            Col::Text("Contact"),
            Col::Text("42"),
            Col::Text("{}"),
            Col::Text("{}"),
            Col::Text(&content),
            Col::Text("{}"),
        ],
    ))
}

fn main() {
    let rows: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("row count"))
        .unwrap_or(1_000_000);
    let transactions = rows.div_ceil(ROWS_PER_TRANSACTION);
    // One transaction's worth of distinct messages, replayed (cheap Bytes
    // clones) so the measurement is decoding, not building input.
    let batch: Vec<Bytes> = (0..ROWS_PER_TRANSACTION as u64).map(insert).collect();
    let bytes_per_row = batch.iter().map(Bytes::len).sum::<usize>() / batch.len();
    let relation = Bytes::from(encode::relation(MESSAGES, "public", "messages", COLUMNS));

    let mut assembler = TransactionAssembler::new();
    let started = Instant::now();
    let mut decoded = 0usize;
    for t in 0..transactions as u64 {
        let lsn = (t + 1) * 0x10_0000;
        assembler
            .handle_pgoutput(&Bytes::from(encode::begin(lsn, t as u32)))
            .unwrap();
        if t == 0 {
            assembler.handle_pgoutput(&relation).unwrap();
        }
        for message in &batch {
            assembler.handle_pgoutput(message).unwrap();
        }
        let tx = assembler
            .handle_pgoutput(&Bytes::from(encode::commit(lsn, lsn + 8)))
            .unwrap()
            .expect("commit yields the transaction");
        assert!(tx.rejected.is_empty());
        decoded += tx.changes.len();
    }
    let elapsed = started.elapsed();
    println!(
        "decoded {decoded} messages rows ({bytes_per_row} bytes each) in {transactions} transactions: {:.2} s, {:.0} rows/s, {:.0} MB/s",
        elapsed.as_secs_f64(),
        decoded as f64 / elapsed.as_secs_f64(),
        (decoded * bytes_per_row) as f64 / elapsed.as_secs_f64() / 1e6,
    );
}
