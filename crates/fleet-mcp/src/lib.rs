//! Fleet for agents, over the Model Context Protocol (`rmcp`): list and
//! validate genflows, start runs, read their reports and review flags, see
//! what a gate waits for, and have a decision link emailed to an approver.
//!
//! **No tool decides a gate, cancels a decision or edits a document.** An
//! agent can prepare everything a person needs to decide, and nothing more:
//! the set of tools is fixed here, and the link tool sends the link through
//! the normal email channel to the approver, never back to the caller.
//! The same [`FleetTools`] serve `fleet mcp` (stdio) and `/mcp` on
//! `fleet serve` (streamable HTTP, behind operator auth).

mod args;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod views;

use args::*;
use fleet_engine::{Engine, EngineError, Quiet, Until};
use fleet_store::{RunFilter, StoreError};
use rmcp::handler::server::{router::tool::ToolRouter, wrapper::Parameters};
use rmcp::model::{CallToolResult, ContentBlock, Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData as McpError, ServerHandler, tool, tool_handler, tool_router};
use std::path::PathBuf;
use std::sync::Arc;

pub use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

/// The names of every tool, in the order they are listed. A test holds the
/// server to this list: adding a tool means adding it here, on purpose.
pub const TOOL_NAMES: &[&str] = &[
    "list_genflows",
    "validate_config",
    "start_run",
    "list_runs",
    "show_run",
    "read_document",
    "read_flags",
    "gate_status",
    "send_decision_link",
];

/// Most bytes of a document one `read_document` returns.
const MAX_DOCUMENT_BYTES: usize = 512 * 1024;

/// How this process runs the runs an agent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Execute the steps here until the run waits at a gate or ends (`fleet
    /// mcp`: nothing else may be executing them).
    Inline,
    /// Leave them to the server's worker (or `fleet worker`s) and follow
    /// the run until it waits or ends.
    Worker,
}

/// Called with the id of a run an agent started.
type OnStart = Arc<dyn Fn(&str) + Send + Sync>;

/// The tools, over one engine.
#[derive(Clone)]
pub struct FleetTools {
    engine: Arc<Engine>,
    /// The config file `validate_config` reads again from disk.
    config_path: Option<PathBuf>,
    execution: Execution,
    /// Recorded as `triggered_by` of the runs started here, e.g. `mcp`.
    actor: String,
    /// Told the id of every run started here (a server kicks its worker).
    on_start: Option<OnStart>,
    #[allow(dead_code, reason = "read by the #[tool_handler] expansion")]
    tool_router: ToolRouter<Self>,
}

impl FleetTools {
    pub fn new(
        engine: Arc<Engine>,
        config_path: Option<PathBuf>,
        execution: Execution,
        actor: String,
    ) -> FleetTools {
        FleetTools {
            engine,
            config_path,
            execution,
            actor,
            on_start: None,
            tool_router: Self::tool_router(),
        }
    }

    /// Calls `hook` with the id of each run an agent starts.
    pub fn with_on_start(mut self, hook: impl Fn(&str) + Send + Sync + 'static) -> FleetTools {
        self.on_start = Some(Arc::new(hook));
        self
    }
}

/// A refusal or failure as the MCP error the client sees: what went wrong,
/// in a sentence a person (or an agent) can act on.
fn engine_error(e: EngineError) -> McpError {
    match e {
        EngineError::Store(StoreError::Invalid(_) | StoreError::NotFound(_))
        | EngineError::Params(_)
        | EngineError::UnknownGenflow { .. }
        | EngineError::Usage { .. }
        | EngineError::Refused(_) => McpError::invalid_params(e.to_string(), None),
        other => McpError::internal_error(other.to_string(), None),
    }
}

fn store_error(e: StoreError) -> McpError {
    engine_error(EngineError::Store(e))
}

fn view_error(e: views::ViewError) -> McpError {
    match e {
        views::ViewError::Store(e) => store_error(e),
        views::ViewError::Usage(m) => McpError::invalid_params(m, None),
    }
}

fn json_result(value: serde_json::Value) -> Result<CallToolResult, McpError> {
    Ok(CallToolResult::success(vec![ContentBlock::json(value)?]))
}

#[tool_router]
impl FleetTools {
    #[tool(
        description = "List the genflows this Fleet can run, with their parameters (name, default, description, pattern) and steps."
    )]
    async fn list_genflows(
        &self,
        Parameters(NoArgs {}): Parameters<NoArgs>,
    ) -> Result<CallToolResult, McpError> {
        json_result(views::genflows(self.engine.config()))
    }

    #[tool(
        description = "Check the config file on disk as `fleet validate` does; returns `ok` and every error and warning with its file:line:column."
    )]
    async fn validate_config(
        &self,
        Parameters(NoArgs {}): Parameters<NoArgs>,
    ) -> Result<CallToolResult, McpError> {
        let Some(path) = &self.config_path else {
            return Err(McpError::invalid_params(
                "this server was started without a config file to check",
                None,
            ));
        };
        let text = tokio::fs::read_to_string(path).await.map_err(|e| {
            McpError::internal_error(format!("cannot read {}: {e}", path.display()), None)
        })?;
        json_result(views::validation(&path.display().to_string(), &text))
    }

    #[tool(
        description = "Start a run of a genflow with parameter values; returns the run once it waits at an approval gate or ends. Starting a run decides nothing."
    )]
    async fn start_run(
        &self,
        Parameters(args): Parameters<StartRunArgs>,
    ) -> Result<CallToolResult, McpError> {
        let run = self
            .engine
            .start_run_with_params(
                &args.genflow,
                Some(self.actor.clone()),
                &args.params,
                fleet_store::new_run_id(),
            )
            .await
            .map_err(engine_error)?;
        if let Some(hook) = &self.on_start {
            hook(&run.id);
        }
        let execute = self.execution == Execution::Inline;
        let run = self
            .engine
            .follow(&run.id, &Quiet, execute, Until::GateOrEnd)
            .await
            .map_err(engine_error)?;
        json_result(views::run(&self.engine, &run).await.map_err(store_error)?)
    }

    #[tool(
        description = "List runs, newest first, optionally of one genflow and/or in one status (running, waiting, succeeded, rejected, failed, cancelled)."
    )]
    async fn list_runs(
        &self,
        Parameters(args): Parameters<ListRunsArgs>,
    ) -> Result<CallToolResult, McpError> {
        let status = args
            .status
            .as_deref()
            .map(|s| {
                fleet_core::run::RunStatus::from_name(s).ok_or_else(|| {
                    McpError::invalid_params(
                        format!("unknown status `{s}` (running, waiting, succeeded, rejected, failed, cancelled)"),
                        None,
                    )
                })
            })
            .transpose()?;
        let filter = RunFilter {
            genflow: args.genflow,
            status,
            limit: Some(args.limit.unwrap_or(20).clamp(1, 200)),
            before: None,
        };
        let runs = self
            .engine
            .store()
            .list_runs(&filter)
            .await
            .map_err(store_error)?;
        json_result(serde_json::Value::Array(
            runs.iter().map(views::run_line).collect(),
        ))
    }

    #[tool(
        description = "Show a run: its status, parameters, every step (status, attempts, tokens, cost, model), its documents with revision and sha256, and its decisions."
    )]
    async fn show_run(
        &self,
        Parameters(args): Parameters<RunArgs>,
    ) -> Result<CallToolResult, McpError> {
        let run = self.engine.run(&args.run).await.map_err(engine_error)?;
        json_result(views::run(&self.engine, &run).await.map_err(store_error)?)
    }

    #[tool(
        description = "Read a document of a run (e.g. the readiness report), the latest revision unless `revision` is given; returns its text, revision and sha256."
    )]
    async fn read_document(
        &self,
        Parameters(args): Parameters<ReadDocumentArgs>,
    ) -> Result<CallToolResult, McpError> {
        let run = self.engine.run(&args.run).await.map_err(engine_error)?;
        let refs = self
            .engine
            .store()
            .artifacts(&run.id)
            .await
            .map_err(store_error)?;
        let found = refs
            .iter()
            .filter(|r| r.path == args.path)
            .filter(|r| args.revision.is_none_or(|rev| r.revision == rev))
            .max_by_key(|r| r.revision)
            .ok_or_else(|| {
                let mut paths: Vec<&str> = refs.iter().map(|r| r.path.as_str()).collect();
                paths.dedup();
                McpError::invalid_params(
                    match args.revision {
                        Some(rev) => {
                            format!("run {} has no revision {rev} of `{}`", run.id, args.path)
                        }
                        None => format!(
                            "run {} has no document `{}` (documents: {})",
                            run.id,
                            args.path,
                            paths.join(", ")
                        ),
                    },
                    None,
                )
            })?;
        let bytes = self
            .engine
            .store()
            .artifact_bytes(&found.sha256)
            .await
            .map_err(store_error)?
            .ok_or_else(|| {
                McpError::internal_error(format!("the bytes of {} are missing", found.path), None)
            })?;
        json_result(views::document(found, &bytes, MAX_DOCUMENT_BYTES))
    }

    #[tool(
        description = "Read the review flags of a run (what the independent review says the report understates), per review step, latest revision; optionally of one step."
    )]
    async fn read_flags(
        &self,
        Parameters(args): Parameters<ReadFlagsArgs>,
    ) -> Result<CallToolResult, McpError> {
        let run = self.engine.run(&args.run).await.map_err(engine_error)?;
        json_result(
            views::flags(&self.engine, &run, args.step.as_deref())
                .await
                .map_err(view_error)?,
        )
    }

    #[tool(
        description = "Show what an approval gate waits for: its question, who may decide (and how many Go votes are needed), the votes so far, and the documents the approvers are shown. Deciding is for those people, not for this API."
    )]
    async fn gate_status(
        &self,
        Parameters(args): Parameters<GateArgs>,
    ) -> Result<CallToolResult, McpError> {
        let run = self.engine.run(&args.run).await.map_err(engine_error)?;
        json_result(
            views::gates(&self.engine, &run, args.gate.as_deref())
                .await
                .map_err(view_error)?,
        )
    }

    #[tool(
        description = "Email a named approver a fresh decision link for a waiting gate, through Fleet's normal email channel. The link goes only to the approver's inbox; it is never returned here."
    )]
    async fn send_decision_link(
        &self,
        Parameters(args): Parameters<SendLinkArgs>,
    ) -> Result<CallToolResult, McpError> {
        let n = self
            .engine
            .send_decision_link(&args.run, &args.gate, &args.approver)
            .await
            .map_err(engine_error)?;
        json_result(serde_json::json!({
            "sent_to": args.approver,
            "gate": args.gate,
            "request": n,
            "note": "the decision link was emailed to the approver; it is not shown here",
        }))
    }
}

#[tool_handler]
impl ServerHandler for FleetTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("fleet", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Fleet runs genflows: a report drafts a document from real sources, an independent \
                 review flags what it underplays, and a named person decides Go or No-go at an \
                 approval gate. You can start runs, read the documents and flags, and see what a \
                 gate waits for. You cannot decide, cancel or edit: those belong to the approvers.",
            )
    }
}

/// Serves the tools on standard input and output until the client closes
/// them (`fleet mcp`).
pub async fn serve_stdio(tools: FleetTools) -> Result<(), String> {
    use rmcp::ServiceExt as _;
    let service = tools
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("MCP session did not start: {e}"))?;
    service
        .waiting()
        .await
        .map_err(|e| format!("MCP session ended with an error: {e}"))?;
    Ok(())
}

/// The tools as a streamable-HTTP service for `/mcp` (each session gets
/// its own [`FleetTools`] over the shared engine). `hosts` are the `Host`
/// values to accept besides loopback ones (rmcp refuses others, against
/// DNS rebinding): the server's public host, with and without its port.
pub fn http_service(
    tools: FleetTools,
    hosts: impl IntoIterator<Item = String>,
) -> StreamableHttpService<FleetTools, LocalSessionManager> {
    let mut config = StreamableHttpServerConfig::default();
    config.allowed_hosts.extend(hosts);
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    )
}

/// `example.com` and `example.com:8443` of `https://example.com:8443/fleet`.
pub fn public_hosts(public_url: &str) -> Vec<String> {
    let rest = public_url
        .split_once("://")
        .map_or(public_url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.is_empty() {
        return Vec::new();
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            if port.chars().all(|c| c.is_ascii_digit()) {
                host
            } else {
                authority
            }
        }
        _ => authority,
    };
    let mut hosts = vec![authority.to_owned()];
    if host != authority {
        hosts.push(host.to_owned());
    }
    hosts
}

#[cfg(test)]
mod tests {
    #[test]
    fn public_hosts_name_the_host_with_and_without_port() {
        assert_eq!(
            super::public_hosts("https://fleet.example.com:8443/x"),
            ["fleet.example.com:8443", "fleet.example.com"]
        );
        assert_eq!(super::public_hosts("http://fleet.test"), ["fleet.test"]);
        assert_eq!(super::public_hosts("nonsense"), ["nonsense"]);
        assert!(super::public_hosts("http://").is_empty());
    }
}
