//! The embedded SQLite backend.
//!
//! One writer connection behind an async mutex (SQLite allows one writer at a
//! time anyway; queuing in-process avoids busy-waiting) plus a pool of reader
//! connections (WAL lets them read while the writer writes). Every write is a
//! `BEGIN IMMEDIATE` transaction, so the write lock is taken up front and two
//! *processes* never deadlock upgrading read locks; the busy timeout makes the
//! loser wait instead of failing.

use crate::audit::{self, Pending};
use crate::{
    ArtifactRef, AuditEvent, AuditReport, DecisionRecord, Delivery, DeliveryOutcome,
    DeliveryPurpose, DeliveryScope, DeliveryStatus, NewDelivery, NewRun, RunFilter, RunRecord,
    ScheduleRecord, StepRun, StepStats, Store, StoreError, StoreStats, Transition,
};
use async_trait::async_trait;
use fleet_core::config::{Genflow, StepKind};
use fleet_core::run::{RunState, Verdict};
use jiff::Timestamp;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, SqlSafeStr, Sqlite, SqliteExecutor, SqlitePool};
use std::path::Path;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const READERS: u32 = 4;
const MIN_PREFIX: usize = 4;

const RUN_COLUMNS: &str = "id, genflow_name, definition_json, definition_hash, state_json, version, triggered_by, created_at, updated_at";

pub struct SqliteStore {
    writer: Mutex<Writer>,
    /// `None` for an in-memory database, whose only connection is the writer.
    readers: Option<SqlitePool>,
}

struct Writer {
    conn: SqliteConnection,
    /// The connection's current `PRAGMA synchronous` is FULL; `None` = unknown
    /// (a switch was interrupted), so the next commit sets it explicitly.
    full_sync: Option<bool>,
}

enum Reader<'a> {
    Pool(PoolConnection<Sqlite>),
    Writer(MutexGuard<'a, Writer>),
}

impl Reader<'_> {
    fn conn(&mut self) -> &mut SqliteConnection {
        match self {
            Reader::Pool(c) => c,
            Reader::Writer(w) => &mut w.conn,
        }
    }
}

/// How often opening a new database is retried while another process holds it.
const OPEN_RETRIES: u32 = 20;

fn migrator() -> Migrator {
    Migrator::with_migrations(vec![
        Migration::new(
            1,
            "init".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0001_init.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            2,
            "schedules".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0002_schedules.sql").into_sql_str(),
            false,
        ),
        Migration::new(
            3,
            "outbox".into(),
            MigrationType::Simple,
            include_str!("../migrations/sqlite/0003_outbox.sql").into_sql_str(),
            false,
        ),
    ])
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // Several processes may open a brand-new file at the same instant
        // (a CLI run and a `fleet runs` beside it): switching to WAL and the
        // first migration need the file to themselves, so a loser retries
        // for a few seconds instead of failing.
        let mut attempt = 0u32;
        let conn = loop {
            let result = async {
                let mut conn = SqliteConnection::connect_with(&options).await?;
                migrate(&mut conn).await?;
                Ok::<_, StoreError>(conn)
            }
            .await;
            match result {
                Ok(conn) => break conn,
                Err(_) if attempt < OPEN_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt.min(5)) * 50)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer {
                conn,
                full_sync: Some(false),
            }),
            readers: Some(readers),
        })
    }

    /// A private database that lives as long as the store (tests, dry runs).
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        migrate(&mut conn).await?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer {
                conn,
                full_sync: Some(false),
            }),
            readers: None,
        })
    }

    async fn reader(&self) -> Result<Reader<'_>, StoreError> {
        Ok(match &self.readers {
            Some(pool) => Reader::Pool(pool.acquire().await?),
            None => Reader::Writer(self.writer.lock().await),
        })
    }

    /// The writer, with `PRAGMA synchronous` set for this transaction: FULL
    /// for durable commits, NORMAL otherwise.
    async fn writer(&self, durable: bool) -> Result<MutexGuard<'_, Writer>, StoreError> {
        let mut w = self.writer.lock().await;
        if w.full_sync != Some(durable) {
            w.full_sync = None;
            let pragma = if durable {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            sqlx::query(pragma).execute(&mut w.conn).await?;
            w.full_sync = Some(durable);
        }
        Ok(w)
    }
}

/// Applies migrations. Two processes opening a fresh file at once race here:
/// the loser's migration fails because the winner's tables appeared under it,
/// and a second pass then finds them applied.
async fn migrate(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    let migrator = migrator();
    let mut attempts = 0;
    loop {
        match migrator.run(&mut *conn).await {
            Ok(()) => return Ok(()),
            Err(_) if attempts < 3 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(what, e))
}

fn to_i64(n: u64) -> i64 {
    // SQLite integers are i64; counts beyond that do not occur in practice.
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u32(n: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|e| corrupt(what, e))
}

fn to_u64(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|e| corrupt(what, e))
}

fn check_shape(genflow: &Genflow, state: &RunState) -> Result<(), StoreError> {
    if genflow.steps.len() == state.steps.len() {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "run state has {} steps but genflow `{}` has {}",
            state.steps.len(),
            genflow.name,
            genflow.steps.len()
        )))
    }
}

fn run_from_row(row: &SqliteRow) -> Result<RunRecord, StoreError> {
    let id: String = row.try_get("id")?;
    let what = |field: &str| format!("run {id} {field}");
    Ok(RunRecord {
        genflow_name: row.try_get("genflow_name")?,
        definition: from_json(&what("definition"), row.try_get("definition_json")?)?,
        definition_hash: row.try_get("definition_hash")?,
        state: from_json(&what("state"), row.try_get("state_json")?)?,
        version: row.try_get("version")?,
        triggered_by: row.try_get("triggered_by")?,
        created_at: audit::parse_time(row.try_get("created_at")?)?,
        updated_at: audit::parse_time(row.try_get("updated_at")?)?,
        id,
    })
}

fn artifact_from_row(row: &SqliteRow) -> Result<ArtifactRef, StoreError> {
    Ok(ArtifactRef {
        run_id: row.try_get("run_id")?,
        step: row.try_get("step")?,
        path: row.try_get("path")?,
        revision: to_u32(row.try_get("revision")?, "artifact revision")?,
        sha256: row.try_get("sha256")?,
        size: to_u64(row.try_get("size")?, "artifact size")?,
        created_at: audit::parse_time(row.try_get("created_at")?)?,
    })
}

fn step_run_from_row(row: &SqliteRow) -> Result<StepRun, StoreError> {
    let manifest: Option<&str> = row.try_get("manifest_json")?;
    let finished: Option<&str> = row.try_get("finished_at")?;
    Ok(StepRun {
        step: row.try_get("step")?,
        attempt: to_u32(row.try_get("attempt")?, "step run attempt")?,
        model: row.try_get("model")?,
        prompt: row.try_get("prompt")?,
        settings: from_json("step run settings", row.try_get("settings_json")?)?,
        manifest: manifest
            .map(|m| from_json("step run manifest", m))
            .transpose()?,
        input_tokens: to_u64(row.try_get("input_tokens")?, "input tokens")?,
        output_tokens: to_u64(row.try_get("output_tokens")?, "output tokens")?,
        cost_usd: row.try_get("cost_usd")?,
        cached: row.try_get("cached")?,
        started_at: audit::parse_time(row.try_get("started_at")?)?,
        finished_at: finished.map(audit::parse_time).transpose()?,
        error: row.try_get("error")?,
    })
}

fn decision_from_row(row: &SqliteRow) -> Result<DecisionRecord, StoreError> {
    let verdict: &str = row.try_get("verdict")?;
    Ok(DecisionRecord {
        run_id: row.try_get("run_id")?,
        step: row.try_get("step")?,
        gate_round: to_u32(row.try_get("gate_round")?, "gate round")?,
        approver: row.try_get("approver")?,
        verdict: match verdict {
            "go" => Verdict::Go,
            "no_go" => Verdict::NoGo,
            other => return Err(corrupt("decision verdict", other)),
        },
        reason: row.try_get("reason")?,
        channel: row.try_get("channel")?,
        decided_at: audit::parse_time(row.try_get("decided_at")?)?,
        genflow_name: row.try_get("genflow_name")?,
        definition_hash: row.try_get("definition_hash")?,
        shown: from_json("decision shown", row.try_get("shown_json")?)?,
        is_final: row.try_get("is_final")?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<AuditEvent, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    Ok(AuditEvent {
        seq,
        run_id: row.try_get("run_id")?,
        at: audit::parse_time(row.try_get("at")?)?,
        kind: row.try_get("kind")?,
        payload: from_json(
            &format!("event {seq} payload"),
            row.try_get("payload_json")?,
        )?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// Appends events to the chain; must run inside the write transaction so the
/// last hash cannot change underneath.
async fn append_events(
    conn: &mut SqliteConnection,
    run_id: Option<&str>,
    events: &[Pending],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let last = sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    let (mut seq, mut prev) = match last {
        Some(row) => (
            row.try_get::<i64, _>("seq")?,
            row.try_get::<String, _>("hash")?,
        ),
        None => (0, audit::GENESIS_HASH.to_string()),
    };
    for e in events {
        seq += 1;
        let at = audit::format_time(audit::now());
        let hash = audit::event_hash(seq, run_id, &at, &e.kind, &e.payload, &prev)?;
        sqlx::query(
            "INSERT INTO events (seq, run_id, at, kind, payload_json, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(seq)
        .bind(run_id)
        .bind(&at)
        .bind(&e.kind)
        .bind(to_json("event payload", &e.payload)?)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
        prev = hash;
    }
    Ok(())
}

async fn fetch_run<'e>(
    conn: impl SqliteExecutor<'e>,
    id: &str,
) -> Result<Option<RunRecord>, StoreError> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"));
    sqlx::query(sql)
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(run_from_row)
        .transpose()
}

/// Escapes LIKE wildcards so a prefix matches literally.
fn like_prefix(prefix: &str) -> String {
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

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl SqliteStore {
    async fn commit_in(
        conn: &mut SqliteConnection,
        t: Transition,
    ) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let Some(current) = fetch_run(&mut *tx, &t.run_id).await? else {
            return Err(StoreError::NotFound(format!("run {}", t.run_id)));
        };
        if current.version != t.expected_version {
            return Err(StoreError::Conflict { run_id: t.run_id });
        }
        let genflow = &current.definition;
        check_shape(genflow, &t.state)?;
        let now = audit::now();
        let now_text = audit::format_time(now);
        let version = current.version + 1;
        sqlx::query(
            "UPDATE runs SET state_json = ?, status = ?, version = ?, updated_at = ? WHERE id = ?",
        )
        .bind(to_json("run state", &t.state)?)
        .bind(t.state.status.as_str())
        .bind(version)
        .bind(&now_text)
        .bind(&t.run_id)
        .execute(&mut *tx)
        .await?;

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
            sqlx::query("INSERT INTO artifacts (sha256, bytes, size) VALUES (?, ?, ?) ON CONFLICT (sha256) DO NOTHING")
                .bind(&sha)
                .bind(&a.bytes)
                .bind(to_i64(size))
                .execute(&mut *tx)
                .await?;
            let revision: i64 = sqlx::query_scalar(
                "SELECT COALESCE(MAX(revision), 0) + 1 FROM artifact_revisions WHERE run_id = ? AND path = ?",
            )
            .bind(&t.run_id)
            .bind(&a.path)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO artifact_revisions (run_id, step, step_index, path, revision, sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&t.run_id)
            .bind(&a.step)
            .bind(to_i64(step_index as u64))
            .bind(&a.path)
            .bind(revision)
            .bind(&sha)
            .bind(&now_text)
            .execute(&mut *tx)
            .await?;
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

        if let Some(r) = &t.step_run {
            if genflow.step_index(&r.step).is_none() {
                return Err(StoreError::Invalid(format!(
                    "step run for unknown step `{}` of run {}",
                    r.step, t.run_id
                )));
            }
            sqlx::query(
                "INSERT INTO step_runs (run_id, step, attempt, model, prompt, settings_json, manifest_json, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (run_id, step, attempt) DO UPDATE SET
                   model = excluded.model, prompt = excluded.prompt, settings_json = excluded.settings_json,
                   manifest_json = excluded.manifest_json, input_tokens = excluded.input_tokens,
                   output_tokens = excluded.output_tokens, cost_usd = excluded.cost_usd, cached = excluded.cached,
                   started_at = excluded.started_at, finished_at = excluded.finished_at, error = excluded.error",
            )
            .bind(&t.run_id)
            .bind(&r.step)
            .bind(i64::from(r.attempt))
            .bind(&r.model)
            .bind(&r.prompt)
            .bind(to_json("step run settings", &r.settings)?)
            .bind(r.manifest.as_ref().map(|m| to_json("step run manifest", m)).transpose()?)
            .bind(to_i64(r.input_tokens))
            .bind(to_i64(r.output_tokens))
            .bind(r.cost_usd)
            .bind(r.cached)
            .bind(audit::format_time(r.started_at))
            .bind(r.finished_at.map(audit::format_time))
            .bind(&r.error)
            .execute(&mut *tx)
            .await?;
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
                decided_at: Timestamp::from_microsecond(d.decided_at.as_microsecond())
                    .unwrap_or(now),
                genflow_name: current.genflow_name.clone(),
                definition_hash: current.definition_hash.clone(),
                shown: d.shown.clone(),
                is_final: d.is_final,
            };
            let inserted = sqlx::query(
                "INSERT INTO decisions (run_id, step, gate_round, approver, approver_key, verdict, reason, channel, decided_at, genflow_name, definition_hash, shown_json, is_final)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&record.run_id)
            .bind(&record.step)
            .bind(i64::from(record.gate_round))
            .bind(&record.approver)
            .bind(record.approver.trim().to_lowercase())
            .bind(record.verdict.as_str())
            .bind(&record.reason)
            .bind(&record.channel)
            .bind(&now_text)
            .bind(&record.genflow_name)
            .bind(&record.definition_hash)
            .bind(to_json("decision shown", &record.shown)?)
            .bind(record.is_final)
            .execute(&mut *tx)
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
                Err(e) => return Err(e.into()),
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
            if let Some(e) = enqueue_in(&mut tx, d, &now_text).await? {
                events.push(e);
            }
        }

        events.extend(audit::state_changes(genflow, &current.state, &t.state));
        events.extend(t.events.iter().map(|e| Pending {
            kind: e.kind.clone(),
            payload: e.payload.clone(),
        }));
        append_events(&mut tx, Some(&t.run_id), &events).await?;
        tx.commit().await?;

        let record = RunRecord {
            state: t.state,
            version,
            updated_at: now,
            ..current
        };
        Ok((record, written))
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError> {
        check_shape(&run.genflow, &run.state)?;
        let definition_json = run.genflow.canonical_json();
        let definition_hash = run.genflow.definition_hash();
        let now = audit::now();
        let now_text = audit::format_time(now);
        let mut w = self.writer(false).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO runs (id, genflow_name, definition_json, definition_hash, state_json, status, version, triggered_by, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
        )
        .bind(&run.id)
        .bind(&run.genflow.name)
        .bind(&definition_json)
        .bind(&definition_hash)
        .bind(to_json("run state", &run.state)?)
        .bind(run.state.status.as_str())
        .bind(&run.triggered_by)
        .bind(&now_text)
        .bind(&now_text)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists(run.id)),
            Err(e) => return Err(e.into()),
        }
        let event = audit::run_created(&run.id, &run.genflow, &definition_hash, &run.state);
        append_events(&mut tx, Some(&run.id), &[event]).await?;
        tx.commit().await?;
        Ok(RunRecord {
            id: run.id,
            genflow_name: run.genflow.name.clone(),
            definition: run.genflow,
            definition_hash,
            state: run.state,
            version: 1,
            triggered_by: run.triggered_by,
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError> {
        let mut r = self.reader().await?;
        if let Some(run) = fetch_run(r.conn(), id_or_prefix).await? {
            return Ok(run);
        }
        if id_or_prefix.chars().count() < MIN_PREFIX {
            return Err(StoreError::Invalid(format!(
                "`{id_or_prefix}` is not a run id; give at least {MIN_PREFIX} characters"
            )));
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id LIMIT 2"
        ));
        let rows = sqlx::query(sql)
            .bind(like_prefix(id_or_prefix))
            .fetch_all(r.conn())
            .await?;
        match rows.as_slice() {
            [] => Err(StoreError::NotFound(format!("run `{id_or_prefix}`"))),
            [one] => run_from_row(one),
            _ => Err(StoreError::AmbiguousId(id_or_prefix.to_string())),
        }
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut r = self.reader().await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE (?1 IS NULL OR genflow_name = ?1) AND (?2 IS NULL OR status = ?2)
             ORDER BY created_at DESC, id DESC LIMIT ?3"
        ));
        // SQLite treats a negative LIMIT as "no limit".
        let limit = filter.limit.map_or(-1, i64::from);
        let rows = sqlx::query(sql)
            .bind(&filter.genflow)
            .bind(filter.status.map(|s| s.as_str()))
            .bind(limit)
            .fetch_all(r.conn())
            .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<String>, StoreError> {
        let mut r = self.reader().await?;
        Ok(sqlx::query_scalar(
            "SELECT id FROM runs WHERE status = 'running' ORDER BY created_at, id",
        )
        .fetch_all(r.conn())
        .await?)
    }

    async fn commit(&self, t: Transition) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
        let mut w = self.writer(t.durable).await?;
        Self::commit_in(&mut w.conn, t).await
    }

    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRef>, StoreError> {
        let mut r = self.reader().await?;
        let rows = sqlx::query(
            "SELECT r.run_id, r.step, r.path, r.revision, r.sha256, a.size, r.created_at
             FROM artifact_revisions r JOIN artifacts a ON a.sha256 = r.sha256
             WHERE r.run_id = ? ORDER BY r.step_index, r.path, r.revision",
        )
        .bind(run_id)
        .fetch_all(r.conn())
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn artifact_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut r = self.reader().await?;
        Ok(
            sqlx::query_scalar("SELECT bytes FROM artifacts WHERE sha256 = ?")
                .bind(sha256.to_ascii_lowercase())
                .fetch_optional(r.conn())
                .await?,
        )
    }

    async fn step_runs(&self, run_id: &str) -> Result<Vec<StepRun>, StoreError> {
        let mut r = self.reader().await?;
        let rows = sqlx::query(
            "SELECT * FROM step_runs WHERE run_id = ? ORDER BY started_at, step, attempt",
        )
        .bind(run_id)
        .fetch_all(r.conn())
        .await?;
        rows.iter().map(step_run_from_row).collect()
    }

    async fn decisions(&self, run_id: &str) -> Result<Vec<DecisionRecord>, StoreError> {
        let mut r = self.reader().await?;
        let rows = sqlx::query("SELECT * FROM decisions WHERE run_id = ? ORDER BY id")
            .bind(run_id)
            .fetch_all(r.conn())
            .await?;
        rows.iter().map(decision_from_row).collect()
    }

    async fn events(&self, run_id: Option<&str>) -> Result<Vec<AuditEvent>, StoreError> {
        let mut r = self.reader().await?;
        let rows = match run_id {
            Some(id) => {
                sqlx::query("SELECT * FROM events WHERE run_id = ? ORDER BY seq")
                    .bind(id)
                    .fetch_all(r.conn())
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM events ORDER BY seq")
                    .fetch_all(r.conn())
                    .await?
            }
        };
        rows.iter().map(event_from_row).collect()
    }

    async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let mut r = self.reader().await?;
        let mut report = AuditReport::default();
        // Raw columns, not AuditEvent: the hash covers the stored text of `at`.
        let rows = sqlx::query(
            "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events ORDER BY seq",
        )
        .fetch_all(r.conn())
        .await?;
        let mut prev = audit::GENESIS_HASH.to_string();
        let mut expected_seq = 1;
        for row in &rows {
            report.events_checked += 1;
            let seq: i64 = row.try_get("seq")?;
            let kind: String = row.try_get("kind")?;
            let name = format!("event {seq} ({kind})");
            if seq != expected_seq {
                problem(
                    &mut report,
                    format!("{name}: expected event {expected_seq} here; events are missing"),
                );
            }
            expected_seq = seq + 1;
            let prev_hash: String = row.try_get("prev_hash")?;
            let hash: String = row.try_get("hash")?;
            if prev_hash != prev {
                problem(
                    &mut report,
                    format!("{name}: does not link to the event before it"),
                );
            }
            let payload: Result<serde_json::Value, _> =
                serde_json::from_str(row.try_get("payload_json")?);
            match payload {
                Ok(payload) => {
                    let run_id: Option<&str> = row.try_get("run_id")?;
                    let at: &str = row.try_get("at")?;
                    let recomputed =
                        audit::event_hash(seq, run_id, at, &kind, &payload, &prev_hash)?;
                    if recomputed != hash {
                        problem(&mut report, format!("{name}: hash mismatch"));
                    }
                }
                Err(e) => problem(&mut report, format!("{name}: payload is not JSON ({e})")),
            }
            prev = hash;
        }

        let shas: Vec<String> = sqlx::query_scalar("SELECT sha256 FROM artifacts ORDER BY sha256")
            .fetch_all(r.conn())
            .await?;
        for sha in shas {
            report.artifacts_checked += 1;
            let row = sqlx::query("SELECT bytes, size FROM artifacts WHERE sha256 = ?")
                .bind(&sha)
                .fetch_one(r.conn())
                .await?;
            let bytes: Vec<u8> = row.try_get("bytes")?;
            let size: i64 = row.try_get("size")?;
            if audit::sha256_hex(&bytes) != sha || to_i64(bytes.len() as u64) != size {
                let used = sqlx::query(
                    "SELECT run_id, path, revision FROM artifact_revisions WHERE sha256 = ? ORDER BY created_at, run_id LIMIT 1",
                )
                .bind(&sha)
                .fetch_optional(r.conn())
                .await?;
                let place = match used {
                    Some(u) => format!(
                        " (run {}, {} rev {})",
                        u.try_get::<String, _>("run_id")?,
                        u.try_get::<String, _>("path")?,
                        u.try_get::<i64, _>("revision")?
                    ),
                    None => String::new(),
                };
                problem(
                    &mut report,
                    format!("artifact {sha}{place}: content does not match its sha256"),
                );
            }
        }
        Ok(report)
    }

    async fn claim_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = audit::now();
        let expires = lease_expiry(now, ttl)?;
        let mut w = self.writer(false).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        // Insert, or take over a lease that is ours or has expired.
        let taken = sqlx::query(
            "INSERT INTO leases (run_id, step, owner, expires_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
             WHERE leases.owner = excluded.owner OR leases.expires_at <= ?",
        )
        .bind(run_id)
        .bind(step)
        .bind(owner)
        .bind(audit::format_time(expires))
        .bind(audit::format_time(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(taken == 1)
    }

    async fn renew_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let expires = lease_expiry(audit::now(), ttl)?;
        let mut w = self.writer(false).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        let renewed = sqlx::query(
            "UPDATE leases SET expires_at = ? WHERE run_id = ? AND step = ? AND owner = ?",
        )
        .bind(audit::format_time(expires))
        .bind(run_id)
        .bind(step)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(renewed == 1)
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        let mut r = self.reader().await?;
        let rows = sqlx::query(
            "SELECT genflow, cron, next_due, last_due, last_run_id FROM schedules ORDER BY genflow",
        )
        .fetch_all(r.conn())
        .await?;
        rows.iter().map(schedule_from_row).collect()
    }

    async fn ensure_schedule(
        &self,
        genflow: &str,
        cron: &str,
        next_due: Timestamp,
    ) -> Result<ScheduleRecord, StoreError> {
        let mut w = self.writer(false).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        // A changed expression restarts the schedule; the same one keeps its
        // stored due time, which is what lets a restart catch up.
        sqlx::query(
            "INSERT INTO schedules (genflow, cron, next_due) VALUES (?, ?, ?)
             ON CONFLICT (genflow) DO UPDATE SET cron = excluded.cron, next_due = excluded.next_due
             WHERE schedules.cron <> excluded.cron",
        )
        .bind(genflow)
        .bind(cron)
        .bind(audit::format_time(next_due))
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT genflow, cron, next_due, last_due, last_run_id FROM schedules WHERE genflow = ?",
        )
        .bind(genflow)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        schedule_from_row(&row)
    }

    async fn claim_schedule(
        &self,
        genflow: &str,
        due: Timestamp,
        next_due: Timestamp,
        run_id: &str,
    ) -> Result<bool, StoreError> {
        let mut w = self.writer(true).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        let claimed = sqlx::query(
            "UPDATE schedules SET next_due = ?, last_due = ?, last_run_id = ?
             WHERE genflow = ? AND next_due = ?",
        )
        .bind(audit::format_time(next_due))
        .bind(audit::format_time(due))
        .bind(run_id)
        .bind(genflow)
        .bind(audit::format_time(due))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(claimed == 1)
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let mut r = self.reader().await?;
        let by_status: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM runs GROUP BY status ORDER BY status")
                .fetch_all(r.conn())
                .await?;
        let rows = sqlx::query(
            "SELECT r.genflow_name AS genflow, s.step AS step, COUNT(*) AS attempts,
                    COALESCE(SUM(s.finished_at IS NOT NULL), 0) AS finished,
                    COALESCE(SUM((julianday(s.finished_at) - julianday(s.started_at)) * 86400.0), 0.0) AS seconds,
                    COALESCE(SUM(s.input_tokens), 0) AS input_tokens,
                    COALESCE(SUM(s.output_tokens), 0) AS output_tokens,
                    COALESCE(SUM(s.cost_usd), 0.0) AS cost_usd,
                    COALESCE(SUM(s.cached), 0) AS cached
             FROM step_runs s JOIN runs r ON r.id = s.run_id
             GROUP BY r.genflow_name, s.step ORDER BY r.genflow_name, s.step",
        )
        .fetch_all(r.conn())
        .await?;
        let mut steps = Vec::with_capacity(rows.len());
        for row in &rows {
            steps.push(StepStats {
                genflow: row.try_get("genflow")?,
                step: row.try_get("step")?,
                attempts: to_u64(row.try_get("attempts")?, "attempts")?,
                finished: to_u64(row.try_get("finished")?, "finished")?,
                seconds: row.try_get("seconds")?,
                input_tokens: to_u64(row.try_get("input_tokens")?, "input tokens")?,
                output_tokens: to_u64(row.try_get("output_tokens")?, "output tokens")?,
                cost_usd: row.try_get("cost_usd")?,
                cached: to_u64(row.try_get("cached")?, "cached")?,
            });
        }
        let mut runs_by_status = Vec::with_capacity(by_status.len());
        for (status, n) in by_status {
            runs_by_status.push((status, to_u64(n, "run count")?));
        }
        Ok(StoreStats {
            runs_by_status,
            steps,
        })
    }

    async fn enqueue_deliveries(&self, deliveries: Vec<NewDelivery>) -> Result<u64, StoreError> {
        self.enqueue_deliveries_impl(deliveries).await
    }

    async fn claim_deliveries(
        &self,
        scope: &DeliveryScope,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.claim_deliveries_impl(scope, owner, lease, limit).await
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        self.finish_delivery_impl(id, owner, outcome).await
    }

    async fn deliveries(&self, run_id: &str) -> Result<Vec<Delivery>, StoreError> {
        self.deliveries_impl(run_id).await
    }

    async fn release_lease(&self, run_id: &str, step: &str, owner: &str) -> Result<(), StoreError> {
        let mut w = self.writer(false).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM leases WHERE run_id = ? AND step = ? AND owner = ?")
            .bind(run_id)
            .bind(step)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Inserts a delivery, or revives one that gave up; returns its
/// `delivery.queued` event when something changed.
async fn enqueue_in(
    conn: &mut SqliteConnection,
    d: &NewDelivery,
    now_text: &str,
) -> Result<Option<Pending>, StoreError> {
    let changed = sqlx::query(
        "INSERT INTO outbox (run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)
         ON CONFLICT (run_id, step, round, purpose, channel, recipient) DO UPDATE SET
           status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
           lease_owner = NULL, lease_expires_at = NULL, finished_at = NULL
         WHERE outbox.status = 'failed'",
    )
    .bind(&d.run_id)
    .bind(&d.step)
    .bind(i64::from(d.round))
    .bind(d.purpose.as_key())
    .bind(&d.channel)
    .bind(&d.recipient)
    .bind(&d.label)
    .bind(to_json("delivery payload", &d.payload)?)
    .bind(now_text)
    .bind(now_text)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((changed == 1).then(|| Pending {
        kind: "delivery.queued".into(),
        payload: serde_json::json!({
            "step": d.step, "round": d.round, "purpose": d.purpose.as_key(),
            "channel": d.channel, "recipient": d.label,
        }),
    }))
}

const DELIVERY_COLUMNS: &str = "id, run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, last_error, message_id, response, summary, created_at, finished_at";

fn delivery_from_row(row: &SqliteRow) -> Result<Delivery, StoreError> {
    let id: i64 = row.try_get("id")?;
    let purpose: &str = row.try_get("purpose")?;
    let status: &str = row.try_get("status")?;
    let finished: Option<&str> = row.try_get("finished_at")?;
    Ok(Delivery {
        run_id: row.try_get("run_id")?,
        step: row.try_get("step")?,
        round: to_u32(row.try_get("round")?, "delivery round")?,
        purpose: DeliveryPurpose::from_key(purpose)
            .ok_or_else(|| corrupt(&format!("delivery {id} purpose"), purpose))?,
        channel: row.try_get("channel")?,
        recipient: row.try_get("recipient")?,
        label: row.try_get("label")?,
        payload: from_json(
            &format!("delivery {id} payload"),
            row.try_get("payload_json")?,
        )?,
        status: DeliveryStatus::from_name(status)
            .ok_or_else(|| corrupt(&format!("delivery {id} status"), status))?,
        attempts: to_u32(row.try_get("attempts")?, "delivery attempts")?,
        next_attempt_at: audit::parse_time(row.try_get("next_attempt_at")?)?,
        last_error: row.try_get("last_error")?,
        message_id: row.try_get("message_id")?,
        response: row.try_get("response")?,
        summary: row.try_get("summary")?,
        created_at: audit::parse_time(row.try_get("created_at")?)?,
        finished_at: finished.map(audit::parse_time).transpose()?,
        id,
    })
}

impl SqliteStore {
    async fn enqueue_deliveries_impl(
        &self,
        deliveries: Vec<NewDelivery>,
    ) -> Result<u64, StoreError> {
        let mut w = self.writer(false).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        let now_text = audit::format_time(audit::now());
        let mut queued = 0;
        for d in &deliveries {
            let Some(run) = fetch_run(&mut *tx, &d.run_id).await? else {
                return Err(StoreError::NotFound(format!("run {}", d.run_id)));
            };
            if run.definition.step_index(&d.step).is_none() {
                return Err(StoreError::Invalid(format!(
                    "delivery for unknown step `{}` of run {}",
                    d.step, d.run_id
                )));
            }
            if let Some(e) = enqueue_in(&mut tx, d, &now_text).await? {
                queued += 1;
                append_events(&mut tx, Some(&d.run_id), &[e]).await?;
            }
        }
        tx.commit().await?;
        Ok(queued)
    }

    async fn claim_deliveries_impl(
        &self,
        scope: &DeliveryScope,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = audit::now();
        let now_text = audit::format_time(now);
        let expires = audit::format_time(lease_expiry(now, lease)?);
        let mut w = self.writer(false).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_owner = ?1, lease_expires_at = ?2
             WHERE id IN (
               SELECT id FROM outbox
               WHERE ((status = 'pending' AND next_attempt_at <= ?3) OR (status = 'sending' AND lease_expires_at <= ?3))
                 AND (?4 IS NULL OR run_id = ?4) AND (?5 IS NULL OR step = ?5)
               ORDER BY id LIMIT ?6)
             RETURNING {DELIVERY_COLUMNS}"
        ));
        let rows = sqlx::query(sql)
            .bind(owner)
            .bind(&expires)
            .bind(&now_text)
            .bind(&scope.run_id)
            .bind(&scope.step)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(delivery_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|d| d.id);
        Ok(claimed)
    }

    async fn finish_delivery_impl(
        &self,
        id: i64,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        let durable = matches!(
            outcome,
            DeliveryOutcome::Sent { .. } | DeliveryOutcome::GaveUp { .. }
        );
        let now_text = audit::format_time(audit::now());
        let mut w = self.writer(durable).await?;
        let mut tx = w.conn.begin_with("BEGIN IMMEDIATE").await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE id = ?"
        ));
        let Some(row) = sqlx::query(sql).bind(id).fetch_optional(&mut *tx).await? else {
            return Err(StoreError::NotFound(format!("delivery {id}")));
        };
        let d = delivery_from_row(&row)?;
        let base = serde_json::json!({
            "delivery": d.id, "step": d.step, "round": d.round, "purpose": d.purpose.as_key(),
            "channel": d.channel, "recipient": d.label, "attempt": d.attempts,
        });
        let with = |extra: serde_json::Value| {
            let mut p = base.clone();
            if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
                p.extend(extra.clone());
            }
            p
        };
        let (changed, event) = match &outcome {
            DeliveryOutcome::Sent {
                message_id,
                response,
                summary,
            } => {
                let n = sqlx::query(
                    "UPDATE outbox SET status = 'sent', message_id = ?, response = ?, summary = ?, last_error = NULL,
                       finished_at = ?, lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ? AND status <> 'sent'",
                )
                .bind(message_id)
                .bind(response)
                .bind(summary)
                .bind(&now_text)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let e = with(serde_json::json!({
                    "message_id": message_id, "response": response, "summary": summary,
                }));
                (
                    n,
                    Pending {
                        kind: "delivery.sent".into(),
                        payload: e,
                    },
                )
            }
            DeliveryOutcome::Retry { error, at } => {
                let n = sqlx::query(
                    "UPDATE outbox SET status = 'pending', last_error = ?, next_attempt_at = ?,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ? AND status = 'sending' AND lease_owner = ?",
                )
                .bind(error)
                .bind(audit::format_time(*at))
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let e = with(serde_json::json!({
                    "error": error, "final": false, "retry_at": audit::format_time(*at),
                }));
                (
                    n,
                    Pending {
                        kind: "delivery.failed".into(),
                        payload: e,
                    },
                )
            }
            DeliveryOutcome::GaveUp { error } => {
                let n = sqlx::query(
                    "UPDATE outbox SET status = 'failed', last_error = ?, finished_at = ?,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ? AND status = 'sending' AND lease_owner = ?",
                )
                .bind(error)
                .bind(&now_text)
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let e = with(serde_json::json!({ "error": error, "final": true }));
                (
                    n,
                    Pending {
                        kind: "delivery.failed".into(),
                        payload: e,
                    },
                )
            }
            DeliveryOutcome::Skipped { reason } => {
                let n = sqlx::query(
                    "UPDATE outbox SET status = 'skipped', last_error = ?, finished_at = ?,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ? AND status = 'sending' AND lease_owner = ?",
                )
                .bind(reason)
                .bind(&now_text)
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let e = with(serde_json::json!({ "reason": reason }));
                (
                    n,
                    Pending {
                        kind: "delivery.skipped".into(),
                        payload: e,
                    },
                )
            }
        };
        if changed == 1 {
            append_events(&mut tx, Some(&d.run_id), &[event]).await?;
        }
        tx.commit().await?;
        Ok(changed == 1)
    }

    async fn deliveries_impl(&self, run_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let mut r = self.reader().await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS} FROM outbox WHERE run_id = ? ORDER BY id"
        ));
        let rows = sqlx::query(sql).bind(run_id).fetch_all(r.conn()).await?;
        rows.iter().map(delivery_from_row).collect()
    }
}

fn schedule_from_row(row: &SqliteRow) -> Result<ScheduleRecord, StoreError> {
    let last_due: Option<String> = row.try_get("last_due")?;
    Ok(ScheduleRecord {
        genflow: row.try_get("genflow")?,
        cron: row.try_get("cron")?,
        next_due: audit::parse_time(&row.try_get::<String, _>("next_due")?)?,
        last_due: last_due.as_deref().map(audit::parse_time).transpose()?,
        last_run_id: row.try_get("last_run_id")?,
    })
}

/// Keeps the first problem found; later ones are usually its consequences.
fn problem(report: &mut AuditReport, text: String) {
    report.first_problem.get_or_insert(text);
}

fn lease_expiry(now: Timestamp, ttl: Duration) -> Result<Timestamp, StoreError> {
    let ttl = jiff::SignedDuration::try_from(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))?;
    now.checked_add(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))
}
