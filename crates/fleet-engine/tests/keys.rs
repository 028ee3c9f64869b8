//! Rotation interrupted at each point between its file moves and its
//! record in the log is finished by running it again, on a real store.

use fleet_engine::{Engine, Settings};
use fleet_evidence::SigningKey;
use fleet_store::{SqliteStore, Store};
use std::path::Path;
use std::sync::Arc;

const CONFIG: &str = r#"
genflows:
  - name: gate-only
    steps:
      - {name: go-no-go, kind: approval, approvers: [owner@example.com], out: decision.md}
"#;

async fn engine(root: &Path) -> Engine {
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
    Engine::new(store, Arc::new(config), settings)
}

#[tokio::test]
async fn an_interrupted_rotation_is_finished_by_the_next() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let engine = engine(tmp.path()).await;
    let path = engine.settings().signing_key_file.clone();
    let retiring = path.with_file_name("signing.key.retiring");
    let first = engine
        .signing_key()
        .unwrap_or_else(|e| panic!("{e}"))
        .verifier();

    // Stopped after linking the old key aside, before the new key was
    // renamed in: a fresh rotation happens.
    std::fs::hard_link(&path, &retiring).unwrap_or_else(|e| panic!("{e}"));
    let r = engine.rotate_key().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(!r.resumed);
    assert_eq!(r.retired, first);
    assert!(!retiring.exists());
    let second = r.current;

    // Stopped after the new key was renamed in, before the log recorded
    // it: running again records the retirement and keeps the new key.
    std::fs::hard_link(&path, &retiring).unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let third = SigningKey::generate("fleet-audit").unwrap_or_else(|e| panic!("{e}"));
    third.write_new(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = engine.rotate_key().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(r.resumed);
    assert_eq!(
        (r.retired.clone(), r.current.clone()),
        (second.clone(), third.verifier())
    );
    assert!(!retiring.exists());

    let ring = engine.key_ring().await.unwrap_or_else(|e| panic!("{e}"));
    let status: Vec<(String, bool)> = ring
        .keys()
        .iter()
        .map(|k| (k.verifier.key_id(), k.retired.is_some()))
        .collect();
    assert_eq!(
        status,
        [
            (first.key_id(), true),
            (second.key_id(), true),
            (third.verifier().key_id(), false)
        ]
    );
    assert_eq!(
        engine
            .signing_key()
            .unwrap_or_else(|e| panic!("{e}"))
            .verifier(),
        third.verifier(),
        "the engine signs with the key file's new key"
    );
    assert!(
        engine
            .store()
            .verify_audit()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_ok()
    );
}
