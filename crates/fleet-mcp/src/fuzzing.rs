//! The property the `mcp` fuzz target checks, kept here so the regression
//! test (`tests/fuzz_regressions.rs`) replays saved inputs through the same
//! code. Not a public API: only with the `fuzzing` feature.
//!
//! One process keeps one engine on a SQLite store in a scratch directory,
//! with the release-gate example run to its gate (run id [`RUN_ID`]); each
//! input is a new MCP session over an in-memory pipe that sends the
//! input's lines as JSON-RPC messages after the handshake.

use crate::{Execution, FleetTools};
use fleet_engine::{Engine, Quiet, Settings};
use fleet_store::{SqliteStore, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The run waiting at its gate that every session may look at (and must
/// not be able to change).
pub const RUN_ID: &str = "fuzz-run";

const HANDSHAKE: &str = concat!(
    r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"fuzz","version":"0"}}}"#,
    "\n",
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    "\n"
);
const LAST: &str = r#"{"jsonrpc":"2.0","id":"fuzz-last","method":"ping"}"#;

/// How long a session may take before it counts as hung; the fuzzer's own
/// timeout reports a hang long before this.
const SESSION_LIMIT: Duration = Duration::from_secs(30);

struct Harness {
    runtime: tokio::runtime::Runtime,
    engine: Arc<Engine>,
    config_path: PathBuf,
}

/// An MCP session sending `data`'s lines: the server never panics or dies
/// (it still answers a ping sent after them), and the waiting run is not
/// decided, cancelled or edited.
pub fn mcp(data: &[u8]) {
    let h = harness();
    h.runtime.block_on(async {
        let before = h.engine.run(RUN_ID).await.expect("the waiting run");
        let tools = FleetTools::new(
            h.engine.clone(),
            Some(h.config_path.clone()),
            Execution::Inline,
            "mcp:fuzz".into(),
        );
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = tokio::spawn(async move {
            if let Ok(running) = rmcp::ServiceExt::serve(tools, server_io).await {
                let _ = running.waiting().await;
            }
        });
        let (reader, mut writer) = tokio::io::split(client_io);
        // Written while the answers are read, so neither side's buffer
        // fills up and blocks the other.
        let input = [HANDSHAKE.as_bytes(), data, b"\n", LAST.as_bytes(), b"\n"].concat();
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&input).await;
            writer
        });
        let mut lines = BufReader::new(reader).lines();
        // The last ping must be answered; a hung or dead server is a bug.
        let until_last = async {
            let mut answers = 0;
            while let Some(line) = lines.next_line().await? {
                answers += 1;
                if line.contains("\"fuzz-last\"") {
                    return Ok(answers);
                }
            }
            Err(std::io::Error::other("the server closed the session"))
        };
        let answered = tokio::time::timeout(SESSION_LIMIT, until_last).await;
        let Ok(Ok(mut answers)) = answered else {
            panic!("the server did not answer a ping after the input: {answered:?}");
        };
        // Requests are answered concurrently: give those still running a
        // moment, so the tools they call run to the end. (Not every line
        // that looks like a request gets an answer: a repeated id, say.)
        let requests = data
            .split(|b| *b == b'\n')
            .filter(|l| looks_like_request(l))
            .count();
        while answers < requests + 2 {
            match tokio::time::timeout(Duration::from_millis(200), lines.next_line()).await {
                Ok(Ok(Some(_))) => answers += 1,
                _ => break,
            }
        }
        // Both halves dropped: the server sees the session end.
        drop(lines);
        drop(writing.await.expect("the writer task"));
        if let Ok(Err(e)) = tokio::time::timeout(SESSION_LIMIT, server).await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }

        let after = h.engine.run(RUN_ID).await.expect("the waiting run");
        assert_eq!(after.version, before.version, "the waiting run changed");
        assert_eq!(after.state, before.state, "the waiting run changed");
        let decisions = h.engine.store().decisions(RUN_ID).await.expect("decisions");
        assert!(decisions.is_empty(), "a session decided: {decisions:?}");
    });
}

fn looks_like_request(line: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|v| {
        v.get("method").is_some_and(|m| m.is_string())
            && v.get("id").is_some_and(|id| id.is_string() || id.is_u64())
    })
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = scratch_dir();
        let (engine, config_path) = runtime.block_on(waiting_run(&dir));
        Harness {
            runtime,
            engine,
            config_path,
        }
    })
}

/// `$TMPDIR/fleet-fuzz-mcp/<pid>`, after removing those of processes that
/// are gone (the fuzzer restarts the process often, and a static is never
/// dropped, so each would otherwise leave its store behind).
fn scratch_dir() -> PathBuf {
    let base = std::env::temp_dir().join("fleet-fuzz-mcp");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let pid = entry.file_name();
            if !Path::new("/proc").join(&pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let dir = base.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
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
async fn waiting_run(dir: &Path) -> (Arc<Engine>, PathBuf) {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate"),
        dir,
    );
    let config_path = dir.join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&config_path).expect("config");
    let config = fleet_core::config::check_str(&text)
        .config
        .expect("the example config is valid");
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
    engine
        .start_run_with_params(
            "release-gate",
            Some("fuzz@example.com".into()),
            &BTreeMap::new(),
            RUN_ID.into(),
        )
        .await
        .expect("start");
    let run = engine.drive(RUN_ID, &Quiet).await.expect("drive");
    assert_eq!(run.state.status.as_str(), "waiting");
    (engine, config_path)
}
