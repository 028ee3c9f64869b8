//! Notifications end to end: a real SMTP server on loopback (python3-aiosmtpd,
//! started here), the real decision page (fleet-server's router) for the
//! approver's link, a real HTTP receiver for webhooks, and real processes
//! killed mid-delivery.
//!
//! Needs `python3-aiosmtpd` (Debian: `apt-get install -y python3-aiosmtpd`).

use fleet_core::run::{RunStatus, StepStatus, Verdict};
use fleet_engine::{DecisionRequest, Engine, Quiet, Settings};
use fleet_notify::DeliveryPolicy;
use fleet_store::{DeliveryPurpose, DeliveryStatus, RunRecord, SqliteStore, Store};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const OWNER: &str = "owner@example.com";
const SECOND: &str = "second@example.com";
const TEAM: &str = "team@example.com";
const QUESTION: &str = "Ship release 2.4.0 to production?";
/// The child process of a crash or env test reads its scenario from here.
const CHILD_ENV: &str = "FLEET_NOTIFY_TEST_CHILD";
const SECRET_ENV: &str = "FLEET_TEST_WEBHOOK_SECRET";
const SECRET: &str = "webhook-secret-for-tests";

/// An aiosmtpd server on a loopback port that writes each accepted message,
/// parsed, as JSON into a directory before it answers 250.
struct Smtp {
    child: Child,
    port: u16,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

const SMTP_SCRIPT: &str = r#"
import email, email.policy, json, os, sys, time
from aiosmtpd.controller import Controller
outdir, port = sys.argv[1], int(sys.argv[2])
class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        def part(kind):
            p = msg.get_body((kind,))
            return p.get_content() if p is not None else None
        record = {"to": envelope.rcpt_tos, "subject": str(msg["subject"]),
                  "message_id": str(msg["message-id"]), "text": part("plain"), "html": part("html")}
        name = "%d.json" % time.time_ns()
        with open(os.path.join(outdir, name + ".tmp"), "w") as f:
            json.dump(record, f)
        os.rename(os.path.join(outdir, name + ".tmp"), os.path.join(outdir, name))
        return "250 Message accepted for delivery"
c = Controller(Handler(), hostname="127.0.0.1", port=port)
c.start()
print("ready", flush=True)
sys.stdin.read()
c.stop()
"#;

fn python() -> String {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate.to_owned();
        }
    }
    panic!(
        "these tests need a real SMTP server: install python3-aiosmtpd \
         (Debian/Ubuntu: `apt-get install -y python3-aiosmtpd`)"
    );
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
    l.local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"))
        .port()
}

impl Smtp {
    fn start() -> Smtp {
        Smtp::start_on(free_port())
    }

    fn start_on(port: u16) -> Smtp {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let dir = tmp.path().join("mail");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
        let script = tmp.path().join("smtpd.py");
        std::fs::write(&script, SMTP_SCRIPT).unwrap_or_else(|e| panic!("script: {e}"));
        let mut child = Command::new(python())
            .arg(&script)
            .arg(&dir)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start aiosmtpd: {e}"));
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
        Smtp {
            child,
            port,
            dir,
            _tmp: tmp,
        }
    }

    /// Every message received so far, oldest first.
    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap_or_else(|e| panic!("read mail dir: {e}"))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read: {e}"));
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse: {e}"))
            })
            .collect()
    }

    fn to(&self, who: &str) -> Vec<Value> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m["to"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|t| t == who))
            })
            .collect()
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display()))
    {
        let entry = entry.unwrap_or_else(|e| panic!("entry: {e}"));
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| panic!("copy: {e}"));
        }
    }
}

/// The release-gate example's documents plus a config naming the SMTP
/// port, the approvers and the announce step's extra lines.
fn workspace(
    smtp_port: u16,
    public_url: &str,
    announce_extra: &str,
    gate_extra: &str,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let example =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate/docs");
    copy_dir(&example, &dir.path().join("docs"));
    std::fs::create_dir_all(dir.path().join(".fleet")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let config = format!(
        r#"
notify:
  smtp: {{host: 127.0.0.1, port: {smtp_port}, tls: none, from: fleet@example.com}}
  webhook: {{secret_env: {SECRET_ENV}, timeout: 5s}}
server:
  public_url: {public_url}
genflows:
  - name: release-gate
    steps:
      - {{name: readiness, prompt: "Assemble the report.", corpus: ["docs/**/*.md"], kind: report, out: readiness.md}}
      - {{name: risk-review, prompt: "Review it.", depends_on: [readiness], kind: review, out: risks.md}}
      - name: go-no-go
        kind: approval
        depends_on: [readiness, risk-review]
        question: "{QUESTION}"
        approvers: [{OWNER}, {SECOND}]
        out: decision.md
{gate_extra}
      - name: announce
        kind: notify
        depends_on: [go-no-go, readiness]
        out: sent.md
{announce_extra}
"#
    );
    std::fs::write(dir.path().join(".fleet/config.yaml"), config)
        .unwrap_or_else(|e| panic!("write config: {e}"));
    dir
}

fn fast_policy() -> DeliveryPolicy {
    DeliveryPolicy {
        max_attempts: 3,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        lease: Duration::from_secs(1),
        batch: 32,
    }
}

/// Turns an `ApproverLinks` into fleet-server's signed links, as the CLI does.
#[derive(Debug)]
struct ServerLinks {
    signer: fleet_server::Signer,
    public_url: String,
}

impl fleet_notify::ApproverLinks for ServerLinks {
    fn link(&self, run_id: &str, step: &str, approver: &str) -> Option<String> {
        Some(fleet_server::approver_link(
            &self.signer,
            &self.public_url,
            run_id,
            step,
            approver,
            Duration::from_secs(86_400),
        ))
    }
}

fn signer(root: &Path) -> fleet_server::Signer {
    let secret = fleet_server::Secret::load_or_create(&root.join(".fleet"), None)
        .unwrap_or_else(|e| panic!("secret: {e}"));
    fleet_server::Signer::new(&secret).unwrap_or_else(|e| panic!("signer: {e}"))
}

async fn engine(root: &Path, links: Option<Arc<dyn fleet_notify::ApproverLinks>>) -> Arc<Engine> {
    let text = std::fs::read_to_string(root.join(".fleet/config.yaml"))
        .unwrap_or_else(|e| panic!("config: {e}"));
    let checked = fleet_core::config::check_str(&text);
    let Some(config) = checked.config else {
        panic!("config invalid: {:?}", checked.diagnostics);
    };
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&root.join(".fleet/fleet.db"))
            .await
            .unwrap_or_else(|e| panic!("store: {e}")),
    );
    let mut settings = Settings::new(root.to_path_buf());
    settings.approver_links = links;
    settings.delivery = fast_policy();
    settings.lease_ttl = Duration::from_secs(1);
    Arc::new(Engine::new(store, Arc::new(config), settings))
}

async fn run_to_gate(engine: &Engine) -> RunRecord {
    let run = engine
        .start_run("release-gate", Some("ci@example.com".into()))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let run = engine
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive: {e}"));
    assert_eq!(run.state.status, RunStatus::Waiting);
    run
}

async fn decide(engine: &Engine, run: &RunRecord, who: &str, verdict: Verdict) -> RunRecord {
    engine
        .decide(DecisionRequest {
            run: run.id.clone(),
            step: Some("go-no-go".into()),
            approver: who.into(),
            verdict,
            reason: (verdict == Verdict::NoGo).then(|| "rollback is untested".into()),
            channel: "cli".into(),
            shown: None,
        })
        .await
        .unwrap_or_else(|e| panic!("decide: {e}"));
    engine
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive: {e}"))
}

fn text_of(m: &Value) -> &str {
    m["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approver_email_links_to_the_decision_page_and_go_is_announced() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let smtp = Smtp::start();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let public_url = format!(
        "http://{}",
        listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"))
    );
    let ws = workspace(smtp.port, &public_url, "        to: [team@example.com]", "");
    let signer = signer(ws.path());
    let links = Arc::new(ServerLinks {
        signer: signer.clone(),
        public_url: public_url.clone(),
    });
    let engine = engine(ws.path(), Some(links)).await;
    let (state, _queue) = fleet_server::AppState::new(
        engine.clone(),
        signer.clone(),
        fleet_server::OperatorAuth {
            api_token: Some("operator-token".into()),
            open: false,
        },
        public_url.clone(),
        Duration::from_secs(86_400),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, fleet_server::router(state)).await;
    });

    let run = run_to_gate(&engine).await;
    // The gate opening queued one email per approver in its own transaction.
    let queued = engine
        .store()
        .deliveries(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued.len(), 2);
    assert!(
        queued
            .iter()
            .all(|d| d.purpose == DeliveryPurpose::Approval)
    );
    let report = engine
        .deliver_pending(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("deliver: {e}"));
    assert_eq!((report.sent, report.failed), (2, 0), "{report:?}");
    // Nothing is sent twice by a second pass.
    let again = engine
        .deliver_pending(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(again.is_empty());

    for who in [OWNER, SECOND] {
        let mails = smtp.to(who);
        assert_eq!(mails.len(), 1, "{who}: {mails:?}");
        let m = &mails[0];
        let subject = m["subject"].as_str().unwrap_or_default();
        assert!(
            subject.contains("release-gate") && subject.contains(QUESTION),
            "{subject}"
        );
        assert!(subject.contains(&run.id[..8]), "{subject}");
        let text = text_of(m);
        assert!(text.contains("high") && text.contains("medium"), "{text}");
        let prefix = format!("{public_url}/runs/{}/gates/go-no-go?t=", run.id);
        let link = text
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no link in {text}"));
        let token = link.trim_start_matches(&prefix);
        let claims = signer
            .verify_approver(token, jiff::Timestamp::now().as_second())
            .unwrap_or_else(|e| panic!("token: {e}"));
        assert_eq!(
            (claims.approver.as_str(), claims.step.as_str()),
            (who, "go-no-go")
        );
        assert!(m["html"].as_str().unwrap_or_default().contains("href=\""));
        // Follow the link: the decision page for this gate opens.
        let page = reqwest::get(link)
            .await
            .unwrap_or_else(|e| panic!("GET: {e}"));
        assert_eq!(page.status().as_u16(), 200);
        let body = page.text().await.unwrap_or_else(|e| panic!("body: {e}"));
        assert!(body.contains("Ship release 2.4.0"), "decision page: {body}");
    }
    assert!(smtp.to(TEAM).is_empty(), "nothing is announced before Go");

    let run = decide(&engine, &run, OWNER, Verdict::Go).await;
    assert_eq!(run.state.status, RunStatus::Succeeded, "{:?}", run.state);
    let announced = smtp.to(TEAM);
    assert_eq!(announced.len(), 1);
    let text = text_of(&announced[0]);
    assert!(
        text.contains("GO at gate \"go-no-go\" by owner@example.com"),
        "{text}"
    );
    assert!(text.contains("readiness.md revision 1 sha256 "), "{text}");
    // The email links the signed attestation on the server and carries the
    // log's latest checkpoint, which this installation's key verifies.
    assert!(
        text.contains(&format!(
            "{public_url}/runs/{}/attestations/go-no-go?rev=1",
            run.id
        )),
        "{text}"
    );
    let key = fleet_evidence::SigningKey::load(&ws.path().join(".fleet/signing.key"))
        .unwrap_or_else(|e| panic!("key: {e}"))
        .verifier();
    // (the mail arrives with CRLF line ends)
    let text = text.replace("\r\n", "\n");
    let note_at = text
        .find("fleet-audit\n")
        .unwrap_or_else(|| panic!("no checkpoint in the email: {text}"));
    let (cp, _) = fleet_evidence::Checkpoint::open(&text[note_at..], &[key])
        .unwrap_or_else(|e| panic!("the emailed checkpoint does not verify ({e}): {text}"));
    assert!(cp.size > 0);
    let sent_md =
        std::fs::read_to_string(ws.path().join(format!(".fleet/runs/{}/sent.md", run.id)))
            .unwrap_or_else(|e| panic!("sent.md: {e}"));
    let mid = announced[0]["message_id"].as_str().unwrap_or_default();
    assert!(
        sent_md.contains(&format!("| email | {TEAM} | sent |")),
        "{sent_md}"
    );
    assert!(
        sent_md.contains(mid) && sent_md.contains("250"),
        "{sent_md}"
    );
    let events = engine
        .store()
        .events(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        events.iter().filter(|e| e.kind == "delivery.sent").count(),
        3
    );
    assert!(
        engine
            .store()
            .verify_audit()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_go_announces_nothing_and_reminders_never_approve() {
    let smtp = Smtp::start();
    let ws = workspace(
        smtp.port,
        "http://fleet.invalid",
        "        to: [team@example.com]",
        "        remind_every: 200ms",
    );
    // No links: the email explains the CLI instead.
    let engine = engine(ws.path(), None).await;
    let run = run_to_gate(&engine).await;
    engine
        .deliver_pending(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = smtp.to(OWNER);
    assert_eq!(first.len(), 1);
    assert!(text_of(&first[0]).contains(&format!(
        "fleet approve {} --step go-no-go --as {OWNER}",
        run.id
    )));

    tokio::time::sleep(Duration::from_millis(450)).await;
    let queued = engine
        .queue_reminders()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(queued, 2, "one reminder per approver");
    // Asking again in the same period queues nothing new.
    assert_eq!(
        engine
            .queue_reminders()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
    engine
        .deliver_pending(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let owner_mail = smtp.to(OWNER);
    assert_eq!(owner_mail.len(), 2);
    assert!(
        owner_mail[1]["subject"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Reminder:")
    );
    let still = engine.run(&run.id).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(still.state.steps[2].status, StepStatus::Waiting);
    assert!(
        engine
            .store()
            .decisions(&run.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_empty()
    );

    let run = decide(&engine, &run, SECOND, Verdict::NoGo).await;
    assert_eq!(run.state.status, RunStatus::Rejected);
    // Reminders for a decided gate are not queued, nor sent.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        engine
            .queue_reminders()
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
    engine
        .deliver_pending(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(smtp.to(TEAM).is_empty(), "a No-go announces nothing");
    assert_eq!(smtp.to(OWNER).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_retries_then_fails_the_step_and_marks_nothing_sent() {
    let dead_port = free_port();
    let ws = workspace(
        dead_port,
        "http://fleet.invalid",
        "        to: [team@example.com]",
        "",
    );
    let engine = engine(ws.path(), None).await;
    let run = run_to_gate(&engine).await;
    let report = engine
        .deliver_pending(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((report.sent, report.retrying), (0, 2), "{report:?}");
    let run = decide(&engine, &run, OWNER, Verdict::Go).await;
    assert_eq!(run.state.status, RunStatus::Failed);
    let error = run.state.steps[3].error.clone().unwrap_or_default();
    assert!(
        error.contains("announce")
            && error.contains("gave up after 3 attempts")
            && error.contains(TEAM),
        "{error}"
    );
    let deliveries = engine
        .store()
        .deliveries(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(deliveries.iter().all(|d| d.status != DeliveryStatus::Sent));
    let announce = deliveries
        .iter()
        .find(|d| d.purpose == DeliveryPurpose::Announce)
        .unwrap_or_else(|| panic!("no announce delivery"));
    assert_eq!(
        (announce.status, announce.attempts),
        (DeliveryStatus::Failed, 3)
    );
    let events = engine
        .store()
        .events(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(events.iter().all(|e| e.kind != "delivery.sent"));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "delivery.failed" && e.payload["step"] == "announce")
            .count(),
        3
    );

    // The server comes back; retrying the run sends the announcement once.
    let smtp = Smtp::start_on(dead_port);
    engine
        .retry(&run.id, None)
        .await
        .unwrap_or_else(|e| panic!("retry: {e}"));
    let run = engine
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive: {e}"));
    assert_eq!(run.state.status, RunStatus::Succeeded, "{:?}", run.state);
    assert_eq!(smtp.to(TEAM).len(), 1);
}

/// What a local webhook receiver got: headers and body per request.
type Received = Arc<Mutex<Vec<(String, axum::http::HeaderMap, Vec<u8>)>>>;

async fn receiver() -> (String, Received) {
    use axum::routing::post;
    let got: Received = Arc::default();
    let g1 = got.clone();
    let g2 = got.clone();
    let app = axum::Router::new()
        .route(
            "/hook",
            post(
                move |h: axum::http::HeaderMap, b: axum::body::Bytes| async move {
                    if let Ok(mut v) = g1.lock() {
                        v.push(("hook".into(), h, b.to_vec()));
                    }
                    "thanks"
                },
            ),
        )
        .route(
            "/slack/T000/B000/XXXX",
            post(
                move |h: axum::http::HeaderMap, b: axum::body::Bytes| async move {
                    if let Ok(mut v) = g2.lock() {
                        v.push(("slack".into(), h, b.to_vec()));
                    }
                    "ok"
                },
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let url = format!(
        "http://{}",
        listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, got)
}

/// Re-runs one test of this binary in a child process with `env` set (the
/// webhook secret must come from the environment, and setting variables
/// in a multi-threaded test process is unsound). Returns the child.
fn spawn_child(test: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut cmd = Command::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap_or_else(|e| panic!("spawn child: {e}"))
}

fn child_scenario() -> Option<Value> {
    std::env::var(CHILD_ENV)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
}

#[test]
fn webhook_and_slack_announcements_are_signed_and_verified() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    rt.block_on(async {
        let (url, got) = receiver().await;
        let smtp = Smtp::start();
        let ws = workspace(
            smtp.port,
            "http://fleet.invalid",
            &format!("        webhook: {url}/hook\n        channels: [file, \"slack:{url}/slack/T000/B000/XXXX\"]"),
            "",
        );
        let scenario = serde_json::json!({ "root": ws.path() });
        let out = spawn_child(
            "webhook_child",
            &[(CHILD_ENV, scenario.to_string()), (SECRET_ENV, SECRET.into())],
        )
        .wait_with_output()
        .unwrap_or_else(|e| panic!("child: {e}"));
        assert!(
            out.status.success(),
            "child failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let got = got.lock().map(|g| g.clone()).unwrap_or_default();
        let hooks: Vec<_> = got.iter().filter(|(k, _, _)| k == "hook").collect();
        assert_eq!(hooks.len(), 1);
        let (_, headers, body) = hooks[0];
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert!(fleet_notify::verify_signature(
            SECRET.as_bytes(),
            h("x-fleet-timestamp"),
            body,
            h("x-fleet-signature")
        ));
        assert!(!fleet_notify::verify_signature(b"wrong secret", h("x-fleet-timestamp"), body, h("x-fleet-signature")));
        let json: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("body: {e}"));
        assert_eq!(json["type"], "fleet.announce");
        assert_eq!(json["decisions"][0]["approver"], OWNER);
        assert_eq!(json["delivery_id"], h("x-fleet-delivery"));
        // The body carries the decision's signed attestation and the log's
        // latest checkpoint, both verifiable with the installation's key.
        let key = fleet_evidence::SigningKey::load(&ws.path().join(".fleet/signing.key"))
            .unwrap_or_else(|e| panic!("key: {e}"))
            .verifier();
        let envelope: fleet_evidence::Envelope = serde_json::from_value(json["attestation"].clone())
            .unwrap_or_else(|e| panic!("attestation is not an envelope ({e}): {json}"));
        let statement: Value = serde_json::from_slice(
            &envelope.verify(&key).unwrap_or_else(|e| panic!("envelope: {e}")),
        )
        .unwrap_or_else(|e| panic!("statement: {e}"));
        assert_eq!(statement["predicate"]["approver"], OWNER);
        assert_eq!(statement["predicate"]["verdict"], "go");
        let note = json["checkpoint"].as_str().unwrap_or_else(|| panic!("no checkpoint: {json}"));
        let (cp, _) = fleet_evidence::Checkpoint::open(note, &[key])
            .unwrap_or_else(|e| panic!("checkpoint: {e}"));
        assert!(cp.size > 0);
        let slack: Vec<_> = got.iter().filter(|(k, _, _)| k == "slack").collect();
        assert_eq!(slack.len(), 1);
        let json: Value = serde_json::from_slice(&slack[0].2).unwrap_or_else(|e| panic!("{e}"));
        assert!(json["text"].as_str().unwrap_or_default().contains("GO at gate"));
    });
}

/// Runs only as `webhook_and_slack_...`'s child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_child() {
    let Some(s) = child_scenario() else { return };
    let root = PathBuf::from(s["root"].as_str().unwrap_or_default());
    let engine = engine(&root, None).await;
    let run = run_to_gate(&engine).await;
    let run = decide(&engine, &run, OWNER, Verdict::Go).await;
    assert_eq!(run.state.status, RunStatus::Succeeded, "{:?}", run.state);
    let sent_md = std::fs::read_to_string(root.join(format!(".fleet/runs/{}/sent.md", run.id)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        sent_md.contains("| webhook | webhook http://127.0.0.1:"),
        "{sent_md}"
    );
    assert!(sent_md.contains("HTTP 200 OK"), "{sent_md}");
    // The Slack URL's secret path never reaches sent.md.
    assert!(!sent_md.contains("XXXX"), "{sent_md}");
}

/// Kill a process at `point` while it emails the approvers, restart, and
/// count what the SMTP server received.
fn crash_at(point: &str) -> (Smtp, Vec<Value>) {
    let smtp = Smtp::start();
    let ws = workspace(smtp.port, "http://fleet.invalid", "", "");
    let scenario = serde_json::json!({ "root": ws.path() });
    let mut child = spawn_child(
        "crash_child",
        &[
            (CHILD_ENV, scenario.to_string()),
            ("FLEET_FAULT", format!("pause-after:{point}")),
        ],
    );
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("stderr"));
    let mut paused = false;
    let started = Instant::now();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains(&format!("paused after {point}")) {
            paused = true;
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    assert!(paused, "the child never reached {point}");
    let _ = child.kill(); // SIGKILL: no cleanup, like a crash
    let _ = child.wait();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let deliveries = rt.block_on(async {
        let engine = engine(ws.path(), None).await;
        let runs = engine
            .store()
            .list_runs(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let run = &runs[0];
        // The dead process's claim lapses after its lease (1 s).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        engine
            .deliver_pending(Some(&run.id))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        engine
            .store()
            .deliveries(&run.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    assert!(
        deliveries.iter().all(|d| d.status == DeliveryStatus::Sent),
        "{deliveries:?}"
    );
    let mails = smtp.messages();
    drop(ws);
    (smtp, mails)
}

/// Runs only as a crash test's child: drive to the gate and email the approvers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(s) = child_scenario() else { return };
    let root = PathBuf::from(s["root"].as_str().unwrap_or_default());
    let engine = engine(&root, None).await;
    let run = run_to_gate(&engine).await;
    engine
        .deliver_pending(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

fn per_recipient(mails: &[Value], who: &str) -> (usize, std::collections::BTreeSet<String>) {
    let mine: Vec<&Value> = mails
        .iter()
        .filter(|m| {
            m["to"]
                .as_array()
                .is_some_and(|a| a.iter().any(|t| t == who))
        })
        .collect();
    let ids = mine
        .iter()
        .map(|m| m["message_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    (mine.len(), ids)
}

#[test]
fn crash_before_sending_or_after_recording_sends_each_email_once() {
    for point in ["delivery_claimed", "delivery_sent"] {
        let (_smtp, mails) = crash_at(point);
        for who in [OWNER, SECOND] {
            let (n, ids) = per_recipient(&mails, who);
            assert_eq!((n, ids.len()), (1, 1), "{point}: {who} got {n} messages");
        }
    }
}

#[test]
fn crash_between_acceptance_and_record_resends_with_the_same_message_id() {
    // The one window no SMTP client can close: the server took the message
    // and the process died before `sent` was committed. The restart sends
    // it again, with the same Message-ID, so the recipient's mail client
    // can drop it; every other recipient still gets exactly one.
    let (_smtp, mails) = crash_at("delivery_accepted");
    let (first_n, first_ids) = per_recipient(&mails, OWNER);
    assert_eq!((first_n, first_ids.len()), (2, 1), "{mails:?}");
    let (second_n, second_ids) = per_recipient(&mails, SECOND);
    assert_eq!((second_n, second_ids.len()), (1, 1), "{mails:?}");
    assert!(first_ids.is_disjoint(&second_ids));
}

/// What MCP's `send_decision_link` does: a fresh link to a named approver
/// of the waiting gate, through the outbox and real SMTP, to that inbox
/// only; anyone else, or a gate that is not waiting, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_decision_link_reaches_only_the_named_approver() {
    let smtp = Smtp::start();
    let public_url = "http://fleet.test";
    let ws = workspace(smtp.port, public_url, "        to: [team@example.com]", "");
    let signer = signer(ws.path());
    let links = Arc::new(ServerLinks {
        signer: signer.clone(),
        public_url: public_url.into(),
    });
    let engine = engine(ws.path(), Some(links)).await;
    let run = run_to_gate(&engine).await;
    engine
        .deliver_pending(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(smtp.to(OWNER).len(), 1, "the gate's own email");

    let n = engine
        .send_decision_link(&run.id, "go-no-go", &OWNER.to_uppercase())
        .await
        .unwrap_or_else(|e| panic!("send: {e}"));
    assert_eq!(n, 1);
    let mails = smtp.to(OWNER);
    assert_eq!(mails.len(), 2, "a second email, to the owner");
    let text = text_of(&mails[1]);
    let link = format!("{public_url}/runs/{}/gates/go-no-go?t=", run.id);
    assert!(text.contains(&link), "no decision link in: {text}");
    assert_eq!(
        smtp.to(SECOND).len(),
        1,
        "the other approver got nothing new"
    );
    // Asking again sends another, numbered on.
    assert_eq!(
        engine
            .send_decision_link(&run.id, "go-no-go", OWNER)
            .await
            .unwrap_or_else(|e| panic!("again: {e}")),
        2
    );
    assert_eq!(smtp.to(OWNER).len(), 3);

    let refused = engine
        .send_decision_link(&run.id, "go-no-go", "mallory@example.com")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("is not an approver of gate `go-no-go`"),
        "{refused}"
    );
    assert!(smtp.to("mallory@example.com").is_empty());
    let refused = engine
        .send_decision_link(&run.id, "readiness", OWNER)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(refused.contains("not an approval gate"), "{refused}");

    decide(&engine, &run, OWNER, Verdict::Go).await;
    let refused = engine
        .send_decision_link(&run.id, "go-no-go", OWNER)
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(refused.contains("not waiting for a decision"), "{refused}");
    assert_eq!(
        engine
            .store()
            .decisions(&run.id)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .len(),
        1
    );
}
