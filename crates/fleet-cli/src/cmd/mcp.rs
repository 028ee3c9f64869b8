//! `fleet mcp`: Fleet's tools for agents (Claude Code, Cursor, any MCP
//! client) over standard input and output. Standard output carries the
//! protocol only; everything else goes to standard error.

use crate::context::{App, current_user};
use anyhow::{Result, anyhow};
use fleet_mcp::{Execution, FleetTools};

pub async fn run(app: &App, on_workers: bool) -> Result<()> {
    // The runs an agent starts are its own: recorded as `mcp:<user>`, which
    // is not the user, so the user may still decide them (and self-approval
    // rules apply to the agent, not to the person it works for).
    let actor = match current_user(None) {
        Some(user) => format!("mcp:{user}"),
        None => "mcp".to_owned(),
    };
    let execution = if on_workers {
        Execution::Worker
    } else {
        Execution::Inline
    };
    let tools = FleetTools::new(
        app.engine.clone(),
        Some(app.ws.config_path.clone()),
        execution,
        actor,
    );
    eprintln!(
        "fleet mcp: serving {} tools on stdio for {} (database {})",
        fleet_mcp::TOOL_NAMES.len(),
        app.ws.root.display(),
        app.database
    );
    fleet_mcp::serve_stdio(tools).await.map_err(|e| anyhow!(e))
}
