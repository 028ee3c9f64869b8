//! The publish step through the real binary: after Go the approved document
//! reaches a workspace file, a command's stdin and a signed webhook; after
//! No-go nothing is published; a crash between publishing and recording
//! publishes the same revision at most once more.

mod common;

use common::{fleet, json_of};

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

const OWNER: &str = "owner@example.com";

/// A workspace whose gate publishes the drafted notes to `destinations`.
fn workspace(destinations: &str, extra: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join(".fleet")).expect("mkdir");
    std::fs::write(
        dir.join("CHANGELOG.md"),
        "# Changelog\n\n## 4.2.0\n\n- Faster search.\n- Breaking: the v1 API is removed.\n",
    )
    .expect("write changelog");
    let config = format!(
        r#"{extra}genflows:
  - name: gate
    params: [{{name: version, default: 1.0.0, pattern: '\d+\.\d+\.\d+'}}]
    steps:
      - {{name: notes, kind: report, prompt: "Draft the release notes.", corpus: ["*.md"]}}
      - {{name: go, kind: approval, depends_on: [notes], approvers: [{OWNER}]}}
      - name: ship
        kind: publish
        depends_on: [go]
        from: notes
        destinations: {destinations}
"#
    );
    std::fs::write(dir.join(".fleet/config.yaml"), config).expect("write config");
    tmp
}

fn start(dir: &Path) -> String {
    let run = json_of(fleet(dir).args(["run", "gate", "--param", "version=4.2.0", "--json"]));
    assert_eq!(run["status"], "waiting", "{run}");
    run["run_id"].as_str().expect("run_id").to_owned()
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The bytes of the notes revision the run approved, from the run directory.
fn approved_notes(dir: &Path, run: &Value) -> Vec<u8> {
    let id = run["run_id"].as_str().expect("run_id");
    let bytes = std::fs::read(dir.join(".fleet/runs").join(id).join("notes.md")).expect("notes");
    assert_eq!(step(run, "notes")["sha256"], sha256_hex(&bytes));
    bytes
}

/// Each line of `publishes.log`: the sha256 of what one invocation read.
fn command_publishes(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("publishes.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
        .collect()
}

const TO_FILE_AND_COMMAND: &str = r#"
          - {path: "dist/{{ params.version }}/NOTES.md"}
          - {command: [sh, -c, "sha256sum >> publishes.log"]}"#;

#[test]
fn go_publishes_the_approved_revision_to_a_path_and_a_command() {
    let tmp = workspace(TO_FILE_AND_COMMAND, "");
    let dir = tmp.path();
    let id = start(dir);
    assert!(!dir.join("dist").exists(), "nothing published before Go");
    assert!(command_publishes(dir).is_empty());

    let run = json_of(fleet(dir).args(["approve", &id, "--as", OWNER, "--json"]));
    assert_eq!(run["status"], "succeeded", "{run}");
    let notes = approved_notes(dir, &run);
    let published = std::fs::read(dir.join("dist/4.2.0/NOTES.md")).expect("published file");
    assert_eq!(published, notes, "the file holds the approved bytes");
    assert_eq!(command_publishes(dir), vec![sha256_hex(&notes)]);

    // The step's record names each destination with that revision's sha256.
    let record = std::fs::read_to_string(dir.join(".fleet/runs").join(&id).join("ship.md"))
        .expect("ship.md");
    assert!(record.contains("path dist/4.2.0/NOTES.md"), "{record}");
    assert!(record.contains("command sh -c"), "{record}");
    assert_eq!(record.matches(&sha256_hex(&notes)).count(), 3, "{record}");
    // No temp file is left beside the target.
    let names: Vec<_> = std::fs::read_dir(dir.join("dist/4.2.0"))
        .expect("dist")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("NOTES.md")]);
}

#[test]
fn no_go_publishes_nothing() {
    let tmp = workspace(TO_FILE_AND_COMMAND, "");
    let dir = tmp.path();
    let id = start(dir);
    let run = json_of(fleet(dir).args([
        "reject",
        &id,
        "--as",
        OWNER,
        "--reason",
        "not ready",
        "--json",
    ]));
    assert_eq!(run["status"], "rejected", "{run}");
    assert_eq!(step(&run, "ship")["status"], "skipped");
    assert!(!dir.join("dist").exists());
    assert!(command_publishes(dir).is_empty());
}

#[test]
fn a_failing_command_fails_the_step_with_its_stderr() {
    let tmp = workspace(
        r#"[{command: [sh, -c, "echo 'gh: release v9 not found' >&2; exit 3"]}]"#,
        "",
    );
    let dir = tmp.path();
    let id = start(dir);
    let out = fleet(dir)
        .args(["approve", &id, "--as", OWNER, "--json"])
        .output()
        .expect("approve");
    let run = json_of(fleet(dir).args(["show", &id, "--json"]));
    assert_eq!(run["status"], "failed", "{run}");
    let text = format!(
        "{run}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("gh: release v9 not found"), "{text}");
    assert!(text.contains("exit status: 3"), "{text}");
}

#[cfg(unix)]
#[test]
fn a_path_through_a_symlink_out_of_the_workspace_is_refused_and_nothing_is_written_outside() {
    // `dist` is a symlink to a directory outside the workspace: the path is
    // relative and has no `..`, so only the run-time check can stop it, both
    // for a file straight in `dist` and for one in a directory still to be
    // created under it.
    let outside = tempfile::tempdir().expect("tempdir");
    let tmp = workspace(
        r#"[{path: dist/NOTES.md}, {path: "dist/{{ params.version }}/NOTES.md"}]"#,
        "",
    );
    let dir = tmp.path();
    std::os::unix::fs::symlink(outside.path(), dir.join("dist")).expect("symlink");
    let id = start(dir);
    let out = fleet(dir)
        .args(["approve", &id, "--as", OWNER, "--json"])
        .output()
        .expect("approve");
    let run = json_of(fleet(dir).args(["show", &id, "--json"]));
    assert_eq!(run["status"], "failed", "{run}");
    let text = format!(
        "{run}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("`dist/NOTES.md` resolves outside the workspace"),
        "{text}"
    );
    assert!(
        text.contains("`dist/4.2.0/NOTES.md` resolves outside the workspace"),
        "{text}"
    );
    // Not a file, not a directory, not a temp file.
    let written: Vec<_> = std::fs::read_dir(outside.path())
        .expect("outside dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        written.is_empty(),
        "written outside the workspace: {written:?}"
    );
}

/// Runs `fleet` with `env` until it prints `marker` on stderr, then SIGKILLs it.
fn kill_when(dir: &Path, args: &[&str], env: &[(&str, &str)], marker: &str) {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleet"));
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("FLEET_CONFIG")
        .env("FLEET_USER", "dev@example.com")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    common::use_database_std(&mut cmd, dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&wanted) {
                let _ = tx.send(());
                return;
            }
        }
    });
    let seen = rx.recv_timeout(Duration::from_secs(30)).is_ok();
    // SIGKILL: no destructors, no flushing, exactly like a crash.
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "never saw `{marker}` before the kill");
}

#[test]
fn killed_after_publishing_the_rerun_publishes_the_same_revision_at_most_once_more() {
    let tmp = workspace(TO_FILE_AND_COMMAND, "");
    let dir = tmp.path();
    let id = start(dir);
    kill_when(
        dir,
        &["approve", &id, "--as", OWNER],
        &[
            ("FLEET_FAULT", "pause-after:published"),
            ("FLEET_LEASE_TTL", "1s"),
        ],
        "fault injection: paused after published",
    );
    // Published, not recorded: the step is still running in the store.
    let run = json_of(fleet(dir).args(["show", &id, "--json"]));
    assert_ne!(step(&run, "ship")["status"], "succeeded", "{run}");
    assert_eq!(command_publishes(dir).len(), 1);
    // The upstream document changes on disk after the decision; what was
    // approved is the stored revision, so that is what must go out again.
    std::fs::write(
        dir.join(".fleet/runs").join(&id).join("notes.md"),
        "# Tampered\n",
    )
    .expect("edit readable copy");

    // The dead process's lease must lapse before another may take the step.
    std::thread::sleep(Duration::from_millis(1500));
    fleet(dir)
        .env("FLEET_LEASE_TTL", "1s")
        .args(["resume"])
        .assert()
        .success();
    let run = json_of(fleet(dir).args(["show", &id, "--json"]));
    assert_eq!(run["status"], "succeeded", "{run}");
    let approved = step(&run, "notes")["sha256"]
        .as_str()
        .expect("sha")
        .to_owned();
    let publishes = command_publishes(dir);
    assert!(
        (1..=2).contains(&publishes.len()),
        "at most one extra publish: {publishes:?}"
    );
    assert!(
        publishes.iter().all(|p| *p == approved),
        "only the approved revision was ever published: {publishes:?} vs {approved}"
    );
    let file = std::fs::read(dir.join("dist/4.2.0/NOTES.md")).expect("published file");
    assert_eq!(sha256_hex(&file), approved);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_destination_gets_a_signed_post_of_the_approved_document() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/publish"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let tmp = workspace(
        &format!("[{{webhook: \"{}/publish\"}}]", server.uri()),
        "notify: {webhook: {secret_env: PUBLISH_TEST_SECRET}}\n",
    );
    let dir = tmp.path().to_owned();
    let run = tokio::task::spawn_blocking(move || {
        let id = start(&dir);
        let run = json_of(
            fleet(&dir)
                .env("PUBLISH_TEST_SECRET", "s3cret")
                .args(["approve", &id, "--as", OWNER, "--json"]),
        );
        (dir, run)
    })
    .await
    .expect("fleet ran");
    let (dir, run) = run;
    assert_eq!(run["status"], "succeeded", "{run}");
    let notes = approved_notes(&dir, &run);

    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let req = &requests[0];
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_owned()
    };
    let signature = header(fleet_notify::SIGNATURE_HEADER);
    let timestamp = header(fleet_notify::TIMESTAMP_HEADER);
    assert!(fleet_notify::verify_signature(
        b"s3cret", &timestamp, &req.body, &signature
    ));
    assert!(!fleet_notify::verify_signature(
        b"other", &timestamp, &req.body, &signature
    ));
    let body: Value = serde_json::from_slice(&req.body).expect("JSON body");
    assert_eq!(body["document"]["sha256"], sha256_hex(&notes));
    assert_eq!(
        body["document"]["text"],
        String::from_utf8_lossy(&notes).as_ref()
    );
    drop(tmp);
}
