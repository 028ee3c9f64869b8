//! Checkpoints on a cadence, on a real SQLite store: one once the log grew
//! by 1,000 events (without one per commit), one once 10 minutes passed
//! with activity (the clock is moved, not waited for), none for a quiet
//! log; each signed by the installation's key, which the log records.

use fleet_engine::{Clock, Engine, Settings};
use fleet_evidence::{Checkpoint, SigningKey};
use fleet_store::{SqliteStore, Store};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A genflow whose start commits a handful of events and then waits.
const CONFIG: &str = r#"
genflows:
  - name: gate-only
    steps:
      - {name: go-no-go, kind: approval, approvers: [owner@example.com], out: decision.md}
"#;

async fn engine(root: &Path, clock: Clock) -> Arc<Engine> {
    let config = fleet_core::config::check_str(CONFIG)
        .config
        .unwrap_or_else(|| panic!("config invalid"));
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&root.join("fleet.db"))
            .await
            .unwrap_or_else(|e| panic!("store: {e}")),
    );
    let mut settings = Settings::new(root.to_path_buf());
    settings.write_files = false;
    settings.clock = clock;
    Arc::new(Engine::new(store, Arc::new(config), settings))
}

async fn checkpoints(engine: &Engine) -> Vec<fleet_store::AuditEvent> {
    engine
        .store()
        .events_of_kind("audit.checkpoint", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

async fn head(engine: &Engine) -> i64 {
    engine
        .store()
        .chain_head()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .map_or(0, |(s, _)| s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_follows_every_thousand_events() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = engine(tmp.path(), Clock::default()).await;
    while head(&engine).await < 2_100 {
        engine
            .start_run("gate-only", None)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
    }
    let cps = checkpoints(&engine).await;
    // At least one per 1,000 events, and nowhere near one per commit.
    assert!(
        (2..=4).contains(&cps.len()),
        "{} checkpoints for {} events",
        cps.len(),
        head(&engine).await
    );
    let key = SigningKey::load(&tmp.path().join(".fleet/signing.key"))
        .unwrap_or_else(|e| panic!("key: {e}"))
        .verifier();
    let mut last = 0;
    for e in &cps {
        let (cp, _) = Checkpoint::open(
            e.payload["note"].as_str().unwrap_or_default(),
            std::slice::from_ref(&key),
        )
        .unwrap_or_else(|err| panic!("checkpoint in event {}: {err}", e.seq));
        let size = i64::try_from(cp.size).unwrap_or(0);
        assert!(
            size - last <= 1_200,
            "{last} then {size}: far more than 1,000 events apart"
        );
        last = size;
    }
    // The key that signed them is on the record.
    let keys = engine
        .store()
        .events_of_kind("audit.key", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].payload["key"], key.vkey());
    assert!(keys[0].seq < cps[0].seq);
    assert!(
        engine
            .store()
            .verify_audit()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_minutes_of_activity_bring_a_checkpoint_and_quiet_brings_none() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let offset = Arc::new(AtomicI64::new(0));
    let moved = offset.clone();
    let clock = Clock::new(move || {
        let now = fleet_store::audit::now();
        now.checked_add(jiff::SignedDuration::from_secs(
            moved.load(Ordering::SeqCst),
        ))
        .unwrap_or(now)
    });
    let engine = engine(tmp.path(), clock).await;
    for _ in 0..5 {
        engine
            .start_run("gate-only", None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(checkpoints(&engine).await.is_empty(), "too early for one");
    assert_eq!(
        engine
            .checkpoint_if_due()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        None
    );

    // Nine minutes: still none.
    offset.store(9 * 60, Ordering::SeqCst);
    engine
        .start_run("gate-only", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(checkpoints(&engine).await.is_empty(), "9 minutes is not 10");

    // Eleven minutes after the engine started, a commit brings one.
    offset.store(11 * 60, Ordering::SeqCst);
    let before = head(&engine).await;
    engine
        .start_run("gate-only", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let cps = checkpoints(&engine).await;
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert!(cps[0].payload["size"].as_i64().unwrap_or(0) > before);

    // Quiet for 20 more minutes: the tick writes nothing...
    offset.store(31 * 60, Ordering::SeqCst);
    let wrote = engine
        .checkpoint_if_due()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrote, None, "a checkpoint of a quiet log");
    let n = checkpoints(&engine).await.len();
    // Activity 20 minutes after the last checkpoint: the commit brings one.
    engine
        .start_run("gate-only", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checkpoints(&engine).await.len(), n + 1);
    // More activity right after it brings none; the tick 14 minutes later
    // (`fleet serve`, `fleet worker`) does.
    engine
        .start_run("gate-only", None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(checkpoints(&engine).await.len(), n + 1);
    offset.store(45 * 60, Ordering::SeqCst);
    let wrote = engine
        .checkpoint_if_due()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wrote, Some(head(&engine).await - 1));
    assert_eq!(checkpoints(&engine).await.len(), n + 2);
}
