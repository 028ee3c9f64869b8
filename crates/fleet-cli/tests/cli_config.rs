//! The `fleet` binary's config commands, run as a user runs them.

use assert_cmd::Command;
use predicates::prelude::*;
use std::path::Path;

fn fleet() -> Command {
    let mut cmd = Command::cargo_bin("fleet").expect("fleet binary");
    cmd.env_remove("FLEET_CONFIG");
    cmd
}

fn init(dir: &Path) {
    fleet().arg("init").arg(dir).assert().success();
}

#[test]
fn init_then_validate_succeeds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("x");
    fleet()
        .arg("init")
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("Wrote the release-gate example"));
    assert!(dir.join(".fleet/config.yaml").is_file());
    assert!(dir.join(".fleet/schema.json").is_file());
    fleet()
        .arg("-C")
        .arg(&dir)
        .arg("validate")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            ".fleet/config.yaml: ok (1 genflow, 4 steps)",
        ));
}

#[test]
fn init_writes_a_repository_to_gate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path());
    for dir in ["docs/runbooks", "docs/releases", "migrations"] {
        let count = std::fs::read_dir(tmp.path().join(dir))
            .map(|d| d.count())
            .unwrap_or(0);
        assert!(count > 0, "{dir} should hold example files");
    }
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path());
    let config = tmp.path().join(".fleet/config.yaml");
    std::fs::write(&config, "# my edits\n").expect("write");
    fleet()
        .arg("init")
        .arg(tmp.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read_to_string(&config).expect("read"),
        "# my edits\n"
    );
    fleet()
        .arg("init")
        .arg(tmp.path())
        .arg("--force")
        .assert()
        .success();
    assert_ne!(
        std::fs::read_to_string(&config).expect("read"),
        "# my edits\n"
    );
}

#[test]
fn config_is_found_from_a_subdirectory_and_with_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path());
    let sub = tmp.path().join("docs/runbooks");
    fleet().current_dir(&sub).arg("validate").assert().success();
    fleet()
        .arg("--config")
        .arg(tmp.path().join(".fleet/config.yaml"))
        .arg("validate")
        .assert()
        .success();
    let empty = tempfile::tempdir().expect("tempdir");
    fleet()
        .current_dir(empty.path())
        .arg("validate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no .fleet/config.yaml in"))
        .stderr(predicate::str::contains("fleet init"));
}

#[test]
fn invalid_config_exits_2_with_located_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join(".fleet")).expect("mkdir");
    std::fs::write(
        tmp.path().join(".fleet/config.yaml"),
        "genflows:\n  - name: g\n    steps:\n      - {name: a, kind: report, promt: x, corpus: [d]}\n      - {name: b, kind: review, depends_on: [c]}\n",
    )
    .expect("write");
    fleet()
        .arg("-C")
        .arg(tmp.path())
        .arg("validate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            ".fleet/config.yaml:4:33: error: unknown key `promt` in a step",
        ))
        .stderr(predicate::str::contains("did you mean `prompt`?"))
        .stderr(predicate::str::contains(
            ".fleet/config.yaml:5:46: error: step `b` depends on `c`, which is not a step of genflow `g`",
        ))
        .stderr(predicate::str::contains("3 errors, 0 warnings"));
}

#[test]
fn warnings_print_but_exit_0() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join(".fleet")).expect("mkdir");
    std::fs::write(
        tmp.path().join(".fleet/config.yaml"),
        include_str!("../../fleet-core/tests/fixtures/seed-release-gate.yaml"),
    )
    .expect("write");
    fleet()
        .arg("-C")
        .arg(tmp.path())
        .arg("validate")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "warning: approval step `go-no-go` names no approvers",
        ));
}

#[test]
fn flows_lists_steps_in_dependency_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path());
    let out = fleet()
        .arg("-C")
        .arg(tmp.path())
        .arg("flows")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).expect("utf8");
    let pos = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("{s} missing in:\n{text}"))
    };
    assert!(pos("readiness") < pos("risk-review"));
    assert!(pos("risk-review") < pos("go-no-go"));
    assert!(pos("go-no-go") < pos("announce"));
    assert!(text.contains("approvers: release-owner@example.com (1 required)"));

    let out = fleet()
        .arg("-C")
        .arg(tmp.path())
        .args(["flows", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let steps = &json["genflows"][0]["steps"];
    assert_eq!(steps[3]["name"], "announce");
    assert_eq!(steps[3]["level"], 3);
    assert_eq!(steps[2]["approvers"][0], "release-owner@example.com");
    assert!(
        json["genflows"][0]["definition_hash"]
            .as_str()
            .is_some_and(|h| h.starts_with("sha256:") && h.len() == 71)
    );
}

#[test]
fn schema_is_json_schema_of_the_config() {
    let out = fleet()
        .arg("schema")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let schema: serde_json::Value = serde_json::from_slice(&out).expect("json");
    assert!(
        schema["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("json-schema.org"))
    );
    assert!(schema["properties"]["genflows"].is_object());
    let text = String::from_utf8(out).expect("utf8");
    for field in [
        "depends_on",
        "allow_self_approval",
        "on_flag",
        "api_key_env",
        "public_url",
        "changed_since",
        "release",
        "destinations",
        "PublishDestination",
    ] {
        assert!(text.contains(field), "schema lacks {field}");
    }
}

#[test]
fn every_subcommand_has_help_and_there_is_a_version() {
    fleet()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("fleet "));
    let out = fleet()
        .arg("--help")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let help = String::from_utf8(out).expect("utf8");
    let subcommands: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues on a line indented further.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect();
    assert!(subcommands.len() >= 4, "{help}");
    for sub in subcommands {
        fleet()
            .args([sub.as_str(), "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage: fleet"));
    }
}

#[test]
fn corpus_dry_run_prints_the_manifest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    init(tmp.path());
    let out = fleet()
        .arg("-C")
        .arg(tmp.path())
        .args(["corpus", "release-gate", "readiness"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).expect("utf8");
    for path in [
        "docs/releases/2.4.0.md",
        "docs/runbooks/payments-cutover.md",
        "migrations/0043_drop_legacy_tax_rate.up.sql",
    ] {
        assert!(text.contains(path), "{path} missing from:\n{text}");
    }
    assert!(text.contains("tokens"), "{text}");

    // --json: the same manifest, with blake3 hashes of the files on disk.
    let out = fleet()
        .arg("-C")
        .arg(tmp.path())
        .args(["corpus", "release-gate", "risk-review", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let entries = json["manifest"]["entries"].as_array().expect("entries");
    let release = entries
        .iter()
        .find(|e| e["path"] == "docs/releases/2.4.0.md")
        .expect("release notes in the review's corpus (inherited from the report)");
    let bytes = std::fs::read(tmp.path().join("docs/releases/2.4.0.md")).expect("read");
    assert_eq!(release["size"], bytes.len());

    fleet()
        .arg("-C")
        .arg(tmp.path())
        .args(["corpus", "release-gate", "go-no-go"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "only report and review steps read a corpus",
        ));
}
