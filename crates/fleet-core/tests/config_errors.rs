//! Table-driven checks of config validation: each invalid config must produce
//! exactly the listed diagnostics (line:column, severity and message).

use fleet_core::config::{Diagnostic, check_str};

fn headlines(diags: &[Diagnostic]) -> Vec<String> {
    diags
        .iter()
        .map(|d| {
            d.headline("c.yaml")
                .trim_start_matches("c.yaml:")
                .to_owned()
        })
        .collect()
}

/// A valid base to vary: the shape of the seed example with approvers.
const BASE_STEPS: &str = r#"
      - {name: readiness, prompt: "Assemble the report.", corpus: ["docs/*.md"], kind: report, out: readiness.md}
      - {name: risk-review, prompt: "Review it.", depends_on: [readiness], kind: review, out: risks.md}
      - {name: go-no-go, depends_on: [readiness, risk-review], kind: approval, out: decision.md, approvers: [owner@example.com]}
      - {name: announce, depends_on: [go-no-go, readiness], kind: notify, out: sent.md}
"#;

fn with_steps(steps: &str) -> String {
    format!("genflows:\n  - name: release-gate\n    steps:{steps}")
}

struct Case {
    name: &'static str,
    yaml: String,
    expected: Vec<&'static str>,
}

fn case(name: &'static str, yaml: impl Into<String>, expected: &[&'static str]) -> Case {
    Case {
        name,
        yaml: yaml.into(),
        expected: expected.to_vec(),
    }
}

fn cases() -> Vec<Case> {
    vec![
        case(
            "empty file",
            "",
            &["1:1: error: the config is empty: expected a mapping with a `genflows:` list"],
        ),
        case(
            "comments only",
            "# nothing here\n\n",
            &["1:1: error: the config is empty: expected a mapping with a `genflows:` list"],
        ),
        case(
            "yaml syntax: unclosed flow sequence",
            "genflows:\n  - name: x\n    steps: [\n",
            &["3:12: error: invalid YAML: unclosed bracket '['"],
        ),
        case(
            "root is a list",
            "- a\n- b\n",
            &["1:1: error: the config must be a mapping, found a list"],
        ),
        case(
            "no genflows key",
            "approvers: [a@example.com]\n",
            &["1:1: error: the config has no `genflows:` list"],
        ),
        case(
            "unknown top-level key with suggestion",
            format!("genflow:\n  - x\n{}", with_steps(BASE_STEPS)),
            &["1:1: error: unknown key `genflow` in the config"],
        ),
        case(
            "unknown step key with suggestion",
            with_steps(
                "\n      - {name: readiness, promt: \"x\", prompt: \"y\", corpus: [\"a\"], kind: report}\n",
            ),
            &["4:27: error: unknown key `promt` in a step"],
        ),
        case(
            "unknown genflow key",
            "genflows:\n  - name: g\n    scheduel: \"@daily\"\n    steps:\n      - {name: r, kind: report, prompt: p, corpus: [a]}\n",
            &["3:5: error: unknown key `scheduel` in a genflow"],
        ),
        case(
            "duplicate step names",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [a], out: a.md}\n      - {name: r, kind: report, prompt: p, corpus: [a], out: b.md}\n",
            ),
            &[
                "5:16: error: duplicate step name `r` in genflow `release-gate` (first defined on line 4)",
            ],
        ),
        case(
            "duplicate genflow names",
            "genflows:\n  - name: g\n    steps: [{name: r, kind: report, prompt: p, corpus: [a]}]\n  - name: g\n    steps: [{name: r, kind: report, prompt: p, corpus: [a]}]\n",
            &["4:11: error: duplicate genflow name `g` (first defined on line 2)"],
        ),
        case(
            "depends_on a missing step",
            with_steps(
                "\n      - {name: readiness, kind: report, prompt: p, corpus: [a]}\n      - {name: review, kind: review, depends_on: [readines]}\n",
            ),
            &[
                "5:51: error: step `review` depends on `readines`, which is not a step of genflow `release-gate`",
            ],
        ),
        case(
            "two-step cycle",
            with_steps(
                "\n      - {name: a, kind: report, prompt: p, corpus: [x], depends_on: [b]}\n      - {name: b, kind: review, depends_on: [a]}\n",
            ),
            &["4:16: error: dependency cycle in genflow `release-gate`: a -> b -> a"],
        ),
        case(
            "three-step cycle",
            with_steps(
                "\n      - {name: a, kind: report, prompt: p, corpus: [x], depends_on: [c]}\n      - {name: b, kind: review, depends_on: [a]}\n      - {name: c, kind: review, depends_on: [b]}\n",
            ),
            &["4:16: error: dependency cycle in genflow `release-gate`: a -> c -> b -> a"],
        ),
        case(
            "step depends on itself",
            with_steps(
                "\n      - {name: a, kind: report, prompt: p, corpus: [x], depends_on: [a]}\n",
            ),
            &[
                "4:16: error: dependency cycle in genflow `release-gate`: a -> a",
                "4:70: error: step `a` depends on itself",
            ],
        ),
        case(
            "unknown kind",
            with_steps("\n      - {name: a, kind: reprot, prompt: p, corpus: [x]}\n"),
            &["4:25: error: unknown step kind `reprot`"],
        ),
        case(
            "prompt on an approval",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x]}\n      - {name: gate, kind: approval, prompt: \"decide\", depends_on: [r], approvers: [a@example.com]}\n",
            ),
            &[
                "5:38: error: `prompt` does not belong on an approval step (it applies to report and review steps)",
            ],
        ),
        case(
            "to on a report",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x], to: [a@example.com]}\n",
            ),
            &["4:57: error: `to` does not belong on a report step (it applies to notify steps)"],
        ),
        case(
            "report without prompt",
            with_steps("\n      - {name: r, kind: report, corpus: [x]}\n"),
            &["4:9: error: report step `r` has no `prompt`: say what the document should cover"],
        ),
        case(
            "report without corpus or sources",
            with_steps("\n      - {name: r, kind: report, prompt: p}\n"),
            &[
                "4:9: error: report step `r` reads nothing: give it `corpus` globs, `sources` commands or a `for_each`",
            ],
        ),
        case(
            "absolute out",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x], out: /etc/passwd}\n",
            ),
            &[
                "4:62: error: `out: /etc/passwd` is an absolute path; outputs are relative to the run directory",
            ],
        ),
        case(
            "out with ..",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x], out: ../../escape.md}\n",
            ),
            &[
                "4:62: error: `out: ../../escape.md` contains `..` and would escape the run directory",
            ],
        ),
        case(
            "colliding outs (default name vs explicit)",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x]}\n      - {name: s, kind: review, depends_on: [r], out: ./r.md}\n",
            ),
            &["5:55: error: `out: ./r.md` of step `s` collides with the output of step `r`"],
        ),
        case(
            "notify not behind the approval (warning only)",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x]}\n      - {name: gate, kind: approval, depends_on: [r], approvers: [a@example.com]}\n      - {name: tell, kind: notify, depends_on: [r]}\n",
            ),
            &[
                "6:16: warning: notify step `tell` does not depend on an approval, so it can run before anyone decides",
            ],
        ),
        case(
            "undefined model",
            with_steps("\n      - {name: r, kind: report, prompt: p, corpus: [x], model: gpt-9}\n"),
            &["4:64: error: model `gpt-9` is not defined in `models`"],
        ),
        case(
            "bad cron",
            "genflows:\n  - name: g\n    schedule: \"61 * * * *\"\n    steps: [{name: r, kind: report, prompt: p, corpus: [a]}]\n",
            &[
                "3:15: error: invalid cron expression `61 * * * *` in `schedule`: Component error: Number out of bounds.",
            ],
        ),
        case(
            "required larger than approvers",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x]}\n      - {name: gate, kind: approval, depends_on: [r], required: 3, approvers: [a@example.com, b@example.com]}\n",
            ),
            &["5:65: error: step `gate` requires 3 approvals but names only 2 approvers"],
        ),
        case(
            "approval without approvers (warning only)",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x]}\n      - {name: gate, kind: approval, depends_on: [r]}\n",
            ),
            &[
                "5:16: warning: approval step `gate` names no approvers: anyone who can run `fleet approve` can decide",
            ],
        ),
        case(
            "approver is not an email",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x]}\n      - {name: gate, kind: approval, depends_on: [r], approvers: [alice]}\n",
            ),
            &["5:67: error: `alice` in `approvers` of step `gate` is not an email address"],
        ),
        case(
            "wrong type for depends_on",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x], depends_on: {a: b}}\n",
            ),
            &["4:69: error: `depends_on` must be a list of strings, found a mapping"],
        ),
        case(
            "missing step name",
            with_steps("\n      - {kind: report, prompt: p, corpus: [x]}\n"),
            &["4:9: error: a step is missing required key `name`"],
        ),
        case(
            "missing kind",
            with_steps("\n      - {name: r, prompt: p, corpus: [x]}\n"),
            &["4:9: error: step `r` is missing required key `kind`"],
        ),
        case(
            "duplicate key in a mapping",
            "genflows:\n  - name: g\n    name: h\n    steps: [{name: r, kind: report, prompt: p, corpus: [a]}]\n",
            &["3:5: error: duplicate key `name` in a genflow (first set on line 2)"],
        ),
        case(
            "genflow without steps",
            "genflows:\n  - name: g\n    steps: []\n",
            &["3:12: error: genflow `g` has no steps"],
        ),
        case(
            "invalid step name",
            with_steps("\n      - {name: \"bad name\", kind: report, prompt: p, corpus: [x]}\n"),
            &["4:16: error: step name `bad name` is not a valid name"],
        ),
        case(
            "unknown provider with suggestion",
            format!(
                "models:\n  gpt:\n    provider: opanai\n    model: gpt-4o\n{}",
                with_steps(
                    "\n      - {name: r, kind: report, prompt: p, corpus: [x], model: gpt}\n"
                )
            ),
            &["3:15: error: unknown provider `opanai`"],
        ),
        case(
            "api key pasted instead of an env var name",
            format!(
                "models:\n  gpt:\n    provider: openai\n    model: gpt-4o\n    api_key_env: sk-proj-abcdefghijklmnopqrstuvwxyz\n{}",
                with_steps(
                    "\n      - {name: r, kind: report, prompt: p, corpus: [x], model: gpt}\n"
                )
            ),
            &["5:18: error: `api_key_env` must name an environment variable"],
        ),
        case(
            "plaintext smtp to a remote host",
            format!(
                "notify:\n  smtp: {{host: smtp.example.com, tls: none, from: fleet@example.com}}\n{}",
                with_steps(BASE_STEPS)
            ),
            &[
                "2:39: error: `tls: none` sends mail in clear text; it is only allowed for a loopback host, not `smtp.example.com`",
            ],
        ),
        case(
            "notify template that does not compile",
            format!(
                "notify:\n  templates:\n    announce_subject: \"Shipped {{{{ run_short \"\n{}",
                with_steps(BASE_STEPS)
            ),
            &[
                "3:23: error: `announce_subject` is not a valid template (line 1 of the template): syntax error",
            ],
        ),
        case(
            "notify template with a misspelt variable",
            format!(
                "notify:\n  templates:\n    announce_subject: \"{{{{ genflow }}}} shipped {{{{ run_shrot }}}} {{% for d in decisions %}}{{{{ d.approver }}}}{{% endfor %}}{{{{ range(2) }}}}\"\n    approval_text: \"{{{{ step }}}}\"\n{}",
                with_steps(BASE_STEPS)
            ),
            &[
                "3:23: error: `announce_subject` uses `run_shrot`, which is not one of its variables",
                "4:20: error: `approval_text` uses `step`, which is not one of its variables",
            ],
        ),
        case(
            "on_flag redraft of a step it does not review",
            with_steps(
                "\n      - {name: a, kind: report, prompt: p, corpus: [x]}\n      - {name: b, kind: report, prompt: p, corpus: [x]}\n      - {name: rv, kind: review, depends_on: [a], on_flag: {redraft: b, max: 2}}\n",
            ),
            &["6:70: error: `on_flag.redraft` names `b`, which step `rv` does not depend on"],
        ),
        case(
            "on_flag severity that is not one",
            with_steps(
                "\n      - {name: a, kind: report, prompt: p, corpus: [x]}\n      - {name: rv, kind: review, depends_on: [a], on_flag: {redraft: a, severity: hihg}}\n",
            ),
            &["5:83: error: unknown `on_flag.severity` `hihg`"],
        ),
        case(
            "review with nothing to review",
            with_steps("\n      - {name: rv, kind: review, prompt: p}\n"),
            &[
                "4:16: error: review step `rv` has nothing to review: add the report it reviews to `depends_on`",
            ],
        ),
        case(
            "bad timeout",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x], timeout: 10 minutes}\n",
            ),
            &[
                "4:66: error: `timeout`: unknown duration unit `minutes` in `10 minutes` (use ms, s, m, h or d)",
            ],
        ),
        case(
            "glob escaping the workspace",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [\"../secrets/*\"]}\n",
            ),
            &[
                "4:53: error: corpus glob `../secrets/*` contains `..` and could leave the workspace",
            ],
        ),
        case(
            "budget without a limit",
            "genflows:\n  - name: g\n    budget: {}\n    steps:\n      - {name: r, kind: report, prompt: p, corpus: [\"*.md\"]}\n",
            &["3:13: error: `budget` needs `tokens`, `cost_usd` or both"],
        ),
        case(
            "budget with a negative cost and an unknown key",
            "genflows:\n  - name: g\n    budget: {cost_usd: -1, token: 5}\n    steps:\n      - {name: r, kind: report, prompt: p, corpus: [\"*.md\"]}\n",
            &[
                "3:24: error: `budget.cost_usd` must be between 0 and 1000000000, found -1",
                "3:28: error: unknown key `token` in `budget`",
            ],
        ),
        case(
            "corpus entry with a misspelt key",
            with_steps(
                "\n      - name: r\n        kind: report\n        prompt: p\n        corpus:\n          - {glob: \"db/migrate/**\", changed_snce: v4.1.0}\n",
            ),
            &["8:37: error: unknown key `changed_snce` in a `corpus` entry"],
        ),
        case(
            "corpus entry without a glob",
            with_steps(
                "\n      - name: r\n        kind: report\n        prompt: p\n        corpus:\n          - changed_since: v4.1.0\n",
            ),
            &["8:13: error: a `corpus` entry is missing required key `glob`"],
        ),
        case(
            "empty changed_since",
            with_steps(
                "\n      - name: r\n        kind: report\n        prompt: p\n        corpus:\n          - glob: \"db/**\"\n            changed_since: \"\"\n",
            ),
            &["9:28: error: `changed_since` must not be empty"],
        ),
        case(
            "changed_since that git would read as an option, a range, a number",
            with_steps(
                "\n      - name: r\n        kind: report\n        prompt: p\n        corpus:\n          - {glob: a, changed_since: \"--output=/tmp/x\"}\n          - {glob: b, changed_since: v1..v2}\n          - {glob: c, changed_since: 4.10}\n          - {glob: \"../d\", changed_since: v1}\n",
            ),
            &[
                "8:38: error: `changed_since` `--output=/tmp/x` starts with `-`, which git would read as an option",
                "9:38: error: `changed_since` `v1..v2` is a range; name one revision (the range ends at HEAD)",
                "10:38: error: `changed_since` must be a string, found the number 4.1",
                "11:20: error: corpus glob `../d` contains `..` and could leave the workspace",
            ],
        ),
        case(
            "changed_since on an approval step",
            with_steps(
                "\n      - {name: r, kind: report, prompt: p, corpus: [x]}\n      - name: gate\n        kind: approval\n        depends_on: [r]\n        approvers: [a@example.com]\n        corpus: [{glob: x, changed_since: v1}]\n",
            ),
            &[
                "9:9: error: `corpus` does not belong on an approval step (it applies to report and review steps)",
            ],
        ),
        case(
            "corpus item that is a list",
            with_steps("\n      - {name: r, kind: report, prompt: p, corpus: [[a, b]]}\n"),
            &[
                "4:53: error: each item of `corpus` must be a glob or a mapping `{glob, changed_since}`, found a list",
            ],
        ),
        case(
            "empty and unquoted-number release",
            "genflows:\n  - name: g\n    release: \"\"\n    steps: [{name: r, kind: report, prompt: p, corpus: [a]}]\n  - name: h\n    release: 4.10\n    steps: [{name: r, kind: report, prompt: p, corpus: [a]}]\n",
            &[
                "3:14: error: `release` must not be empty",
                "6:14: error: `release` must be a string, found the number 4.1",
            ],
        ),
    ]
}

#[test]
fn every_invalid_config_reports_exactly_its_diagnostics() {
    let cases = cases();
    assert!(cases.len() >= 25, "the issue asks for at least 25 cases");
    let mut failures = Vec::new();
    for c in &cases {
        let checked = check_str(&c.yaml);
        let got = headlines(&checked.diagnostics);
        if got != c.expected {
            failures.push(format!(
                "case `{}`:\n  expected: {:#?}\n  got:      {:#?}\n  yaml:\n{}",
                c.name, c.expected, got, c.yaml
            ));
        }
        let has_error = c.expected.iter().any(|e| e.contains(": error: "));
        if has_error != checked.config.is_none() {
            failures.push(format!(
                "case `{}`: config returned = {}, but errors expected = {has_error}",
                c.name,
                checked.config.is_some()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn suggestions_are_offered() {
    let help = |yaml: &str| -> Vec<Option<String>> {
        check_str(yaml)
            .diagnostics
            .into_iter()
            .map(|d| d.help)
            .collect()
    };
    assert_eq!(
        help(&with_steps(
            "\n      - {name: r, promt: p, prompt: q, kind: report, corpus: [x]}\n"
        )),
        vec![Some("did you mean `prompt`?".to_owned())]
    );
    assert_eq!(
        help(&with_steps(
            "\n      - {name: r, kind: reveiw, depends_on: []}\n"
        )),
        vec![Some("did you mean `review`?".to_owned())]
    );
    assert_eq!(
        help(&with_steps(
            "\n      - {name: readiness, kind: report, prompt: p, corpus: [a]}\n      - {name: v, kind: review, depends_on: [readines]}\n"
        )),
        vec![Some("did you mean `readiness`?".to_owned())]
    );
    assert_eq!(
        help(&with_steps(
            "\n      - {name: r, kind: report, prompt: p, corpus: [{glob: a, changed_snce: v1}]}\n"
        )),
        vec![Some("did you mean `changed_since`?".to_owned())]
    );
    let severity = |value: &str| {
        help(&with_steps(&format!(
            "\n      - {{name: a, kind: report, prompt: p, corpus: [x]}}\n      - {{name: rv, kind: review, depends_on: [a], on_flag: {{redraft: a, severity: {value}}}}}\n"
        )))
    };
    assert_eq!(
        severity("hihg"),
        vec![Some("did you mean `high`?".to_owned())]
    );
    assert_eq!(
        severity("critical"),
        vec![Some("expected one of: high, medium, low".to_owned())]
    );
    assert!(severity("medium").is_empty());
}

#[test]
fn rendering_shows_the_line_and_a_caret() {
    let yaml =
        with_steps("\n      - {name: r, kind: report, prompt: p, corpus: [x], out: /abs.md}\n");
    let checked = check_str(&yaml);
    let rendered =
        fleet_core::config::render_all(&checked.diagnostics, ".fleet/config.yaml", &yaml);
    let expected = "\
.fleet/config.yaml:4:62: error: `out: /abs.md` is an absolute path; outputs are relative to the run directory
  |
4 |       - {name: r, kind: report, prompt: p, corpus: [x], out: /abs.md}
  |                                                              ^ write a relative file name such as `readiness.md`

.fleet/config.yaml: 1 error, 0 warnings
";
    assert_eq!(rendered, expected);
}

#[test]
fn every_problem_is_reported_at_once() {
    let yaml = with_steps(
        "\n      - {name: a, kind: reprot, prompt: p, corpus: [x]}\n      - {name: b, kind: report, prompt: p, corpus: [x], out: /x}\n      - {name: c, kind: review, depends_on: [zz]}\n",
    );
    let errors = check_str(&yaml)
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .count();
    assert_eq!(errors, 3);
}

/// YAML lets flow collections, quoted strings and plain scalars run on over
/// lines, so the scanner notices many mistakes a line after they were made;
/// the error must point at the line that caused it.
#[test]
fn syntax_errors_point_at_their_cause() {
    let steps = "genflows:\n  - name: g\n    steps:\n      - name: r\n        kind: report\n";
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        (
            "flow sequence not closed at the end of its line",
            format!("{steps}        corpus: [\"docs/*.md\", \"migrations/**\"\n        prompt: p\n"),
            "6:46: error: invalid YAML: expected `,` or `]` at the end of this line: the `[` at line 6, column 17 is not closed",
            None,
        ),
        (
            "flow mapping step not closed",
            "genflows:\n  - name: g\n    steps:\n      - {name: r, kind: report, prompt: p, corpus: [a]\n      - {name: s, kind: review, depends_on: [r]}\n".into(),
            "4:55: error: invalid YAML: expected `,` or `}` at the end of this line: the `{` at line 4, column 9 is not closed",
            None,
        ),
        (
            "comma missing in a multi-line list",
            format!("{steps}        prompt: p\n        corpus: [\n          \"a\"\n          \"b\"\n        ]\n"),
            "8:14: error: invalid YAML: expected `,` or `]` at the end of this line: the `[` at line 7, column 17 is not closed",
            None,
        ),
        (
            "brackets in a block scalar and an apostrophe in a plain one are text",
            format!("{steps}        description: it's [not] a list\n        prompt: |\n          Check [the list\n          and {{more\n        corpus: [\"a\"\n        out: r.md\n"),
            "10:21: error: invalid YAML: expected `,` or `]` at the end of this line: the `[` at line 10, column 17 is not closed",
            None,
        ),
        (
            "double quote not closed, running on to the next quote",
            format!("{steps}        prompt: \"Assemble the report.\n        corpus: [\"docs/*.md\"]\n"),
            "6:17: error: invalid YAML: this quoted string is not closed on its line; it runs on to line 7",
            Some("add the closing quote"),
        ),
        (
            "single quote not closed inside a flow step",
            "genflows:\n  - name: g\n    steps:\n      - {name: r, kind: report, prompt: 'p, corpus: [a]}\n      - {name: s, kind: review, prompt: 'x', depends_on: [r]}\n".into(),
            "4:41: error: invalid YAML: this quoted string is not closed on its line; it runs on to line 5",
            Some("add the closing quote"),
        ),
        (
            "no space after a key's colon",
            "genflows:\n  - name:g\n    steps: []\n".into(),
            "2:10: error: invalid YAML: `name` needs a space after the `:` to be a key and a value",
            Some("write `name: g`"),
        ),
        (
            "a tab indenting the next line",
            "genflows:\n  - name: g\n\tsteps: []\n".into(),
            "3:1: error: invalid YAML: while scanning a plain scalar, found a tab",
            Some("YAML indentation must be spaces, not tabs"),
        ),
        (
            "a tab in this line's indentation",
            "genflows:\n  - name: g\n    steps:\n\t  - name: r\n".into(),
            "4:1: error: invalid YAML: tabs disallowed within this context (block indentation)",
            Some("YAML indentation must be spaces, not tabs"),
        ),
        // Already at their cause: left where the scanner put them.
        (
            "quote never closed",
            format!("{steps}        prompt: \"abc\n        out: r.md\n"),
            "6:17: error: invalid YAML: unclosed quote",
            None,
        ),
        (
            "a key indented less than its siblings",
            format!("{steps}       prompt: p\n"),
            "6:8: error: invalid YAML: while parsing a block collection, did not find expected '-' indicator",
            None,
        ),
        (
            "a key without a colon",
            format!("{steps}        prompt\n        corpus: [a]\n"),
            "6:9: error: invalid YAML: simple key expected ':'",
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (name, yaml, expected, help) in &cases {
        let checked = check_str(yaml);
        let got = headlines(&checked.diagnostics);
        let got_help: Vec<Option<&str>> = checked
            .diagnostics
            .iter()
            .map(|d| d.help.as_deref())
            .collect();
        if got != [*expected] || got_help != [*help] {
            failures.push(format!(
                "case `{name}`:\n  expected: {expected} (help {help:?})\n  got:      {got:?} (help {got_help:?})\n  yaml:\n{yaml}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
