//! `fleet show` lists the redraft rounds of a review loop, through the real
//! binary: a scripted `command` model (the decision-page tests' script)
//! makes one loop converge and another hit its bound.

use assert_cmd::Command;
use serde_json::Value;
use std::path::Path;

mod common;

use common::fleet;

const MODEL: &str = include_str!("../../fleet-server/tests/fixtures/redraft-model.sh");

/// `fleet init`'s example with both analysis steps on the scripted model
/// and the review redrafting the report at most `max` times.
fn project(max: u32, stubborn: bool) -> tempfile::TempDir {
    let tmp = common::initialized();
    let path = tmp.path().join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&path).expect("config");
    let mut edited = text
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
    if stubborn {
        edited = edited.replace(
            "prompt: \"Assemble the release readiness report",
            "prompt: \"(stubborn) Assemble the release readiness report",
        );
    }
    assert!(
        edited.contains("on_flag") && edited.contains("(stubborn)") == stubborn,
        "the example config changed shape: {edited}"
    );
    std::fs::write(&path, edited).expect("write config");
    std::fs::write(tmp.path().join("redraft-model.sh"), MODEL).expect("write model");
    tmp
}

fn run_to_gate(dir: &Path) -> String {
    let out = fleet(dir)
        .args(["run", "release-gate", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let run: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(run["status"], "waiting", "{run}");
    run["run_id"].as_str().expect("run_id").to_owned()
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(cmd.assert().success().get_output().stdout.clone()).expect("utf-8")
}

#[test]
fn show_lists_the_rounds_of_a_loop_that_hit_its_bound() {
    let tmp = project(1, true);
    let id = run_to_gate(tmp.path());
    let text = stdout(fleet(tmp.path()).args(["show", &id]));
    for line in [
        "  Redraft rounds: risk-review sends readiness back on high flags, at most 1 time\n",
        "    1 of 1 redrafts used; 1 high flag remains (the limit was reached: the gate decides with them open)\n",
        "    round 1  readiness.md rev 1 -> risks.md rev 1: 2 raised\n",
        "      new       F1 high   The rollback plan is TBD.\n",
        "      new       F2 high   Security sign-off is still pending.\n",
        "    round 2  readiness.md rev 2 -> risks.md rev 2: 1 raised, 1 answered\n",
        "      answered  F1 high   The rollback plan is TBD.\n",
        "      remains   F1 high   Security sign-off is still pending. (was F2)\n",
        &format!(
            "    readiness.md rev 1 -> rev 2: +1 -1 lines (fleet show {} --diff)\n",
            &id[..8]
        ),
    ] {
        assert!(text.contains(line), "`fleet show` lacks {line:?}:\n{text}");
    }
    // The diff only when asked for.
    assert!(!text.contains("-Rollback plan: TBD"));
    let with_diff = stdout(fleet(tmp.path()).args(["show", &id, "--diff"]));
    for line in [
        "      --- readiness.md rev 1\n",
        "      +++ readiness.md rev 2\n",
        "      -Rollback plan: TBD\n",
        "      +Rollback plan: restore the previous build, then replay the queue.\n",
    ] {
        assert!(
            with_diff.contains(line),
            "--diff lacks {line:?}:\n{with_diff}"
        );
    }
    // `--step` of an unrelated step leaves the rounds out.
    let gate_only = stdout(fleet(tmp.path()).args(["show", &id, "--step", "go-no-go"]));
    assert!(!gate_only.contains("Redraft rounds"), "{gate_only}");
}

#[test]
fn show_json_says_a_loop_converged_and_which_flags_were_answered() {
    let tmp = project(2, false);
    let id = run_to_gate(tmp.path());
    let out = stdout(fleet(tmp.path()).args(["show", &id, "--json"]));
    let v: Value = serde_json::from_str(&out).expect("json");
    let rounds = &v["rounds"][0];
    assert_eq!(
        rounds["summary"],
        "converged after 1 redraft; no high flags remain (1 lower flag stands)"
    );
    assert_eq!(
        (
            rounds["redrafts_used"].as_u64(),
            rounds["bound_reached"].as_bool()
        ),
        (Some(1), Some(false))
    );
    let list = rounds["rounds"].as_array().expect("rounds");
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["report"]["revision"], 2);
    assert_eq!(list[1]["answered"][0]["claim"], "The rollback plan is TBD.");
    assert_eq!(list[1]["raised"][0]["was"], "F2");
    assert_eq!(list[1]["remaining"], serde_json::json!(["F1"]));
    // The decision is taken on the latest revision and records it.
    fleet(tmp.path())
        .args(["approve", &id, "--as", "release-owner@example.com"])
        .assert()
        .success();
    let v: Value = serde_json::from_str(&stdout(fleet(tmp.path()).args(["show", &id, "--json"])))
        .expect("json");
    let shown = &v["decisions"][0]["shown"];
    assert_eq!(shown[0]["path"], "readiness.md");
    assert_eq!(shown[0]["revision"], 2, "{shown}");
}
