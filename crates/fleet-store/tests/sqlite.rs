//! The shared store suite against SQLite (a real file in a tempdir), plus
//! SQLite-only checks: several processes writing one database file.

mod suite;

use async_trait::async_trait;
use fleet_core::run::{RunState, RunStatus};
use fleet_store::{NewEvent, NewRun, SqliteStore, Store, StoreError, Transition};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use suite::Backdoor;

struct Db {
    // Held so the directory outlives the store.
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: SqliteStore,
}

async fn db() -> Db {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("fleet.db");
    let store = SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    Db {
        _dir: dir,
        path,
        store,
    }
}

/// Edits rows with a separate connection, behind the store's back.
struct RawSql(PathBuf);

impl RawSql {
    fn conn(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(&self.0).unwrap_or_else(|e| panic!("raw open: {e}"));
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("busy timeout: {e}"));
        conn
    }
}

#[async_trait]
impl Backdoor for RawSql {
    async fn set_event_payload(&self, seq: i64, payload_json: &str) {
        let changed = self
            .conn()
            .execute(
                "UPDATE events SET payload_json = ?1 WHERE seq = ?2",
                rusqlite::params![payload_json, seq],
            )
            .unwrap_or_else(|e| panic!("tamper event: {e}"));
        assert_eq!(changed, 1);
    }

    async fn set_artifact_bytes(&self, sha256: &str, bytes: &[u8]) {
        let changed = self
            .conn()
            .execute(
                "UPDATE artifacts SET bytes = ?1 WHERE sha256 = ?2",
                rusqlite::params![bytes, sha256],
            )
            .unwrap_or_else(|e| panic!("tamper artifact: {e}"));
        assert_eq!(changed, 1);
    }
}

#[tokio::test]
async fn awkward_strings_chain_alike() {
    suite::awkward_strings_chain_alike(&db().await.store).await;
}

#[tokio::test]
async fn create_get_and_prefix() {
    suite::create_get_and_prefix(&db().await.store).await;
}

#[tokio::test]
async fn list_filters_and_unfinished() {
    suite::list_filters_and_unfinished(&db().await.store).await;
}

#[tokio::test]
async fn create_with_first_transition_is_atomic() {
    suite::create_with_first_transition_is_atomic(&db().await.store).await;
}

#[tokio::test]
async fn run_versions_match_list_runs() {
    suite::run_versions_match_list_runs(&db().await.store).await;
}

#[tokio::test]
async fn commit_conflict_writes_nothing() {
    suite::commit_conflict_writes_nothing(&db().await.store).await;
}

#[tokio::test]
async fn artifacts_are_content_addressed() {
    suite::artifacts_are_content_addressed(&db().await.store).await;
}

#[tokio::test]
async fn kept_corpus_is_stored_once() {
    suite::kept_corpus_is_stored_once(&db().await.store).await;
}

#[tokio::test]
async fn step_runs_upsert_per_attempt() {
    suite::step_runs_upsert_per_attempt(&db().await.store).await;
}

#[tokio::test]
async fn decisions_are_unique_per_gate_round() {
    suite::decisions_are_unique_per_gate_round(&db().await.store).await;
}

#[tokio::test]
async fn events_are_chained_and_verified() {
    suite::events_are_chained_and_verified(&db().await.store).await;
}

#[tokio::test]
async fn tampered_event_is_named() {
    let db = db().await;
    suite::tampered_event_is_named(&db.store, &RawSql(db.path.clone())).await;
}

#[tokio::test]
async fn whitespace_in_a_stored_event_is_named() {
    let db = db().await;
    suite::whitespace_in_a_stored_event_is_named(&db.store, &RawSql(db.path.clone())).await;
}

#[tokio::test]
async fn chain_head_is_the_newest_event() {
    suite::chain_head_is_the_newest_event(&db().await.store).await;
}

#[tokio::test]
async fn appended_events_join_the_chain() {
    suite::appended_events_join_the_chain(&db().await.store).await;
}

#[tokio::test]
async fn tampered_artifact_is_named() {
    let db = db().await;
    suite::tampered_artifact_is_named(&db.store, &RawSql(db.path.clone())).await;
}

#[tokio::test]
async fn leases_expire_and_move() {
    suite::leases_expire_and_move(&db().await.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clicks_one_winner() {
    let db = db().await;
    suite::concurrent_clicks_one_winner(Arc::new(db.store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_claim_each_due_time_once() {
    let db = db().await;
    suite::schedules_claim_each_due_time_once(Arc::new(db.store)).await;
}

#[tokio::test]
async fn stats_aggregate_runs_and_steps() {
    suite::stats_aggregate_runs_and_steps(&db().await.store).await;
}

#[tokio::test]
async fn in_memory_store_runs_the_suite_basics() {
    let store = SqliteStore::open_in_memory()
        .await
        .unwrap_or_else(|e| panic!("in-memory: {e}"));
    suite::events_are_chained_and_verified(&store).await;
    suite::leases_expire_and_move(&store).await;
}

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    let db = db().await;
    suite::run_to_gate(&db.store, "persisted-run", None).await;
    drop(db.store);
    let again = SqliteStore::open(&db.path)
        .await
        .unwrap_or_else(|e| panic!("reopen: {e}"));
    let run = again
        .get_run("persisted-run")
        .await
        .unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(run.state.status, RunStatus::Waiting);
    assert!(
        again
            .verify_audit()
            .await
            .map(|r| r.is_ok())
            .unwrap_or(false)
    );
}

const CHILD_ENV: &str = "FLEET_STORE_TEST_CHILD_DB";
const CHILD_COMMITS: usize = 25;
const CHILDREN: usize = 3;

/// Body of each child process: commit CHILD_COMMITS notes to the shared run,
/// reloading on every Conflict. Does nothing when run as a normal test.
#[tokio::test]
async fn child_process_commits() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let store = SqliteStore::open(Path::new(&path))
        .await
        .unwrap_or_else(|e| panic!("child open: {e}"));
    let mut done = 0;
    while done < CHILD_COMMITS {
        let run = store
            .get_run("shared-run")
            .await
            .unwrap_or_else(|e| panic!("child get: {e}"));
        let mut t = Transition::new(&run, run.state.clone());
        t.events.push(NewEvent {
            kind: "test.tick".into(),
            payload: json!({"pid": std::process::id(), "n": done}),
        });
        t.durable = done % 5 == 0;
        match store.commit(t).await {
            Ok(_) => done += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => panic!("child commit: {e}"),
        }
    }
}

/// Several processes commit to one database file at once: no commit is lost,
/// no deadlock or busy error escapes, and the audit chain stays intact.
#[tokio::test]
async fn processes_share_one_database_file() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let db = db().await;
    let g = suite::genflow("nightly");
    db.store
        .create_run(NewRun {
            id: "shared-run".into(),
            state: RunState::new(&g, None),
            genflow: g,
            triggered_by: None,
        })
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let children: Vec<_> = (0..CHILDREN)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["child_process_commits", "--exact", "--nocapture"])
                .env(CHILD_ENV, &db.path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn child: {e}"))
        })
        .collect();
    for child in children {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("wait child: {e}"));
        assert!(
            out.status.success(),
            "child failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run = db
        .store
        .get_run("shared-run")
        .await
        .unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(run.version, 1 + (CHILDREN * CHILD_COMMITS) as i64);
    let ticks = db
        .store
        .events(Some("shared-run"))
        .await
        .unwrap_or_else(|e| panic!("events: {e}"))
        .into_iter()
        .filter(|e| e.kind == "test.tick")
        .count();
    assert_eq!(ticks, CHILDREN * CHILD_COMMITS);
    let report = db
        .store
        .verify_audit()
        .await
        .unwrap_or_else(|e| panic!("verify: {e}"));
    assert!(report.is_ok(), "{report:?}");
}

#[tokio::test]
async fn claims_take_each_runnable_step_once() {
    suite::claims_take_each_runnable_step_once(&db().await.store).await;
}

#[tokio::test]
async fn a_result_hands_the_next_step_to_its_worker() {
    suite::a_result_hands_the_next_step_to_its_worker(&db().await.store).await;
}

#[tokio::test]
async fn keyset_pages_list_each_run_once() {
    suite::keyset_pages_list_each_run_once(&db().await.store).await;
}

#[tokio::test]
async fn subscribers_hear_commits() {
    suite::subscribers_hear_commits(&db().await.store).await;
}

#[tokio::test]
async fn outbox_delivers_each_key_once() {
    suite::outbox_delivers_each_key_once(&db().await.store).await;
}

/// Holds the database's write lock from another connection for a moment, so
/// the store's next requests queue up behind its first and are committed
/// as one group.
struct HoldLock(PathBuf);

impl suite::HoldWrites for HoldLock {
    fn hold_writes(&self) {
        let (locked, is_locked) = std::sync::mpsc::channel();
        let path = self.0.clone();
        std::thread::spawn(move || {
            let conn = RawSql(path).conn();
            conn.execute_batch("BEGIN IMMEDIATE")
                .unwrap_or_else(|e| panic!("lock: {e}"));
            let _ = locked.send(());
            // Long enough for a burst of tasks to queue; correctness never
            // depends on it, only whether they share one transaction.
            std::thread::sleep(std::time::Duration::from_millis(200));
            conn.execute_batch("COMMIT")
                .unwrap_or_else(|e| panic!("unlock: {e}"));
        });
        is_locked
            .recv()
            .unwrap_or_else(|e| panic!("lock thread: {e}"));
    }
}

#[tokio::test]
async fn transition_leases() {
    suite::transition_leases(&db().await.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commits_all_land() {
    let db = db().await;
    suite::concurrent_commits_all_land(Arc::new(db.store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_version_burst_one_wins() {
    let db = db().await;
    let hold = HoldLock(db.path.clone());
    suite::same_version_burst_one_wins(Arc::new(db.store), &hold).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_requests_keep_neighbours() {
    let db = db().await;
    let hold = HoldLock(db.path.clone());
    suite::failing_requests_keep_neighbours(Arc::new(db.store), &hold).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_memory_store_groups_commits() {
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open_in_memory()
            .await
            .unwrap_or_else(|e| panic!("in-memory: {e}")),
    );
    suite::transition_leases(&*store).await;
    suite::same_version_burst_one_wins(Arc::clone(&store), &suite::NoHold).await;
    suite::failing_requests_keep_neighbours(Arc::clone(&store), &suite::NoHold).await;
}

/// A database whose schema is newer than this build, or one made by the old
/// sqlx-based development builds, is refused with a clear error and left as
/// it was.
#[tokio::test]
async fn incompatible_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));

    let newer = dir.path().join("newer.db");
    drop(
        SqliteStore::open(&newer)
            .await
            .unwrap_or_else(|e| panic!("open: {e}")),
    );
    RawSql(newer.clone())
        .conn()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap_or_else(|e| panic!("bump: {e}"));
    let refused = SqliteStore::open(&newer).await.err();
    assert!(
        matches!(&refused, Some(StoreError::Incompatible(m)) if m.contains("newer") && m.contains("99")),
        "{refused:?}"
    );

    let old = dir.path().join("old.db");
    RawSql(old.clone())
        .conn()
        .execute_batch("CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY); CREATE TABLE runs (id TEXT);")
        .unwrap_or_else(|e| panic!("old schema: {e}"));
    let refused = SqliteStore::open(&old).await.err();
    assert!(
        matches!(&refused, Some(StoreError::Incompatible(m)) if m.contains("older development build")),
        "{refused:?}"
    );
    let version: i64 = RawSql(old)
        .conn()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("version: {e}"));
    assert_eq!(version, 0, "nothing was migrated");
}

/// A database made by the previous schema (version 3, definitions inside
/// the run rows) upgrades in place: every run keeps its exact definition.
#[tokio::test]
async fn version_3_database_upgrades_keeping_definitions() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("fleet.db");
    let genflow = suite::genflow("release-gate");
    let state = RunState::new(&genflow, Some("dev@example.com".into()));
    {
        let conn = RawSql(path.clone()).conn();
        for sql in [
            include_str!("../migrations/sqlite/0001_init.sql"),
            include_str!("../migrations/sqlite/0002_schedules.sql"),
            include_str!("../migrations/sqlite/0003_outbox.sql"),
        ] {
            conn.execute_batch(sql)
                .unwrap_or_else(|e| panic!("old schema: {e}"));
        }
        conn.execute_batch("PRAGMA user_version = 3")
            .unwrap_or_else(|e| panic!("user_version: {e}"));
        for id in ["old-1", "old-2"] {
            conn.execute(
                "INSERT INTO runs (id, genflow_name, definition_json, definition_hash, state_json, status, version, triggered_by, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'running', 1, NULL, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
                rusqlite::params![
                    id,
                    genflow.name,
                    genflow.canonical_json(),
                    genflow.definition_hash(),
                    serde_json::to_string(&state).unwrap_or_else(|e| panic!("state: {e}")),
                ],
            )
            .unwrap_or_else(|e| panic!("old run: {e}"));
        }
    }
    let store = SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("upgrade: {e}"));
    for id in ["old-1", "old-2"] {
        let run = store
            .get_run(id)
            .await
            .unwrap_or_else(|e| panic!("get {id}: {e}"));
        assert_eq!(*run.definition, genflow, "{id}");
        assert_eq!(run.definition_hash, genflow.definition_hash());
    }
    // Stored once, and the copy in the run rows is gone.
    let conn = RawSql(path.clone()).conn();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM definitions", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("count: {e}"));
    assert_eq!(stored, 1);
    assert!(
        conn.prepare("SELECT definition_json FROM runs").is_err(),
        "runs.definition_json should be dropped"
    );
    // New runs of the same definition share the row.
    suite::new_run(&store, "new-1", "release-gate", None).await;
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM definitions", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("count: {e}"));
    assert_eq!(stored, 1);
}

/// Checkpoints run beside the writer and the log still restarts: the
/// checkpoint thread copies the log into the database file before the
/// writer's hard limit, and writing several times that limit leaves the WAL
/// file bounded and the data in the database file.
#[tokio::test]
async fn the_log_is_checkpointed_and_stays_bounded() {
    let db = db().await;
    let mut run = suite::new_run(&db.store, "big-writes", "release-gate", None).await;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let wal_path = db.path.with_extension("db-wal");
    // ~34 log frames per commit.
    let mut commit = async |i: u32| {
        let mut t = Transition::new(&run, run.state.clone());
        let mut bytes = vec![b'x'; 100_000];
        bytes[..4].copy_from_slice(&i.to_le_bytes());
        t.artifacts.push(fleet_store::NewArtifact {
            step: "readiness".into(),
            path: "readiness.md".into(),
            bytes,
        });
        run = db
            .store
            .commit(t)
            .await
            .unwrap_or_else(|e| panic!("commit {i}: {e}"))
            .0;
    };
    // ~2,700 frames: past the nudge, short of the writer's own checkpoint,
    // so only the checkpoint thread can move pages into the database file.
    for i in 0..80u32 {
        commit(i).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size(&db.path) < 5_000_000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        size(&db.path) >= 5_000_000,
        "the checkpoint thread copied nothing: database file is {} bytes, WAL {}",
        size(&db.path),
        size(&wal_path)
    );
    // ~20,000 frames in all, five times the writer's hard limit.
    for i in 80..600u32 {
        commit(i).await;
    }
    let wal = size(&wal_path);
    let main = size(&db.path);
    // Without checkpoints the log would hold all ~60 MB; the hard limit is
    // 4,000 frames of 4 KiB (plus the commits while a pass finishes).
    assert!(wal < 25_000_000, "WAL is {wal} bytes");
    assert!(main > 30_000_000, "database file is only {main} bytes");
}

async fn stamp(store: &SqliteStore) -> u64 {
    match store.change_stamp().await {
        Ok(Some(s)) => s,
        other => panic!("change stamp: {other:?}"),
    }
}

/// The change stamp moves after every commit, whether this store made it or
/// another connection to the file (a second store here; to SQLite another
/// process is the same), and does not move on reads.
#[tokio::test]
async fn change_stamp_moves_exactly_when_something_commits() {
    use fleet_core::run::Event;
    let db = db().await;
    let run = suite::new_run(&db.store, "stamped", "release-gate", None).await;
    let first = stamp(&db.store).await;
    assert_eq!(stamp(&db.store).await, first, "nothing was committed");
    let _ = db.store.get_run("stamped").await;
    let _ = db.store.list_runs(&fleet_store::RunFilter::default()).await;
    assert_eq!(stamp(&db.store).await, first, "reads are not changes");

    let run = suite::step(&db.store, &run, Event::Start).await;
    let after_own = stamp(&db.store).await;
    assert_ne!(after_own, first, "this store's commit");
    assert_eq!(stamp(&db.store).await, after_own);

    let other = SqliteStore::open(&db.path)
        .await
        .unwrap_or_else(|e| panic!("second store: {e}"));
    suite::step(&other, &run, Event::StepStarted { step: 0 }).await;
    let after_other = stamp(&db.store).await;
    assert_ne!(after_other, after_own, "another connection's commit");
    assert_eq!(stamp(&db.store).await, after_other);
}

/// The last connection to close checkpoints the log into the database and
/// deletes it, unless it is read-only; so the store closes its readers
/// (and the change stamp's connection) before its writer. A log left behind
/// is replayed whole by the next process to open the file.
#[tokio::test]
async fn closing_the_store_leaves_no_log_behind() {
    use fleet_core::run::Event;
    let db = db().await;
    let run = suite::new_run(&db.store, "closing", "release-gate", None).await;
    suite::step(&db.store, &run, Event::Start).await;
    // Every kind of connection is open: readers, the stamp's, the writer's.
    let _ = db.store.get_run("closing").await;
    let _ = db.store.change_stamp().await;
    let wal = db.path.with_extension("db-wal");
    let before = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(before > 0, "the commits went to the log first");
    let Db { _dir, path, store } = db;
    drop(store);
    let after = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(after, 0, "the log was checkpointed and removed on close");
    // And nothing was lost with it.
    let again = SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("reopen: {e}"));
    let back = again
        .get_run("closing")
        .await
        .unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(back.version, run.version + 1);
}
