//! The shared store suite against PostgreSQL (a scratch database per test,
//! dropped afterwards), plus PostgreSQL-only checks: several stores (what
//! several processes have) writing and claiming at once, notices across
//! stores, schema versions.

mod suite;

use async_trait::async_trait;
use fleet_core::run::Event;
use fleet_store::testing::ScratchDb;
use fleet_store::{Migrate, Notice, PostgresStore, Store, StoreError};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use suite::Backdoor;

struct Db {
    store: PostgresStore,
    // Dropped after the store: the database goes once nothing uses it.
    scratch: ScratchDb,
}

async fn db() -> Db {
    let scratch = ScratchDb::create();
    let store = PostgresStore::connect(scratch.url(), Migrate::Apply)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    Db { store, scratch }
}

impl Db {
    async fn another(&self) -> PostgresStore {
        PostgresStore::connect(self.scratch.url(), Migrate::Refuse)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }
}

/// Edits rows with a connection of its own, behind the store's back.
struct RawSql(String);

impl RawSql {
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> u64 {
        let (client, connection) = tokio_postgres::connect(&self.0, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("raw connect: {e}"));
        tokio::spawn(connection);
        client
            .execute(sql, params)
            .await
            .unwrap_or_else(|e| panic!("raw sql: {e}"))
    }
}

impl RawSql {
    async fn count(&self, sql: &str) -> i64 {
        let (client, connection) = tokio_postgres::connect(&self.0, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("raw connect: {e}"));
        tokio::spawn(connection);
        client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("raw sql: {e}"))
            .get(0)
    }
}

#[async_trait]
impl Backdoor for RawSql {
    async fn set_event_payload(&self, seq: i64, payload_json: &str) {
        let n = self
            .execute(
                "UPDATE events SET payload_json = $1 WHERE seq = $2",
                &[&payload_json, &seq],
            )
            .await;
        assert_eq!(n, 1);
    }

    async fn set_artifact_bytes(&self, sha256: &str, bytes: &[u8]) {
        let n = self
            .execute(
                "UPDATE artifacts SET bytes = $1 WHERE sha256 = $2",
                &[&bytes, &sha256],
            )
            .await;
        assert_eq!(n, 1);
    }
}

macro_rules! suite_test {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = db().await;
            suite::$name(&db.store).await;
        }
    };
    ($name:ident, arc) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let db = db().await;
            let store: Arc<dyn Store> = Arc::new(db.another().await);
            suite::$name(store).await;
        }
    };
    ($name:ident, arc, hold) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let db = db().await;
            let store: Arc<dyn Store> = Arc::new(db.another().await);
            suite::$name(store, &suite::NoHold).await;
        }
    };
    ($name:ident, backdoor) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let db = db().await;
            suite::$name(&db.store, &RawSql(db.scratch.url().to_owned())).await;
        }
    };
}

suite_test!(create_get_and_prefix);
suite_test!(list_filters_and_unfinished);
suite_test!(create_with_first_transition_is_atomic);
suite_test!(run_versions_match_list_runs);
suite_test!(commit_conflict_writes_nothing);
suite_test!(artifacts_are_content_addressed);
suite_test!(kept_corpus_is_stored_once);
suite_test!(step_runs_upsert_per_attempt);
suite_test!(decisions_are_unique_per_gate_round);
suite_test!(events_are_chained_and_verified);
suite_test!(tampered_event_is_named, backdoor);
suite_test!(whitespace_in_a_stored_event_is_named, backdoor);
suite_test!(chain_head_is_the_newest_event);
suite_test!(appended_events_join_the_chain);
suite_test!(tampered_artifact_is_named, backdoor);
suite_test!(leases_expire_and_move);
suite_test!(concurrent_clicks_one_winner, arc);
suite_test!(schedules_claim_each_due_time_once, arc);
suite_test!(stats_aggregate_runs_and_steps);
suite_test!(outbox_delivers_each_key_once);
suite_test!(transition_leases);
suite_test!(concurrent_commits_all_land, arc);
suite_test!(same_version_burst_one_wins, arc, hold);
suite_test!(failing_requests_keep_neighbours, arc, hold);
suite_test!(claims_take_each_runnable_step_once);
suite_test!(a_result_hands_the_next_step_to_its_worker);
suite_test!(keyset_pages_list_each_run_once);
suite_test!(subscribers_hear_commits);
suite_test!(awkward_strings_chain_alike);

/// Two stores (two pools: what two processes have) commit to their own runs
/// at once: every commit lands and the chain has no gap and no fork.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_share_one_unbroken_chain() {
    let db = db().await;
    let stores: Vec<Arc<dyn Store>> =
        vec![Arc::new(db.another().await), Arc::new(db.another().await)];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = stores[i % 2].clone();
        tasks.spawn(async move {
            let mut run =
                suite::new_run(&*store, &format!("chain-{i}"), "release-gate", None).await;
            run = suite::step(&*store, &run, Event::Start).await;
            for _ in 0..6 {
                let step = run
                    .state
                    .steps
                    .iter()
                    .position(|s| s.status == fleet_core::run::StepStatus::Ready);
                let Some(step) = step else { break };
                run = suite::step(&*store, &run, Event::StepStarted { step }).await;
                run = suite::step(
                    &*store,
                    &run,
                    Event::StepSucceeded {
                        step,
                        flags: fleet_core::flags::FlagCounts::NONE,
                    },
                )
                .await;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap_or_else(|e| panic!("task: {e}"));
    }
    let events = db
        .store
        .events(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "no gap");
    }
    let report = db
        .store
        .verify_audit()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report:?}");
    assert!(report.events_checked > 8 * 6);
}

/// Transitions one store's tasks commit at the same time travel in groups
/// (`postgres/group.rs`, one transaction each): every written one has its
/// events once, one refused inside a group (its run moved behind the
/// store's back) writes nothing and gets its own `Conflict`, and the
/// chain stays unbroken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_made_together_are_grouped_and_a_refusal_stays_its_own() {
    const RUNS: usize = 24;
    let db = db().await;
    let store: Arc<dyn Store> = Arc::new(db.another().await);
    let elsewhere = db.another().await;
    // Runs created with their first transition at the same time group too
    // (`fleet_create`).
    let barrier = Arc::new(tokio::sync::Barrier::new(RUNS));
    let mut creating = tokio::task::JoinSet::new();
    for i in 0..RUNS {
        let (store, barrier) = (store.clone(), barrier.clone());
        creating.spawn(async move {
            let genflow = suite::genflow("release-gate");
            let state = fleet_core::run::RunState::new(&genflow, None);
            let (started, _) = fleet_core::run::advance(&genflow, &state, &Event::Start)
                .unwrap_or_else(|r| panic!("{r}"));
            let id = format!("group-{i}");
            let shell = fleet_store::RunRecord {
                id: id.clone(),
                genflow_name: genflow.name.clone(),
                definition: Arc::new(genflow.clone()),
                definition_hash: genflow.definition_hash(),
                state: state.clone(),
                version: 1,
                triggered_by: None,
                created_at: jiff::Timestamp::now(),
                updated_at: jiff::Timestamp::now(),
            };
            let first = fleet_store::Transition::new(&shell, started);
            barrier.wait().await;
            let new = fleet_store::NewRun {
                id,
                genflow,
                triggered_by: None,
                state,
            };
            (i, store.create_run_with(new, first).await)
        });
    }
    let mut created = Vec::new();
    while let Some(joined) = creating.join_next().await {
        let (i, result) = joined.unwrap_or_else(|e| panic!("task: {e}"));
        let (run, _) = result.unwrap_or_else(|e| panic!("create {i}: {e}"));
        assert_eq!(run.version, 2);
        created.push((i, run));
    }
    created.sort_by_key(|(i, _)| *i);
    let raw = RawSql(db.scratch.url().to_owned());
    let transactions = raw
        .count("SELECT count(DISTINCT xmin::text) FROM events WHERE kind = 'run.created'")
        .await;
    assert!(
        transactions < RUNS as i64,
        "{RUNS} runs created in {transactions} transactions: none grouped"
    );
    let mut runs = Vec::new();
    for (i, run) in created {
        if i % 3 == 0 {
            // Another process moves it on: `store`'s commit will be refused.
            let theirs = elsewhere
                .get_run(&run.id)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            suite::step(&elsewhere, &theirs, Event::Cancel).await;
        }
        runs.push(run);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(RUNS));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, run) in runs.into_iter().enumerate() {
        let (store, barrier) = (store.clone(), barrier.clone());
        tasks.spawn(async move {
            let (state, _) = fleet_core::run::advance(
                &run.definition,
                &run.state,
                &Event::StepStarted { step: 0 },
            )
            .unwrap_or_else(|r| panic!("{r}"));
            let mut t = fleet_store::Transition::new(&run, state);
            t.events.push(fleet_store::NewEvent {
                kind: "test.group".into(),
                payload: serde_json::json!({"run": i}),
            });
            // Its aggregates are kept by the group's one tally.
            t.step_run = Some(suite::step_run(
                "readiness",
                1,
                Some(jiff::Timestamp::now()),
            ));
            barrier.wait().await;
            (i, store.commit(t).await.map(|(r, _)| r.version))
        });
    }
    let mut written = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let (i, result) = joined.unwrap_or_else(|e| panic!("task: {e}"));
        match result {
            Ok(version) => {
                assert!(
                    i % 3 != 0,
                    "run {i} moved elsewhere, yet its commit was written"
                );
                assert_eq!(version, 3);
                written.insert(i);
            }
            Err(StoreError::Conflict { .. }) => assert_eq!(i % 3, 0, "run {i} refused"),
            Err(e) => panic!("run {i}: {e}"),
        }
    }
    assert_eq!(written.len(), RUNS - RUNS / 3);
    let events: Vec<_> = store
        .events(None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|e| e.kind == "test.group")
        .collect();
    let mut seen: Vec<usize> = events
        .iter()
        .map(|e| e.payload["run"].as_u64().unwrap_or(u64::MAX) as usize)
        .collect();
    seen.sort();
    let mut expected: Vec<usize> = written.into_iter().collect();
    expected.sort();
    assert_eq!(seen, expected, "one event per written transition");
    // Rows written by one transaction share its id: fewer ids than
    // transitions means some went together.
    let transactions = raw
        .count("SELECT count(DISTINCT xmin::text) FROM events WHERE kind = 'test.group'")
        .await;
    assert!(
        transactions < events.len() as i64,
        "{} transitions in {transactions} transactions: none grouped",
        events.len()
    );
    let report = store.verify_audit().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report:?}");
    // The aggregates count each written transition once, and no refused one.
    let stats = store.stats().await.unwrap_or_else(|e| panic!("{e}"));
    let refused = (RUNS / 3) as u64;
    assert_eq!(
        stats.runs_by_status,
        vec![
            ("cancelled".to_string(), refused),
            ("running".to_string(), RUNS as u64 - refused)
        ]
    );
    assert_eq!(stats.steps.len(), 1, "{:?}", stats.steps);
    let step = &stats.steps[0];
    let written = RUNS as u64 - refused;
    assert_eq!((step.attempts, step.finished), (written, written));
    assert_eq!(
        (step.input_tokens, step.output_tokens),
        (1200 * written, 300 * written)
    );
}

/// Claimers in two stores never get the same step.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_a_step() {
    let db = db().await;
    for i in 0..20 {
        let run = suite::new_run(&db.store, &format!("claim-{i}"), "release-gate", None).await;
        suite::step(&db.store, &run, Event::Start).await;
    }
    let a = Arc::new(db.another().await);
    let b = Arc::new(db.another().await);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, store) in [a.clone(), b.clone(), a, b].into_iter().enumerate() {
        tasks.spawn(async move {
            let mut got = Vec::new();
            for _ in 0..10 {
                let claims = store
                    .claim_steps(&format!("owner-{i}"), Duration::from_secs(30), 2, None)
                    .await
                    .unwrap_or_else(|e| panic!("claim: {e}"));
                got.extend(claims.into_iter().map(|c| (c.run_id, c.step)));
            }
            got
        });
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        for claim in r.unwrap_or_else(|e| panic!("task: {e}")) {
            total += 1;
            assert!(seen.insert(claim.clone()), "{claim:?} claimed twice");
        }
    }
    assert_eq!(total, 20, "each run's one Ready step, claimed once");
}

/// A subscription on one store hears a commit made through another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_cross_processes() {
    let db = db().await;
    let other = db.another().await;
    let mut sub = db.store.subscribe().await.unwrap_or_else(|e| panic!("{e}"));
    let run = suite::new_run(&other, "heard", "release-gate", None).await;
    suite::step(&other, &run, Event::Start).await;
    let mut heard_run = false;
    let mut heard_work = false;
    for _ in 0..10 {
        match sub
            .next(Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        {
            Some(Notice::Run(id, _)) if id == "heard" => heard_run = true,
            Some(Notice::Work) => heard_work = true,
            Some(_) => {}
            None => break,
        }
        if heard_run && heard_work {
            break;
        }
    }
    assert!(
        heard_run && heard_work,
        "run {heard_run}, work {heard_work}"
    );
}

/// Processes refuse a schema they do not know and say which versions.
#[tokio::test]
async fn unknown_schemas_are_refused_with_versions() {
    let empty = ScratchDb::create();
    let refused = PostgresStore::connect(empty.url(), Migrate::Refuse).await;
    match refused {
        Err(StoreError::Incompatible(m)) => {
            assert!(
                m.contains("version 0") && m.contains("fleet migrate"),
                "{m}"
            )
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an empty database was accepted"),
    }
    let applied = PostgresStore::migrate(empty.url())
        .await
        .unwrap_or_else(|e| panic!("migrate: {e}"));
    assert_eq!(applied.len(), fleet_store::schema_version_known() as usize);
    assert!(
        PostgresStore::migrate(empty.url())
            .await
            .unwrap_or_else(|e| panic!("migrate again: {e}"))
            .is_empty(),
        "migrating twice applies nothing"
    );
    RawSql(empty.url().to_owned())
        .execute(
            "INSERT INTO fleet_schema (version, name) VALUES (99, 'from the future')",
            &[],
        )
        .await;
    match PostgresStore::connect(empty.url(), Migrate::Refuse).await {
        Err(StoreError::Incompatible(m)) => {
            assert!(m.contains("99") && m.contains("upgrade fleet"), "{m}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

/// A wrong password to a server that is not there: the error names the
/// database, never the password.
#[tokio::test]
async fn connection_errors_never_show_the_password() {
    let url = "postgres://fleet:s3cret-pw@127.0.0.1:1/fleet";
    match PostgresStore::connect(url, Migrate::Refuse).await {
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains("s3cret-pw"), "{text}");
            assert!(
                text.contains("postgres://fleet:***@127.0.0.1:1/fleet"),
                "{text}"
            );
        }
        Ok(_) => panic!("connected to nothing"),
    }
}

/// An embedded installation copied over: the same runs, events (the chain
/// verifies), decisions and artifacts; a second copy into the now
/// non-empty database is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_copies_to_postgres_with_its_chain() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("fleet.db");
    let sqlite = fleet_store::SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    suite::run_to_gate(&sqlite, "copied-1", Some("a@example.com")).await;
    suite::run_to_gate(&sqlite, "copied-2", None).await;
    suite::outbox_delivers_each_key_once(&sqlite).await;
    drop(sqlite);
    let target = ScratchDb::create();
    let report = fleet_store::copy_sqlite_to_postgres(&path, target.url())
        .await
        .unwrap_or_else(|e| panic!("copy: {e}"));
    assert!(report.audit.is_ok(), "{:?}", report.audit);
    assert!(report.tables.iter().any(|(t, n)| t == "events" && *n > 10));

    let sqlite = fleet_store::SqliteStore::open(&path)
        .await
        .unwrap_or_else(|e| panic!("reopen: {e}"));
    let pg = PostgresStore::connect(target.url(), Migrate::Refuse)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let (a, b) = (
        sqlite.events(None).await.unwrap_or_else(|e| panic!("{e}")),
        pg.events(None).await.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(a, b, "the same audit log, event for event");
    for id in ["copied-1", "copied-2"] {
        let (x, y) = (
            sqlite.get_run(id).await.unwrap_or_else(|e| panic!("{e}")),
            pg.get_run(id).await.unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(x, y);
        assert_eq!(
            sqlite.artifacts(id).await.unwrap_or_else(|e| panic!("{e}")),
            pg.artifacts(id).await.unwrap_or_else(|e| panic!("{e}"))
        );
        assert_eq!(
            sqlite
                .deliveries(id)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            pg.deliveries(id).await.unwrap_or_else(|e| panic!("{e}"))
        );
    }
    assert_eq!(
        sqlite.stats().await.unwrap_or_else(|e| panic!("{e}")),
        pg.stats().await.unwrap_or_else(|e| panic!("{e}"))
    );
    // The copy keeps working: a new commit continues the chain.
    let run = pg
        .get_run("copied-2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    suite::step(&pg, &run, Event::Cancel).await;
    let report = pg.verify_audit().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(report.is_ok(), "{report:?}");

    match fleet_store::copy_sqlite_to_postgres(&path, target.url()).await {
        Err(StoreError::Invalid(m)) => assert!(m.contains("empty database"), "{m}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("copied into a database that holds runs"),
    }
}
