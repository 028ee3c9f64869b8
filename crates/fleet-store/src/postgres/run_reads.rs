//! Reading runs on PostgreSQL: one run (by id or prefix), keyset pages of
//! runs, and a run's artifacts, step runs and decisions. Creating and
//! committing are in `runs.rs`.

use super::cached::Cached;
use super::runs::{Known, RUN_COLUMNS, from_json, run_from_row};
use super::{PostgresStore, pg, to_u32, to_u64};
use crate::audit;
use crate::{ArtifactRef, DecisionRecord, RunFilter, RunRecord, StepRun, StoreError};
use fleet_core::run::Verdict;
use tokio_postgres::Row;

pub(super) async fn get(store: &PostgresStore, id: &str) -> Result<RunRecord, StoreError> {
    let client = store.client().await?;
    // The state (most of the row, and of the decoding) only when it is
    // not the version this store knows already.
    let latest = store.latest_known(id);
    let known_version = latest.as_ref().map_or(0, |r| r.version);
    if let Some(row) = client
        .row_opt(
            "SELECT id, genflow_name, definition_hash,
                    CASE WHEN version = $2 THEN NULL ELSE state_json END,
                    version, triggered_by, created_at, updated_at
             FROM runs WHERE id = $1",
            &[&id, &known_version],
        )
        .await
        .map_err(pg("reading a run"))?
    {
        if let Some(record) = latest
            && row.get::<_, Option<&str>>(3).is_none()
        {
            return Ok(record);
        }
        let record = run_from_row(store, &client, &row).await?;
        store.remember_run(Known::read(&record));
        return Ok(record);
    }
    if id.chars().count() < 4 {
        return Err(StoreError::Invalid(format!(
            "`{id}` is not a run id; give at least 4 characters"
        )));
    }
    let mut pattern = String::with_capacity(id.len() + 1);
    for c in id.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    let rows = client
        .rows(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE $1 ORDER BY id LIMIT 2"),
            &[&pattern],
        )
        .await
        .map_err(pg("reading a run"))?;
    match rows.as_slice() {
        [] => Err(StoreError::NotFound(format!("run `{id}`"))),
        [one] => {
            let record = run_from_row(store, &client, one).await?;
            store.remember_run(Known::read(&record));
            Ok(record)
        }
        _ => Err(StoreError::AmbiguousId(id.to_owned())),
    }
}

/// A listing's SQL and parameters: only the filters that are set, so each
/// shape reads its page from its index in listing order.
fn listing(
    select: &str,
    filter: &RunFilter,
) -> (
    String,
    Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>>,
) {
    let mut conditions = Vec::new();
    let mut params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = Vec::new();
    if let Some(g) = &filter.genflow {
        params.push(Box::new(g.clone()));
        conditions.push(format!("genflow_name = ${}", params.len()));
    }
    if let Some(s) = filter.status {
        params.push(Box::new(s.as_str().to_owned()));
        conditions.push(format!("status = ${}", params.len()));
    }
    if let Some(c) = &filter.before {
        params.push(Box::new(audit::format_time(c.created_at)));
        params.push(Box::new(c.id.clone()));
        conditions.push(format!(
            "(created_at, id) < (${}, ${})",
            params.len() - 1,
            params.len()
        ));
    }
    let mut sql = format!("SELECT {select} FROM runs ");
    if !conditions.is_empty() {
        sql.push_str("WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC");
    if let Some(limit) = filter.limit {
        params.push(Box::new(i64::from(limit)));
        sql.push_str(&format!(" LIMIT ${}", params.len()));
    }
    (sql, params)
}

async fn query_listing(
    store: &PostgresStore,
    select: &str,
    filter: &RunFilter,
) -> Result<(deadpool_postgres::Client, Vec<Row>), StoreError> {
    let client = store.client().await?;
    let (sql, params) = listing(select, filter);
    let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    let statement = client
        .prepare_cached(&sql)
        .await
        .map_err(pg("listing runs"))?;
    let rows = client
        .all(&statement, &refs)
        .await
        .map_err(pg("listing runs"))?;
    Ok((client, rows))
}

pub(super) async fn list(
    store: &PostgresStore,
    filter: &RunFilter,
) -> Result<Vec<RunRecord>, StoreError> {
    let (client, rows) = query_listing(store, RUN_COLUMNS, filter).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        out.push(run_from_row(store, &client, row).await?);
    }
    Ok(out)
}

pub(super) async fn versions(
    store: &PostgresStore,
    filter: &RunFilter,
) -> Result<Vec<(String, i64)>, StoreError> {
    let (_client, rows) = query_listing(store, "id, version", filter).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(super) async fn artifacts(
    store: &PostgresStore,
    run_id: &str,
) -> Result<Vec<ArtifactRef>, StoreError> {
    let client = store.client().await?;
    client
        .rows(
            // The size by the content's key, row by row: as a join, the
            // cached generic plan (made while the table was small) hashed
            // a sequential scan of every artifact ever stored, per call.
            "SELECT r.run_id, r.step, r.path, r.revision, r.sha256,
                    (SELECT a.size FROM artifacts a WHERE a.sha256 = r.sha256), r.created_at
             FROM artifact_revisions r
             WHERE r.run_id = $1 ORDER BY r.step_index, r.path, r.revision",
            &[&run_id],
        )
        .await
        .map_err(pg("listing artifacts"))?
        .iter()
        .map(|row| {
            Ok(ArtifactRef {
                run_id: row.get(0),
                step: row.get(1),
                path: row.get(2),
                revision: to_u32(row.get(3), "artifact revision")?,
                sha256: row.get(4),
                size: to_u64(row.get(5), "artifact size")?,
                created_at: audit::parse_time(row.get(6))?,
            })
        })
        .collect()
}

pub(super) async fn step_runs(
    store: &PostgresStore,
    run_id: &str,
) -> Result<Vec<StepRun>, StoreError> {
    let client = store.client().await?;
    client
        .rows(
            "SELECT step, attempt, model, prompt, settings_json, manifest_json, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error
             FROM step_runs WHERE run_id = $1 ORDER BY started_at, step, attempt",
            &[&run_id],
        )
        .await
        .map_err(pg("listing step runs"))?
        .iter()
        .map(|row| {
            let manifest: Option<String> = row.get(5);
            let finished: Option<String> = row.get(11);
            Ok(StepRun {
                step: row.get(0),
                attempt: to_u32(row.get(1), "step run attempt")?,
                model: row.get(2),
                prompt: row.get(3),
                settings: from_json(row.get(4), "step run settings")?,
                manifest: manifest
                    .map(|m| from_json(&m, "step run manifest"))
                    .transpose()?,
                input_tokens: to_u64(row.get(6), "input tokens")?,
                output_tokens: to_u64(row.get(7), "output tokens")?,
                cost_usd: row.get(8),
                cached: row.get(9),
                started_at: audit::parse_time(row.get(10))?,
                finished_at: finished.as_deref().map(audit::parse_time).transpose()?,
                error: row.get(12),
            })
        })
        .collect()
}

pub(super) async fn decisions(
    store: &PostgresStore,
    run_id: &str,
) -> Result<Vec<DecisionRecord>, StoreError> {
    let client = store.client().await?;
    client
        .rows(
            "SELECT run_id, step, gate_round, approver, verdict, reason, channel, decided_at, genflow_name, definition_hash, shown_json, is_final
             FROM decisions WHERE run_id = $1 ORDER BY id",
            &[&run_id],
        )
        .await
        .map_err(pg("listing decisions"))?
        .iter()
        .map(|row| {
            let verdict: String = row.get(4);
            Ok(DecisionRecord {
                run_id: row.get(0),
                step: row.get(1),
                gate_round: to_u32(row.get(2), "gate round")?,
                approver: row.get(3),
                verdict: match verdict.as_str() {
                    "go" => Verdict::Go,
                    "no_go" => Verdict::NoGo,
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "decision verdict `{other}`"
                        )));
                    }
                },
                reason: row.get(5),
                channel: row.get(6),
                decided_at: audit::parse_time(row.get(7))?,
                genflow_name: row.get(8),
                definition_hash: row.get(9),
                shown: from_json(row.get(10), "decision shown")?,
                is_final: row.get(11),
            })
        })
        .collect()
}
