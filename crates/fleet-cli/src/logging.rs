//! Logs of the long-running processes (`fleet serve`, `fleet worker`):
//! `tracing` events on stderr, as human lines or one JSON object per line.
//! Interactive commands print for people on stdout and install nothing, so
//! the libraries' events cost them nothing.
//!
//! What may be logged: ids, names, statuses, timings, counts and error
//! messages. Never query strings (approver links carry their token in
//! `?t=`), headers, bodies, tokens, passwords, API keys or secrets; the
//! database is named only as `DatabaseUrl` displays it (password redacted).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (a service manager, a pipe, a file).
    Auto,
    Human,
    Json,
}

/// Info for Fleet's own crates, warnings from everything else.
const DEFAULT_FILTER: &str = "warn,fleet=info,fleet_server=info,fleet_engine=info,\
     fleet_notify=info,fleet_store=info,fleet_models=info,fleet_corpus=info";

static JSON: AtomicBool = AtomicBool::new(false);

/// Installs the subscriber once; `RUST_LOG` (env-filter syntax) overrides
/// the default filter. A filter that does not parse is reported and the
/// default used: a typo must not keep a server from starting.
pub fn init(format: LogFormat) {
    let json = match format {
        LogFormat::Auto => !std::io::stderr().is_terminal(),
        LogFormat::Human => false,
        LogFormat::Json => true,
    };
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => match EnvFilter::try_new(&text) {
            Ok(f) => (f, None),
            Err(e) => (EnvFilter::new(DEFAULT_FILTER), Some(e.to_string())),
        },
        _ => (EnvFilter::new(DEFAULT_FILTER), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    if installed.is_ok() {
        JSON.store(json, Ordering::SeqCst);
    }
    if let Some(e) = bad {
        tracing::warn!(error = %e, default = DEFAULT_FILTER, "RUST_LOG does not parse; using the default filter");
    }
}

/// Whether stderr carries JSON lines (so nothing else may be printed there).
pub fn is_json() -> bool {
    JSON.load(Ordering::SeqCst)
}

/// The binary's last word on a failure: a JSON log line when stderr is
/// JSON, else the plain line.
pub fn error(text: &str) {
    if is_json() {
        tracing::error!(error = %text, "fleet stopped");
    } else {
        eprintln!("{text}");
    }
}

/// Config warnings: rendered with their line and caret for people, one
/// event each (the rendering in `warning`) in JSON.
pub fn warnings(ws: &crate::workspace::Workspace, cwd: &std::path::Path) {
    if !is_json() {
        ws.print_warnings(cwd);
        return;
    }
    let shown = ws.display_config_path(cwd);
    for d in &ws.warnings {
        tracing::warn!(warning = %d.render(&shown, &ws.source), "config warning");
    }
}

/// The logging flags of `fleet serve` and `fleet worker`.
#[derive(Clone, Debug, clap::Args)]
pub struct LogArgs {
    /// Log lines for people, or one JSON object per line (auto: JSON when
    /// stderr is not a terminal). Filter with RUST_LOG (default:
    /// info for fleet, warn for the rest).
    #[arg(long, value_enum, default_value_t = LogFormat::Auto, env = "FLEET_LOG_FORMAT")]
    pub log_format: LogFormat,
}
