//! A decision that committed stands, and `fleet approve` says so, even when
//! what follows it fails. Found by bench/faults: on a full disk `fleet
//! approve --json` committed the Go, then failed writing the readable
//! copies and printed only that error, so a script retried and was told
//! "already decided" with no sign its first try had won. Here the readable
//! copy's path is a directory, which fails the same way for any user.

mod common;

use common::{fleet, json_of};

use std::path::Path;

const OWNER: &str = "release-owner@example.com";

fn gate_status(dir: &Path, id: &str) -> String {
    let run = json_of(fleet(dir).args(["show", id, "--json"]));
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "go-no-go"))
        .and_then(|s| s["status"].as_str())
        .unwrap_or_else(|| panic!("no gate status in {run}"))
        .to_owned()
}

#[test]
fn approve_says_the_decision_was_recorded_when_what_follows_fails() {
    let tmp = common::initialized();
    let dir = tmp.path();
    let run = json_of(fleet(dir).args(["run", "release-gate", "--json"]));
    let id = run["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(run["status"], "waiting");
    let copy = dir.join(".fleet/runs").join(&id).join("decision.md");
    std::fs::create_dir_all(&copy).expect("a directory where decision.md goes");

    let out = fleet(dir)
        .args(["approve", &id, "--as", OWNER, "--json"])
        .output()
        .expect("fleet approve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the run could not continue: {stderr}"
    );
    assert!(
        stderr.contains(&format!("the decision was recorded for run {id}")),
        "{stderr}"
    );
    assert_eq!(gate_status(dir, &id), "approved");

    // Deciding again is refused; once the path is free the run completes.
    let again = fleet(dir)
        .args(["approve", &id, "--step", "go-no-go", "--as", OWNER])
        .output()
        .expect("fleet approve again");
    assert!(!again.status.success());
    std::fs::remove_dir(&copy).expect("free the path");
    fleet(dir).arg("resume").assert().success();
    let runs = json_of(fleet(dir).args(["runs", "--json"]));
    assert_eq!(runs["runs"][0]["status"], "succeeded", "{runs}");
    assert!(copy.is_file(), "decision.md was rewritten from the store");
    fleet(dir).args(["audit", "verify"]).assert().success();
}
