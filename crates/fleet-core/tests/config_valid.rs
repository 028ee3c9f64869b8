//! Valid configs, and robustness of the checker against arbitrary input.

use fleet_core::config::{Severity, StepKind, check_str};

const SEED: &str = include_str!("fixtures/seed-release-gate.yaml");

#[test]
fn the_seed_example_validates_verbatim() {
    let checked = check_str(SEED);
    let config = checked
        .config
        .expect("the product brief's YAML must be valid");
    // The only diagnostic is the warning that the gate names no approvers.
    let severities: Vec<Severity> = checked.diagnostics.iter().map(|d| d.severity).collect();
    assert_eq!(severities, vec![Severity::Warning]);
    assert!(
        checked.diagnostics[0]
            .message
            .contains("names no approvers")
    );

    let flow = config
        .genflow("release-gate")
        .expect("release-gate is defined");
    let kinds: Vec<(&str, StepKind)> = flow
        .steps
        .iter()
        .map(|s| (s.name.as_str(), s.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("readiness", StepKind::Report),
            ("risk-review", StepKind::Review),
            ("go-no-go", StepKind::Approval),
            ("announce", StepKind::Notify),
        ]
    );
    let readiness = flow.step("readiness").expect("readiness step");
    assert_eq!(
        readiness.corpus_globs(),
        vec!["docs/runbooks/*.md", "docs/releases/*.md", "migrations/**"]
    );
    assert_eq!(
        flow.step("announce").map(|s| s.depends_on.clone()),
        Some(vec!["go-no-go".to_owned(), "readiness".to_owned()])
    );
    assert_eq!(flow.step("go-no-go").map(|s| s.required), Some(1));
    assert_eq!(
        flow.step("go-no-go").map(|s| s.allow_self_approval),
        Some(false)
    );
}

#[test]
fn the_seed_in_the_shared_brief_is_the_fixture() {
    // When ../shared is beside the checkout (as in CI), the fixture must still
    // be the brief's YAML, character for character.
    let brief = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/seed/release-gating-use-case.txt");
    let Ok(text) = std::fs::read_to_string(&brief) else {
        eprintln!("skipping: {} not present", brief.display());
        return;
    };
    for line in SEED.lines() {
        assert!(text.contains(line), "fixture line not in the brief: {line}");
    }
}

#[test]
fn a_full_config_with_every_field_validates_and_round_trips() {
    let yaml = r#"
approvers: [owner@example.com]
models:
  gpt:
    provider: openai
    model: gpt-4o-mini
    base_url: http://127.0.0.1:11434/v1
    api_key_env: OPENAI_API_KEY
    temperature: 0.2
    max_tokens: 4000
    context_tokens: 128000
    headers: {X-Team: release}
    prices: {input: 0.15, output: 0.6}
    timeout: 2m
    concurrency: 4
  claude:
    provider: anthropic
    model: claude-sonnet-4-5
    api_key_env: ANTHROPIC_API_KEY
  agent:
    provider: command
    command: ["claude", "-p"]
notify:
  smtp: {host: 127.0.0.1, port: 2525, tls: none, from: fleet@example.com, username_env: SMTP_USER, password_env: SMTP_PASS}
  webhook: {secret_env: FLEET_WEBHOOK_SECRET, timeout: 10s}
  templates:
    announce_subject: "[{{ genflow }}] shipped: run {{ run_short }}"
    approval_text: |
      {{ question }} {% if reminder %}(reminder {{ reminder }}){% endif %}
      {% for d in documents %}{{ d.path }} r{{ d.revision }}{% endfor %}
      {{ link or "fleet approve " ~ run_id }}
server: {public_url: "https://fleet.example.com", bind: "127.0.0.1:8080"}
genflows:
  - name: release-gate
    description: Weekly release
    schedule: "0 9 * * 1-5"
    approvers: [lead@example.com, owner@example.com]
    budget: {tokens: 200000, cost_usd: 2.5}
    steps:
      - name: readiness
        kind: report
        prompt: Assemble the report.
        corpus: ["docs/**/*.md"]
        include_ignored: true
        sources:
          - {name: open-issues, command: "gh issue list --label release"}
          - {name: flags, command: ["cat", "flags.json"]}
        model: gpt
        retries: 2
        timeout: 10m
        out: reports/readiness.md
      - name: risk-review
        kind: review
        prompt: Find what the report underplays.
        depends_on: [readiness]
        model: claude
        on_flag: {redraft: readiness, max: 2}
      - name: go-no-go
        kind: approval
        depends_on: [readiness, risk-review]
        question: Ship it?
        required: 2
        allow_self_approval: true
        remind_every: 4h
      - name: announce
        kind: notify
        depends_on: [go-no-go]
        to: [team@example.com]
        webhook: https://hooks.example.com/release
        channels: [email, webhook, file, "slack:https://hooks.slack.com/services/T/B/X"]
      - name: publish-notes
        kind: publish
        depends_on: [go-no-go]
        from: readiness
        destinations:
          - {path: dist/RELEASE_NOTES.md}
          - {webhook: "https://hooks.example.com/notes"}
          - {command: [gh, release, edit, v4.2.0, --notes-file, "-"]}
"#;
    let checked = check_str(yaml);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    let config = checked.config.expect("valid");
    let flow = config.genflow("release-gate").expect("flow");
    assert_eq!(
        flow.budget,
        Some(fleet_core::config::Budget {
            tokens: Some(200_000),
            cost_usd: Some(2.5)
        })
    );
    // Effective approvers resolve to the genflow's list.
    let resolved = config.resolved_genflow(flow);
    assert_eq!(
        resolved.step("go-no-go").map(|s| s.approvers.clone()),
        Some(vec![
            "lead@example.com".to_owned(),
            "owner@example.com".to_owned()
        ])
    );
    // The stored definition round-trips through JSON unchanged, so its hash is stable.
    let json = resolved.canonical_json();
    let back: fleet_core::config::Genflow = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, resolved);
    assert_eq!(back.definition_hash(), resolved.definition_hash());
    assert_eq!(
        flow.step("go-no-go")
            .and_then(|s| s.remind_every)
            .map(|d| d.to_string()),
        Some("4h".to_owned())
    );
}

#[test]
fn editing_the_definition_changes_its_hash() {
    let a = check_str(SEED).config.expect("valid");
    let edited = SEED.replace("Flag understated risks", "Flag all risks");
    let b = check_str(&edited).config.expect("valid");
    assert_ne!(
        a.genflows[0].definition_hash(),
        b.genflows[0].definition_hash()
    );
}

/// Deterministic xorshift so the test is reproducible without extra crates.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn no_input_panics_the_checker() {
    // Mutate the seed (delete, duplicate, insert YAML-significant characters)
    // thousands of times; every result must be a value, never a panic, and
    // every error must point inside the text.
    const NOISE: &[&str] = &[
        ":",
        "-",
        "[",
        "]",
        "{",
        "}",
        "\n",
        " ",
        "  ",
        "\"",
        "'",
        "#",
        "&a",
        "*a",
        "!!str",
        "<<: *a",
        "\t",
        "é",
        "..",
        "depends_on: [x]",
        "kind: approval",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let base: Vec<char> = SEED.chars().collect();
    for _ in 0..3000 {
        let mut text = base.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(text.len());
            match rng.below(3) {
                0 => {
                    let len = 1 + rng.below(8);
                    let end = (at + len).min(text.len());
                    text.drain(at..end);
                }
                1 => {
                    let noise = NOISE[rng.below(NOISE.len())];
                    for (k, c) in noise.chars().enumerate() {
                        text.insert(at + k, c);
                    }
                }
                _ => {
                    let len = 1 + rng.below(40);
                    let end = (at + len).min(text.len());
                    let chunk: Vec<char> = text[at..end].to_vec();
                    for (k, c) in chunk.into_iter().enumerate() {
                        text.insert(at + k, c);
                    }
                }
            }
        }
        let text: String = text.into_iter().collect();
        let checked = check_str(&text);
        let lines = text.lines().count().max(1);
        for d in &checked.diagnostics {
            assert!(
                d.pos.line >= 1 && d.pos.line <= lines + 1,
                "{d:?} outside:\n{text}"
            );
            let _ = d.render("c.yaml", &text);
        }
    }
}
