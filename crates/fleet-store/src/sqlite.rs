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

mod aggregates;
mod checkpointer;
mod notices;
mod queue;
mod writer;

use crate::audit::{self, Pending};
use crate::check_shape;
use crate::{
    ArtifactRef, AuditEvent, AuditReport, DecisionRecord, Delivery, DeliveryOutcome,
    DeliveryPurpose, DeliveryScope, DeliveryStatus, LeaseChange, NewDelivery, NewRun, RunFilter,
    RunRecord, ScheduleRecord, StepClaim, StepRun, Store, StoreError, StoreStats, Subscription,
    Transition,
};
use async_trait::async_trait;
use fleet_core::config::{Genflow, StepKind};
use fleet_core::run::{RunState, Verdict};
use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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
const MIGRATIONS: [(&str, &str); 6] = [
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

/// Opens the write connection. Several processes may open a brand-new file
/// at the same instant (a CLI run and a `fleet runs` beside it): switching to
/// WAL needs the file to itself, so a loser retries for a few seconds
/// instead of failing.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut attempt = 0u32;
    loop {
        match try_open_writer(path) {
            Ok(conn) => return Ok(conn),
            Err(e @ StoreError::Incompatible(_)) => return Err(e),
            Err(_) if attempt < OPEN_RETRIES => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(u64::from(attempt.min(5)) * 50));
            }
            Err(e) => return Err(e),
        }
    }
}

fn try_open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database(format!(
            "could not switch to WAL (journal mode is {mode})"
        )));
    }
    configure(&conn)?;
    migrate(&conn, path)?;
    let mut conn = conn;
    checkpointer::install(
        &mut conn,
        checkpointer::Checkpointer::start(path.to_path_buf(), BUSY_TIMEOUT)?,
    )?;
    Ok(conn)
}

/// Settings of the write connection: synchronous NORMAL (the writer switches
/// to FULL per group), foreign keys enforced, temporary tables (`RETURNING`
/// results, sorts) in memory rather than in a temporary file.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )?;
    keep_plans(conn)?;
    Ok(())
}

/// Makes cached statements stay prepared. Without the query planner
/// stability guarantee, SQLite marks a statement whose plan could depend on
/// a bound value (a LIMIT, a LIKE pattern, a column that a partial index
/// filters on, ...) for re-preparation whenever its bindings are cleared,
/// which the statement cache does on every use: a full re-parse per query.
fn keep_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

fn user_version(conn: &Connection) -> Result<usize, StoreError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    usize::try_from(v).map_err(|_| corrupt("schema version", v))
}

/// Applies pending migrations, each in its own transaction together with the
/// `user_version` bump. The version is read again under the write lock, so
/// two processes migrating a fresh file at once apply each migration once.
fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let known = MIGRATIONS.len();
    let check = |version: usize| -> Result<(), StoreError> {
        if version > known {
            return Err(StoreError::Incompatible(format!(
                "{} was made by a newer Fleet (schema version {version}; this build knows up to {known}); upgrade fleet",
                path.display()
            )));
        }
        if version == 0 {
            let sqlx: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
                [],
                |r| r.get(0),
            )?;
            if sqlx {
                return Err(StoreError::Incompatible(format!(
                    "{} was made by an older development build of Fleet and cannot be upgraded; move it aside to start a new database",
                    path.display()
                )));
            }
        }
        Ok(())
    };
    // The usual case, an up-to-date file, takes no write lock.
    let version = user_version(conn)?;
    check(version)?;
    if version == known {
        return Ok(());
    }
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let step = (|| {
            let version = user_version(conn)?;
            check(version)?;
            let Some((name, sql)) = MIGRATIONS.get(version) else {
                return Ok(false);
            };
            conn.execute_batch(sql)
                .and_then(|()| conn.pragma_update(None, "user_version", version as i64 + 1))
                .map_err(StoreError::from)
                .map_err(doing(format_args!("migration {} ({name})", version + 1)))?;
            Ok(true)
        })();
        match step {
            Ok(more) => {
                conn.execute_batch("COMMIT")?;
                if !more {
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

/// Read-only connections, opened on demand and kept for reuse.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Reader>>,
    /// See `change_stamp`: bumped whenever a reader sees that something was
    /// committed since it last looked.
    generation: AtomicU64,
}

struct Reader {
    conn: Connection,
    /// Its `PRAGMA data_version` when last read; None: never read.
    data_version: Option<i64>,
}

impl Readers {
    fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_reader(|reader| work(&reader.conn))
    }

    fn with_reader<T>(
        &self,
        work: impl FnOnce(&mut Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut reader = match idle {
            Some(reader) => reader,
            None => Reader {
                conn: self.open()?,
                data_version: None,
            },
        };
        let out = work(&mut reader);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < READERS {
            idle.push(reader);
        }
        out
    }

    /// The store's change stamp. SQLite's `data_version` differs between
    /// two reads on one connection exactly when another connection (this
    /// process's writer, or any other process) committed in between. Each
    /// reader compares with what it saw last and bumps the shared
    /// generation when it differs (or on its first read). A commit after a
    /// stamp was taken is seen by whichever reader next looks, which bumps
    /// the generation after that commit, so every later stamp differs;
    /// extra bumps only cost a cache miss.
    fn stamp(&self) -> Result<u64, StoreError> {
        self.with_reader(|reader| {
            let now: i64 = reader
                .conn
                .prepare_cached("PRAGMA data_version")?
                .query_row([], |r| r.get(0))?;
            if reader.data_version != Some(now) {
                reader.data_version = Some(now);
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            Ok(self.generation.load(Ordering::SeqCst))
        })
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        keep_plans(&conn)?;
        Ok(conn)
    }
}

/// Decoded genflow definitions by `definition_hash`.
#[derive(Default)]
struct Definitions {
    by_hash: Mutex<HashMap<String, Arc<Genflow>>>,
}

impl Definitions {
    /// The definition of run `run_id`, whose stored hash is `hash`; decoded
    /// from the row only when not cached.
    fn get(&self, conn: &Connection, run_id: &str, hash: &str) -> Result<Arc<Genflow>, StoreError> {
        if let Some(g) = self
            .by_hash
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
        {
            return Ok(Arc::clone(g));
        }
        let json: String = conn
            .prepare_cached("SELECT json FROM definitions WHERE hash = ?1")?
            .query_row([hash], |r| r.get(0))
            .optional()?
            .ok_or_else(|| {
                corrupt(
                    &format!("run {run_id}"),
                    format!("its definition {hash} is missing"),
                )
            })?;
        let genflow: Genflow = from_json(&json, || format!("run {run_id} definition"))?;
        Ok(self.insert(hash, genflow))
    }

    fn insert(&self, hash: &str, genflow: Genflow) -> Arc<Genflow> {
        let genflow = Arc::new(genflow);
        let mut map = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_DEFINITIONS {
            map.clear();
        }
        map.insert(hash.to_string(), Arc::clone(&genflow));
        genflow
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn to_json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: impl FnOnce() -> String,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(&what(), e))
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

fn time(text: &str) -> Result<Timestamp, StoreError> {
    audit::parse_time(text)
}

/// A run row as selected by `select_runs!`, before decoding.
struct RunRow {
    id: String,
    genflow_name: String,
    definition_hash: String,
    state_json: String,
    version: i64,
    triggered_by: Option<String>,
    created_at: String,
    updated_at: String,
}

fn run_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
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

fn run_record(conn: &Connection, defs: &Definitions, row: RunRow) -> Result<RunRecord, StoreError> {
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

fn fetch_run(
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
fn run_definition(
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

fn artifact_from_row(row: &Row<'_>) -> Result<ArtifactRef, StoreError> {
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

fn step_run_from_row(row: &Row<'_>) -> Result<StepRun, StoreError> {
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

fn decision_from_row(row: &Row<'_>) -> Result<DecisionRecord, StoreError> {
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

fn event_from_row(row: &Row<'_>) -> Result<AuditEvent, StoreError> {
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

/// Appends events to the chain; runs inside the write transaction, so the
/// last hash cannot change underneath.
fn append_events(
    conn: &Connection,
    run_id: Option<&str>,
    events: &[Pending],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let last = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .optional()?;
    let (mut seq, mut prev) = last.unwrap_or_else(|| (0, audit::GENESIS_HASH.to_string()));
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (seq, run_id, at, kind, payload_json, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    // One transaction, one time: its events happen together.
    let at = audit::format_time(audit::now());
    for e in events {
        seq += 1;
        let payload = audit::canonical_payload(seq, &e.payload)?;
        let hash = audit::event_hash_canonical(seq, run_id, &at, &e.kind, &payload, &prev);
        insert.execute(params![seq, run_id, at, e.kind, payload, prev, hash])?;
        prev = hash;
    }
    Ok(())
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

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_extended_error_code(),
        Some(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    )
}

/// A committed run, before its definition is copied into a [`RunRecord`]
/// (done by the caller, off the writer thread).
struct Committed {
    id: String,
    genflow_name: String,
    definition: Arc<Genflow>,
    definition_hash: String,
    state: RunState,
    version: i64,
    triggered_by: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// The commit made a step claimable (workers should look).
    work: bool,
}

impl Committed {
    fn into_record(self) -> RunRecord {
        RunRecord {
            id: self.id,
            genflow_name: self.genflow_name,
            definition: self.definition,
            definition_hash: self.definition_hash,
            state: self.state,
            version: self.version,
            triggered_by: self.triggered_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// `state_json` is `t.state` encoded (by the caller, off the writer thread).
fn commit_in(
    conn: &Connection,
    defs: &Definitions,
    t: Transition,
    state_json: &str,
) -> Result<(Committed, Vec<ArtifactRef>), StoreError> {
    // Only what the commit needs, the version first: a loser of the
    // compare-and-swap decodes nothing.
    let current = conn
        .prepare_cached(
            "SELECT version, genflow_name, definition_hash, state_json, triggered_by, created_at FROM runs WHERE id = ?1",
        )?
        .query_row([&t.run_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .optional()?;
    let Some((
        current_version,
        genflow_name,
        definition_hash,
        before_json,
        triggered_by,
        created_at,
    )) = current
    else {
        return Err(StoreError::NotFound(format!("run {}", t.run_id)));
    };
    if current_version != t.expected_version {
        return Err(StoreError::Conflict { run_id: t.run_id });
    }
    let genflow = defs.get(conn, &t.run_id, &definition_hash)?;
    check_shape(&genflow, &t.state)?;
    let before: RunState = from_json(&before_json, || format!("run {} state", t.run_id))?;
    let now = audit::now();
    let now_text = audit::format_time(now);
    let version = current_version + 1;
    conn.prepare_cached(
        "UPDATE runs SET state_json = ?1, status = ?2, version = ?3, updated_at = ?4 WHERE id = ?5",
    )?
    .execute(params![
        state_json,
        t.state.status.as_str(),
        version,
        now_text,
        t.run_id
    ])?;

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
        conn.prepare_cached(
            "INSERT INTO artifacts (sha256, bytes, size) VALUES (?1, ?2, ?3) ON CONFLICT (sha256) DO NOTHING",
        )?
        .execute(params![sha, a.bytes, to_i64(size)])?;
        let revision: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(MAX(revision), 0) + 1 FROM artifact_revisions WHERE run_id = ?1 AND path = ?2",
            )?
            .query_row(params![t.run_id, a.path], |r| r.get(0))?;
        conn.prepare_cached(
            "INSERT INTO artifact_revisions (run_id, step, step_index, path, revision, sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            t.run_id,
            a.step,
            to_i64(step_index as u64),
            a.path,
            revision,
            sha,
            now_text
        ])?;
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
        conn.prepare_cached(
            "INSERT INTO step_runs (run_id, step, attempt, model, prompt, settings_json, manifest_json, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (run_id, step, attempt) DO UPDATE SET
               model = excluded.model, prompt = excluded.prompt, settings_json = excluded.settings_json,
               manifest_json = excluded.manifest_json, input_tokens = excluded.input_tokens,
               output_tokens = excluded.output_tokens, cost_usd = excluded.cost_usd, cached = excluded.cached,
               started_at = excluded.started_at, finished_at = excluded.finished_at, error = excluded.error",
        )?
        .execute(params![
            t.run_id,
            r.step,
            i64::from(r.attempt),
            r.model,
            r.prompt,
            to_json("step run settings", &r.settings)?,
            r.manifest
                .as_ref()
                .map(|m| to_json("step run manifest", m))
                .transpose()?,
            to_i64(r.input_tokens),
            to_i64(r.output_tokens),
            r.cost_usd,
            r.cached,
            audit::format_time(r.started_at),
            r.finished_at.map(audit::format_time),
            r.error
        ])?;
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
            genflow_name: genflow_name.clone(),
            definition_hash: definition_hash.clone(),
            shown: d.shown.clone(),
            is_final: d.is_final,
        };
        let inserted = conn
            .prepare_cached(
                "INSERT INTO decisions (run_id, step, gate_round, approver, approver_key, verdict, reason, channel, decided_at, genflow_name, definition_hash, shown_json, is_final)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                record.run_id,
                record.step,
                i64::from(record.gate_round),
                record.approver,
                record.approver.trim().to_lowercase(),
                record.verdict.as_str(),
                record.reason,
                record.channel,
                now_text,
                record.genflow_name,
                record.definition_hash,
                to_json("decision shown", &record.shown)?,
                record.is_final
            ]);
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
        if let Some(e) = enqueue_in(conn, d, &now_text)? {
            events.push(e);
        }
    }

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
        match change {
            LeaseChange::Take { step, owner, ttl } => {
                let expires = audit::format_time(lease_expiry(now, *ttl)?);
                conn.prepare_cached(
                    "INSERT INTO leases (run_id, step, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
                )?
                .execute(params![t.run_id, step, owner, expires])?;
            }
            LeaseChange::Release { step, owner } => {
                // The queue row is brought up to date below.
                conn.prepare_cached(
                    "DELETE FROM leases WHERE run_id = ?1 AND step = ?2 AND owner = ?3",
                )?
                .execute(params![t.run_id, step, owner])?;
            }
        }
    }

    let work = queue::sync(
        conn,
        &genflow,
        &t.run_id,
        Some(&before),
        &t.state,
        &t.leases,
        now,
    )?;
    events.extend(audit::state_changes(&genflow, &before, &t.state));
    events.extend(t.events.iter().map(|e| Pending {
        kind: e.kind.clone(),
        payload: e.payload.clone(),
    }));
    append_events(conn, Some(&t.run_id), &events)?;

    let record = Committed {
        id: t.run_id,
        genflow_name,
        definition: genflow,
        definition_hash,
        state: t.state,
        version,
        triggered_by,
        created_at: time(&created_at)?,
        updated_at: now,
        work,
    };
    Ok((record, written))
}

/// Gives the lease back; true when we held it and the step is queued
/// (claimable again at once).
fn release_in(
    conn: &Connection,
    run_id: &str,
    step: &str,
    owner: &str,
) -> Result<bool, StoreError> {
    let released = conn
        .prepare_cached("DELETE FROM leases WHERE run_id = ?1 AND step = ?2 AND owner = ?3")?
        .execute(params![run_id, step, owner])?;
    if released == 0 {
        return Ok(false);
    }
    queue::set_claimable(conn, run_id, step, &audit::format_time(audit::now()))
}

fn create_in(
    conn: &Connection,
    run: &NewRun,
    definition_json: &str,
    definition_hash: &str,
) -> Result<Timestamp, StoreError> {
    let now = audit::now();
    let now_text = audit::format_time(now);
    conn.prepare_cached("INSERT OR IGNORE INTO definitions (hash, json) VALUES (?1, ?2)")?
        .execute(params![definition_hash, definition_json])?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO runs (id, genflow_name, definition_hash, state_json, status, version, triggered_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?7)",
        )?
        .execute(params![
            run.id,
            run.genflow.name,
            definition_hash,
            to_json("run state", &run.state)?,
            run.state.status.as_str(),
            run.triggered_by,
            now_text
        ]);
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists(run.id.clone())),
        Err(e) => return Err(e.into()),
    }
    queue::sync(conn, &run.genflow, &run.id, None, &run.state, &[], now)?;
    let event = audit::run_created(&run.id, &run.genflow, definition_hash, &run.state);
    append_events(conn, Some(&run.id), &[event])?;
    Ok(now)
}

/// A run listing: `select` (columns, ending in `FROM runs `) with the WHERE,
/// ORDER BY and LIMIT for `filter`. `list_runs` and `run_versions` share it,
/// so both list exactly the same runs. Only the filters that are set appear
/// in the SQL (an `?1 IS NULL OR` condition keeps SQLite from using an
/// index), so each shape is served by its index in `created_at DESC, id
/// DESC` order (`runs_created`, `runs_status_created`,
/// `runs_genflow_created`, `runs_genflow_status_created`) and a page reads
/// the rows it lists, however many runs are stored.
fn listing_sql(select: &str, filter: &RunFilter) -> String {
    let mut conditions = Vec::new();
    if filter.genflow.is_some() {
        conditions.push("genflow_name = ?1");
    }
    if filter.status.is_some() {
        conditions.push("status = ?2");
    }
    if filter.before.is_some() {
        conditions.push("(created_at, id) < (?4, ?5)");
    }
    let mut sql = select.to_owned();
    if !conditions.is_empty() {
        sql.push_str("WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?3");
    sql
}

/// Runs the listing of `filter` with columns `select`, each row mapped by `map`.
fn query_listing<T>(
    conn: &Connection,
    select: &str,
    filter: &RunFilter,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    // SQLite treats a negative LIMIT as "no limit".
    let limit = filter.limit.map_or(-1, i64::from);
    let (after_time, after_id) = match &filter.before {
        Some(c) => (Some(audit::format_time(c.created_at)), Some(c.id.as_str())),
        None => (None, None),
    };
    let sql = listing_sql(select, filter);
    let mut statement = conn.prepare_cached(&sql)?;
    // Parameters are numbered as in `listing_sql`; bind each up to the
    // highest one this shape uses (SQLite counts parameters up to it).
    let status = filter.status.map(|s| s.as_str());
    for i in 1..=statement.parameter_count() {
        match i {
            1 => statement.raw_bind_parameter(i, &filter.genflow)?,
            2 => statement.raw_bind_parameter(i, status)?,
            3 => statement.raw_bind_parameter(i, limit)?,
            4 => statement.raw_bind_parameter(i, &after_time)?,
            _ => statement.raw_bind_parameter(i, after_id)?,
        }
    }
    let mut rows = statement.raw_query();
    let mut map = map;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
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
        self.notices.committed(&committed.id, committed.work);
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
        self.notices.committed(&committed.id, committed.work);
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
            // Insert, or take over a lease that is ours or has expired.
            let taken = conn
                .prepare_cached(
                    "INSERT INTO leases (run_id, step, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
                     WHERE leases.owner = excluded.owner OR leases.expires_at <= ?5",
                )?
                .execute(params![run_id, step, owner, expires, now])?;
            if taken == 1 {
                queue::set_claimable(conn, &run_id, &step, &expires)?;
            }
            Ok(taken == 1)
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
            let renewed = conn
                .prepare_cached(
                    "UPDATE leases SET expires_at = ?1 WHERE run_id = ?2 AND step = ?3 AND owner = ?4",
                )?
                .execute(params![expires, run_id, step, owner])?;
            if renewed == 1 {
                queue::set_claimable(conn, &run_id, &step, &expires)?;
            }
            Ok(renewed == 1)
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
        self.read("listing schedules", |conn, _| {
            conn.prepare_cached(
                "SELECT genflow, cron, next_due, last_due, last_run_id FROM schedules ORDER BY genflow",
            )?
            .query_and_then([], schedule_from_row)?
            .collect()
        })
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
            // A changed expression restarts the schedule; the same one keeps its
            // stored due time, which is what lets a restart catch up.
            conn.prepare_cached(
                "INSERT INTO schedules (genflow, cron, next_due) VALUES (?1, ?2, ?3)
                 ON CONFLICT (genflow) DO UPDATE SET cron = excluded.cron, next_due = excluded.next_due
                 WHERE schedules.cron <> excluded.cron",
            )?
            .execute(params![genflow, cron, next_due])?;
            conn.prepare_cached(
                "SELECT genflow, cron, next_due, last_due, last_run_id FROM schedules WHERE genflow = ?1",
            )?
            .query_and_then([genflow], schedule_from_row)?
            .next()
            .unwrap_or_else(|| Err(StoreError::Database("the schedule just stored is missing".into())))
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
            let claimed = conn
                .prepare_cached(
                    "UPDATE schedules SET next_due = ?1, last_due = ?2, last_run_id = ?3
                     WHERE genflow = ?4 AND next_due = ?2",
                )?
                .execute(params![next_due, due, run_id, genflow])?;
            Ok(claimed == 1)
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
                conn.prepare_cached(
                    "UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_owner = ?1, lease_expires_at = ?2
                     WHERE id IN (
                       SELECT id FROM outbox
                       WHERE ((status = 'pending' AND next_attempt_at <= ?3) OR (status = 'sending' AND lease_expires_at <= ?3))
                         AND (?4 IS NULL OR run_id = ?4) AND (?5 IS NULL OR step = ?5)
                       ORDER BY id LIMIT ?6)
                     RETURNING id, run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, last_error, message_id, response, summary, created_at, finished_at",
                )?
                .query_and_then(
                    params![owner, expires, now_text, scope.run_id, scope.step, i64::from(limit)],
                    delivery_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()
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

fn verify_in(conn: &Connection) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport::default();
    // Raw columns, not AuditEvent: the hash covers the stored text of `at`.
    let mut stmt = conn.prepare_cached(
        "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut prev = audit::GENESIS_HASH.to_string();
    let mut expected_seq = 1;
    while let Some(row) = rows.next()? {
        report.events_checked += 1;
        let seq: i64 = row.get(0)?;
        let kind: String = row.get(3)?;
        let name = format!("event {seq} ({kind})");
        if seq != expected_seq {
            problem(
                &mut report,
                format!("{name}: expected event {expected_seq} here; events are missing"),
            );
        }
        expected_seq = seq + 1;
        let prev_hash: String = row.get(5)?;
        let hash: String = row.get(6)?;
        if prev_hash != prev {
            problem(
                &mut report,
                format!("{name}: does not link to the event before it"),
            );
        }
        let payload: Result<serde_json::Value, _> =
            serde_json::from_str(row.get_ref(4)?.as_str().map_err(rusqlite::Error::from)?);
        match payload {
            Ok(payload) => {
                let run_id: Option<String> = row.get(1)?;
                let at: String = row.get(2)?;
                let recomputed =
                    audit::event_hash(seq, run_id.as_deref(), &at, &kind, &payload, &prev_hash)?;
                if recomputed != hash {
                    problem(&mut report, format!("{name}: hash mismatch"));
                }
            }
            Err(e) => problem(&mut report, format!("{name}: payload is not JSON ({e})")),
        }
        prev = hash;
    }
    drop(rows);

    let mut stmt =
        conn.prepare_cached("SELECT sha256, bytes, size FROM artifacts ORDER BY sha256")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        report.artifacts_checked += 1;
        let sha: String = row.get(0)?;
        let bytes = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        let size: i64 = row.get(2)?;
        if audit::sha256_hex(bytes) != sha || to_i64(bytes.len() as u64) != size {
            let used = conn
                .prepare_cached(
                    "SELECT run_id, path, revision FROM artifact_revisions WHERE sha256 = ?1 ORDER BY created_at, run_id LIMIT 1",
                )?
                .query_row([&sha], |u| {
                    Ok((
                        u.get::<_, String>(0)?,
                        u.get::<_, String>(1)?,
                        u.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            let place = match used {
                Some((run, path, revision)) => format!(" (run {run}, {path} rev {revision})"),
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

/// Inserts a delivery, or revives one that gave up; returns its
/// `delivery.queued` event when something changed.
fn enqueue_in(
    conn: &Connection,
    d: &NewDelivery,
    now_text: &str,
) -> Result<Option<Pending>, StoreError> {
    let changed = conn
        .prepare_cached(
            "INSERT INTO outbox (run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending', 0, ?9, ?9)
             ON CONFLICT (run_id, step, round, purpose, channel, recipient) DO UPDATE SET
               status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
               lease_owner = NULL, lease_expires_at = NULL, finished_at = NULL
             WHERE outbox.status = 'failed'",
        )?
        .execute(params![
            d.run_id,
            d.step,
            i64::from(d.round),
            d.purpose.as_key(),
            d.channel,
            d.recipient,
            d.label,
            to_json("delivery payload", &d.payload)?,
            now_text
        ])?;
    Ok((changed == 1).then(|| Pending {
        kind: "delivery.queued".into(),
        payload: serde_json::json!({
            "step": d.step, "round": d.round, "purpose": d.purpose.as_key(),
            "channel": d.channel, "recipient": d.label,
        }),
    }))
}

fn delivery_from_row(row: &Row<'_>) -> Result<Delivery, StoreError> {
    let id: i64 = row.get(0)?;
    let purpose: String = row.get(4)?;
    let status: String = row.get(9)?;
    let finished: Option<String> = row.get(17)?;
    Ok(Delivery {
        run_id: row.get(1)?,
        step: row.get(2)?,
        round: to_u32(row.get(3)?, "delivery round")?,
        purpose: DeliveryPurpose::from_key(&purpose)
            .ok_or_else(|| corrupt(&format!("delivery {id} purpose"), &purpose))?,
        channel: row.get(5)?,
        recipient: row.get(6)?,
        label: row.get(7)?,
        payload: from_json(&row.get::<_, String>(8)?, || {
            format!("delivery {id} payload")
        })?,
        status: DeliveryStatus::from_name(&status)
            .ok_or_else(|| corrupt(&format!("delivery {id} status"), &status))?,
        attempts: to_u32(row.get(10)?, "delivery attempts")?,
        next_attempt_at: time(&row.get::<_, String>(11)?)?,
        last_error: row.get(12)?,
        message_id: row.get(13)?,
        response: row.get(14)?,
        summary: row.get(15)?,
        created_at: time(&row.get::<_, String>(16)?)?,
        finished_at: finished.as_deref().map(time).transpose()?,
        id,
    })
}

fn finish_delivery_in(
    conn: &Connection,
    id: i64,
    owner: &str,
    outcome: &DeliveryOutcome,
) -> Result<bool, StoreError> {
    let now_text = audit::format_time(audit::now());
    let Some(d) = conn
        .prepare_cached(select_deliveries!("WHERE id = ?1"))?
        .query_and_then([id], delivery_from_row)?
        .next()
        .transpose()?
    else {
        return Err(StoreError::NotFound(format!("delivery {id}")));
    };
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
    let (changed, event) = match outcome {
        DeliveryOutcome::Sent {
            message_id,
            response,
            summary,
        } => {
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'sent', message_id = ?1, response = ?2, summary = ?3, last_error = NULL,
                       finished_at = ?4, lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ?5 AND status <> 'sent'",
                )?
                .execute(params![message_id, response, summary, now_text, id])?;
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
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'pending', last_error = ?1, next_attempt_at = ?2,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ?3 AND status = 'sending' AND lease_owner = ?4",
                )?
                .execute(params![error, audit::format_time(*at), id, owner])?;
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
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'failed', last_error = ?1, finished_at = ?2,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ?3 AND status = 'sending' AND lease_owner = ?4",
                )?
                .execute(params![error, now_text, id, owner])?;
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
            let n = conn
                .prepare_cached(
                    "UPDATE outbox SET status = 'skipped', last_error = ?1, finished_at = ?2,
                       lease_owner = NULL, lease_expires_at = NULL
                     WHERE id = ?3 AND status = 'sending' AND lease_owner = ?4",
                )?
                .execute(params![reason, now_text, id, owner])?;
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
        append_events(conn, Some(&d.run_id), &[event])?;
    }
    Ok(changed == 1)
}

fn schedule_from_row(row: &Row<'_>) -> Result<ScheduleRecord, StoreError> {
    let last_due: Option<String> = row.get(3)?;
    Ok(ScheduleRecord {
        genflow: row.get(0)?,
        cron: row.get(1)?,
        next_due: time(&row.get::<_, String>(2)?)?,
        last_due: last_due.as_deref().map(time).transpose()?,
        last_run_id: row.get(4)?,
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

#[cfg(test)]
mod tests {
    use super::*;

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
