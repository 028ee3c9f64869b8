//! A store that cannot be read while a delivery is being composed is a
//! transient failure: the delivery is retried with backoff, never given up
//! on its first attempt. Found by bench/faults: `pg_terminate_backend`
//! under a worker marked gate emails `failed` after one attempt ("cannot
//! load run …: connection closed"), so the approver was never emailed.
//!
//! Here the failure is made deterministic on a real SQLite database: the
//! table runs' definitions live in is renamed away under a fresh store,
//! so reading the run fails exactly where composing the email reads it.

use fleet_core::run::RunStatus;
use fleet_engine::{Engine, Quiet, Settings};
use fleet_notify::DeliveryPolicy;
use fleet_store::{DeliveryPurpose, DeliveryStatus, SqliteStore, Store};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const CONFIG: &str = r#"
notify:
  smtp: {host: 127.0.0.1, port: PORT, tls: none, from: fleet@example.com}
genflows:
  - name: release-gate
    steps:
      - {name: readiness, prompt: "Assemble the report.", corpus: ["docs/*.md"], kind: report, out: readiness.md}
      - name: go-no-go
        kind: approval
        depends_on: [readiness]
        question: "Ship it?"
        approvers: [owner@example.com]
        out: decision.md
"#;

/// A loopback port nothing listens on: sends fail as a refused connection.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"))
        .port()
}

async fn engine(root: &Path) -> Engine {
    let text = std::fs::read_to_string(root.join(".fleet/config.yaml"))
        .unwrap_or_else(|e| panic!("config: {e}"));
    let checked = fleet_core::config::check_str(&text);
    let Some(config) = checked.config else {
        panic!("config invalid: {:?}", checked.diagnostics);
    };
    // A store of its own: nothing it caches was read before the break.
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&root.join(".fleet/fleet.db"))
            .await
            .unwrap_or_else(|e| panic!("store: {e}")),
    );
    let mut settings = Settings::new(root.to_path_buf());
    settings.delivery = DeliveryPolicy {
        max_attempts: 5,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(1),
        lease: Duration::from_secs(1),
        batch: 32,
    };
    Engine::new(store, Arc::new(config), settings)
}

fn rename_definitions(db: &Path, from: &str, to: &str) {
    let conn = rusqlite::Connection::open(db).unwrap_or_else(|e| panic!("open: {e}"));
    conn.execute_batch(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .unwrap_or_else(|e| panic!("rename {from}: {e}"));
}

async fn approval_email(engine: &Engine, run: &str) -> fleet_store::Delivery {
    engine
        .store()
        .deliveries(run)
        .await
        .unwrap_or_else(|e| panic!("deliveries: {e}"))
        .into_iter()
        .find(|d| d.purpose == DeliveryPurpose::Approval)
        .unwrap_or_else(|| panic!("no approval email queued"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_read_failure_while_composing_is_retried_not_given_up() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ws = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = ws.path();
    std::fs::create_dir_all(root.join(".fleet")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::create_dir_all(root.join("docs")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(root.join("docs/plan.md"), "# Plan\n\n- [ ] smoke test\n")
        .unwrap_or_else(|e| panic!("doc: {e}"));
    std::fs::write(
        root.join(".fleet/config.yaml"),
        CONFIG.replace("PORT", &closed_port().to_string()),
    )
    .unwrap_or_else(|e| panic!("config: {e}"));

    let first = engine(root).await;
    let run = first
        .start_run("release-gate", Some("ci@example.com".into()))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let run = first
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive: {e}"));
    assert_eq!(run.state.status, RunStatus::Waiting);
    let before = approval_email(&first, &run.id).await;
    assert!(!before.status.is_final(), "{before:?}");
    drop(first);

    let db = root.join(".fleet/fleet.db");
    let second = engine(root).await;
    rename_definitions(&db, "definitions", "definitions_away");
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The pass itself succeeds: the failure is the delivery's, recorded.
    second
        .deliver_pending(None)
        .await
        .unwrap_or_else(|e| panic!("deliver: {e}"));
    let broken = approval_email(&second, &run.id).await;
    assert_eq!(
        broken.status,
        DeliveryStatus::Pending,
        "a store read failure gave the email up: {broken:?}"
    );
    assert_eq!(broken.attempts, before.attempts + 1, "{broken:?}");
    let error = broken.last_error.clone().unwrap_or_default();
    assert!(error.contains("cannot load run"), "{error}");

    // Once the store reads again, the next attempt composes the email and
    // gets as far as the SMTP server (refused here: still pending).
    rename_definitions(&db, "definitions_away", "definitions");
    tokio::time::sleep(Duration::from_millis(20)).await;
    second
        .deliver_pending(None)
        .await
        .unwrap_or_else(|e| panic!("deliver: {e}"));
    let after = approval_email(&second, &run.id).await;
    assert_eq!(after.status, DeliveryStatus::Pending, "{after:?}");
    assert_eq!(after.attempts, broken.attempts + 1, "{after:?}");
    let error = after.last_error.clone().unwrap_or_default();
    assert!(!error.contains("cannot load run"), "{error}");
}
