//! The embedded SQLite backend (rusqlite, SQLite bundled).
//!
//! Writes: one dedicated writer thread owns the only write connection
//! (`writer.rs`). Every write method sends it a closure and awaits the reply.
//! The thread commits whatever is queued as one group: one
//! `BEGIN IMMEDIATE … COMMIT`, each request inside its own `SAVEPOINT`, so a
//! request that fails (version conflict, duplicate decision, invalid input) is
//! rolled back alone while its neighbours commit, and replies go out only
//! after COMMIT. Requests in a group run in order on one connection, so each
//! sees the effects of those before it: the version compare-and-swap, the
//! audit chain (`append_events` reads the last hash) and artifact revision
//! numbers stay exact. A group with a durable request (a decision, a delivery
//! sent or given up, a schedule claim) runs with `synchronous = FULL`, others
//! with NORMAL. `BEGIN IMMEDIATE` takes the write lock up front, so several
//! processes sharing the file (`fleet run`, `fleet approve`, `fleet serve`)
//! never deadlock upgrading read locks; the busy timeout makes them queue.
//!
//! Reads run inline on the calling thread, on a small pool of read-only
//! connections: WAL lets them read while the writer writes, and a read takes
//! microseconds, so a thread hop would cost more than it saves. An in-memory
//! database cannot be shared between connections simply, so there reads go
//! through the writer thread too (only tests use it).
//!
//! Decoded genflow definitions are cached by `definition_hash` (a definition
//! never changes once stored), so neither a commit nor a read decodes the
//! definition JSON of a run it has seen before.
//!
//! Schema: the files in `migrations/sqlite/`, tracked by `PRAGMA user_version`.

use crate::audit::{self, Pending};
use crate::check_shape;
use crate::{
    ArtifactRef, AuditEvent, AuditReport, DecisionRecord, Delivery, DeliveryOutcome,
    DeliveryPurpose, DeliveryScope, DeliveryStatus, LeaseChange, NewDelivery, NewRun, RunFilter,
    RunRecord, ScheduleRecord, StepClaim, StepRun, Store, StoreError, StoreStats, Subscription,
    Transition,
};
use async_trait::async_trait;
use fleet_core::config::Genflow;
use fleet_core::run::{RunState, Verdict};
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use writer::Writer;

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle read connections kept open; more are opened when reads overlap.
const READERS: usize = 4;
const MIN_PREFIX: usize = 4;
/// How often opening a new database is retried while another process holds it.
const OPEN_RETRIES: u32 = 20;
/// Decoded definitions kept; the cache starts over when it grows past this.
const MAX_DEFINITIONS: usize = 256;
/// Statements each connection keeps prepared.
const STATEMENT_CACHE: usize = 64;

/// Schema migrations in order; migration `i` takes `user_version` from `i` to `i + 1`.
const MIGRATIONS: [(&str, &str); 7] = [
    ("init", include_str!("../migrations/sqlite/0001_init.sql")),
    (
        "schedules",
        include_str!("../migrations/sqlite/0002_schedules.sql"),
    ),
    (
        "outbox",
        include_str!("../migrations/sqlite/0003_outbox.sql"),
    ),
    (
        "lean writes",
        include_str!("../migrations/sqlite/0004_lean_writes.sql"),
    ),
    (
        "step queue",
        include_str!("../migrations/sqlite/0005_step_queue.sql"),
    ),
    (
        "aggregates",
        include_str!("../migrations/sqlite/0006_aggregates.sql"),
    ),
    (
        "event kinds",
        include_str!("../migrations/sqlite/0007_event_kinds.sql"),
    ),
];

/// Columns of a run row as `run_from_row` reads them (the definition is
/// looked up by hash, see `Definitions`).
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT id, genflow_name, definition_hash, state_json, version, triggered_by, created_at, updated_at FROM runs ",
            $rest
        )
    };
}

macro_rules! select_deliveries {
    ($rest:literal) => {
        concat!(
            "SELECT id, run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, last_error, message_id, response, summary, created_at, finished_at FROM outbox ",
            $rest
        )
    };
}

// After the macros, which the submodules use.
mod aggregates;
mod checkpointer;
mod commit;
mod definitions;
mod listing;
mod notices;
mod open;
mod outbox;
mod queue;
mod readers;
mod rows;
mod schedules;
mod verify;
mod writer;

use commit::{append_events, commit_in, create_in, release_in};
use definitions::Definitions;
use listing::query_listing;
use open::{configure, keep_plans, migrate, open_writer};
use outbox::{delivery_from_row, enqueue_in, finish_delivery_in};
use readers::Readers;
use rows::{
    artifact_from_row, corrupt, decision_from_row, event_from_row, fetch_run, from_json,
    is_unique_violation, like_prefix, run_definition, run_record, run_row, step_run_from_row, time,
    to_i64, to_json, to_u32,
};
use verify::verify_in;

pub struct SqliteStore {
    /// `None` for an in-memory database: reads go through the writer.
    /// Dropped first (fields drop in order): the last connection of a
    /// process to close checkpoints the log into the database and deletes
    /// it, unless it is read-only. Left behind, the log is replayed and
    /// checksummed whole by the next process to open the file (SQLite's
    /// WAL recovery), and grows: a CLI command spent most of its time so.
    readers: Option<Readers>,
    /// Finishes its queue, then closes the write connection last.
    writer: Writer,
    definitions: Arc<Definitions>,
    /// Tells this process's subscribers about its commits.
    notices: notices::Notices,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Database(e.to_string())
    }
}

/// Says what was being done when the database failed.
fn doing(what: impl std::fmt::Display) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Database(message) => StoreError::Database(format!("{what}: {message}")),
        other => other,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let file = path.to_path_buf();
        let writer = Writer::start(move || open_writer(&file))
            .await
            .map_err(doing(format_args!("opening {}", path.display())))?;
        Ok(SqliteStore {
            writer,
            readers: Some(Readers {
                path: path.to_path_buf(),
                idle: Mutex::new(Vec::new()),
                generation: AtomicU64::new(0),
            }),
            definitions: Arc::default(),
            notices: notices::Notices::new(),
        })
    }

    /// A private database that lives as long as the store (tests, dry runs).
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        let writer = Writer::start(|| {
            let conn = Connection::open_in_memory()?;
            configure(&conn)?;
            migrate(&conn, Path::new(":memory:"))?;
            Ok(conn)
        })
        .await
        .map_err(doing("opening an in-memory database"))?;
        Ok(SqliteStore {
            writer,
            readers: None,
            definitions: Arc::default(),
            notices: notices::Notices::new(),
        })
    }

    /// Runs `work` in a write transaction on the writer thread (grouped with
    /// whatever else is queued); `durable` = flush before replying.
    async fn write<T, F>(&self, what: &'static str, durable: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Definitions) -> Result<T, StoreError> + Send + 'static,
    {
        let defs = Arc::clone(&self.definitions);
        self.writer
            .call(durable, move |conn| work(conn, &defs))
            .await
            .map_err(doing(what))
    }

    /// Runs `work` on a read connection, inline.
    async fn read<T, F>(&self, what: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Definitions) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.readers {
            Some(readers) => readers
                .with(|conn| work(conn, &self.definitions))
                .map_err(doing(what)),
            None => self.write(what, false, work).await,
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError> {
        check_shape(&run.genflow, &run.state)?;
        let definition_json = run.genflow.canonical_json();
        let definition_hash = run.genflow.definition_hash();
        let hash = definition_hash.clone();
        let (run, now) = self
            .write("creating a run", false, move |conn, _| {
                let now = create_in(conn, &run, &definition_json, &hash)?;
                Ok((run, now))
            })
            .await?;
        // Later commits and reads of this genflow need not decode it.
        let definition = self.definitions.insert(&definition_hash, run.genflow);
        Ok(RunRecord {
            id: run.id,
            genflow_name: definition.name.clone(),
            definition,
            definition_hash,
            state: run.state,
            version: 1,
            triggered_by: run.triggered_by,
            created_at: now,
            updated_at: now,
        })
    }

    async fn create_run_with(
        &self,
        run: NewRun,
        first: Transition,
    ) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
        check_shape(&run.genflow, &run.state)?;
        if first.run_id != run.id || first.expected_version != 1 {
            return Err(StoreError::Invalid(format!(
                "the first transition of run {} must be for that run at version 1",
                run.id
            )));
        }
        let definition_json = run.genflow.canonical_json();
        let definition_hash = run.genflow.definition_hash();
        // Cached before the write: the transition reads the definition by hash.
        self.definitions
            .insert(&definition_hash, run.genflow.clone());
        let state_json = to_json("run state", &first.state)?;
        let durable = first.durable;
        let (committed, written) = self
            .write("creating and starting a run", durable, move |conn, defs| {
                create_in(conn, &run, &definition_json, &definition_hash)?;
                commit_in(conn, defs, first, &state_json)
            })
            .await?;
        self.notices
            .committed(&committed.id, committed.state.status, committed.work);
        Ok((committed.into_record(), written))
    }

    async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError> {
        let id = id_or_prefix.to_string();
        self.read("reading a run", move |conn, defs| {
            if let Some(run) = fetch_run(conn, defs, &id)? {
                return Ok(run);
            }
            if id.chars().count() < MIN_PREFIX {
                return Err(StoreError::Invalid(format!(
                    "`{id}` is not a run id; give at least {MIN_PREFIX} characters"
                )));
            }
            let rows = conn
                .prepare_cached(select_runs!(
                    "WHERE id LIKE ?1 ESCAPE '\\' ORDER BY id LIMIT 2"
                ))?
                .query_map([like_prefix(&id)], run_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let mut rows = rows.into_iter();
            match (rows.next(), rows.next()) {
                (None, _) => Err(StoreError::NotFound(format!("run `{id}`"))),
                (Some(one), None) => run_record(conn, defs, one),
                (Some(_), Some(_)) => Err(StoreError::AmbiguousId(id)),
            }
        })
        .await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let filter = filter.clone();
        self.read("listing runs", move |conn, defs| {
            let rows = query_listing(conn, select_runs!(""), &filter, run_row)?;
            rows.into_iter()
                .map(|r| run_record(conn, defs, r))
                .collect()
        })
        .await
    }

    async fn run_versions(&self, filter: &RunFilter) -> Result<Vec<(String, i64)>, StoreError> {
        let filter = filter.clone();
        self.read("listing run versions", move |conn, _| {
            query_listing(conn, "SELECT id, version FROM runs ", &filter, |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .await
    }

    async fn run_version(&self, id: &str) -> Result<i64, StoreError> {
        let id = id.to_string();
        self.read("reading a run's version", move |conn, _| {
            conn.prepare_cached("SELECT version FROM runs WHERE id = ?1")?
                .query_row([&id], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("run `{id}`")))
        })
        .await
    }

    async fn change_stamp(&self) -> Result<Option<u64>, StoreError> {
        // The in-memory store has no reader connections; its callers check
        // versions instead.
        self.readers
            .as_ref()
            .map(|readers| readers.stamp())
            .transpose()
            .map_err(doing("reading the change stamp"))
    }

    async fn unfinished_runs(&self) -> Result<Vec<String>, StoreError> {
        self.read("listing unfinished runs", |conn, _| {
            Ok(conn
                .prepare_cached(
                    "SELECT id FROM runs WHERE status = 'running' ORDER BY created_at, id",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<String>, _>>()?)
        })
        .await
    }

    async fn commit(&self, t: Transition) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
        let durable = t.durable;
        let state_json = to_json("run state", &t.state)?;
        let (committed, written) = self
            .write("committing a transition", durable, move |conn, defs| {
                commit_in(conn, defs, t, &state_json)
            })
            .await?;
        self.notices
            .committed(&committed.id, committed.state.status, committed.work);
        Ok((committed.into_record(), written))
    }

    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRef>, StoreError> {
        let run_id = run_id.to_string();
        self.read("listing artifacts", move |conn, _| {
            conn.prepare_cached(
                "SELECT r.run_id, r.step, r.path, r.revision, r.sha256, a.size, r.created_at
                 FROM artifact_revisions r JOIN artifacts a ON a.sha256 = r.sha256
                 WHERE r.run_id = ?1 ORDER BY r.step_index, r.path, r.revision",
            )?
            .query_and_then([run_id], artifact_from_row)?
            .collect()
        })
        .await
    }

    async fn artifact_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let sha = sha256.to_ascii_lowercase();
        self.read("reading an artifact", move |conn, _| {
            Ok(conn
                .prepare_cached("SELECT bytes FROM artifacts WHERE sha256 = ?1")?
                .query_row([sha], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    async fn content_totals(&self) -> Result<crate::ContentTotals, StoreError> {
        self.read("counting stored contents", move |conn, _| {
            let (contents, bytes): (i64, i64) = conn
                .prepare_cached("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM artifacts")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(crate::ContentTotals {
                contents: u64::try_from(contents).unwrap_or(0),
                bytes: u64::try_from(bytes).unwrap_or(0),
            })
        })
        .await
    }

    async fn step_runs(&self, run_id: &str) -> Result<Vec<StepRun>, StoreError> {
        let run_id = run_id.to_string();
        self.read("listing step runs", move |conn, _| {
            conn.prepare_cached(
                "SELECT step, attempt, model, prompt, settings_json, manifest_json, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error
                 FROM step_runs WHERE run_id = ?1 ORDER BY started_at, step, attempt",
            )?
            .query_and_then([run_id], step_run_from_row)?
            .collect()
        })
        .await
    }

    async fn decisions(&self, run_id: &str) -> Result<Vec<DecisionRecord>, StoreError> {
        let run_id = run_id.to_string();
        self.read("listing decisions", move |conn, _| {
            conn.prepare_cached(
                "SELECT run_id, step, gate_round, approver, verdict, reason, channel, decided_at, genflow_name, definition_hash, shown_json, is_final
                 FROM decisions WHERE run_id = ?1 ORDER BY id",
            )?
            .query_and_then([run_id], decision_from_row)?
            .collect()
        })
        .await
    }

    async fn chain_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.read("reading the chain head", |conn, _| {
            Ok(conn
                .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })
        .await
    }

    async fn events(&self, run_id: Option<&str>) -> Result<Vec<AuditEvent>, StoreError> {
        let run_id = run_id.map(str::to_string);
        self.read("reading events", move |conn, _| match run_id {
            Some(id) => conn
                .prepare_cached(
                    "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events WHERE run_id = ?1 ORDER BY seq",
                )?
                .query_and_then([id], event_from_row)?
                .collect(),
            None => conn
                .prepare_cached(
                    "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events ORDER BY seq",
                )?
                .query_and_then([], event_from_row)?
                .collect(),
        })
        .await
    }

    async fn append_events(
        &self,
        events: Vec<crate::NewEvent>,
    ) -> Result<Option<(i64, String)>, StoreError> {
        let events: Vec<Pending> = events
            .into_iter()
            .map(|e| Pending {
                kind: e.kind,
                payload: e.payload,
            })
            .collect();
        self.write("appending audit events", true, move |conn, _| {
            append_events(conn, None, &events)?;
            Ok(conn
                .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?)
        })
        .await
    }

    async fn events_of_kind(
        &self,
        kind: &str,
        newest: Option<u32>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let kind = kind.to_string();
        // -1: no limit.
        let limit = newest.map_or(-1, i64::from);
        let mut events = self
            .read("reading audit events by kind", move |conn, _| {
                conn.prepare_cached(&events_of_kind_sql(&kind))?
                    .query_and_then(params![kind, limit], event_from_row)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        events.reverse();
        Ok(events)
    }

    async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        self.read("verifying the audit log", |conn, _| verify_in(conn))
            .await
    }

    async fn claim_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let now = audit::now();
        let expires = audit::format_time(lease_expiry(now, ttl)?);
        let now = audit::format_time(now);
        let (run_id, step, owner) = (run_id.to_string(), step.to_string(), owner.to_string());
        self.write("claiming a lease", false, move |conn, _| {
            queue::claim_lease(conn, &run_id, &step, &owner, &expires, &now)
        })
        .await
    }

    async fn renew_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let expires = audit::format_time(lease_expiry(audit::now(), ttl)?);
        let (run_id, step, owner) = (run_id.to_string(), step.to_string(), owner.to_string());
        self.write("renewing a lease", false, move |conn, _| {
            queue::renew_lease(conn, &run_id, &step, &owner, &expires)
        })
        .await
    }

    async fn release_lease(&self, run_id: &str, step: &str, owner: &str) -> Result<(), StoreError> {
        let (run_id, step, owner) = (run_id.to_string(), step.to_string(), owner.to_string());
        let released = self
            .write("releasing a lease", false, move |conn, _| {
                release_in(conn, &run_id, &step, &owner)
            })
            .await?;
        if released {
            self.notices.work();
        }
        Ok(())
    }

    async fn claim_steps(
        &self,
        owner: &str,
        ttl: Duration,
        limit: u32,
        run_id: Option<&str>,
    ) -> Result<Vec<StepClaim>, StoreError> {
        let (owner, run_id) = (owner.to_string(), run_id.map(str::to_string));
        self.write("claiming steps", false, move |conn, _| {
            queue::claim(conn, &owner, ttl, limit, run_id.as_deref())
        })
        .await
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, StoreError> {
        let file = self.readers.as_ref().map(|r| r.path.as_path());
        Ok(Box::new(
            self.notices
                .subscribe(file)
                .map_err(doing("subscribing to commits"))?,
        ))
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.read("listing schedules", |conn, _| schedules::list(conn))
            .await
    }

    async fn ensure_schedule(
        &self,
        genflow: &str,
        cron: &str,
        next_due: Timestamp,
    ) -> Result<ScheduleRecord, StoreError> {
        let (genflow, cron) = (genflow.to_string(), cron.to_string());
        let next_due = audit::format_time(next_due);
        self.write("storing a schedule", false, move |conn, _| {
            schedules::ensure(conn, &genflow, &cron, &next_due)
        })
        .await
    }

    async fn claim_schedule(
        &self,
        genflow: &str,
        due: Timestamp,
        next_due: Timestamp,
        run_id: &str,
    ) -> Result<bool, StoreError> {
        let (genflow, run_id) = (genflow.to_string(), run_id.to_string());
        let (due, next_due) = (audit::format_time(due), audit::format_time(next_due));
        self.write("claiming a schedule", true, move |conn, _| {
            schedules::claim(conn, &genflow, &due, &next_due, &run_id)
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.read("reading statistics", |conn, _| aggregates::read(conn))
            .await
    }

    async fn enqueue_deliveries(&self, deliveries: Vec<NewDelivery>) -> Result<u64, StoreError> {
        self.write("queueing deliveries", false, move |conn, defs| {
            let now_text = audit::format_time(audit::now());
            let mut queued = 0;
            for d in &deliveries {
                let genflow = run_definition(conn, defs, &d.run_id)?;
                if genflow.step_index(&d.step).is_none() {
                    return Err(StoreError::Invalid(format!(
                        "delivery for unknown step `{}` of run {}",
                        d.step, d.run_id
                    )));
                }
                if let Some(e) = enqueue_in(conn, d, &now_text)? {
                    queued += 1;
                    append_events(conn, Some(&d.run_id), &[e])?;
                }
            }
            Ok(queued)
        })
        .await
    }

    async fn claim_deliveries(
        &self,
        scope: &DeliveryScope,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let now = audit::now();
        let now_text = audit::format_time(now);
        let expires = audit::format_time(lease_expiry(now, lease)?);
        let (scope, owner) = (scope.clone(), owner.to_string());
        let mut claimed = self
            .write("claiming deliveries", false, move |conn, _| {
                outbox::claim_in(conn, &scope, &owner, &expires, &now_text, limit)
            })
            .await?;
        claimed.sort_by_key(|d| d.id);
        Ok(claimed)
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        let durable = matches!(
            outcome,
            DeliveryOutcome::Sent { .. } | DeliveryOutcome::GaveUp { .. }
        );
        let owner = owner.to_string();
        self.write("recording a delivery", durable, move |conn, _| {
            finish_delivery_in(conn, id, &owner, &outcome)
        })
        .await
    }

    async fn deliveries(&self, run_id: &str) -> Result<Vec<Delivery>, StoreError> {
        let run_id = run_id.to_string();
        self.read("listing deliveries", move |conn, _| {
            conn.prepare_cached(select_deliveries!("WHERE run_id = ?1 ORDER BY id"))?
                .query_and_then([run_id], delivery_from_row)?
                .collect()
        })
        .await
    }
}

/// `events_of_kind`'s query: newest first, by the kind's own index where it
/// has one.
fn events_of_kind_sql(kind: &str) -> String {
    format!(
        "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events
         WHERE {} kind = ?1 ORDER BY seq DESC LIMIT ?2",
        audit::indexed_kind(kind)
    )
}

fn lease_expiry(now: Timestamp, ttl: Duration) -> Result<Timestamp, StoreError> {
    let ttl = jiff::SignedDuration::try_from(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))?;
    now.checked_add(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key list and the latest checkpoint are read through their
    /// partial indexes, not by scanning the log (`fleet approve` reads the
    /// key list in every process).
    #[tokio::test]
    async fn events_of_an_indexed_kind_are_read_by_their_index() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let store = SqliteStore::open(&dir.path().join("fleet.db"))
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let plan = |kind: &'static str| {
            store
                .readers
                .as_ref()
                .expect("a file has readers")
                .with(|conn| {
                    let sql = format!("EXPLAIN QUERY PLAN {}", events_of_kind_sql(kind));
                    let mut statement = conn.prepare(&sql)?;
                    let rows = statement.query_map(params![kind, 1], |r| r.get::<_, String>(3))?;
                    Ok(rows.collect::<Result<Vec<_>, _>>()?.join("; "))
                })
        };
        for (kind, index) in [
            ("audit.key", "events_audit_key"),
            ("audit.checkpoint", "events_audit_checkpoint"),
        ] {
            let plan = plan(kind).unwrap_or_else(|e| panic!("{e}"));
            assert!(plan.contains(index), "{kind}: {plan}");
        }
        let plan = plan("step.status").unwrap_or_else(|e| panic!("{e}"));
        assert!(!plan.contains("events_audit"), "{plan}");
    }

    /// The stamp moves exactly when another connection commits (a log
    /// restart included), and only then.
    #[tokio::test]
    async fn change_stamp_follows_commits_of_other_connections() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = dir.path().join("fleet.db");
        let store = SqliteStore::open(&path)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        let readers = store.readers.as_ref().expect("a file database has readers");
        let stamp = || {
            readers
                .stamp()
                .unwrap_or_else(|e| panic!("data_version: {e}"))
        };
        let other = Connection::open(&path).unwrap_or_else(|e| panic!("other: {e}"));
        let mut last = stamp();
        for round in 0..50 {
            assert_eq!(stamp(), last, "round {round}: nothing committed");
            other
                .execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS t (x); INSERT INTO t VALUES ({round});"
                ))
                .unwrap_or_else(|e| panic!("insert: {e}"));
            if round % 10 == 9 {
                other
                    .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                    .unwrap_or_else(|e| panic!("checkpoint: {e}"));
            }
            let now = stamp();
            assert_ne!(now, last, "round {round}: the stamp moved");
            last = now;
        }
    }
}
