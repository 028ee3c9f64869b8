//! MCP over streamable HTTP at `/mcp` (router `oneshot`, a real store and
//! engine): operator auth first, then the same tools as `fleet mcp`, and
//! the public host is accepted while a foreign `Host` is refused.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};

fn mcp_post(bearer: Option<&str>, host: &str, session: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::post("/mcp")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header(header::HOST, host);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(s) = session {
        b = b.header("mcp-session-id", s);
    }
    b.body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

/// The JSON-RPC message of a reply, whether sent as JSON or as one SSE event.
fn message(body: &str) -> Value {
    let text = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| d.starts_with('{'))
        .unwrap_or(body);
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {body}"))
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "router-test", "version": "1"}}})
}

#[tokio::test]
async fn mcp_needs_the_operator_and_lists_the_tools_but_no_decision() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();

    // Without the operator token nothing reaches the MCP service.
    let refused = send(&app, mcp_post(None, "fleet.test", None, initialize())).await;
    assert!(
        matches!(
            refused.status,
            StatusCode::UNAUTHORIZED | StatusCode::SEE_OTHER
        ),
        "{} {}",
        refused.status,
        refused.body
    );
    assert!(refused.body.find("serverInfo").is_none());
    let wrong = send(
        &app,
        mcp_post(Some("not-the-token"), "fleet.test", None, initialize()),
    )
    .await;
    assert_ne!(wrong.status, StatusCode::OK, "{}", wrong.body);

    // A Host that is neither loopback nor the public URL's is refused.
    let foreign = send(
        &app,
        mcp_post(Some(API_TOKEN), "evil.example", None, initialize()),
    )
    .await;
    assert_ne!(foreign.status, StatusCode::OK, "{}", foreign.body);

    let init = send(
        &app,
        mcp_post(Some(API_TOKEN), "fleet.test", None, initialize()),
    )
    .await;
    assert_eq!(init.status, StatusCode::OK, "{}", init.body);
    let info = message(&init.body);
    assert_eq!(info["result"]["serverInfo"]["name"], "fleet", "{info}");
    let session = init
        .headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let session = session.as_deref();
    let done = send(
        &app,
        mcp_post(
            Some(API_TOKEN),
            "fleet.test",
            session,
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        ),
    )
    .await;
    assert!(done.status.is_success(), "{} {}", done.status, done.body);

    let listed = send(
        &app,
        mcp_post(
            Some(API_TOKEN),
            "fleet.test",
            session,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        ),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let tools = message(&listed.body);
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools: {tools}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names.len(), fleet_mcp::TOOL_NAMES.len(), "{names:?}");
    assert!(names.contains(&"gate_status"));

    let shown = send(
        &app,
        mcp_post(
            Some(API_TOKEN),
            "fleet.test",
            session,
            json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "gate_status", "arguments": {"run": run.id}}}),
        ),
    )
    .await;
    let reply = message(&shown.body);
    let text = reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{reply}"));
    let gates: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(gates[0]["status"], "waiting");
    assert!(!text.contains("?t="), "a decision link leaked: {text}");

    let decide = send(
        &app,
        mcp_post(
            Some(API_TOKEN),
            "fleet.test",
            session,
            json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
            "params": {"name": "decide", "arguments": {"run": run.id, "verdict": "go"}}}),
        ),
    )
    .await;
    let reply = message(&decide.body);
    assert!(
        reply.get("error").is_some() || reply["result"]["isError"] == true,
        "an unknown tool was not refused: {reply}"
    );
    assert!(
        env.store()
            .decisions(&run.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );
}
