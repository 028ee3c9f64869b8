//! The logs of a whole release gate under `fleet serve --log-format json`,
//! through the real binary on loopback: the run is started through the API
//! with the operator token, its readiness report is written by an
//! OpenAI-compatible model (a mock that checks the API key), the gate page
//! is opened with the approver's link and Go is decided with its token, the
//! announcement is a signed webhook, and gate emails go to an SMTP server
//! that is not there (so delivery errors are logged too). Then every stderr
//! line must be a JSON object, no line may hold a secret, key, password or
//! token (nor a `?t=` query), and requests are logged with a request id.

mod common;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_TOKEN: &str = "op-token-LOGTEST-7d1f0c2b9e";
const SERVER_SECRET: &str = "server-secret-LOGTEST-5a8e3c1f7b2d9046e1a3";
const MODEL_KEY: &str = "sk-LOGTEST-model-key-93b1c7";
const SMTP_PASSWORD: &str = "smtp-pass-LOGTEST-4f2e8a";
const WEBHOOK_SECRET: &str = "whsec-LOGTEST-c81d5e07";
const OWNER: &str = "release-owner@example.com";

const READINESS: &str = "# Release readiness: 2.4.0\n\n\
Migration 0043 drops `legacy_tax_rate` and has no down migration \
(migrations/0043_drop_legacy_tax_rate.up.sql:3).\n";

/// Kills the server if the test fails before it stops it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// One HTTP/1.1 exchange on a fresh connection (`Connection: close`).
fn http(port: u16, method: &str, path: &str, bearer: Option<&str>, body: Option<Value>) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(t) = bearer {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    write!(s, "{head}\r\n{body}").expect("write request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Reply { status, body }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

fn wait_for_status(port: u16, id: &str, want: &str) -> Value {
    let start = Instant::now();
    loop {
        let run = http(
            port,
            "GET",
            &format!("/api/v1/runs/{id}"),
            Some(API_TOKEN),
            None,
        );
        assert_eq!(run.status, 200, "{}", run.body);
        let run = run.json();
        if run["status"] == want {
            return run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "run {id} never became {want}: {run:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn project(model_url: &str, webhook_url: &str) -> tempfile::TempDir {
    let tmp = common::initialized();
    let config_path = tmp.path().join(".fleet/config.yaml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let edited = config
        .replace(
            "kind: report, out: readiness.md}",
            "kind: report, out: readiness.md, model: writer}",
        )
        .replace(
            "kind: notify, out: sent.md}",
            &format!("kind: notify, out: sent.md, webhook: \"{webhook_url}\"}}"),
        );
    assert_ne!(edited, config, "the example's steps were found");
    let extra = format!(
        "\nmodels:\n  writer:\n    provider: openai\n    model: gpt-4o-mini\n    \
         base_url: {model_url}/v1\n    api_key_env: FLEET_LOGTEST_MODEL_KEY\n\
         notify:\n  smtp: {{host: 127.0.0.1, port: {}, tls: none, from: fleet@example.com, \
         username_env: FLEET_LOGTEST_SMTP_USER, password_env: FLEET_LOGTEST_SMTP_PASSWORD}}\n  \
         webhook: {{secret_env: FLEET_LOGTEST_WEBHOOK_SECRET, timeout: 5s}}\n",
        closed_port()
    );
    std::fs::write(&config_path, edited + &extra).expect("write config");
    tmp
}

fn start_server(dir: &Path, log: &Path) -> (Server, u16) {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleet"));
    common::use_database_std(&mut cmd, dir);
    let mut child = cmd
        .env_remove("FLEET_CONFIG")
        .env_remove("FLEET_FAULT")
        .env_remove("RUST_LOG")
        .env("FLEET_API_TOKEN", API_TOKEN)
        .env("FLEET_SECRET", SERVER_SECRET)
        .env("FLEET_LOGTEST_MODEL_KEY", MODEL_KEY)
        .env("FLEET_LOGTEST_SMTP_USER", "fleet-mailer")
        .env("FLEET_LOGTEST_SMTP_PASSWORD", SMTP_PASSWORD)
        .env("FLEET_LOGTEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .arg("-C")
        .arg(dir)
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start fleet serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{line}`"));
    (server, port)
}

fn stop(mut server: Server) {
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let start = Instant::now();
    loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            assert!(status.success(), "fleet serve exited with {status}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "fleet serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_release_gate_under_json_logs_leaks_no_secret() {
    let model = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {MODEL_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": READINESS}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4000, "completion_tokens": 500, "total_tokens": 4500}
        })))
        .mount(&model)
        .await;
    let hooks = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hooks)
        .await;
    let tmp = project(&model.uri(), &format!("{}/hook", hooks.uri()));
    let logs = tempfile::tempdir().expect("tempdir");
    let log = logs.path().join("serve.log");
    let (server, port) = start_server(tmp.path(), &log);

    // The operator starts the run through the API.
    let started = http(
        port,
        "POST",
        "/api/v1/genflows/release-gate/runs",
        Some(API_TOKEN),
        Some(json!({})),
    );
    assert_eq!(started.status, 201, "{}", started.body);
    let id = started.json()["id"].as_str().expect("run id").to_owned();
    wait_for_status(port, &id, "waiting");

    // The approver opens the link and decides Go with its token.
    let link = http(
        port,
        "POST",
        &format!("/api/v1/runs/{id}/gates/go-no-go/links"),
        Some(API_TOKEN),
        Some(json!({"approver": OWNER})),
    );
    assert_eq!(link.status, 200, "{}", link.body);
    let url = link.json()["url"].as_str().expect("url").to_owned();
    let (_, token) = url.split_once("?t=").expect("a token in the link");
    let gate_path = format!("/runs/{id}/gates/go-no-go");
    let page = http(port, "GET", &format!("{gate_path}?t={token}"), None, None);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Ship release 2.4.0 to production?"));
    let decided = http(
        port,
        "POST",
        &format!("/api/v1/runs/{id}/gates/go-no-go/decisions"),
        None,
        Some(json!({"token": token, "verdict": "go"})),
    );
    assert!(
        (200..300).contains(&decided.status),
        "{} {}",
        decided.status,
        decided.body
    );
    wait_for_status(port, &id, "succeeded");
    assert_eq!(
        model.received_requests().await.map_or(0, |r| r.len()),
        1,
        "the readiness report was written by the model"
    );
    assert_eq!(
        hooks.received_requests().await.map_or(0, |r| r.len()),
        1,
        "the announcement was posted"
    );
    // The gate email's failed attempt (the delivery pass runs every 2 s):
    // an SMTP error is logged, and must not carry the password either.
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"channel\":\"email\"")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no email delivery was attempted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(server);

    let text = std::fs::read_to_string(&log).expect("read the log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 10, "too few log lines:\n{text}");
    let secrets = [
        API_TOKEN,
        SERVER_SECRET,
        MODEL_KEY,
        SMTP_PASSWORD,
        WEBHOOK_SECRET,
        token,
    ];
    let mut parsed = Vec::new();
    for line in &lines {
        let event: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        assert!(event.is_object(), "not an object: {line}");
        for secret in secrets {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
        assert!(
            !line.contains("?t=") && !line.contains("&t="),
            "a query string in the log: {line}"
        );
        parsed.push(event);
    }

    // Each request: one line in its span, with a request id.
    let requests: Vec<&Value> = parsed
        .iter()
        .filter(|e| e["message"] == "request")
        .collect();
    assert!(requests.len() >= 5, "request lines:\n{text}");
    for r in &requests {
        let id = r["span"]["request_id"].as_str().unwrap_or_default();
        assert_eq!(id.len(), 32, "no request id: {r}");
        assert!(r["status"].is_u64() && r["latency_ms"].is_f64(), "{r}");
    }
    let gate = requests
        .iter()
        .find(|r| r["span"]["method"] == "GET" && r["span"]["path"] == gate_path.as_str())
        .unwrap_or_else(|| panic!("no line for the gate page:\n{text}"));
    assert_eq!(gate["status"], 200);
    // What happened is in the log, with its fields.
    let has = |message: &str| parsed.iter().any(|e| e["message"] == message);
    for message in [
        "fleet serve listening",
        "run started",
        "step finished",
        "gate waiting for a decision",
        "decision recorded",
        "run finished",
        "delivery",
    ] {
        assert!(has(message), "no `{message}` line:\n{text}");
    }
    assert!(
        parsed.iter().any(|e| e["message"] == "decision recorded"
            && e["run"] == id.as_str()
            && e["verdict"] == "go"
            && e["span"]["request_id"].is_string()),
        "the decision is logged inside its request:\n{text}"
    );
    assert!(
        parsed
            .iter()
            .any(|e| e["message"] == "step finished" && e["duration_ms"].is_u64()),
        "{text}"
    );
    // However many drives saw the end, it is told once.
    let ends = parsed
        .iter()
        .filter(|e| e["message"] == "run finished" && e["run"] == id.as_str())
        .count();
    assert_eq!(ends, 1, "{text}");

    // Nor is any secret stored: not in the database, the run's files or
    // anything else the workspace holds after the run.
    for (place, bytes) in stored_bytes(tmp.path()) {
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "a secret ({}…) is stored in {place}",
                &secret[..8]
            );
        }
    }
}

/// Every file under `dir` (the workspace, with its database on SQLite),
/// and on PostgreSQL a data dump of the workspace's database.
fn stored_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                found.push((path.display().to_string(), bytes));
            }
        }
    }
    assert!(
        found.iter().any(|(p, _)| p.ends_with("decision.md")),
        "the run's files are where the scan looks"
    );
    if let Some(url) = common::database_for(dir) {
        let dump = std::process::Command::new("pg_dump")
            .args(["--data-only", &url])
            .output()
            .expect("pg_dump (PostgreSQL's client) must be installed");
        assert!(dump.status.success(), "pg_dump failed: {dump:?}");
        assert!(dump.stdout.len() > 1000, "an empty dump");
        found.push(("the PostgreSQL database".into(), dump.stdout));
    }
    found
}

/// Starts `fleet worker` with `args`, lets it announce itself, stops it
/// with SIGTERM and returns what it logged.
fn worker_log(dir: &Path, log: &Path, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleet"));
    common::use_database_std(&mut cmd, dir);
    let child = cmd
        .env_remove("FLEET_CONFIG")
        .env_remove("FLEET_FAULT")
        .env_remove("FLEET_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .arg("-C")
        .arg(dir)
        .arg("worker")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("start fleet worker");
    let worker = Server(child);
    let start = Instant::now();
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("fleet worker executing steps")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "fleet worker never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop(worker);
    std::fs::read_to_string(log).expect("read the log")
}

#[test]
fn worker_logs_json_when_not_a_terminal_and_human_on_request() {
    let tmp = common::initialized();
    let logs = tempfile::tempdir().expect("tempdir");

    // auto: stderr is a file, so JSON.
    let json = worker_log(tmp.path(), &logs.path().join("auto.log"), &[]);
    let events: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let started = events
        .iter()
        .find(|e| e["message"] == "fleet worker executing steps")
        .unwrap_or_else(|| panic!("no start line:\n{json}"));
    assert_eq!(started["concurrency"], 4, "{started}");
    assert!(started["worker"].is_string(), "{started}");
    assert!(
        events.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("draining"))),
        "{json}"
    );

    let human = worker_log(
        tmp.path(),
        &logs.path().join("human.log"),
        &["--log-format", "human"],
    );
    assert!(
        human
            .lines()
            .any(|l| l.contains("INFO") && l.contains("fleet worker executing steps")),
        "{human}"
    );
    assert!(!human.contains('{') && !human.contains('\u{1b}'), "{human}");
}
