//! Rows to records: decoding what the tables hold, with `Corrupt` errors
//! that say which row.

use super::*;

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(super) fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(&what(), e))
}

pub(super) fn to_i64(n: u64) -> i64 {
    // SQLite integers are i64; counts beyond that do not occur in practice.
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn to_u32(n: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|e| corrupt(what, e))
}

pub(super) fn to_u64(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| corrupt(what, e))
}

pub(super) fn time(text: &str) -> Result<Timestamp, StoreError> {
    audit::parse_time(text)
}

/// A run row as selected by `select_runs!`, before decoding.
pub(super) struct RunRow {
    id: String,
    genflow_name: String,
    definition_hash: String,
    state_json: String,
    version: i64,
    triggered_by: Option<String>,
    created_at: String,
    updated_at: String,
}

pub(super) fn run_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: row.get(0)?,
        genflow_name: row.get(1)?,
        definition_hash: row.get(2)?,
        state_json: row.get(3)?,
        version: row.get(4)?,
        triggered_by: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

pub(super) fn run_record(
    conn: &Connection,
    defs: &Definitions,
    row: RunRow,
) -> Result<RunRecord, StoreError> {
    let definition = defs.get(conn, &row.id, &row.definition_hash)?;
    Ok(RunRecord {
        genflow_name: row.genflow_name,
        definition,
        definition_hash: row.definition_hash,
        state: from_json(&row.state_json, || format!("run {} state", row.id))?,
        version: row.version,
        triggered_by: row.triggered_by,
        created_at: time(&row.created_at)?,
        updated_at: time(&row.updated_at)?,
        id: row.id,
    })
}

pub(super) fn fetch_run(
    conn: &Connection,
    defs: &Definitions,
    id: &str,
) -> Result<Option<RunRecord>, StoreError> {
    let row = conn
        .prepare_cached(select_runs!("WHERE id = ?1"))?
        .query_row([id], run_row)
        .optional()?;
    row.map(|r| run_record(conn, defs, r)).transpose()
}

/// The definition of run `id`, or NotFound.
pub(super) fn run_definition(
    conn: &Connection,
    defs: &Definitions,
    id: &str,
) -> Result<Arc<Genflow>, StoreError> {
    let hash: Option<String> = conn
        .prepare_cached("SELECT definition_hash FROM runs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?;
    match hash {
        Some(hash) => defs.get(conn, id, &hash),
        None => Err(StoreError::NotFound(format!("run {id}"))),
    }
}

pub(super) fn artifact_from_row(row: &Row<'_>) -> Result<ArtifactRef, StoreError> {
    Ok(ArtifactRef {
        run_id: row.get(0)?,
        step: row.get(1)?,
        path: row.get(2)?,
        revision: to_u32(row.get(3)?, "artifact revision")?,
        sha256: row.get(4)?,
        size: to_u64(row.get(5)?, "artifact size")?,
        created_at: time(&row.get::<_, String>(6)?)?,
    })
}

pub(super) fn step_run_from_row(row: &Row<'_>) -> Result<StepRun, StoreError> {
    let manifest: Option<String> = row.get(5)?;
    let finished: Option<String> = row.get(11)?;
    Ok(StepRun {
        step: row.get(0)?,
        attempt: to_u32(row.get(1)?, "step run attempt")?,
        model: row.get(2)?,
        prompt: row.get(3)?,
        settings: from_json(&row.get::<_, String>(4)?, || "step run settings".into())?,
        manifest: manifest
            .map(|m| from_json(&m, || "step run manifest".into()))
            .transpose()?,
        input_tokens: to_u64(row.get(6)?, "input tokens")?,
        output_tokens: to_u64(row.get(7)?, "output tokens")?,
        cost_usd: row.get(8)?,
        cached: row.get(9)?,
        started_at: time(&row.get::<_, String>(10)?)?,
        finished_at: finished.as_deref().map(time).transpose()?,
        error: row.get(12)?,
    })
}

pub(super) fn decision_from_row(row: &Row<'_>) -> Result<DecisionRecord, StoreError> {
    let verdict: String = row.get(4)?;
    Ok(DecisionRecord {
        run_id: row.get(0)?,
        step: row.get(1)?,
        gate_round: to_u32(row.get(2)?, "gate round")?,
        approver: row.get(3)?,
        verdict: match verdict.as_str() {
            "go" => Verdict::Go,
            "no_go" => Verdict::NoGo,
            other => return Err(corrupt("decision verdict", other)),
        },
        reason: row.get(5)?,
        channel: row.get(6)?,
        decided_at: time(&row.get::<_, String>(7)?)?,
        genflow_name: row.get(8)?,
        definition_hash: row.get(9)?,
        shown: from_json(&row.get::<_, String>(10)?, || "decision shown".into())?,
        is_final: row.get(11)?,
    })
}

pub(super) fn event_from_row(row: &Row<'_>) -> Result<AuditEvent, StoreError> {
    let seq: i64 = row.get(0)?;
    Ok(AuditEvent {
        seq,
        run_id: row.get(1)?,
        at: time(&row.get::<_, String>(2)?)?,
        kind: row.get(3)?,
        payload: from_json(&row.get::<_, String>(4)?, || format!("event {seq} payload"))?,
        prev_hash: row.get(5)?,
        hash: row.get(6)?,
    })
}

/// Escapes LIKE wildcards so a prefix matches literally.
pub(super) fn like_prefix(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

pub(super) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_extended_error_code(),
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}
