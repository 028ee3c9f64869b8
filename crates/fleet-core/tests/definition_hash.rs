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
