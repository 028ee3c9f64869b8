//! Opening the store and the engine for a workspace.

use crate::workspace::{Locator, Workspace};
use anyhow::{Context, Result};
use fleet_engine::{Engine, Settings};
use fleet_store::{SqliteStore, Store};
use std::sync::Arc;

pub struct App {
    pub ws: Workspace,
    pub engine: Engine,
}

impl App {
    pub async fn open(locator: &Locator) -> Result<App> {
        App::open_with(locator, |_| {}).await
    }

    /// [`App::open`] with engine settings adjusted by a command's flags (e.g. `--no-cache`).
    pub async fn open_with(locator: &Locator, adjust: impl FnOnce(&mut Settings)) -> Result<App> {
        let ws = locator.load()?;
        let state_dir = ws.root.join(".fleet");
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("cannot create {}", state_dir.display()))?;
        let db = state_dir.join("fleet.db");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&db)
                .await
                .with_context(|| format!("cannot open the store at {}", db.display()))?,
        );
        let mut settings = Settings::new(ws.root.clone());
        if let Some(ttl) = std::env::var("FLEET_LEASE_TTL")
            .ok()
            .and_then(|v| fleet_core::config::Duration::parse(&v).ok())
        {
            settings.lease_ttl = ttl.as_std();
        }
        adjust(&mut settings);
        let engine = Engine::new(store, Arc::new(ws.config.clone()), settings);
        Ok(App { ws, engine })
    }

    pub fn store(&self) -> &dyn Store {
        self.engine.store().as_ref()
    }
}

/// Who is acting: `--as`, else `FLEET_USER`, else git's `user.email`.
pub fn current_user(explicit: Option<String>) -> Option<String> {
    explicit
        .or_else(|| std::env::var("FLEET_USER").ok())
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            std::process::Command::new("git")
                .args(["config", "user.email"])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
}
