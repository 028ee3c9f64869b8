//! Which database the end-to-end tests run the binary against.

#![allow(dead_code)]

use assert_cmd::Command;
use fleet_store::{SqliteStore, Store};
use std::path::Path;
use std::sync::Arc;

/// The database a test's `fleet` commands share.
pub enum Backend {
    /// The embedded default: `.fleet/fleet.db` in the workspace.
    Sqlite,
}

impl Backend {
    pub fn sqlite() -> Backend {
        Backend::Sqlite
    }

    /// A clean `fleet` command: no inherited Fleet settings, this backend's database.
    pub fn fleet_plain(&self) -> Command {
        let mut cmd = Command::cargo_bin("fleet").expect("fleet binary");
        cmd.env_remove("FLEET_CONFIG")
            .env_remove("FLEET_API_TOKEN")
            .env_remove("FLEET_SECRET")
            .env_remove("FLEET_DATABASE_URL")
            .env("FLEET_USER", "dev@example.com");
        cmd
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
            .env("FLEET_USER", "dev@example.com");
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
        }
    }
}
