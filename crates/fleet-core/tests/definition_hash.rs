//! Stored runs are keyed by the hash of their definition
//! (`Genflow::definition_hash`): a config that uses no newer feature must
//! hash exactly as it did before that feature existed, or every stored run
//! would look like it ran another definition. The expected hashes were
//! computed before `changed_since` corpus entries and the genflow `release`
//! key were added.

use fleet_core::config::check_str;

const SEED: &str = include_str!("fixtures/seed-release-gate.yaml");
const EXAMPLE: &str = include_str!("../../fleet-cli/example/release-gate/.fleet/config.yaml");

/// Plain globs (one a bare string), sources, include_ignored, a review with
/// its own corpus: every corpus shape that existed before.
const PLAIN_GLOBS: &str = r#"
approvers: [owner@example.com]
genflows:
  - name: scoped-before
    description: plain globs only
    budget: {tokens: 1000}
    steps:
      - name: readiness
        kind: report
        prompt: Assemble the report.
        corpus: ["docs/**/*.md", "db/migrate/**", "CHANGELOG.md"]
        include_ignored: true
        sources:
          - {name: flags, command: ["cat", "flags.json"]}
      - name: review
        kind: review
        depends_on: [readiness]
        corpus: "docs/*.md"
      - {name: gate, kind: approval, depends_on: [review]}
"#;

fn hashes(yaml: &str) -> Vec<String> {
    let config = check_str(yaml).config.expect("valid config");
    config
        .genflows
        .iter()
        .map(|g| config.resolved_genflow(g).definition_hash())
        .collect()
}

#[test]
fn plain_glob_definitions_hash_as_before() {
    assert_eq!(
        hashes(SEED),
        ["sha256:b1a125bd8aeb4bb8b3b064e09928a958bc7abf51df13de0cac5725f78a5ff553"]
    );
    assert_eq!(
        hashes(EXAMPLE),
        ["sha256:28704433877fdf7f2203beec274a763f9b87bdd7aa7faf2b1fa2c432769ca6fc"]
    );
    assert_eq!(
        hashes(PLAIN_GLOBS),
        ["sha256:429c68b894faa45ab3267c16721ef19edbb7088d8be4c8260f0f270718724d3b"]
    );
}

const SCOPED: &str = r#"
genflows:
  - name: gate
    release: "4.2.0"
    steps:
      - name: readiness
        kind: report
        prompt: Assemble the report.
        corpus:
          - "docs/**/*.md"
          - {glob: "db/migrate/**", changed_since: v4.1.0}
          - glob: CHANGELOG.md
"#;

#[test]
fn scoped_entries_and_release_are_stored_and_round_trip() {
    let checked = check_str(SCOPED);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    let config = checked.config.expect("valid");
    let flow = config.resolved_genflow(&config.genflows[0]);
    assert_eq!(flow.release.as_deref(), Some("4.2.0"));
    let readiness = flow.step("readiness").expect("step");
    let scoped: Vec<(&str, Option<&str>)> = readiness
        .corpus
        .iter()
        .map(|e| (e.glob(), e.changed_since()))
        .collect();
    assert_eq!(
        scoped,
        [
            ("docs/**/*.md", None),
            ("db/migrate/**", Some("v4.1.0")),
            // A mapping with only `glob` is the plain glob.
            ("CHANGELOG.md", None),
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&flow.canonical_json()).expect("json");
    assert_eq!(json["release"], "4.2.0");
    assert_eq!(
        json["steps"][0]["corpus"],
        serde_json::json!([
            "docs/**/*.md",
            {"glob": "db/migrate/**", "changed_since": "v4.1.0"},
            "CHANGELOG.md"
        ])
    );
    let back: fleet_core::config::Genflow =
        serde_json::from_str(&flow.canonical_json()).expect("round trip");
    assert_eq!(back, flow);

    // The scope and the release are part of what a run is keyed by.
    let unscoped = SCOPED.replace(
        "{glob: \"db/migrate/**\", changed_since: v4.1.0}",
        "\"db/migrate/**\"",
    );
    let unreleased = SCOPED.replace("    release: \"4.2.0\"\n", "");
    assert_ne!(hashes(SCOPED), hashes(&unscoped));
    assert_ne!(hashes(SCOPED), hashes(&unreleased));
    assert_ne!(hashes(&unscoped), hashes(&unreleased));
}

#[test]
fn the_json_schema_describes_both_entry_shapes_and_release() {
    let schema = fleet_core::config::json_schema().to_string();
    for needle in ["changed_since", "\"release\"", "ScopedGlob"] {
        assert!(schema.contains(needle), "schema lacks {needle}: {schema}");
    }
}

/// A review loop as written before `on_flag.severity` existed.
const LOOP: &str = r#"
genflows:
  - name: gate
    steps:
      - {name: readiness, kind: report, prompt: p, corpus: ["docs/*.md"]}
      - {name: review, kind: review, depends_on: [readiness], on_flag: {redraft: readiness, max: 2}}
"#;

#[test]
fn on_flag_severity_is_stored_only_when_set() {
    let config = check_str(LOOP).config.expect("valid");
    let plain = config.resolved_genflow(&config.genflows[0]);
    // Unset, the stored definition is the bytes it always was.
    let json = plain.canonical_json();
    assert!(
        json.contains(r#""on_flag":{"redraft":"readiness","max":2}"#),
        "{json}"
    );
    let on_flag = plain.steps[1].on_flag.as_ref().expect("on_flag");
    assert_eq!(on_flag.bar(), fleet_core::flags::FlagSeverity::High);
    // Set (even to the default), it is part of the definition and its hash.
    let high = LOOP.replace("max: 2}", "max: 2, severity: high}");
    let medium = LOOP.replace("max: 2}", "max: 2, severity: medium}");
    assert_ne!(hashes(LOOP), hashes(&high));
    assert_ne!(hashes(&high), hashes(&medium));
    let config = check_str(&medium).config.expect("valid");
    let flow = config.resolved_genflow(&config.genflows[0]);
    let back: fleet_core::config::Genflow =
        serde_json::from_str(&flow.canonical_json()).expect("round trip");
    assert_eq!(back, flow);
    assert_eq!(
        back.steps[1].on_flag.as_ref().map(|o| o.bar()),
        Some(fleet_core::flags::FlagSeverity::Medium)
    );
    let schema = fleet_core::config::json_schema().to_string();
    for needle in ["\"severity\"", "\"medium\""] {
        assert!(schema.contains(needle), "schema lacks {needle}");
    }
}
