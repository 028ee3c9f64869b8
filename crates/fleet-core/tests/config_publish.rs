//! Validation of publish steps: destinations, `from`, and params in them,
//! each error at its line:column.

use fleet_core::config::{Diagnostic, PublishDestination, check_str};

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

/// The release gate with `publish` (a flow-style step) appended.
fn gate_with(publish: &str) -> String {
    format!(
        r#"genflows:
  - name: gate
    params: [{{name: version, default: 1.0.0}}]
    steps:
      - {{name: notes, kind: report, prompt: "Draft.", corpus: ["*.md"]}}
      - {{name: go, kind: approval, depends_on: [notes], approvers: [a@x.io]}}
      - {publish}
"#
    )
}

fn errors(publish: &str) -> Vec<String> {
    headlines(&check_str(&gate_with(publish)).diagnostics)
}

#[test]
fn a_valid_publish_step_is_typed_and_rendered_with_params() {
    let checked = check_str(&gate_with(
        r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{path: "dist/{{ params.version }}/NOTES.md"}, {webhook: "https://hooks.example.com/x"}, {command: [gh, release, edit, "v{{ params.version }}", --notes-file, "-", "{{.Id}}"]}]}"#,
    ));
    assert_eq!(headlines(&checked.diagnostics), Vec::<String>::new());
    let config = checked.config.expect("valid");
    let flow = config.genflow("gate").expect("gate");
    let bound = flow
        .bind_params(&[("version".to_owned(), "4.2.0".to_owned())].into())
        .expect("binds");
    let ship = bound.step("ship").expect("ship");
    assert_eq!(ship.from.as_deref(), Some("notes"));
    assert_eq!(
        ship.destinations,
        vec![
            PublishDestination::Path("dist/4.2.0/NOTES.md".into()),
            PublishDestination::Webhook("https://hooks.example.com/x".into()),
            PublishDestination::Command(
                [
                    "gh",
                    "release",
                    "edit",
                    "v4.2.0",
                    "--notes-file",
                    "-",
                    "{{.Id}}"
                ]
                .map(String::from)
                .to_vec()
            ),
        ]
    );
}

#[test]
fn a_param_value_cannot_steer_a_path_out_of_the_workspace() {
    let checked = check_str(&gate_with(
        r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{path: "{{ params.version }}/NOTES.md"}]}"#,
    ));
    let flow = checked.config.expect("valid").genflows.remove(0);
    let err = flow
        .bind_params(&[("version".to_owned(), "..".to_owned())].into())
        .expect_err("`..` must be refused");
    assert!(err.to_string().contains("`..`"), "{err}");
}

#[test]
fn publish_errors_name_line_and_column() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{path: /etc/motd}]}"#,
            &[
                "7:90: error: publish path `/etc/motd` is absolute; paths are relative to the workspace root",
            ],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{path: docs/../../x.md}]}"#,
            &[
                "7:90: error: publish path `docs/../../x.md` contains `..` and could leave the workspace",
            ],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{command: "gh release edit"}]}"#,
            &["7:93: error: a publish `command` must be a list (argv), found a string"],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{pth: x.md}]}"#,
            &["7:84: error: unknown destination `pth`"],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{webhook: "ftp://x"}]}"#,
            &["7:93: error: `webhook` must be an http:// or https:// URL, found `ftp://x`"],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: notes}"#,
            &[
                "7:9: error: publish step `ship` has no `destinations`: say where the approved document goes",
            ],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], destinations: [{path: x.md}]}"#,
            &[
                "7:16: error: publish step `ship` has no document to publish: its `depends_on` names only approvals",
            ],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: nots, destinations: [{path: x.md}]}"#,
            &["7:61: error: `from` names `nots`, which is not a step of this genflow"],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: go, destinations: [{path: x.md}]}"#,
            &["7:61: error: `from` names `go`, an approval step, which writes no document"],
        ),
        (
            r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{path: "{{ params.vers }}.md"}]}"#,
            &["7:90: error: `path` uses `params.vers`, which is not a declared parameter"],
        ),
        (
            r#"{name: ship, kind: notify, depends_on: [go], destinations: [{path: x.md}]}"#,
            &[
                "7:54: error: `destinations` does not belong on a notify step (it applies to publish steps)",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (step, expected) in cases {
        let got = errors(step);
        let got: Vec<&str> = got.iter().map(String::as_str).collect();
        if got != *expected {
            failures.push(format!(
                "{step}\n  expected {expected:?}\n  got      {got:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
