//! Runs through the real binary on the `fleet init` example: reaching the
//! gate, Go, No-go, concurrent approvals, crashes, and tampering.

mod common;

use common::fleet;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const OWNER: &str = "release-owner@example.com";

fn json_of(cmd: &mut Command) -> Value {
    let out = cmd.assert().get_output().stdout.clone();
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out)))
}

fn start(dir: &Path) -> Value {
    json_of(fleet(dir).args(["run", "release-gate", "--json"]))
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

fn show(dir: &Path, id: &str) -> Value {
    json_of(fleet(dir).args(["show", id, "--json"]))
}

fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(std::fs::read(path).expect("read artifact")))
}

#[test]
fn run_reaches_the_gate_with_documents_written() {
    let tmp = common::initialized();
    let run = start(tmp.path());
    assert_eq!(run["status"], "waiting");
    let id = run["run_id"].as_str().expect("run_id");
    for (name, status) in [
        ("readiness", "succeeded"),
        ("risk-review", "succeeded"),
        ("go-no-go", "waiting"),
        ("announce", "pending"),
    ] {
        assert_eq!(step(&run, name)["status"], status, "{name}");
    }
    let dir = tmp.path().join(".fleet/runs").join(id);
    for out in ["readiness.md", "risks.md", "risks.flags.json"] {
        let path = dir.join(out);
        assert!(path.is_file(), "{out} written");
    }
    // The sha256 the store reports is of the exact bytes on disk.
    let readiness = step(&run, "readiness");
    assert_eq!(readiness["sha256"], sha256_file(&dir.join("readiness.md")));
    assert_eq!(readiness["revision"], 1);
    assert!(!dir.join("sent.md").exists());
}

#[test]
fn text_output_says_exactly_how_to_decide() {
    let tmp = common::initialized();
    fleet(tmp.path())
        .args(["run", "release-gate"])
        .assert()
        .success()
        .stdout(predicate::str::contains("is waiting at gate `go-no-go`"))
        .stdout(predicate::str::contains(format!(
            "--step go-no-go --as {OWNER}"
        )))
        .stdout(predicate::str::contains("fleet reject"));
}

#[test]
fn go_completes_the_run_and_announces() {
    let tmp = common::initialized();
    let id = start(tmp.path())["run_id"].as_str().expect("id").to_owned();
    let done = json_of(fleet(tmp.path()).args(["approve", &id[..8], "--as", OWNER, "--json"]));
    assert_eq!(done["status"], "succeeded");
    assert_eq!(step(&done, "announce")["status"], "succeeded");
    let dir = tmp.path().join(".fleet/runs").join(&id);
    let decision = std::fs::read_to_string(dir.join("decision.md")).expect("decision.md");
    assert!(decision.contains("**GO**"));
    assert!(decision.contains(OWNER));
    assert!(decision.contains(&id));
    // The decision names the exact bytes the approver was shown.
    let readiness_sha = sha256_file(&dir.join("readiness.md"));
    assert!(decision.contains(&readiness_sha), "{decision}");
    let def_hash = done["definition_hash"].as_str().expect("hash");
    assert!(decision.contains(def_hash));

    let sent = std::fs::read_to_string(dir.join("sent.md")).expect("sent.md");
    assert!(sent.contains("**GO**") && sent.contains(OWNER) && sent.contains(&readiness_sha));

    let decisions = done["decisions"].as_array().expect("decisions");
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0]["approver"], OWNER);
    assert_eq!(decisions[0]["channel"], "cli");
    assert_eq!(decisions[0]["verdict"], "go");

    fleet(tmp.path())
        .args(["audit", "verify"])
        .assert()
        .success()
        .stdout(predicate::str::contains("audit ok"));
}

#[test]
fn no_go_stops_the_run_and_nothing_is_announced() {
    let tmp = common::initialized();
    let id = start(tmp.path())["run_id"].as_str().expect("id").to_owned();
    fleet(tmp.path())
        .args(["reject", &id, "--as", OWNER])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--reason"));
    let done = json_of(fleet(tmp.path()).args([
        "reject",
        &id,
        "--as",
        OWNER,
        "--reason",
        "REG-1423 is still open",
        "--json",
    ]));
    assert_eq!(done["status"], "rejected");
    assert_eq!(step(&done, "go-no-go")["status"], "rejected");
    assert_eq!(step(&done, "announce")["status"], "skipped");
    let dir = tmp.path().join(".fleet/runs").join(&id);
    assert!(!dir.join("sent.md").exists());
    let decision = std::fs::read_to_string(dir.join("decision.md")).expect("decision.md");
    assert!(decision.contains("NO-GO") && decision.contains("REG-1423 is still open"));
    // --wait style exit code: a rejected run is a failure for CI.
    fleet(tmp.path()).args(["show", &id]).assert().success();
}

#[test]
fn only_named_approvers_and_no_self_approval() {
    let tmp = common::initialized();
    let id = start(tmp.path())["run_id"].as_str().expect("id").to_owned();
    fleet(tmp.path())
        .args(["approve", &id, "--as", "mallory@example.com"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is not an approver of this gate"));
    // The owner started this run, so the owner may not approve it.
    let tmp2 = common::initialized();
    let id2 = json_of(fleet(tmp2.path()).args(["run", "release-gate", "--as", OWNER, "--json"]))["run_id"]
        .as_str()
        .expect("id")
        .to_owned();
    fleet(tmp2.path())
        .args(["approve", &id2, "--as", OWNER])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("may not approve it"));
    assert_eq!(show(tmp2.path(), &id2)["status"], "waiting");
}

#[test]
fn wait_exits_nonzero_when_rejected() {
    let tmp = common::initialized();
    let bin = assert_cmd::cargo::cargo_bin("fleet");
    let stderr = std::fs::File::create(tmp.path().join("wait.stderr")).expect("stderr file");
    let mut waiting = std::process::Command::new(&bin);
    common::use_database_std(&mut waiting, tmp.path());
    let mut child = waiting
        .args(["-C"])
        .arg(tmp.path())
        .args(["run", "release-gate", "--wait", "--json"])
        .env("FLEET_USER", "dev@example.com")
        .stdout(Stdio::null())
        .stderr(stderr)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn");
    let id = wait_for_run(tmp.path(), "waiting", &mut child);
    fleet(tmp.path())
        .args(["reject", &id, "--as", OWNER, "--reason", "not ready"])
        .assert()
        .success();
    let status = wait_child(&mut child, Duration::from_secs(20));
    assert_eq!(status.code(), Some(1));
}

fn wait_child(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!("child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `fleet runs --json` until a run with `status` exists; returns its
/// id. Fails at once, with its stderr, if the process producing it exited.
fn wait_for_run(dir: &Path, status: &str, producer: &mut std::process::Child) -> String {
    let t = Instant::now();
    loop {
        if let Ok(Some(exit)) = producer.try_wait() {
            let err = std::fs::read_to_string(dir.join("wait.stderr")).unwrap_or_default();
            panic!(
                "`fleet run --wait` exited early ({exit}) before a {status} run appeared:\n{err}"
            );
        }
        let runs = json_of(fleet(dir).args(["runs", "--json"]));
        if let Some(r) = runs["runs"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["status"] == status))
        {
            return r["run_id"].as_str().expect("id").to_owned();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no {status} run appeared within 60 s: {runs}\n{}",
            std::fs::read_to_string(dir.join("wait.stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn twenty_concurrent_approvals_record_exactly_one_decision() {
    let tmp = common::initialized();
    let id = start(tmp.path())["run_id"].as_str().expect("id").to_owned();
    let bin = assert_cmd::cargo::cargo_bin("fleet");
    let children: Vec<_> = (0..20)
        .map(|_| {
            let mut approve = std::process::Command::new(&bin);
            common::use_database_std(&mut approve, tmp.path());
            approve
                .arg("-C")
                .arg(tmp.path())
                .args(["approve", &id, "--as", OWNER])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let mut ok = 0;
    let mut refused = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        if out.status.success() {
            ok += 1;
        } else {
            refused.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    assert_eq!(ok, 1, "exactly one approval wins; refusals: {refused:#?}");
    for r in &refused {
        assert!(
            r.contains("already decided"),
            "clear refusal expected, got: {r}"
        );
    }
    let run = show(tmp.path(), &id);
    assert_eq!(run["decisions"].as_array().map(Vec::len), Some(1));
    assert_eq!(run["status"], "succeeded");
    assert_eq!(step(&run, "announce")["revision"], 1);
}

/// A project whose report step takes a while (a slow source command), so a
/// process can be killed in the middle of it.
fn slow_project() -> tempfile::TempDir {
    let tmp = common::initialized();
    let config = tmp.path().join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        r#"corpus: ["docs/runbooks/*.md", "docs/releases/*.md", "migrations/**"], kind: report"#,
        r#"corpus: ["docs/runbooks/*.md", "docs/releases/*.md", "migrations/**"], sources: [{name: ci, command: "sleep 2; echo CI green"}], kind: report"#,
    );
    assert!(text.contains("sleep 2"), "config edit applied");
    std::fs::write(&config, text).expect("write config");
    tmp
}

/// Starts `fleet ARGS` and SIGKILLs it once its stderr shows `marker`.
fn kill_when(dir: &Path, args: &[&str], env: &[(&str, &str)], marker: &str) {
    let bin = assert_cmd::cargo::cargo_bin("fleet");
    let mut cmd = std::process::Command::new(bin);
    cmd.arg("-C")
        .arg(dir)
        .args(args)
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
    let seen = rx.recv_timeout(Duration::from_secs(20)).is_ok();
    // SIGKILL: no destructors, no flushing, exactly like a crash.
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "never saw `{marker}` before the kill");
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join(".fleet/fleet.db")
}

#[test]
fn killed_mid_step_the_run_resumes_and_finishes_exactly_once() {
    let tmp = slow_project();
    let dir = tmp.path();
    kill_when(
        dir,
        &["run", "release-gate"],
        &[("FLEET_LEASE_TTL", "1s")],
        "readiness        running",
    );
    let runs = json_of(fleet(dir).args(["runs", "--json"]));
    let id = runs["runs"][0]["run_id"]
        .as_str()
        .expect("a run was recorded")
        .to_owned();
    assert_eq!(runs["runs"][0]["status"], "running");

    // The dead worker's lease must lapse before another process may take the step.
    std::thread::sleep(Duration::from_millis(1500));
    fleet(dir)
        .env("FLEET_LEASE_TTL", "1s")
        .args(["resume"])
        .assert()
        .success();
    let run = show(dir, &id);
    assert_eq!(run["status"], "waiting", "{run}");
    assert_eq!(
        step(&run, "readiness")["revision"],
        1,
        "one readiness document, not two"
    );

    // Killed right after the decision is committed: the restart announces once.
    kill_when(
        dir,
        &["approve", &id, "--as", OWNER],
        &[("FLEET_FAULT", "pause-after:decision")],
        "fault injection: paused after decision",
    );
    let run = show(dir, &id);
    assert_eq!(run["decisions"].as_array().map(Vec::len), Some(1));
    fleet(dir).args(["resume"]).assert().success();
    let run = show(dir, &id);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["decisions"].as_array().map(Vec::len), Some(1));
    assert_eq!(step(&run, "announce")["revision"], 1);
    let sent = dir.join(".fleet/runs").join(&id).join("sent.md");
    assert!(sent.is_file());
    fleet(dir).args(["audit", "verify"]).assert().success();
}

#[test]
fn killed_between_commit_and_file_write_the_files_come_back() {
    let tmp = common::initialized();
    let dir = tmp.path();
    kill_when(
        dir,
        &["run", "release-gate"],
        &[("FLEET_FAULT", "pause-after:step_succeeded")],
        "fault injection: paused after step_succeeded",
    );
    let runs = json_of(fleet(dir).args(["runs", "--json"]));
    let id = runs["runs"][0]["run_id"].as_str().expect("run").to_owned();
    fleet(dir).args(["resume"]).assert().success();
    let run = show(dir, &id);
    assert_eq!(run["status"], "waiting");
    let readiness = dir.join(".fleet/runs").join(&id).join("readiness.md");
    assert_eq!(step(&run, "readiness")["sha256"], sha256_file(&readiness));
}

fn sql(db: &Path, statement: &str) {
    let conn = rusqlite::Connection::open(db).expect("open database");
    conn.execute_batch(statement).expect("tamper statement");
}

#[test]
fn tampering_with_an_artifact_or_an_event_is_detected_and_named() {
    // Edits the SQLite file itself; the PostgreSQL store's tamper checks
    // are in fleet-store's suite (tests/postgres.rs).
    if common::postgres_pass() {
        return;
    }
    let tmp = common::initialized();
    let dir = tmp.path();
    let id = start(dir)["run_id"].as_str().expect("id").to_owned();
    fleet(dir)
        .args(["approve", &id, "--as", OWNER])
        .assert()
        .success();
    fleet(dir).args(["audit", "verify"]).assert().success();

    let copy = tempfile::tempdir().expect("tempdir");
    let copy_db = |name: &str| {
        let d = copy.path().join(name);
        std::fs::create_dir_all(d.join(".fleet")).expect("mkdir");
        std::fs::copy(dir.join(".fleet/config.yaml"), d.join(".fleet/config.yaml"))
            .expect("copy config");
        // Checkpoint so the copy holds everything.
        sql(&db_path(dir), "PRAGMA wal_checkpoint(TRUNCATE)");
        std::fs::copy(db_path(dir), db_path(&d)).expect("copy db");
        d
    };

    let a = copy_db("artifact");
    sql(
        &db_path(&a),
        "UPDATE artifacts SET bytes = CAST('# Release is ready, no risks' AS BLOB) WHERE sha256 = (SELECT sha256 FROM artifact_revisions WHERE path = 'readiness.md')",
    );
    fleet(&a)
        .args(["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("readiness.md"));

    let e = copy_db("event");
    sql(
        &db_path(&e),
        "UPDATE events SET payload_json = replace(payload_json, 'release-owner@example.com', 'mallory@example.com') WHERE kind = 'decision.recorded'",
    );
    fleet(&e)
        .args(["audit", "verify"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("event"))
        .stderr(predicate::str::contains("decision.recorded"));
}

#[test]
fn audit_export_writes_a_checkable_bundle() {
    let tmp = common::initialized();
    let dir = tmp.path();
    let id = start(dir)["run_id"].as_str().expect("id").to_owned();
    fleet(dir)
        .args(["approve", &id, "--as", OWNER])
        .assert()
        .success();
    let out = dir.join("evidence");
    fleet(dir)
        .args(["audit", "export", &id, "--out"])
        .arg(&out)
        .assert()
        .success();
    for f in [
        "events.jsonl",
        "genflow.json",
        "documents/decision.md",
        "VERIFY.md",
        "SHA256SUMS",
        "decisions.json",
    ] {
        assert!(out.join(f).is_file(), "{f} in bundle");
    }
    // Every SHA256SUMS line matches its file.
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).expect("sums");
    for line in sums.lines() {
        let (sum, path) = line.split_once("  ").expect("sum line");
        assert_eq!(sha256_file(&out.join(path)), sum, "{path}");
    }
    // The definition in the bundle hashes to the recorded definition hash.
    let run = show(dir, &id);
    assert_eq!(
        format!("sha256:{}", sha256_file(&out.join("genflow.json"))),
        run["definition_hash"].as_str().expect("hash")
    );
    fleet(dir)
        .args(["audit", "export", &id, "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not empty"));
}

#[test]
fn cancel_and_retry() {
    let tmp = common::initialized();
    let dir = tmp.path();
    let id = start(dir)["run_id"].as_str().expect("id").to_owned();
    fleet(dir).args(["cancel", &id]).assert().success();
    assert_eq!(show(dir, &id)["status"], "cancelled");
    fleet(dir)
        .args(["approve", &id, "--as", OWNER])
        .assert()
        .code(1);
    fleet(dir).args(["retry", &id]).assert().success();
    assert_eq!(show(dir, &id)["status"], "waiting");
    fleet(dir)
        .args(["retry", &id, "--from", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no step `nope`"));
}

#[test]
fn unknown_run_and_genflow_are_clear_errors() {
    let tmp = common::initialized();
    fleet(tmp.path())
        .args(["show", "0000ffff"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not found"));
    fleet(tmp.path())
        .args(["run", "release-gat"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no genflow named `release-gat`"));
}
