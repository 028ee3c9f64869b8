//! Schedules: one row per scheduled genflow, its next due time claimed by
//! compare-and-swap so each occurrence starts one run whatever the servers.

use super::rows::time;
use crate::{ScheduleRecord, StoreError};
use rusqlite::{Connection, Row, params};

const SELECT: &str = "SELECT genflow, cron, next_due, last_due, last_run_id FROM schedules ";

pub(super) fn list(conn: &Connection) -> Result<Vec<ScheduleRecord>, StoreError> {
    conn.prepare_cached(&format!("{SELECT}ORDER BY genflow"))?
        .query_and_then([], from_row)?
        .collect()
}

/// Stores the schedule of `genflow`. A changed expression restarts it; the
/// same one keeps its stored due time, which is what lets a restart catch up.
pub(super) fn ensure(
    conn: &Connection,
    genflow: &str,
    cron: &str,
    next_due: &str,
) -> Result<ScheduleRecord, StoreError> {
    conn.prepare_cached(
        "INSERT INTO schedules (genflow, cron, next_due) VALUES (?1, ?2, ?3)
         ON CONFLICT (genflow) DO UPDATE SET cron = excluded.cron, next_due = excluded.next_due
         WHERE schedules.cron <> excluded.cron",
    )?
    .execute(params![genflow, cron, next_due])?;
    conn.prepare_cached(&format!("{SELECT}WHERE genflow = ?1"))?
        .query_and_then([genflow], from_row)?
        .next()
        .unwrap_or_else(|| {
            Err(StoreError::Database(
                "the schedule just stored is missing".into(),
            ))
        })
}

/// Moves the schedule from `due` to `next_due` for run `run_id`; false when
/// another process claimed this occurrence first.
pub(super) fn claim(
    conn: &Connection,
    genflow: &str,
    due: &str,
    next_due: &str,
    run_id: &str,
) -> Result<bool, StoreError> {
    let claimed = conn
        .prepare_cached(
            "UPDATE schedules SET next_due = ?1, last_due = ?2, last_run_id = ?3
             WHERE genflow = ?4 AND next_due = ?2",
        )?
        .execute(params![next_due, due, run_id, genflow])?;
    Ok(claimed == 1)
}

fn from_row(row: &Row<'_>) -> Result<ScheduleRecord, StoreError> {
    let last_due: Option<String> = row.get(3)?;
    Ok(ScheduleRecord {
        genflow: row.get(0)?,
        cron: row.get(1)?,
        next_due: time(&row.get::<_, String>(2)?)?,
        last_due: last_due.as_deref().map(time).transpose()?,
        last_run_id: row.get(4)?,
    })
}
