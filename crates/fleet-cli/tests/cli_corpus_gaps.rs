//! Nothing read is never a clean bill: a corpus glob that matches no file is
//! a warning at its config line from `fleet validate` and `fleet corpus`, and
//! the run's review carries a high flag naming it, through the real binary.

mod common;

use common::fleet;

use assert_cmd::Command;
use serde_json::Value;
use std::path::Path;

/// The `fleet init` example with `from` replaced by `to` in its config.
fn project_with(from: &str, to: &str) -> tempfile::TempDir {
    let tmp = common::initialized();
    let config = tmp.path().join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(text.contains(from), "the example config names {from}");
    std::fs::write(&config, text.replacen(from, to, 1)).expect("write config");
    tmp
}

/// `line:col` of the first `needle` in the config, as a diagnostic names it
/// (the column of the quote that opens the glob).
fn located(dir: &Path, needle: &str) -> String {
    let text = std::fs::read_to_string(dir.join(".fleet/config.yaml")).expect("config");
    let (i, line) = text
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .expect("needle in config");
    let col = line[..line.find(needle).expect("needle")].chars().count() + 1;
    format!(".fleet/config.yaml:{}:{col}: warning: ", i + 1)
}

fn stderr_of(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().clone();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn flags_of_run(dir: &Path) -> Vec<Value> {
    let out = fleet(dir)
        .args(["run", "release-gate", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let run: Value = serde_json::from_slice(&out).expect("run JSON");
    let id = run["run_id"].as_str().expect("run_id");
    let flags = std::fs::read(dir.join(".fleet/runs").join(id).join("risks.flags.json"))
        .expect("risks.flags.json");
    let flags: Value = serde_json::from_slice(&flags).expect("flags JSON");
    flags["flags"].as_array().expect("flags").clone()
}

#[test]
fn a_glob_matching_nothing_is_warned_at_its_line_and_flagged_high_by_the_review() {
    let tmp = project_with("\"docs/runbooks/*.md\"", "\"docs/runbok/*.md\"");
    let dir = tmp.path();
    let at = located(dir, "\"docs/runbok/*.md\"");

    let validate = stderr_of(fleet(dir).arg("validate"));
    assert!(
        validate.contains(&format!(
            "{at}corpus glob `docs/runbok/*.md` of step `readiness`"
        )),
        "validate should warn at {at}:\n{validate}"
    );
    let corpus = stderr_of(fleet(dir).args(["corpus", "release-gate", "risk-review"]));
    assert!(
        corpus.contains(&format!("{at}corpus glob `docs/runbok/*.md`")),
        "fleet corpus on the review reading the report's globs should warn:\n{corpus}"
    );

    let flags = flags_of_run(dir);
    let first = &flags[0];
    assert_eq!(first["severity"], "high", "{first}");
    let claim = first["claim"].as_str().expect("claim");
    assert!(
        claim.contains("`docs/runbok/*.md`") && claim.contains("`readiness`"),
        "the first flag names the glob and its step: {claim}"
    );
    // Named once, though the review read the same globs as the report.
    let naming = flags
        .iter()
        .filter(|f| {
            f["claim"]
                .as_str()
                .is_some_and(|c| c.contains("docs/runbok"))
        })
        .count();
    assert_eq!(naming, 1, "{flags:#?}");
}

#[test]
fn a_glob_naming_a_directory_suggests_its_contents() {
    let tmp = project_with("\"docs/runbooks/*.md\"", "\"docs/runbooks\"");
    let validate = stderr_of(fleet(tmp.path()).arg("validate"));
    assert!(
        validate.contains("write `docs/runbooks/**` to read the files in it"),
        "{validate}"
    );
}

#[test]
fn the_example_as_shipped_has_no_gap() {
    let tmp = project_with("release-gate", "release-gate");
    let validate = stderr_of(fleet(tmp.path()).arg("validate"));
    assert!(!validate.contains("matches no file"), "{validate}");
    let flags = flags_of_run(tmp.path());
    assert!(
        flags
            .iter()
            .all(|f| !f["id"].as_str().is_some_and(|id| id.starts_with('G'))),
        "{flags:#?}"
    );
}
