//! The MCP tools against a run waiting at its gate, through rmcp's own
//! client over an in-memory connection: the tool list is exactly the
//! published one, and every tool, called with every argument shape it
//! accepts and with shapes it does not, leaves the gate waiting with no
//! decision, answers bad input with an MCP error and never takes the
//! server down.

use fleet_engine::{Engine, Quiet, Settings};
use fleet_mcp::{Execution, FleetTools, TOOL_NAMES};
use fleet_store::{SqliteStore, Store};
use rmcp::model::{CallToolRequestParams, ClientConfig};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

#[derive(Clone, Default)]
struct Client;

impl ClientHandler for Client {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// The release-gate example, with a `version` param, run to its gate.
async fn waiting_run(dir: &Path) -> (Arc<Engine>, String) {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate"),
        dir,
    );
    let config_path = dir.join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&config_path).expect("config");
    let text = text.replace(
        "    description: Go/no-go for the next release, decided by the release owner on the evidence.\n",
        "    description: Go/no-go for the next release, decided by the release owner on the evidence.\n    params: [{name: version, default: 2.4.0, pattern: '\\d+\\.\\d+\\.\\d+'}]\n",
    );
    assert!(text.contains("params:"), "the example config changed");
    std::fs::write(&config_path, &text).expect("write config");
    let config = fleet_core::config::check_str(&text)
        .config
        .expect("valid config");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.join(".fleet/fleet.db"))
            .await
            .expect("store"),
    );
    let engine = Arc::new(Engine::new(
        store,
        Arc::new(config),
        Settings::new(dir.to_path_buf()),
    ));
    let run = engine
        .start_run("release-gate", Some("ci@example.com".into()))
        .await
        .expect("start");
    let run = engine.drive(&run.id, &Quiet).await.expect("drive");
    assert_eq!(run.state.status.as_str(), "waiting");
    (engine, run.id)
}

fn object(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[tokio::test]
async fn no_tool_decides_cancels_or_edits_whatever_it_is_given() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (engine, run_id) = waiting_run(tmp.path()).await;
    let before = engine.run(&run_id).await.expect("run");
    let artifacts_before = engine.store().artifacts(&run_id).await.expect("artifacts");

    let tools = FleetTools::new(
        engine.clone(),
        Some(tmp.path().join(".fleet/config.yaml")),
        Execution::Inline,
        "mcp:test".into(),
    );
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = tokio::spawn(async move {
        let running = tools.serve(server_io).await.expect("server starts");
        let _ = running.waiting().await;
    });
    let client = Client.serve(client_io).await.expect("client connects");

    // The tools are exactly the published list, and none takes a verdict.
    let listed = client.list_all_tools().await.expect("list tools");
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names.len(), TOOL_NAMES.len(), "{names:?}");
    for name in TOOL_NAMES {
        assert!(names.contains(name), "{name} is not listed: {names:?}");
    }
    for tool in &listed {
        let schema = Value::Object(tool.input_schema.as_ref().clone()).to_string();
        for word in [
            "verdict", "decision", "reason", "approve", "cancel", "content",
        ] {
            assert!(
                !schema.contains(&format!("\"{word}\"")),
                "{} takes `{word}`: {schema}",
                tool.name
            );
        }
    }

    let run = run_id.as_str();
    let gate = "go-no-go";
    let owner = "release-owner@example.com";
    // Every tool with the shapes it accepts, and with shapes it does not:
    // nothing, a wrong type, an unknown run or gate, an extra `verdict`.
    let mut calls: Vec<(&str, Value)> = Vec::new();
    let hostile = [
        json!({"verdict": "go"}),
        json!({"run": run, "gate": gate, "verdict": "go", "approver": owner}),
        json!({"run": 42}),
        json!({"run": "no-such-run"}),
        json!({"run": run, "gate": "no-such-gate"}),
        json!([1, 2, 3]),
    ];
    for name in TOOL_NAMES {
        calls.push((name, json!({})));
        for h in &hostile {
            calls.push((name, h.clone()));
        }
    }
    calls.extend([
        ("list_genflows", json!({})),
        ("validate_config", json!({})),
        (
            "start_run",
            json!({"genflow": "release-gate", "params": {"version": "2.4.1"}}),
        ),
        (
            "start_run",
            json!({"genflow": "release-gate", "params": {"version": "not-a-version"}}),
        ),
        ("start_run", json!({"genflow": "no-such-flow"})),
        ("list_runs", json!({"status": "waiting", "limit": 5})),
        ("list_runs", json!({"status": "decided"})),
        ("show_run", json!({"run": run})),
        ("read_document", json!({"run": run, "path": "readiness.md"})),
        (
            "read_document",
            json!({"run": run, "path": "readiness.md", "revision": 1}),
        ),
        (
            "read_document",
            json!({"run": run, "path": "readiness.md", "revision": 99}),
        ),
        (
            "read_document",
            json!({"run": run, "path": "../../etc/passwd"}),
        ),
        ("read_flags", json!({"run": run})),
        ("read_flags", json!({"run": run, "step": "risk-review"})),
        ("read_flags", json!({"run": run, "step": "readiness"})),
        ("gate_status", json!({"run": run})),
        ("gate_status", json!({"run": run, "gate": gate})),
        (
            "send_decision_link",
            json!({"run": run, "gate": gate, "approver": owner}),
        ),
        (
            "send_decision_link",
            json!({"run": run, "gate": gate, "approver": "mallory@example.com"}),
        ),
        (
            "send_decision_link",
            json!({"run": run, "gate": "readiness", "approver": owner}),
        ),
    ]);
    let mut ok = Vec::new();
    for (name, args) in &calls {
        let mut params = CallToolRequestParams::new(name.to_string());
        if let Some(obj) = args.as_object() {
            params = params.with_arguments(obj.clone());
        }
        match client.call_tool(params).await {
            Ok(result) if result.is_error != Some(true) => ok.push((*name, args.clone())),
            // An error result or an MCP error: refused, with a message.
            Ok(_) => {}
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // Only the well-formed reading calls and the valid start succeeded.
    for (name, args) in &ok {
        let text = args.to_string();
        assert!(
            !text.contains("verdict") && !text.contains("no-such") && args["run"] != json!(42),
            "{name} accepted {args}"
        );
    }
    let succeeded: Vec<&str> = ok.iter().map(|(n, _)| *n).collect();
    for name in [
        "list_genflows",
        "validate_config",
        "start_run",
        "read_document",
        "read_flags",
        "gate_status",
    ] {
        assert!(
            succeeded.contains(&name),
            "{name} never succeeded: {succeeded:?}"
        );
    }
    // No email channel here, so not even the link could be sent.
    assert!(!succeeded.contains(&"send_decision_link"));

    // The gate still waits, on the same state and documents, undecided.
    let after = engine.run(&run_id).await.expect("run");
    assert_eq!(after.version, before.version, "the waiting run changed");
    assert_eq!(after.state, before.state);
    assert!(
        engine
            .store()
            .decisions(&run_id)
            .await
            .expect("decisions")
            .is_empty()
    );
    assert_eq!(
        engine.store().artifacts(&run_id).await.expect("artifacts"),
        artifacts_before
    );
    // The server is still up after all of it.
    assert_eq!(
        client.list_all_tools().await.expect("list again").len(),
        TOOL_NAMES.len()
    );
    client.cancel().await.expect("close");
    server.await.expect("server task");
}

#[tokio::test]
async fn read_tools_return_the_documents_and_flags_of_the_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (engine, run_id) = waiting_run(tmp.path()).await;
    let tools = FleetTools::new(engine.clone(), None, Execution::Inline, "mcp:test".into());
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        if let Ok(running) = tools.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    let client = Client.serve(client_io).await.expect("client connects");
    let call = |name: &'static str, args: Value| {
        let client = &client;
        async move {
            let result = client
                .call_tool(CallToolRequestParams::new(name).with_arguments(object(args)))
                .await
                .expect("call");
            assert_ne!(result.is_error, Some(true), "{name}: {result:?}");
            let text = result.content[0].as_text().expect("text").text.clone();
            serde_json::from_str::<Value>(&text).expect("json")
        }
    };
    let doc = call(
        "read_document",
        json!({"run": run_id, "path": "readiness.md"}),
    )
    .await;
    let refs = engine.store().artifacts(&run_id).await.expect("artifacts");
    let readiness = refs.iter().find(|r| r.path == "readiness.md").expect("ref");
    let bytes = engine
        .store()
        .artifact_bytes(&readiness.sha256)
        .await
        .expect("bytes")
        .expect("stored");
    assert_eq!(doc["text"], String::from_utf8_lossy(&bytes).as_ref());
    assert_eq!(doc["sha256"], readiness.sha256);

    let flags = call("read_flags", json!({"run": run_id})).await;
    assert_eq!(flags[0]["step"], "risk-review");
    assert!(
        flags[0]["flags"].as_array().is_some_and(|f| !f.is_empty()),
        "{flags}"
    );
    let gate = call("gate_status", json!({"run": run_id})).await;
    assert_eq!(gate[0]["gate"], "go-no-go");
    assert_eq!(gate[0]["status"], "waiting");
    assert_eq!(gate[0]["approvers"], json!(["release-owner@example.com"]));
    let shown: Vec<&str> = gate[0]["shown_documents"]
        .as_array()
        .expect("shown")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(
        shown.contains(&"readiness.md") && shown.contains(&"risks.md"),
        "{shown:?}"
    );
    let listed = call("list_runs", json!({"status": "waiting"})).await;
    assert_eq!(listed[0]["run_id"], run_id);
    let flows = call("list_genflows", json!({})).await;
    assert_eq!(flows[0]["params"][0]["name"], "version");
    client.cancel().await.expect("close");
}
