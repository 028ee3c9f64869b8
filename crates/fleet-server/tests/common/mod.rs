//! A real workspace (the release-gate example copied into a tempdir), a real
//! SQLite store, the engine with the builtin analyst, and the router.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use fleet_engine::{Engine, Quiet, Settings};
use fleet_server::{AppState, OperatorAuth, Secret, Signer, WorkQueue};
use fleet_store::{RunRecord, SqliteStore, Store};
use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub const API_TOKEN: &str = "operator-token-for-tests";
pub const OWNER: &str = "release-owner@example.com";
pub const SECOND: &str = "second@example.com";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
    pub state: AppState,
    pub queue: Option<WorkQueue>,
    pub signer: Signer,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("entry: {e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate")
}

/// `edit` may rewrite the example's config text before it is loaded.
pub async fn env_with(open: bool, edit: impl FnOnce(String) -> String) -> Env {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    copy_dir(&example_dir(), dir.path());
    let config_path = dir.path().join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&config_path).unwrap_or_else(|e| panic!("config: {e}"));
    let text = edit(text);
    std::fs::write(&config_path, &text).unwrap_or_else(|e| panic!("write config: {e}"));
    let checked = fleet_core::config::check_str(&text);
    let Some(config) = checked.config else {
        panic!("example config invalid: {:?}", checked.diagnostics);
    };
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join(".fleet/fleet.db"))
            .await
            .unwrap_or_else(|e| panic!("store: {e}")),
    );
    let engine = Arc::new(Engine::new(
        store,
        Arc::new(config),
        Settings::new(dir.path().to_path_buf()),
    ));
    let secret = Secret::load_or_create(&dir.path().join(".fleet"), None)
        .unwrap_or_else(|e| panic!("secret: {e}"));
    let signer = Signer::new(&secret).unwrap_or_else(|e| panic!("signer: {e}"));
    let (state, queue) = AppState::new(
        engine.clone(),
        signer.clone(),
        OperatorAuth {
            api_token: Some(API_TOKEN.into()),
            open,
        },
        "http://fleet.test".into(),
        Duration::from_secs(86_400),
    );
    Env {
        dir,
        engine,
        state,
        queue: Some(queue),
        signer,
    }
}

pub async fn env() -> Env {
    env_with(false, |t| t).await
}

/// A second approver, so "a token for another approver" has someone to be.
pub fn two_approvers(text: String) -> String {
    text.replace(
        "approvers:\n  - release-owner@example.com",
        "approvers:\n  - release-owner@example.com\n  - second@example.com",
    )
}

impl Env {
    pub fn app(&self) -> Router {
        fleet_server::router(self.state.clone())
    }

    /// Another server on the same engine and store, with empty caches: what
    /// a cached answer must equal.
    pub fn uncached_app(&self) -> Router {
        let (state, _) = AppState::new(
            self.engine.clone(),
            self.signer.clone(),
            OperatorAuth {
                api_token: Some(API_TOKEN.into()),
                open: false,
            },
            "http://fleet.test".into(),
            Duration::from_secs(86_400),
        );
        fleet_server::router(state)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    /// A run of release-gate driven to its gate, started by ci@example.com.
    pub async fn run_to_gate(&self) -> RunRecord {
        let run = self
            .engine
            .start_run("release-gate", Some("ci@example.com".into()))
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        let run = self
            .engine
            .drive(&run.id, &Quiet)
            .await
            .unwrap_or_else(|e| panic!("drive: {e}"));
        assert_eq!(run.state.status.as_str(), "waiting");
        run
    }

    pub fn token(&self, run: &str, step: &str, approver: &str, expires_in: i64) -> String {
        self.signer.approver_token(&fleet_server::ApproverClaims {
            run: run.into(),
            step: step.into(),
            approver: approver.into(),
            expires: jiff::Timestamp::now().as_second() + expires_in,
        })
    }

    /// Starts the worker that drives runs after decisions.
    pub fn spawn_worker(&mut self) -> tokio::sync::watch::Sender<bool> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let queue = self
            .queue
            .take()
            .unwrap_or_else(|| panic!("worker already started"));
        tokio::spawn(fleet_server::worker::run(
            self.engine.clone(),
            queue,
            rx,
            Duration::from_secs(10),
        ));
        tx
    }

    /// Waits until the run stops moving by itself (finished, or at a gate).
    pub async fn wait_settled(&self, run: &str) -> RunRecord {
        for _ in 0..200 {
            let r = self
                .store()
                .get_run(run)
                .await
                .unwrap_or_else(|e| panic!("get run: {e}"));
            if r.state.status != fleet_core::run::RunStatus::Running {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run} did not settle");
    }

    pub async fn wait_terminal(&self, run: &str) -> RunRecord {
        for _ in 0..200 {
            let r = self
                .store()
                .get_run(run)
                .await
                .unwrap_or_else(|e| panic!("get run: {e}"));
            if r.state.is_terminal() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("run {run} did not finish");
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// `name=value` of a Set-Cookie header.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .find(|kv| kv.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

/// The response, its body decoded as a browser would if it came gzipped
/// (`Content-Encoding` still says how it came).
pub async fn reply(response: Response<Body>) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let mut bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("body: {e}"))
        .to_bytes()
        .to_vec();
    if headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v == "gzip")
    {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut plain)
            .unwrap_or_else(|e| panic!("not valid gzip: {e}"));
        bytes = plain;
    }
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    reply(response).await
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("request: {e}"))
}

pub fn get_as_operator(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::AUTHORIZATION, format!("Bearer {API_TOKEN}"))
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("request: {e}"))
}

pub fn post_form(uri: &str, cookie: Option<&str>, fields: &[(&str, &str)]) -> Request<Body> {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut b =
        Request::post(uri).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    b.body(Body::from(body))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

pub fn post_json(uri: &str, bearer: Option<&str>, body: serde_json::Value) -> Request<Body> {
    let mut b = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The value of hidden input `name` in a page.
pub fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no input {name} in page"))
        + marker.len();
    let end = page[start..]
        .find('"')
        .unwrap_or_else(|| panic!("unterminated input {name}"));
    html_unescape(&page[start..start + end])
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#10;", "\n")
        .replace("&#xa;", "\n")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// GETs the decision page and returns (page, cookie, form fields to post).
pub async fn open_gate(
    app: &Router,
    run: &str,
    token: &str,
) -> (Reply, String, Vec<(String, String)>) {
    let page = send(
        app,
        get(&format!("/runs/{run}/gates/go-no-go?t={}", enc(token))),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let cookie = page
        .cookie("fleet_csrf")
        .unwrap_or_else(|| panic!("no csrf cookie"));
    let fields = ["t", "nonce", "csrf", "shown"]
        .iter()
        .map(|n| (n.to_string(), hidden(&page.body, n)))
        .collect();
    (page, cookie, fields)
}

pub fn with(fields: &[(String, String)], extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v = fields.to_vec();
    v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    v
}

pub fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The scripted model of the redraft tests (see the script's comment).
pub const REDRAFT_MODEL: &str = include_str!("../fixtures/redraft-model.sh");

/// The example with both analysis steps on the scripted model and the
/// review redrafting the report at most `max` times; `stubborn` keeps a
/// high flag open in every round, so the loop hits its bound.
pub fn redraft_loop(max: u32, stubborn: bool) -> impl FnOnce(String) -> String {
    move |text| {
        let edited = text
            .replace(
                "genflows:\n",
                "models:\n  scripted: {provider: command, command: [sh, redraft-model.sh]}\n\ngenflows:\n",
            )
            .replace(
                "kind: report, out: readiness.md}",
                "kind: report, out: readiness.md, model: scripted}",
            )
            .replace(
                "kind: review, out: risks.md}",
                &format!(
                    "kind: review, out: risks.md, model: scripted, on_flag: {{redraft: readiness, max: {max}}}}}"
                ),
            );
        let edited = if stubborn {
            edited.replace(
                "prompt: \"Assemble the release readiness report",
                "prompt: \"(stubborn) Assemble the release readiness report",
            )
        } else {
            edited
        };
        assert!(
            edited.contains("on_flag")
                && edited.contains("model: scripted}")
                && edited.contains("(stubborn)") == stubborn,
            "the example config changed shape: {edited}"
        );
        edited
    }
}

/// An environment whose release-gate loops through redrafts (`redraft_loop`).
pub async fn redraft_env(max: u32, stubborn: bool) -> Env {
    let env = env_with(false, redraft_loop(max, stubborn)).await;
    std::fs::write(env.dir.path().join("redraft-model.sh"), REDRAFT_MODEL)
        .unwrap_or_else(|e| panic!("write the scripted model: {e}"));
    env
}
