//! `fleet db copy`: an embedded (SQLite) installation moved to PostgreSQL
//! row for row, in one transaction, with `COPY`: runs, definitions,
//! artifacts, step runs, decisions, the audit log with its exact sequence
//! numbers, times, payload text and hashes (so the copy's chain verifies),
//! leases, the step queue, schedules, the outbox and the aggregates.

use crate::postgres::{Migrate, PostgresStore};
use crate::{AuditReport, Store, StoreError};
use futures_util::SinkExt;
use rusqlite::types::ValueRef;
use std::fmt::Write as _;
use std::path::Path;

/// Tables in an order that satisfies the foreign keys, with their columns
/// (the same on both backends).
const TABLES: [(&str, &str); 13] = [
    ("definitions", "hash, json"),
    (
        "runs",
        "id, genflow_name, definition_hash, state_json, status, version, triggered_by, created_at, updated_at",
    ),
    ("artifacts", "sha256, bytes, size"),
    (
        "artifact_revisions",
        "run_id, step, step_index, path, revision, sha256, created_at",
    ),
    (
        "step_runs",
        "run_id, step, attempt, model, prompt, settings_json, manifest_json, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error",
    ),
    (
        "decisions",
        "id, run_id, step, gate_round, approver, approver_key, verdict, reason, channel, decided_at, genflow_name, definition_hash, shown_json, is_final",
    ),
    (
        "events",
        "seq, run_id, at, kind, payload_json, prev_hash, hash",
    ),
    ("leases", "run_id, step, owner, expires_at"),
    ("step_queue", "run_id, step, claimable_at"),
    (
        "schedules",
        "genflow, cron, next_due, last_due, last_run_id",
    ),
    (
        "outbox",
        "id, run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, lease_owner, lease_expires_at, last_error, message_id, response, summary, created_at, finished_at",
    ),
    ("run_counts", "status, runs"),
    (
        "step_totals",
        "genflow, step, attempts, finished, duration_us, input_tokens, output_tokens, cost_nusd, cached",
    ),
];

/// What was copied.
#[derive(Debug, Default)]
pub struct CopyReport {
    /// (table, rows), in copy order.
    pub tables: Vec<(String, u64)>,
    /// The copy's audit chain, verified after the commit.
    pub audit: AuditReport,
}

/// Copies the SQLite database at `sqlite` into the PostgreSQL database
/// `pg` (migrated first), which must hold no run and no event.
pub async fn copy_sqlite_to_postgres(sqlite: &Path, pg: &str) -> Result<CopyReport, StoreError> {
    if !sqlite.is_file() {
        return Err(StoreError::Invalid(format!(
            "{} is not a file; give the embedded database, e.g. sqlite://.fleet/fleet.db",
            sqlite.display()
        )));
    }
    // Brings the source to the current schema (the aggregates and the queue
    // it copies exist from migration 6 on).
    drop(crate::SqliteStore::open(sqlite).await?);
    let source = rusqlite::Connection::open_with_flags(
        sqlite,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let target = PostgresStore::connect(pg, Migrate::Apply).await?;
    let name = target.name().to_owned();
    let mut client = target.pool_client().await?;
    let tx = client
        .transaction()
        .await
        .map_err(crate::postgres::pg("starting the copy"))?;
    let used: i64 = tx
        .query_one(
            "SELECT (SELECT COUNT(*) FROM runs) + (SELECT COUNT(*) FROM events)",
            &[],
        )
        .await
        .map_err(crate::postgres::pg("checking the target is empty"))?
        .get(0);
    if used > 0 {
        return Err(StoreError::Invalid(format!(
            "{name} already holds runs or audit events; `fleet db copy` only copies into an empty database"
        )));
    }
    let mut report = CopyReport::default();
    for (table, columns) in TABLES {
        // The aggregates exist on both sides from the start; replace them.
        if matches!(table, "run_counts" | "step_totals") {
            tx.execute(&format!("DELETE FROM {table}"), &[])
                .await
                .map_err(crate::postgres::pg(format_args!("clearing {table}")))?;
        }
        let rows = copy_table(&source, &tx, table, columns).await?;
        report.tables.push((table.to_owned(), rows));
    }
    // The chain continues from the last copied event; ids after the copied ones.
    tx.batch_execute(
        "UPDATE chain_head SET
           seq = COALESCE((SELECT MAX(seq) FROM events), 0),
           hash = COALESCE((SELECT hash FROM events ORDER BY seq DESC LIMIT 1),
                           '0000000000000000000000000000000000000000000000000000000000000000')
         WHERE id = 1;
         SELECT setval(pg_get_serial_sequence('decisions', 'id'), COALESCE((SELECT MAX(id) FROM decisions), 0) + 1, false);
         SELECT setval(pg_get_serial_sequence('outbox', 'id'), COALESCE((SELECT MAX(id) FROM outbox), 0) + 1, false);",
    )
    .await
    .map_err(crate::postgres::pg("finishing the copy"))?;
    tx.commit()
        .await
        .map_err(crate::postgres::pg("committing the copy"))?;
    report.audit = target.verify_audit().await?;
    Ok(report)
}

/// One table through `COPY … FROM STDIN` (text format); returns its rows.
async fn copy_table(
    source: &rusqlite::Connection,
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    columns: &str,
) -> Result<u64, StoreError> {
    let what = format!("copying {table}");
    let sink = tx
        .copy_in(&format!("COPY {table} ({columns}) FROM STDIN"))
        .await
        .map_err(crate::postgres::pg(&what))?;
    futures_util::pin_mut!(sink);
    let mut statement = source.prepare(&format!("SELECT {columns} FROM {table}"))?;
    let width = statement.column_count();
    let mut rows = statement.query([])?;
    let mut buffer = String::with_capacity(64 * 1024);
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        for i in 0..width {
            if i > 0 {
                buffer.push('\t');
            }
            match row.get_ref(i)? {
                ValueRef::Null => buffer.push_str("\\N"),
                ValueRef::Integer(n) => {
                    let _ = write!(buffer, "{n}");
                }
                ValueRef::Real(x) => {
                    let _ = write!(buffer, "{x}");
                }
                ValueRef::Text(t) => escape(&mut buffer, &String::from_utf8_lossy(t)),
                ValueRef::Blob(b) => {
                    // bytea's hex form, its backslash escaped for COPY.
                    buffer.push_str("\\\\x");
                    for byte in b {
                        let _ = write!(buffer, "{byte:02x}");
                    }
                }
            }
        }
        buffer.push('\n');
        count += 1;
        if buffer.len() > 1 << 20 {
            sink.send(bytes_of(&mut buffer))
                .await
                .map_err(crate::postgres::pg(&what))?;
        }
    }
    if !buffer.is_empty() {
        sink.send(bytes_of(&mut buffer))
            .await
            .map_err(crate::postgres::pg(&what))?;
    }
    sink.finish().await.map_err(crate::postgres::pg(&what))?;
    Ok(count)
}

fn bytes_of(buffer: &mut String) -> bytes::Bytes {
    bytes::Bytes::from(std::mem::take(buffer).into_bytes())
}

/// COPY text format: backslash, tab, newline and carriage return escaped.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}
