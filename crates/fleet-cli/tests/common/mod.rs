//! Which database the end-to-end tests run the binary against.
//!
//! `Backend` is for tests that name their backend (the workers and servers
//! tests run on both). `database_for` serves the PostgreSQL pass of the
//! other end-to-end tests: with `FLEET_TEST_BACKEND=postgres` (what
//! `.ci/run` sets for its second pass) every workspace a test creates gets
//! a scratch PostgreSQL database of its own, and every `fleet` command the
//! test runs there uses it.

#![allow(dead_code)]

use assert_cmd::Command;
use fleet_store::testing::ScratchDb;
use fleet_store::{Migrate, PostgresStore, SqliteStore, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The database a test's `fleet` commands share.
pub enum Backend {
    /// The embedded default: `.fleet/fleet.db` in the workspace.
    Sqlite,
    /// A scratch PostgreSQL database, migrated, dropped with the backend.
    Postgres(ScratchDb),
}

/// Runs `fleet migrate` against `url`.
fn migrate(url: &str) {
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleet"))
        .args(["--database-url", url, "migrate"])
        .env_remove("FLEET_DATABASE_URL")
        .output()
        .expect("fleet migrate");
    assert!(
        out.status.success(),
        "fleet migrate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite
    }

    /// A fresh, migrated PostgreSQL database (`FLEET_TEST_POSTGRES_URL`).
    pub fn postgres() -> Backend {
        let scratch = ScratchDb::create();
        migrate(scratch.url());
        Backend::Postgres(scratch)
    }

    fn url(&self) -> Option<&str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres(db) => Some(db.url()),
        }
    }

    /// A clean `fleet` command: no inherited Fleet settings, this backend's database.
    pub fn fleet_plain(&self) -> Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleet"));
        self.apply_std(&mut cmd);
        Command::from_std(cmd)
    }

    /// `fleet -C DIR` on this backend.
    pub fn fleet(&self, dir: &Path) -> Command {
        let mut cmd = self.fleet_plain();
        cmd.arg("-C").arg(dir);
        cmd
    }

    /// Points a `std::process::Command` running `fleet` at this backend.
    pub fn apply_std(&self, cmd: &mut std::process::Command) {
        cmd.env_remove("FLEET_CONFIG")
            .env_remove("FLEET_API_TOKEN")
            .env_remove("FLEET_SECRET")
            .env_remove("FLEET_DATABASE_URL")
            .env_remove("FLEET_FAULT")
            .env("FLEET_USER", "dev@example.com");
        if let Some(url) = self.url() {
            cmd.env("FLEET_DATABASE_URL", url);
        }
    }

    /// The store the workspace at `dir` uses, opened directly.
    pub async fn store(&self, dir: &Path) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite => {
                let path = dir.join(".fleet/fleet.db");
                Arc::new(
                    SqliteStore::open(&path)
                        .await
                        .unwrap_or_else(|e| panic!("open {}: {e}", path.display())),
                )
            }
            Backend::Postgres(db) => Arc::new(
                PostgresStore::connect(db.url(), Migrate::Refuse)
                    .await
                    .unwrap_or_else(|e| panic!("connect: {e}")),
            ),
        }
    }
}

/// True in the PostgreSQL pass of the end-to-end tests.
pub fn postgres_pass() -> bool {
    std::env::var("FLEET_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// In the PostgreSQL pass: the database of the workspace at `dir` (created
/// and migrated on first use). Kept for the life of the test process;
/// `.ci/run` drops what is left (`fleet_t_*`) after the pass.
pub fn database_for(dir: &Path) -> Option<String> {
    if !postgres_pass() {
        return None;
    }
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, ScratchDb>>> = OnceLock::new();
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let map = DATABASES.get_or_init(Mutex::default);
    let mut map = map
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let db = map.entry(key).or_insert_with(|| {
        let db = ScratchDb::create();
        migrate(db.url());
        db
    });
    Some(db.url().to_owned())
}

/// The `fleet` binary run in workspace `dir` as a developer there would:
/// nothing from the test process's own environment that changes what it
/// does (config path, fault hook, key file, tokens), `FLEET_USER` set, and
/// the pass's database.
pub fn fleet(dir: &Path) -> Command {
    let mut cmd = Command::cargo_bin("fleet").expect("fleet binary");
    for name in [
        "FLEET_CONFIG",
        "FLEET_FAULT",
        "FLEET_SIGNING_KEY_FILE",
        "FLEET_API_TOKEN",
        "FLEET_SECRET",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("FLEET_USER", "dev@example.com").arg("-C").arg(dir);
    use_database(&mut cmd, dir);
    cmd
}

/// A new temporary directory holding the release-gate example (`fleet init`).
pub fn initialized() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    Command::cargo_bin("fleet")
        .expect("fleet binary")
        .arg("init")
        .arg(tmp.path())
        .assert()
        .success();
    tmp
}

/// The standard output of `cmd`, which must succeed.
pub fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&cmd.assert().success().get_output().stdout).into_owned()
}

/// The standard output of `cmd`, which must succeed, as JSON.
pub fn json_of(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.assert().success().get_output().stdout.clone();
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out)))
}

/// Points `cmd` (run in workspace `dir`) at the pass's database.
pub fn use_database(cmd: &mut Command, dir: &Path) {
    cmd.env_remove("FLEET_DATABASE_URL");
    if let Some(url) = database_for(dir) {
        cmd.env("FLEET_DATABASE_URL", url);
    }
}

/// [`use_database`] for a `std::process::Command`.
pub fn use_database_std(cmd: &mut std::process::Command, dir: &Path) {
    cmd.env_remove("FLEET_DATABASE_URL");
    if let Some(url) = database_for(dir) {
        cmd.env("FLEET_DATABASE_URL", url);
    }
}
