//! `fleet serve`: the web server, the worker and the scheduler in one process.

use crate::context::App;
use crate::workspace::{Locator, UsageError};
use anyhow::{Context, Result, bail};
use fleet_server::{OperatorAuth, Secret, ServeOptions, Signer};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// How long a decision link the server shows stays valid.
pub const LINK_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The server secret: `FLEET_SECRET`, else `.fleet/secret` (created once, 0600).
pub fn signer(app: &App) -> Result<Signer> {
    let env = std::env::var("FLEET_SECRET").ok();
    let secret = Secret::load_or_create(&app.ws.root.join(".fleet"), env.as_deref())?;
    Ok(Signer::new(&secret)?)
}

/// The base URL of links: `server.public_url`, else `http://<bind>`.
pub fn public_url(app: &App, bind: Option<&str>) -> String {
    app.ws.config.server.public_url.clone().unwrap_or_else(|| {
        format!(
            "http://{}",
            bind.or(app.ws.config.server.bind.as_deref())
                .unwrap_or(DEFAULT_BIND)
        )
    })
}

/// Runs on its own multi-threaded runtime: a server wants every core, the
/// other commands start faster on one thread.
pub fn run(locator: &Locator, bind: Option<String>, insecure_local: bool) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = App::open(locator).await?;
        crate::logging::warnings(&app.ws, &locator.cwd);
        let bind_text = bind
            .or_else(|| app.ws.config.server.bind.clone())
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let addr: SocketAddr = match bind_text.parse() {
            Ok(a) => a,
            Err(e) => bail!(UsageError(format!(
                "--bind `{bind_text}` is not an address like 127.0.0.1:8080: {e}"
            ))),
        };
        let api_token = std::env::var("FLEET_API_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let opts = ServeOptions {
            bind: addr,
            auth: OperatorAuth {
                api_token,
                open: insecure_local,
            },
            public_url: app.ws.config.server.public_url.clone(),
            link_ttl: LINK_TTL,
            drain_timeout: Duration::from_secs(30),
            scheduler: true,
            config_path: Some(app.ws.config_path.clone()),
        };
        if let Err(e) = fleet_server::check_options(&opts) {
            bail!(UsageError(e.to_string()));
        }
        // A hook secret missing from the environment is a setup error
        // (exit 2); `serve` reads the secrets again and would refuse too.
        if let Err(e) = fleet_server::HookSecrets::from_config(&app.ws.config.server, |name| {
            std::env::var(name).ok()
        }) {
            bail!(UsageError(e.to_string()));
        }
        let signer = signer(&app)?;
        let App {
            engine, database, ..
        } = app;
        fleet_server::serve(engine, signer, opts, |local| {
            // On stdout too: scripts and tests wait for this line.
            println!("fleet serve: listening on http://{local}");
            tracing::info!(addr = %local, %database, "fleet serve listening");
            if insecure_local {
                println!("  operator authentication is OFF (--insecure-local)");
                tracing::warn!("operator authentication is OFF (--insecure-local)");
            }
        })
        .await
        .context("fleet serve")?;
        Ok(ExitCode::SUCCESS)
    })
}
