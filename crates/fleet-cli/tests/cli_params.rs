//! Genflow params through the real binary: `fleet run --param`, the usage
//! errors for a missing, an undeclared and a pattern-failing value, and a
//! value reaching a prompt, a corpus glob, a source command, `fleet show`
//! and `decision.md`.

mod common;

use common::{fleet, json_of};

use predicates::prelude::*;
use std::path::Path;

const OWNER: &str = "release-owner@example.com";

const CONFIG: &str = r#"approvers: [release-owner@example.com]
genflows:
  - name: release-gate
    release: "{{ params.version }}"
    params:
      - {name: version, pattern: '\d+\.\d+\.\d+', description: The release being gated}
      - {name: channel, default: stable}
    steps:
      - name: readiness
        kind: report
        prompt: "Assemble the readiness report for release {{ params.version }} on {{ params.channel }}."
        corpus: ["docs/{{ params.version }}/*.md"]
        sources:
          - {name: version, command: "printf 'gating %s' \"$FLEET_PARAM_VERSION\""}
      - {name: risk-review, kind: review, depends_on: [readiness], prompt: Find what the report underplays.}
      - {name: go-no-go, kind: approval, depends_on: [readiness, risk-review], question: "Ship {{ params.version }}?", out: decision.md}
"#;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), ".fleet/config.yaml", CONFIG);
    write(
        tmp.path(),
        "docs/4.2.0/notes.md",
        "# 4.2.0\n\n- [ ] Sign-off from support pending\n",
    );
    write(
        tmp.path(),
        "docs/4.1.0/notes.md",
        "# 4.1.0\n\n- [ ] An old item nobody should read\n",
    );
    tmp
}

#[test]
fn bad_values_are_usage_errors_naming_the_param() {
    let tmp = project();
    let dir = tmp.path();
    fleet(dir)
        .args(["run", "release-gate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("parameter `version`"))
        .stderr(predicate::str::contains("has no default"));
    fleet(dir)
        .args(["run", "release-gate", "--param", "version=4.2.0"])
        .args(["--param", "colour=red"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "genflow `release-gate` has no parameter `colour`",
        ));
    fleet(dir)
        .args(["run", "release-gate", "--param", "version=4.2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "parameter `version`: `4.2` does not match its pattern",
        ));
    fleet(dir)
        .args(["run", "release-gate", "--param", "version"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("NAME=VALUE"));
    // None of them started a run.
    let runs = json_of(fleet(dir).args(["runs", "--json"]));
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(0), "{runs}");
}

#[test]
fn a_value_reaches_the_prompt_the_corpus_the_record_and_decision_md() {
    let tmp = project();
    let dir = tmp.path();
    let run =
        json_of(fleet(dir).args(["run", "release-gate", "--param", "version=4.2.0", "--json"]));
    let id = run["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(run["params"]["version"], "4.2.0", "{run}");
    assert_eq!(run["params"]["channel"], "stable", "{run}");

    // The prompt the model was given, and what the corpus read.
    let readiness = json_of(fleet(dir).args(["show", &id, "--step", "readiness", "--json"]));
    let attempt = &readiness["attempts"][0];
    assert_eq!(
        attempt["prompt"], "Assemble the readiness report for release 4.2.0 on stable.",
        "{readiness}"
    );
    let manifest = attempt["manifest"].to_string();
    assert!(manifest.contains("docs/4.2.0/notes.md"), "{manifest}");
    assert!(!manifest.contains("docs/4.1.0"), "{manifest}");
    let report = std::fs::read_to_string(dir.join(format!(".fleet/runs/{id}/readiness.md")))
        .expect("readiness.md");
    assert!(report.contains("Sign-off from support pending"), "{report}");
    assert!(!report.contains("An old item"), "{report}");

    // `fleet show` names the values.
    fleet(dir)
        .args(["show", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains("param:      version = 4.2.0"));

    fleet(dir)
        .args(["approve", &id, "--step", "go-no-go", "--as", OWNER])
        .assert()
        .success();
    let decision = std::fs::read_to_string(dir.join(format!(".fleet/runs/{id}/decision.md")))
        .expect("decision.md");
    assert!(decision.contains("> Ship 4.2.0?"), "{decision}");
    assert!(
        decision.contains("| param `version` | 4.2.0 |"),
        "{decision}"
    );
    assert!(
        decision.contains("| param `channel` | stable |"),
        "{decision}"
    );

    // On the audit record: in `run.created` and in the hashed definition.
    let bundle = dir.join("bundle");
    fleet(dir)
        .args(["audit", "export", &id, "--out"])
        .arg(&bundle)
        .assert()
        .success();
    let events = std::fs::read_to_string(bundle.join("events.jsonl")).expect("events.jsonl");
    let created = events
        .lines()
        .find(|l| l.contains("\"run.created\""))
        .expect("run.created event");
    assert!(
        created.contains(r#""params":{"channel":"stable","version":"4.2.0"}"#),
        "{created}"
    );
    let definition = std::fs::read_to_string(bundle.join("genflow.json")).expect("genflow.json");
    assert!(
        definition.contains(r#""param_values":{"channel":"stable","version":"4.2.0"}"#),
        "{definition}"
    );
    fleet(dir).args(["audit", "verify"]).assert().success();
}

#[test]
fn a_shell_source_reads_the_value_from_its_environment() {
    let tmp = project();
    let dir = tmp.path();
    let run =
        json_of(fleet(dir).args(["run", "release-gate", "--param", "version=4.2.0", "--json"]));
    let id = run["run_id"].as_str().expect("run id").to_owned();
    let readiness = json_of(fleet(dir).args(["show", &id, "--step", "readiness", "--json"]));
    let manifest = readiness["attempts"][0]["manifest"].to_string();
    assert!(manifest.contains("source:version"), "{manifest}");
    // 'gating 4.2.0' is 12 bytes: the value arrived, not an empty variable.
    assert!(manifest.contains("\"size\":12"), "{manifest}");
}

#[test]
fn config_errors_in_params_are_located() {
    let tmp = project();
    let dir = tmp.path();
    let broken = CONFIG.replace("{{ params.channel }}", "{{ params.chanel }}");
    write(dir, ".fleet/config.yaml", &broken);
    fleet(dir)
        .arg("validate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            ".fleet/config.yaml:11:17: error: `prompt` uses `params.chanel`, which is not a declared parameter",
        ))
        .stderr(predicate::str::contains("did you mean `channel`?"));
}

#[test]
fn flows_lists_each_param() {
    let tmp = project();
    let dir = tmp.path();
    let scheduled = CONFIG
        .replace(
            "      - {name: channel, default: stable}\n",
            "      - {name: channel, default: stable}\n      - {name: note, default: \"\"}\n",
        )
        .replace(
            "    release: \"{{ params.version }}\"\n",
            "    release: \"{{ params.version }}\"\n    schedule: \"@daily\"\n    schedule_params: {version: 9.9.0}\n",
        );
    assert_ne!(scheduled, CONFIG);
    write(dir, ".fleet/config.yaml", &scheduled);
    fleet(dir)
        .arg("flows")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "\n  param: version  required  pattern: \\d+\\.\\d+\\.\\d+  scheduled: 9.9.0  - The release being gated\n  param: channel  default: stable\n  param: note  default: \"\"\n",
        ));
    let flows = json_of(fleet(dir).args(["flows", "--json"]));
    let flow = &flows["genflows"][0];
    assert_eq!(
        flow["params"],
        serde_json::json!([
            {"name": "version", "pattern": "\\d+\\.\\d+\\.\\d+", "description": "The release being gated"},
            {"name": "channel", "default": "stable"},
            {"name": "note", "default": ""},
        ]),
        "{flow}"
    );
    assert_eq!(flow["schedule_params"]["version"], "9.9.0", "{flow}");
}

/// A value full of shell syntax reaches a shell source (through its
/// environment) and an argv source (as one element) as plain text: nothing
/// it spells out is ever run.
#[test]
fn a_hostile_value_is_never_run_by_a_shell() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write(
        dir,
        ".fleet/config.yaml",
        r#"approvers: [release-owner@example.com]
genflows:
  - name: release-gate
    params:
      - {name: note}
    steps:
      - name: readiness
        kind: report
        prompt: "Readiness, noting {{ params.note }}."
        corpus: ["docs/*.md"]
        sources:
          - {name: shell, command: "printf '%s' \"$FLEET_PARAM_NOTE\""}
          - {name: argv, command: ["printf", "%s", "{{ params.note }}"]}
      - {name: go-no-go, kind: approval, depends_on: [readiness], question: Ship?, out: decision.md}
"#,
    );
    write(dir, "docs/notes.md", "# Notes\n");
    let hostile =
        "$(touch pwned-1); touch pwned-2 `touch pwned-3` && touch pwned-4 | touch pwned-5";
    let run = json_of(fleet(dir).args([
        "run",
        "release-gate",
        "--param",
        &format!("note={hostile}"),
        "--json",
    ]));
    let id = run["run_id"].as_str().expect("run id").to_owned();
    for n in 1..=5 {
        assert!(
            !dir.join(format!("pwned-{n}")).exists(),
            "a parameter value was run by a shell (pwned-{n})"
        );
    }
    // Both sources printed the value itself, byte for byte.
    let readiness = json_of(fleet(dir).args(["show", &id, "--step", "readiness", "--json"]));
    let entries = readiness["attempts"][0]["manifest"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for source in ["source:shell", "source:argv"] {
        let entry = entries
            .iter()
            .find(|e| e["path"] == source)
            .unwrap_or_else(|| panic!("no {source} in {entries:?}"));
        assert_eq!(entry["size"], hostile.len() as u64, "{entry}");
    }
}
