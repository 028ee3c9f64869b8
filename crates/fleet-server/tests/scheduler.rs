//! The cron scheduler against a real store: due times live in the database,
//! so a restart neither skips nor doubles a run.

mod common;

use common::env_with;
use fleet_engine::{Engine, Settings};
use fleet_server::scheduler::{next_after, tick, triggered_by};
use fleet_store::{RunFilter, SqliteStore, Store};
use jiff::Timestamp;
use std::sync::Arc;

fn at(t: &str) -> Timestamp {
    t.parse().unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn scheduled(text: String) -> String {
    text.replace(
        "  - name: release-gate\n",
        "  - name: release-gate\n    schedule: \"*/5 * * * *\"\n",
    )
}

async fn run_count(store: &dyn Store) -> usize {
    store
        .list_runs(&RunFilter::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .len()
}

#[test]
fn next_occurrence_is_strictly_after() {
    let next =
        next_after("*/5 * * * *", at("2030-01-01T09:00:00Z")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next, at("2030-01-01T09:05:00Z"));
    let daily = next_after("@daily", at("2030-01-01T09:00:00Z")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(daily, at("2030-01-02T00:00:00Z"));
    assert!(next_after("not cron", at("2030-01-01T09:00:00Z")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_runs_start_once_and_a_restart_catches_up_without_doubling() {
    let env = env_with(false, scheduled).await;
    let engine = &env.engine;
    // First sight of the schedule: due at the next occurrence, nothing starts.
    assert!(
        tick(engine, at("2030-01-01T09:01:00Z"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    let stored = engine
        .store()
        .schedules()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored[0].next_due, at("2030-01-01T09:05:00Z"));
    // Before the due time: nothing.
    assert!(
        tick(engine, at("2030-01-01T09:04:59Z"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    // At the due time: one run, triggered by the schedule.
    let started = tick(engine, at("2030-01-01T09:05:00Z"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started.len(), 1);
    let run = engine
        .store()
        .get_run(&started[0])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run.triggered_by,
        Some(triggered_by(at("2030-01-01T09:05:00Z"))),
        "the run names the occurrence it fired for"
    );
    assert_eq!(
        run.triggered_by.as_deref(),
        Some("schedule 2030-01-01T09:05:00Z")
    );
    // The same instant again (a second tick, a second server): nothing more.
    assert!(
        tick(engine, at("2030-01-01T09:05:00Z"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    assert_eq!(run_count(engine.store().as_ref()).await, 1);

    // "Restart": a new engine on the same database, after downtime that
    // spanned several due times. One catch-up run, not one per missed tick,
    // and two processes ticking at once start it once.
    let store2: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&env.dir.path().join(".fleet/fleet.db"))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let engine2 = Arc::new(Engine::new(
        store2,
        engine.config().clone(),
        Settings::new(env.dir.path().to_path_buf()),
    ));
    let later = at("2030-01-01T09:31:00Z");
    let (a, b) = tokio::join!(tick(engine, later), tick(&engine2, later));
    let total =
        a.unwrap_or_else(|e| panic!("{e}")).len() + b.unwrap_or_else(|e| panic!("{e}")).len();
    assert_eq!(total, 1, "one catch-up run");
    assert_eq!(run_count(engine.store().as_ref()).await, 2);
    let stored = engine
        .store()
        .schedules()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stored[0].next_due, at("2030-01-01T09:35:00Z"));
}

#[tokio::test]
async fn a_claim_whose_run_was_never_created_is_finished_by_the_next_tick() {
    let env = env_with(false, scheduled).await;
    let engine = &env.engine;
    tick(engine, at("2030-01-01T09:01:00Z"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A process claims 09:05 and dies before creating its run.
    let id = fleet_store::new_run_id();
    let claimed = engine
        .store()
        .claim_schedule(
            "release-gate",
            at("2030-01-01T09:05:00Z"),
            at("2030-01-01T09:10:00Z"),
            &id,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(claimed);
    assert_eq!(run_count(engine.store().as_ref()).await, 0);
    // The next tick (before 09:10) creates exactly that run.
    let started = tick(engine, at("2030-01-01T09:06:00Z"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started, vec![id.clone()]);
    assert!(
        tick(engine, at("2030-01-01T09:07:00Z"))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
    assert_eq!(run_count(engine.store().as_ref()).await, 1);
}

/// A scheduled genflow with params: `schedule_params` gives the required
/// one, the other keeps its default.
fn scheduled_with_params(text: String) -> String {
    scheduled(text).replace(
        "    schedule: \"*/5 * * * *\"\n",
        "    schedule: \"*/5 * * * *\"\n\
         \x20   params:\n\
         \x20     - {name: version, pattern: '\\d+\\.\\d+\\.\\d+'}\n\
         \x20     - {name: channel, default: stable}\n\
         \x20   schedule_params: {version: 9.9.0}\n",
    )
}

#[tokio::test]
async fn a_scheduled_run_gets_the_schedule_params() {
    let env = env_with(false, scheduled_with_params).await;
    let engine = &env.engine;
    tick(engine, at("2030-01-01T09:01:00Z"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let started = tick(engine, at("2030-01-01T09:05:00Z"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(started.len(), 1);
    let run = engine
        .store()
        .get_run(&started[0])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let values: Vec<(&str, &str)> = run
        .definition
        .param_values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(values, [("channel", "stable"), ("version", "9.9.0")]);
}
