//! Runs on PostgreSQL: creating, committing transitions, reading.

use super::cached::Cached;
use super::chain::{self, Contribution, Tally};
use super::{PostgresStore, is_unique_violation, pg, to_i64, to_u32, to_u64};
use crate::audit::{self, Pending};
use crate::{
    ArtifactRef, DecisionRecord, LeaseChange, NewRun, RunFilter, RunRecord, StepRun, StoreError,
    Transition, check_shape,
};
use deadpool_postgres::Transaction;
use fleet_core::config::{Genflow, StepKind};
use fleet_core::run::{RunState, Verdict};
use jiff::Timestamp;
use std::sync::Arc;
use tokio_postgres::Row;

const RUN_COLUMNS: &str =
    "id, genflow_name, definition_hash, state_json, version, triggered_by, created_at, updated_at";

fn json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

async fn run_from_row(
    store: &PostgresStore,
    client: &impl deadpool_postgres::GenericClient,
    row: &Row,
) -> Result<RunRecord, StoreError> {
    let id: String = row.get(0);
    let hash: String = row.get(2);
    let definition = store.definition(client, &id, &hash).await?;
    let state: RunState = from_json(row.get(3), &format!("run {id} state"))?;
    Ok(RunRecord {
        genflow_name: row.get(1),
        definition,
        definition_hash: hash,
        state,
        version: row.get(4),
        triggered_by: row.get(5),
        created_at: audit::parse_time(row.get(6))?,
        updated_at: audit::parse_time(row.get(7))?,
        id,
    })
}

/// Creates `run`, and commits `first` in the same transaction if given.
pub(super) async fn create(
    store: &PostgresStore,
    run: NewRun,
    first: Option<Transition>,
) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
    check_shape(&run.genflow, &run.state)?;
    if let Some(first) = &first
        && (first.run_id != run.id || first.expected_version != 1)
    {
        return Err(StoreError::Invalid(format!(
            "the first transition of run {} must be for that run at version 1",
            run.id
        )));
    }
    let definition_json = run.genflow.canonical_json();
    let definition_hash = run.genflow.definition_hash();
    let definition = store.remember_definition(&definition_hash, run.genflow.clone());
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg("creating a run"))?;
    relax_unless_durable(&tx, first.as_ref().is_some_and(|f| f.durable)).await?;
    let now = audit::now();
    let now_text = audit::format_time(now);
    tx.exec(
        "INSERT INTO definitions (hash, json) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
        &[&definition_hash, &definition_json],
    )
    .await
    .map_err(pg("storing a run's definition"))?;
    let state_json = json("run state", &run.state)?;
    let inserted = tx
        .exec(
            "INSERT INTO runs (id, genflow_name, definition_hash, state_json, status, version, triggered_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7)",
            &[
                &run.id,
                &run.genflow.name,
                &definition_hash,
                &state_json,
                &run.state.status.as_str(),
                &run.triggered_by,
                &now_text,
            ],
        )
        .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists(run.id)),
        Err(e) => return Err(pg("creating a run")(e)),
    }
    let mut work = sync_queue(&tx, &run.genflow, &run.id, None, &run.state, &[], now).await?;
    let created = audit::run_created(&run.id, &run.genflow, &definition_hash, &run.state);
    let mut record = RunRecord {
        id: run.id.clone(),
        genflow_name: run.genflow.name.clone(),
        definition,
        definition_hash,
        state: run.state.clone(),
        version: 1,
        triggered_by: run.triggered_by.clone(),
        created_at: now,
        updated_at: now,
    };
    let mut tally = Tally {
        run_status: Some((None, run.state.status.as_str().to_owned())),
        step: None,
    };
    let mut events = vec![created];
    let mut written = Vec::new();
    if let Some(first) = first {
        // The run row was written by this transaction, so the transition
        // applies to it directly.
        let applied = apply(store, &tx, &record, first, now).await?;
        work |= applied.work;
        written = applied.written;
        events.extend(applied.events);
        if let Some((from, to)) = applied.tally.run_status {
            let _ = from;
            tally.run_status = Some((None, to));
        }
        tally.step = applied.tally.step;
        record = applied.record;
    }
    chain::append(&tx, Some(&record.id), &events, &tally).await?;
    notify(&tx, &record.id, work).await?;
    tx.commit().await.map_err(pg("committing a new run"))?;
    Ok((record, written))
}

/// What applying a transition to a locked run wrote.
struct Applied {
    record: RunRecord,
    written: Vec<ArtifactRef>,
    events: Vec<Pending>,
    tally: Tally,
    work: bool,
}

pub(super) async fn commit(
    store: &PostgresStore,
    t: Transition,
) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
    let mut client = store.client().await?;
    let tx = client
        .transaction()
        .await
        .map_err(pg("committing a transition"))?;
    relax_unless_durable(&tx, t.durable).await?;
    // Locked until COMMIT: a second committer from the same version waits,
    // then sees the new version.
    let row = tx
        .row_opt(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1 FOR UPDATE"),
            &[&t.run_id],
        )
        .await
        .map_err(pg("committing a transition"))?
        .ok_or_else(|| StoreError::NotFound(format!("run {}", t.run_id)))?;
    let version: i64 = row.get(4);
    if version != t.expected_version {
        return Err(StoreError::Conflict { run_id: t.run_id });
    }
    let current = run_from_row(store, &tx, &row).await?;
    let now = audit::now();
    let applied = apply(store, &tx, &current, t, now).await?;
    chain::append(
        &tx,
        Some(&applied.record.id),
        &applied.events,
        &applied.tally,
    )
    .await?;
    notify(&tx, &applied.record.id, applied.work).await?;
    tx.commit().await.map_err(pg("committing a transition"))?;
    Ok((applied.record, applied.written))
}

/// The durability SQLite gives the same commit: a transition that is not
/// `durable` (a step's progress, not a decision or a delivery) commits
/// without waiting for its WAL flush (`synchronous_commit = off`). A crash
/// of the database host can lose the last such commits, never corrupt or
/// reorder them (a durable commit flushes every earlier one), and a lost
/// step commit is redone by whoever takes the step over. Without it every
/// commit held the chain-head lock across its own fsync.
async fn relax_unless_durable(tx: &Transaction<'_>, durable: bool) -> Result<(), StoreError> {
    if !durable {
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(pg("committing a transition"))?;
    }
    Ok(())
}

/// Tells listeners about the commit (delivered when it commits).
async fn notify(tx: &Transaction<'_>, run_id: &str, work: bool) -> Result<(), StoreError> {
    if work {
        tx.exec(
            "SELECT pg_notify('fleet_run', $1), pg_notify('fleet_work', '')",
            &[&run_id],
        )
        .await
    } else {
        tx.exec("SELECT pg_notify('fleet_run', $1)", &[&run_id])
            .await
    }
    .map_err(pg("announcing a commit"))?;
    Ok(())
}

/// Writes transition `t` of `current` (locked by the caller); returns the
/// events to append and the aggregates to adjust.
async fn apply(
    store: &PostgresStore,
    tx: &Transaction<'_>,
    current: &RunRecord,
    t: Transition,
    now: Timestamp,
) -> Result<Applied, StoreError> {
    let genflow: &Arc<Genflow> = &current.definition;
    check_shape(genflow, &t.state)?;
    let now_text = audit::format_time(now);
    let version = current.version + 1;
    let state_json = json("run state", &t.state)?;
    tx.exec(
        "UPDATE runs SET state_json = $1, status = $2, version = $3, updated_at = $4 WHERE id = $5",
        &[
            &state_json,
            &t.state.status.as_str(),
            &version,
            &now_text,
            &t.run_id,
        ],
    )
    .await
    .map_err(pg("updating a run"))?;

    let mut events = Vec::new();
    let mut written = Vec::with_capacity(t.artifacts.len());
    for a in &t.artifacts {
        let Some(step_index) = genflow.step_index(&a.step) else {
            return Err(StoreError::Invalid(format!(
                "artifact for unknown step `{}` of run {}",
                a.step, t.run_id
            )));
        };
        let sha = audit::sha256_hex(&a.bytes);
        let size = a.bytes.len() as u64;
        tx.exec(
            "INSERT INTO artifacts (sha256, bytes, size) VALUES ($1, $2, $3) ON CONFLICT (sha256) DO NOTHING",
            &[&sha, &a.bytes, &to_i64(size)],
        )
        .await
        .map_err(pg("storing an artifact"))?;
        let revision: i64 = tx
            .row(
                "INSERT INTO artifact_revisions (run_id, step, step_index, path, revision, sha256, created_at)
                 SELECT $1, $2, $3, $4, COALESCE(MAX(revision), 0) + 1, $5, $6
                 FROM artifact_revisions WHERE run_id = $1 AND path = $4
                 RETURNING revision",
                &[
                    &t.run_id,
                    &a.step,
                    &to_i64(step_index as u64),
                    &a.path,
                    &sha,
                    &now_text,
                ],
            )
            .await
            .map_err(pg("storing an artifact revision"))?
            .get(0);
        let r = ArtifactRef {
            run_id: t.run_id.clone(),
            step: a.step.clone(),
            path: a.path.clone(),
            revision: to_u32(revision, "artifact revision")?,
            sha256: sha,
            size,
            created_at: now,
        };
        events.push(audit::artifact_stored(&r));
        written.push(r);
    }

    let mut tally = Tally {
        run_status: Some((
            Some(current.state.status.as_str().to_owned()),
            t.state.status.as_str().to_owned(),
        )),
        step: None,
    };
    if let Some(r) = &t.step_run {
        if genflow.step_index(&r.step).is_none() {
            return Err(StoreError::Invalid(format!(
                "step run for unknown step `{}` of run {}",
                r.step, t.run_id
            )));
        }
        let old = tx
            .row_opt(
                "SELECT started_at, finished_at, input_tokens, output_tokens, cost_usd, cached
                 FROM step_runs WHERE run_id = $1 AND step = $2 AND attempt = $3",
                &[&t.run_id, &r.step, &i64::from(r.attempt)],
            )
            .await
            .map_err(pg("reading a step run"))?
            .map(|row| -> Result<Contribution, StoreError> {
                let finished: Option<String> = row.get(1);
                Ok(Contribution::of(&StepRun {
                    step: r.step.clone(),
                    attempt: r.attempt,
                    model: None,
                    prompt: None,
                    settings: serde_json::Value::Null,
                    manifest: None,
                    input_tokens: to_u64(row.get(2), "input tokens")?,
                    output_tokens: to_u64(row.get(3), "output tokens")?,
                    cost_usd: row.get(4),
                    cached: row.get(5),
                    started_at: audit::parse_time(row.get(0))?,
                    finished_at: finished.as_deref().map(audit::parse_time).transpose()?,
                    error: None,
                }))
            })
            .transpose()?;
        let change = Contribution::of(r).minus(old.unwrap_or_default());
        tally.step = Some((current.genflow_name.clone(), r.step.clone(), change));
        tx.exec(
            "INSERT INTO step_runs (run_id, step, attempt, model, prompt, settings_json, manifest_json, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
             ON CONFLICT (run_id, step, attempt) DO UPDATE SET
               model = excluded.model, prompt = excluded.prompt, settings_json = excluded.settings_json,
               manifest_json = excluded.manifest_json, input_tokens = excluded.input_tokens,
               output_tokens = excluded.output_tokens, cost_usd = excluded.cost_usd, cached = excluded.cached,
               started_at = excluded.started_at, finished_at = excluded.finished_at, error = excluded.error",
            &[
                &t.run_id,
                &r.step,
                &i64::from(r.attempt),
                &r.model,
                &r.prompt,
                &json("step run settings", &r.settings)?,
                &r.manifest
                    .as_ref()
                    .map(|m| json("step run manifest", m))
                    .transpose()?,
                &to_i64(r.input_tokens),
                &to_i64(r.output_tokens),
                &r.cost_usd,
                &r.cached,
                &audit::format_time(r.started_at),
                &r.finished_at.map(audit::format_time),
                &r.error,
            ],
        )
        .await
        .map_err(pg("recording a step run"))?;
        events.push(audit::step_run_recorded(r));
    }

    if let Some(d) = &t.decision {
        let gate = genflow
            .step_index(&d.step)
            .filter(|&i| genflow.steps[i].kind == StepKind::Approval)
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "decision on `{}`, which is not an approval step of run {}",
                    d.step, t.run_id
                ))
            })?;
        let record = DecisionRecord {
            run_id: t.run_id.clone(),
            step: d.step.clone(),
            gate_round: t.state.steps[gate].attempt,
            approver: d.approver.clone(),
            verdict: d.verdict,
            reason: d.reason.clone(),
            channel: d.channel.clone(),
            decided_at: Timestamp::from_microsecond(d.decided_at.as_microsecond()).unwrap_or(now),
            genflow_name: current.genflow_name.clone(),
            definition_hash: current.definition_hash.clone(),
            shown: d.shown.clone(),
            is_final: d.is_final,
        };
        let inserted = tx
            .exec(
                "INSERT INTO decisions (run_id, step, gate_round, approver, approver_key, verdict, reason, channel, decided_at, genflow_name, definition_hash, shown_json, is_final)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                &[
                    &record.run_id,
                    &record.step,
                    &i64::from(record.gate_round),
                    &record.approver,
                    &record.approver.trim().to_lowercase(),
                    &record.verdict.as_str(),
                    &record.reason,
                    &record.channel,
                    &now_text,
                    &record.genflow_name,
                    &record.definition_hash,
                    &json("decision shown", &record.shown)?,
                    &record.is_final,
                ],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::DuplicateDecision {
                    run_id: record.run_id,
                    step: record.step,
                    approver: record.approver,
                });
            }
            Err(e) => return Err(pg("recording a decision")(e)),
        }
        events.push(audit::decision_recorded(&record)?);
    }

    for d in &t.outbox {
        if d.run_id != t.run_id || genflow.step_index(&d.step).is_none() {
            return Err(StoreError::Invalid(format!(
                "delivery for step `{}` of run {} does not belong to run {}",
                d.step, d.run_id, t.run_id
            )));
        }
        if let Some(e) = super::outbox::enqueue(tx, d, &now_text).await? {
            events.push(e);
        }
    }

    // Lock order, queue row before lease row, as every claimer takes
    // them (see `work.rs`): the other order deadlocks against a claim.
    for change in &t.leases {
        let step = match change {
            LeaseChange::Take { step, .. } | LeaseChange::Release { step, .. } => step,
        };
        if genflow.step_index(step).is_none() {
            return Err(StoreError::Invalid(format!(
                "lease for unknown step `{step}` of run {}",
                t.run_id
            )));
        }
    }
    let work = sync_queue(
        tx,
        genflow,
        &t.run_id,
        Some(&current.state),
        &t.state,
        &t.leases,
        now,
    )
    .await?;
    for change in &t.leases {
        match change {
            LeaseChange::Take { step, owner, ttl } => {
                let expires = audit::format_time(super::work::lease_expiry(now, *ttl)?);
                tx.exec(
                    "INSERT INTO leases (run_id, step, owner, expires_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
                    &[&t.run_id, step, owner, &expires],
                )
                .await
                .map_err(pg("taking a lease"))?;
            }
            LeaseChange::Release { step, owner } => {
                tx.exec(
                    "DELETE FROM leases WHERE run_id = $1 AND step = $2 AND owner = $3",
                    &[&t.run_id, step, owner],
                )
                .await
                .map_err(pg("releasing a lease"))?;
            }
        }
    }

    events.extend(audit::state_changes(genflow, &current.state, &t.state));
    events.extend(t.events.iter().map(|e| Pending {
        kind: e.kind.clone(),
        payload: e.payload.clone(),
    }));
    let _ = store;
    let record = RunRecord {
        id: t.run_id,
        genflow_name: current.genflow_name.clone(),
        definition: current.definition.clone(),
        definition_hash: current.definition_hash.clone(),
        state: t.state,
        version,
        triggered_by: current.triggered_by.clone(),
        created_at: current.created_at,
        updated_at: now,
    };
    Ok(Applied {
        record,
        written,
        events,
        tally,
        work,
    })
}

/// Brings the run's rows of the step queue from `before` to `after` (see
/// `sqlite/queue.rs`); true when a step became claimable.
async fn sync_queue(
    tx: &Transaction<'_>,
    genflow: &Genflow,
    run_id: &str,
    before: Option<&RunState>,
    after: &RunState,
    leases: &[LeaseChange],
    now: Timestamp,
) -> Result<bool, StoreError> {
    let old = before
        .map(|b| crate::runnable(genflow, b))
        .unwrap_or_default();
    let new = crate::runnable(genflow, after);
    let now_text = audit::format_time(now);
    let mut work = false;
    for step in old.iter().filter(|s| !new.contains(s)) {
        tx.exec(
            "DELETE FROM step_queue WHERE run_id = $1 AND step = $2",
            &[&run_id, step],
        )
        .await
        .map_err(pg("updating the step queue"))?;
    }
    for step in new.iter().filter(|s| !old.contains(s)) {
        work |= tx
            .exec(
                "INSERT INTO step_queue (run_id, step, claimable_at) VALUES ($1, $2, $3)
                 ON CONFLICT (run_id, step) DO NOTHING",
                &[&run_id, step, &now_text],
            )
            .await
            .map_err(pg("updating the step queue"))?
            == 1;
    }
    for change in leases {
        match change {
            // Only ever earlier (see `sqlite/queue.rs`).
            LeaseChange::Take { step, ttl, .. } => {
                let until = audit::format_time(super::work::lease_expiry(now, *ttl)?);
                tx.exec(
                    "UPDATE step_queue SET claimable_at = $3
                     WHERE run_id = $1 AND step = $2 AND claimable_at > $3",
                    &[&run_id, step, &until],
                )
                .await
                .map_err(pg("updating the step queue"))?;
            }
            LeaseChange::Release { step, .. } => {
                work |= tx
                    .exec(
                        "UPDATE step_queue SET claimable_at = $3 WHERE run_id = $1 AND step = $2",
                        &[&run_id, step, &now_text],
                    )
                    .await
                    .map_err(pg("updating the step queue"))?
                    == 1;
            }
        }
    }
    Ok(work)
}

pub(super) async fn get(store: &PostgresStore, id: &str) -> Result<RunRecord, StoreError> {
    let client = store.client().await?;
    if let Some(row) = client
        .row_opt(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"),
            &[&id],
        )
        .await
        .map_err(pg("reading a run"))?
    {
        return run_from_row(store, &client, &row).await;
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
        [one] => run_from_row(store, &client, one).await,
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
            "SELECT r.run_id, r.step, r.path, r.revision, r.sha256, a.size, r.created_at
             FROM artifact_revisions r JOIN artifacts a ON a.sha256 = r.sha256
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
