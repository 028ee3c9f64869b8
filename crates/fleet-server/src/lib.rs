// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "512"]
//! `fleet serve`: the web face of Fleet.
//!
//! - Pages (askama, no JavaScript, assets embedded): dashboard, genflow, run
//!   (DAG as SVG), artifact (sanitized markdown), revision diff.
//! - The decision page `/runs/{id}/gates/{step}?t=TOKEN` for approvers, who
//!   hold a signed link instead of an account. GET only shows; Go/No-go is a
//!   POST with a CSRF token carrying the revision hashes the page showed.
//!   Decisions go through [`fleet_engine::Engine::decide`], so the web and the
//!   CLI share one rule set.
//! - JSON API under `/api/v1` (+ `/api/v1/openapi.json`), `/healthz`, `/metrics`.
//! - Label triggers: `/hooks/github` and `/hooks/gitlab`, authenticated by
//!   the webhook's secret (see [`hooks`]).
//! - A worker that drives runs, and the cron scheduler.
//!
//! Operators authenticate with `FLEET_API_TOKEN` (bearer header, or the login
//! form's HttpOnly cookie), unless the server is loopback-only and started
//! with `--insecure-local`. Approvers authenticate with their link.

mod api;
mod auth;
mod body;
mod cache;
pub mod dag_svg;
mod diff;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod hooks;
pub mod markdown;
mod metrics;
mod pages;
mod request_log;
mod rounds;
pub mod scheduler;
pub mod secret;
pub mod token;
mod views;
pub mod worker;

pub use api::openapi;
pub use hooks::HookSecrets;
pub use secret::Secret;
pub use token::{ApproverClaims, Signer, TokenError};

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fleet_engine::{Engine, EngineError};
use fleet_store::StoreError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("server secret: {0}")]
    Secret(String),
    /// A setting that cannot work (e.g. no operator token and not loopback).
    #[error("{0}")]
    Config(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("template: {0}")]
    Template(#[from] askama::Error),
}

impl ServerError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> ServerError {
        ServerError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// How operators get in.
#[derive(Clone, Debug)]
pub struct OperatorAuth {
    /// `FLEET_API_TOKEN`: bearer header, or the login form.
    pub api_token: Option<String>,
    /// `--insecure-local`: no operator authentication (loopback only).
    pub open: bool,
}

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub engine: Arc<Engine>,
    pub signer: Signer,
    pub auth: OperatorAuth,
    /// The tag of `auth.api_token`, so a bearer check costs one MAC.
    operator_tag: Option<token::BearerTag>,
    /// Base of links in emails and on pages, without a trailing slash.
    pub public_url: String,
    /// How long an approver link issued by the server stays valid.
    pub link_ttl: Duration,
    kick: mpsc::UnboundedSender<String>,
    /// Rendered documents, diffs and gate views, reused between requests.
    pub(crate) cache: views::ViewCache,
    /// The secrets `/hooks/*` verify deliveries with; none, none enabled.
    pub(crate) hooks: HookSecrets,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Runs the worker should drive (started or decided through the server).
pub struct WorkQueue(pub(crate) mpsc::UnboundedReceiver<String>);

impl AppState {
    /// Whether `presented` is the operator API token (constant time).
    pub fn is_api_token(&self, presented: &str) -> bool {
        self.operator_tag
            .as_ref()
            .is_some_and(|tag| self.signer.bearer_matches_tag(tag, presented))
    }

    pub fn new(
        engine: Arc<Engine>,
        signer: Signer,
        auth: OperatorAuth,
        public_url: String,
        link_ttl: Duration,
    ) -> (AppState, WorkQueue) {
        Self::with_hooks(
            engine,
            signer,
            auth,
            public_url,
            link_ttl,
            HookSecrets::default(),
        )
    }

    /// [`AppState::new`] with the hook endpoints' secrets.
    pub fn with_hooks(
        engine: Arc<Engine>,
        signer: Signer,
        auth: OperatorAuth,
        public_url: String,
        link_ttl: Duration,
        hooks: HookSecrets,
    ) -> (AppState, WorkQueue) {
        let (tx, rx) = mpsc::unbounded_channel();
        let operator_tag = auth.api_token.as_deref().map(|t| signer.bearer_tag(t));
        let state = AppState(Arc::new(Inner {
            engine,
            signer,
            auth,
            operator_tag,
            public_url: public_url.trim_end_matches('/').to_owned(),
            link_ttl,
            kick: tx,
            cache: views::ViewCache::default(),
            hooks,
        }));
        (state, WorkQueue(rx))
    }

    /// Asks the worker to drive `run_id` (after a start or a decision).
    pub fn kick(&self, run_id: &str) {
        // The receiver only goes away at shutdown; the run is then resumed
        // by the next process, so a lost kick loses nothing.
        let _ = self.kick.send(run_id.to_owned());
    }

    /// A signed link for `approver` to decide `step` of `run`, valid for `ttl`.
    pub fn approver_link(&self, run: &str, step: &str, approver: &str, ttl: Duration) -> String {
        approver_link(&self.signer, &self.public_url, run, step, approver, ttl)
    }
}

/// A signed decision-page link (what `fleet gate link` prints).
pub fn approver_link(
    signer: &Signer,
    public_url: &str,
    run: &str,
    step: &str,
    approver: &str,
    ttl: Duration,
) -> String {
    let expires = jiff::Timestamp::now()
        .as_second()
        .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    let token = signer.approver_token(&ApproverClaims {
        run: run.to_owned(),
        step: step.to_owned(),
        approver: approver.to_owned(),
        expires,
    });
    format!(
        "{}/runs/{}/gates/{}?t={}",
        public_url.trim_end_matches('/'),
        views::url_segment(run),
        views::url_segment(step),
        token
    )
}

/// The whole application: pages, decision page, API, health and metrics,
/// with a request id, a log event and security headers on every response.
pub fn router(state: AppState) -> Router {
    router_with_config(state, None)
}

/// [`router`], with the config file the MCP tool `validate_config` checks.
pub fn router_with_config(state: AppState, config_path: Option<std::path::PathBuf>) -> Router {
    // MCP over streamable HTTP: the same tools as `fleet mcp`, for
    // operators' agents; runs started there go to this server's worker.
    let kick = state.clone();
    let mcp = fleet_mcp::FleetTools::new(
        state.engine.clone(),
        config_path,
        fleet_mcp::Execution::Worker,
        "mcp".into(),
    )
    .with_on_start(move |id| kick.kick(id));
    let operator = Router::new()
        .merge(pages::operator_routes())
        .merge(api::operator_routes())
        .route("/metrics", axum::routing::get(metrics::metrics))
        .nest_service(
            "/mcp",
            fleet_mcp::http_service(mcp, fleet_mcp::public_hosts(&state.public_url)),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_operator,
        ));
    let public = Router::new()
        .merge(pages::public_routes())
        .merge(api::public_routes())
        .merge(hooks::routes())
        .route("/healthz", axum::routing::get(healthz));
    Router::new()
        .merge(operator)
        .merge(public)
        .fallback(pages::not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(request_log::layer))
}

/// Security headers on every response, set by `request_log::layer`: one
/// layer for both, as each layer of a router wraps every route once more.
fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Approver links carry their token in the URL: never leak it in a Referer.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    // Healthy = the database answers.
    match state
        .engine
        .store()
        .list_runs(&fleet_store::RunFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
    {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {e}\n"),
        )
            .into_response(),
    }
}

/// Settings of `fleet serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bind: SocketAddr,
    pub auth: OperatorAuth,
    /// Defaults to `http://<bind>`.
    pub public_url: Option<String>,
    pub link_ttl: Duration,
    /// How long shutdown waits for in-flight steps before leaving them to
    /// their lease (another process resumes them after it expires).
    pub drain_timeout: Duration,
    pub scheduler: bool,
    /// The config file the MCP tool `validate_config` checks (none: refused).
    pub config_path: Option<std::path::PathBuf>,
}

/// Refuses settings that would expose an unauthenticated dashboard.
pub fn check_options(opts: &ServeOptions) -> Result<(), ServerError> {
    if opts.auth.open {
        if !opts.bind.ip().is_loopback() {
            return Err(ServerError::Config(format!(
                "--insecure-local only works on a loopback address, not {}; set FLEET_API_TOKEN instead",
                opts.bind
            )));
        }
    } else if opts
        .auth
        .api_token
        .as_deref()
        .is_none_or(|t| t.trim().is_empty())
    {
        return Err(ServerError::Config(
            "set FLEET_API_TOKEN (operators use it as a bearer token or on the login page), \
             or pass --insecure-local to serve without operator authentication on loopback"
                .into(),
        ));
    }
    Ok(())
}

/// Runs the server, the worker and the scheduler until SIGTERM or Ctrl-C,
/// then stops accepting requests and lets in-flight steps finish (up to
/// `drain_timeout`). `ready` receives the bound address (port 0 picks one).
pub async fn serve(
    engine: Arc<Engine>,
    signer: Signer,
    opts: ServeOptions,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    check_options(&opts)?;
    // Read now, so a hook secret missing from the environment stops the
    // start instead of turning every delivery away later.
    let hooks = HookSecrets::from_config(&engine.config().server, |name| std::env::var(name).ok())?;
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|source| ServerError::Bind {
            addr: opts.bind.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: opts.bind.to_string(),
        source,
    })?;
    let public_url = opts
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let (state, queue) = AppState::with_hooks(
        engine.clone(),
        signer,
        opts.auth.clone(),
        public_url,
        opts.link_ttl,
        hooks,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(worker::run(
        engine.clone(),
        queue,
        stop_rx.clone(),
        opts.drain_timeout,
    ));
    let scheduler = opts.scheduler.then(|| {
        tokio::spawn(scheduler::run(
            engine.clone(),
            state.clone(),
            stop_rx.clone(),
        ))
    });
    // SIGTERM is taken over before anyone is told the server is up, so a
    // signal right after the listening line shuts it down gracefully.
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    #[cfg(not(unix))]
    let term = None::<()>;
    ready(local);
    let app = router_with_config(state, opts.config_path.clone());
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal(term))
        .await;
    let _ = stop_tx.send(true);
    if let Some(s) = scheduler {
        let _ = s.await;
    }
    let _ = worker.await;
    served.map_err(|e| ServerError::io(Path::new("(http server)"), e))
}

#[cfg(unix)]
async fn shutdown_signal(term: Option<tokio::signal::unix::Signal>) {
    let term = async {
        match term {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("fleet serve shutting down (finishing in-flight steps)");
}

#[cfg(not(unix))]
async fn shutdown_signal(_term: Option<()>) {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("fleet serve shutting down (finishing in-flight steps)");
}
