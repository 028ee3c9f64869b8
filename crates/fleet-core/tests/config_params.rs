//! Genflow parameters: config errors at their `line:col`, and binding a
//! run's values into its definition.

use fleet_core::config::{Config, CorpusEntry, Genflow, ParamError, SourceCommand, check_str};
use std::collections::BTreeMap;

fn headlines(yaml: &str) -> Vec<String> {
    check_str(yaml)
        .diagnostics
        .iter()
        .map(|d| {
            d.headline("c.yaml")
                .trim_start_matches("c.yaml:")
                .to_owned()
        })
        .collect()
}

/// A genflow with `params` and one report step whose prompt is `prompt`.
fn flow(params: &str, prompt: &str) -> String {
    format!(
        "genflows:\n  - name: gate\n    params: {params}\n    steps:\n      - {{name: r, kind: report, corpus: [\"docs/*.md\"], prompt: \"{prompt}\"}}\n"
    )
}

#[test]
fn param_declarations_are_checked_at_their_position() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "bad pattern",
            "[{name: version, pattern: '(\\d+'}]",
            &[
                "3:39: error: `pattern` `(\\d+` is not a valid regular expression: error: unclosed group",
            ],
        ),
        (
            "duplicate name (without case)",
            "[{name: version}, {name: VERSION, default: x}]",
            &[
                "3:38: error: duplicate parameter `VERSION` (first declared on line 3; names are compared without case)",
            ],
        ),
        (
            "not an identifier",
            "[{name: 2fast, default: x}, {name: my-version, default: y}]",
            &[
                "3:21: error: parameter name `2fast` is not an identifier",
                "3:48: error: parameter name `my-version` is not an identifier",
            ],
        ),
        (
            "default fails its own pattern",
            "[{name: version, default: '4.2', pattern: '\\d+\\.\\d+\\.\\d+'}]",
            &[
                "3:39: error: `default` `4.2` does not match the parameter's own pattern `\\d+\\.\\d+\\.\\d+`",
            ],
        ),
        (
            "unquoted float default",
            "[{name: version, default: 4.10}]",
            &["3:39: error: `default` must be a string, found the number 4.1"],
        ),
        (
            "unknown key",
            "[{name: version, defualt: x}]",
            &["3:30: error: unknown key `defualt` in a parameter"],
        ),
    ];
    for (name, params, expected) in cases {
        let got = headlines(&flow(params, "Report on {{ params.version }}."));
        let got: Vec<&str> = got.iter().map(String::as_str).collect();
        // Declarations that failed leave `params.version` undeclared too.
        let got: Vec<&str> = got
            .into_iter()
            .filter(|h| !h.contains("which is not a declared parameter"))
            .collect();
        assert_eq!(got, *expected, "case {name}");
    }
}

#[test]
fn a_template_may_only_use_declared_params() {
    let yaml = flow("[{name: version}]", "Report on {{ params.verison }}.");
    assert_eq!(
        headlines(&yaml),
        ["5:64: error: `prompt` uses `params.verison`, which is not a declared parameter"]
    );
    let checked = check_str(&yaml);
    let help = checked.diagnostics[0].help.as_deref();
    assert_eq!(help, Some("did you mean `version`?"));

    let yaml = flow("[]", "Report on {{ version }}.");
    assert_eq!(
        headlines(&yaml),
        ["5:64: error: `prompt` uses `version`, which is not a parameter"]
    );
    let yaml = flow("[{name: version}]", "Report on {{ params.version }.");
    assert_eq!(
        headlines(&yaml)[0],
        "5:64: error: `prompt` is not a valid template: syntax error"
    );
}

#[test]
fn every_templated_field_is_checked() {
    let yaml = r#"genflows:
  - name: gate
    release: "{{ params.ver }}"
    params: [{name: version}]
    steps:
      - name: r
        kind: report
        prompt: ok
        out: "{{ params.x }}.md"
        corpus: ["{{ params.a }}/*.md", {glob: "docs/*.md", changed_since: "v{{ params.b }}"}]
        sources:
          - {name: shell, command: "git log {{ params.version }}"}
          - {name: argv, command: ["git", "log", "{{ params.c }}", "--format={{.Id}}"]}
      - {name: g, kind: approval, depends_on: [r], question: "Ship {{ params.d }}?", approvers: [a@example.com]}
"#;
    assert_eq!(
        headlines(yaml),
        [
            "3:14: error: `release` uses `params.ver`, which is not a declared parameter",
            "9:14: error: `out` uses `params.x`, which is not a declared parameter",
            "10:18: error: corpus glob uses `params.a`, which is not a declared parameter",
            "10:76: error: `changed_since` uses `params.b`, which is not a declared parameter",
            "12:36: error: a shell `command` cannot use `{{ params… }}` or `{{ item… }}`: values are never spliced into a shell string",
            "13:50: error: `command` element uses `params.c`, which is not a declared parameter",
            "14:62: error: `question` uses `params.d`, which is not a declared parameter",
        ]
    );
}

#[test]
fn schedule_params_are_declared_fit_their_pattern_and_cover_the_required() {
    let yaml = r#"genflows:
  - name: gate
    schedule: "0 9 * * 1"
    schedule_params: {version: "4.2", channel: beta}
    params: [{name: version, pattern: '\d+\.\d+\.\d+'}, {name: region}]
    steps:
      - {name: r, kind: report, corpus: ["docs/*.md"], prompt: "x"}
"#;
    assert_eq!(
        headlines(yaml),
        [
            "3:15: error: scheduled runs need a value for parameter `version`, which has no default",
            "3:15: error: scheduled runs need a value for parameter `region`, which has no default",
            "4:32: error: `schedule_params.version` `4.2` does not match the pattern `\\d+\\.\\d+\\.\\d+`",
            "4:39: error: `schedule_params` gives `channel`, which is not a declared parameter",
        ]
    );
}

const GATE: &str = r#"genflows:
  - name: gate
    release: "{{ params.version }}"
    params:
      - {name: version, pattern: '\d+\.\d+\.\d+', description: The release being gated}
      - {name: area, default: docs}
    steps:
      - name: r
        kind: report
        prompt: |
          Readiness of {{ params.version }}.
        out: "readiness-{{ params.version }}.md"
        corpus: ["{{ params.area }}/*.md", {glob: "db/**", changed_since: "v{{ params.version }}"}]
        sources:
          - {name: log, command: ["git", "log", "v{{ params.version }}", "--format={{.H}}"]}
          - {name: sh, command: "echo $FLEET_PARAM_VERSION"}
      - {name: g, kind: approval, depends_on: [r], question: "Ship {{ params.version }}?", approvers: [a@example.com]}
"#;

fn gate() -> (Config, Genflow) {
    let checked = check_str(GATE);
    let config = checked
        .config
        .unwrap_or_else(|| panic!("valid: {:?}", checked.diagnostics));
    let g = config.genflows[0].clone();
    (config, g)
}

fn given(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn binding_renders_every_text_and_records_the_values() {
    let (_, g) = gate();
    let bound = g
        .bind_params(&given(&[("version", "4.2.0")]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bound.release.as_deref(), Some("4.2.0"));
    let r = &bound.steps[0];
    // The block scalar's newline survives rendering.
    assert_eq!(r.prompt.as_deref(), Some("Readiness of 4.2.0.\n"));
    assert_eq!(r.out.as_deref(), Some("readiness-4.2.0.md"));
    assert_eq!(r.corpus[0], CorpusEntry::Glob("docs/*.md".into()));
    assert_eq!(r.corpus[1].changed_since(), Some("v4.2.0"));
    // An argv element using params is rendered; a Go template stays literal.
    assert_eq!(
        r.sources[0].command,
        SourceCommand::Argv(vec![
            "git".into(),
            "log".into(),
            "v4.2.0".into(),
            "--format={{.H}}".into()
        ])
    );
    // A shell command is never rendered; it reads the environment.
    assert_eq!(
        r.sources[1].command,
        SourceCommand::Shell("echo $FLEET_PARAM_VERSION".into())
    );
    assert_eq!(
        r.sources[1]
            .env
            .get("FLEET_PARAM_VERSION")
            .map(String::as_str),
        Some("4.2.0")
    );
    assert_eq!(bound.steps[1].question.as_deref(), Some("Ship 4.2.0?"));
    assert_eq!(
        bound.param_values,
        given(&[("area", "docs"), ("version", "4.2.0")])
    );
    // The values are in the definition, so in its hash.
    let other = g
        .bind_params(&given(&[("version", "4.2.1")]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(bound.definition_hash(), other.definition_hash());
    assert!(
        bound
            .canonical_json()
            .contains(r#""param_values":{"area":"docs","version":"4.2.0"}"#)
    );
}

#[test]
fn bad_values_are_refused_naming_the_param() {
    let (_, g) = gate();
    let missing = g.bind_params(&BTreeMap::new()).err();
    assert!(
        matches!(&missing, Some(ParamError::Missing { name, .. }) if name == "version"),
        "{missing:?}"
    );
    let undeclared = g
        .bind_params(&given(&[("version", "4.2.0"), ("colour", "red")]))
        .err();
    assert_eq!(
        undeclared.map(|e| e.to_string()).as_deref(),
        Some("genflow `gate` has no parameter `colour` (parameters: version, area)")
    );
    let pattern = g.bind_params(&given(&[("version", "4.2")])).err();
    assert_eq!(
        pattern.map(|e| e.to_string()).as_deref(),
        Some("parameter `version`: `4.2` does not match its pattern `\\d+\\.\\d+\\.\\d+`")
    );
    // No pattern on `area`, but a value cannot walk out of the workspace.
    let escape = g
        .bind_params(&given(&[("version", "4.2.0"), ("area", "../../etc")]))
        .err();
    assert_eq!(
        escape.map(|e| e.to_string()).as_deref(),
        Some("`corpus` of step `r`: `../../etc/*.md` would leave the workspace")
    );
}

#[test]
fn a_genflow_without_params_binds_to_itself() {
    let checked = check_str(
        "genflows:\n  - name: plain\n    steps:\n      - {name: r, kind: report, corpus: [\"docs/*.md\"], prompt: \"x\"}\n",
    );
    let config = checked.config.unwrap_or_else(|| panic!("valid"));
    let g = &config.genflows[0];
    let bound = g
        .bind_params(&BTreeMap::new())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&bound, g);
    assert_eq!(bound.definition_hash(), g.definition_hash());
}

#[test]
fn the_schema_has_the_new_keys_but_not_the_run_only_ones() {
    let schema = fleet_core::config::json_schema().to_string();
    assert!(schema.contains("\"schedule_params\""), "{schema}");
    assert!(schema.contains("\"pattern\""));
    assert!(!schema.contains("\"param_values\""));
    assert!(!schema.contains("\"env\""), "run-only `env` is left out");
}
