//! Opening the store and the engine for a workspace.

use crate::workspace::{Locator, UsageError, Workspace};
use anyhow::{Context, Result};
use fleet_engine::{Engine, Settings};
use fleet_store::{DatabaseUrl, Migrate, Store};
use std::sync::Arc;

pub struct App {
    pub ws: Workspace,
    pub engine: Arc<Engine>,
    /// Where the store is, for messages (a URL's password redacted).
    pub database: String,
    /// The embedded SQLite database: no `fleet worker` is assumed, so CLI
    /// commands execute the steps they cause (and pick up runs a crashed
    /// process left behind).
    pub embedded: bool,
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
        let (store, database, embedded) = open_store(locator, &state_dir).await?;
        let mut settings = Settings::new(ws.root.clone());
        if let Some(ttl) = std::env::var("FLEET_LEASE_TTL")
            .ok()
            .and_then(|v| fleet_core::config::Duration::parse(&v).ok())
        {
            settings.lease_ttl = ttl.as_std();
        }
        // How long a claimed delivery is held before another process may
        // take it over (a process killed mid-send). The fault campaign
        // (bench/faults) shortens it so interrupted sends settle quickly.
        if let Some(lease) = std::env::var("FLEET_DELIVERY_LEASE")
            .ok()
            .and_then(|v| fleet_core::config::Duration::parse(&v).ok())
        {
            settings.delivery.lease = lease.as_std();
        }
        settings.approver_links = approver_links(&ws, &state_dir)?;
        adjust(&mut settings);
        let engine = Arc::new(Engine::new(store, Arc::new(ws.config.clone()), settings));
        Ok(App {
            ws,
            engine,
            database,
            embedded,
        })
    }

    pub fn store(&self) -> &dyn Store {
        self.engine.store().as_ref()
    }
}

/// The store `--database-url` names, else `.fleet/fleet.db`: (store, its
/// name for messages, embedded?).
async fn open_store(
    locator: &Locator,
    state_dir: &std::path::Path,
) -> Result<(Arc<dyn Store>, String, bool)> {
    let url = match &locator.database_url {
        Some(text) => database_url(locator, text)?,
        None => DatabaseUrl::Sqlite(state_dir.join("fleet.db")),
    };
    let embedded = matches!(url, DatabaseUrl::Sqlite(_));
    let store = fleet_store::open(&url, Migrate::Refuse)
        .await
        .with_context(|| format!("cannot open the store at {url}"))?;
    Ok((store, url.to_string(), embedded))
}

/// A database URL from the command line, a relative `sqlite://` path taken
/// from `-C DIR` like every other path.
pub fn database_url(locator: &Locator, text: &str) -> Result<DatabaseUrl> {
    Ok(
        match DatabaseUrl::parse(text).map_err(|e| UsageError(format!("database URL: {e}")))? {
            DatabaseUrl::Sqlite(path) if path.is_relative() => {
                DatabaseUrl::Sqlite(locator.cwd.join(path))
            }
            url => url,
        },
    )
}

/// How long an emailed decision link stays valid; `fleet gate link` re-issues one.
const LINK_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Signed decision-page links for approver emails, when the config says where
/// the server is (`server.public_url`); without it, emails tell approvers the
/// CLI command instead.
#[derive(Debug)]
struct SignedLinks {
    signer: fleet_server::Signer,
    public_url: String,
}

impl fleet_notify::ApproverLinks for SignedLinks {
    fn link(&self, run_id: &str, step: &str, approver: &str) -> Option<String> {
        Some(fleet_server::approver_link(
            &self.signer,
            &self.public_url,
            run_id,
            step,
            approver,
            LINK_TTL,
        ))
    }
}

fn approver_links(
    ws: &Workspace,
    state_dir: &std::path::Path,
) -> Result<Option<Arc<dyn fleet_notify::ApproverLinks>>> {
    let Some(public_url) = ws.config.server.public_url.clone() else {
        return Ok(None);
    };
    let env = std::env::var("FLEET_SECRET").ok();
    let secret = fleet_server::Secret::load_or_create(state_dir, env.as_deref())
        .context("cannot load the server secret that signs approver links")?;
    let signer = fleet_server::Signer::new(&secret).context("cannot build the link signer")?;
    Ok(Some(Arc::new(SignedLinks { signer, public_url })))
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
