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

/// Signs webhook posts, publish ones included.
const WEBHOOK_SECRET: &str = "notify: {webhook: {secret_env: FLEET_WEBHOOK_SECRET}}\n";

#[test]
fn a_valid_publish_step_is_typed_and_rendered_with_params() {
    let config = gate_with(
        r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{path: "dist/{{ params.version }}/NOTES.md"}, {webhook: "https://hooks.example.com/x"}, {command: [gh, release, edit, "v{{ params.version }}", --notes-file, "-", "{{.Id}}"]}]}"#,
    ) + WEBHOOK_SECRET;
    let checked = check_str(&config);
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

#[test]
fn a_webhook_destination_needs_the_notify_webhook_secret() {
    let step = r#"{name: ship, kind: publish, depends_on: [go], from: notes, destinations: [{path: x.md}, {webhook: "https://hooks.example.com/x"}]}"#;
    let expected = [
        "7:98: error: publish step `ship` posts to a webhook, which Fleet signs, but `notify.webhook.secret_env` is not set",
    ];
    // No `notify` at all, and a `notify.webhook` without `secret_env`.
    assert_eq!(errors(step), expected);
    let no_secret = gate_with(step) + "notify: {webhook: {timeout: 5s}}\n";
    let checked = check_str(&no_secret);
    assert_eq!(headlines(&checked.diagnostics), expected);
    assert!(checked.config.is_none(), "an error leaves no config");
    let help = checked.diagnostics[0].help.as_deref().unwrap_or_default();
    assert!(help.contains("secret_env"), "{help}");
    // With the secret named, the same step is valid.
    let checked = check_str(&(gate_with(step) + WEBHOOK_SECRET));
    assert_eq!(headlines(&checked.diagnostics), Vec::<String>::new());
    assert!(checked.config.is_some());
}

#[test]
fn every_webhook_destination_without_the_secret_is_reported_where_it_is() {
    let config = r#"genflows:
  - name: gate
    steps:
      - {name: notes, kind: report, prompt: "Draft.", corpus: ["*.md"]}
      - {name: go, kind: approval, depends_on: [notes], approvers: [a@x.io]}
      - name: ship
        kind: publish
        depends_on: [go]
        from: notes
        destinations:
          - path: x.md
          - webhook: https://hooks.example.com/a
      - name: mirror
        kind: publish
        depends_on: [go]
        from: notes
        destinations:
          - webhook: https://hooks.example.com/b
          - webhook: ftp://not-a-url
"#;
    assert_eq!(
        headlines(&check_str(config).diagnostics),
        [
            "12:13: error: publish step `ship` posts to a webhook, which Fleet signs, but `notify.webhook.secret_env` is not set",
            "18:13: error: publish step `mirror` posts to a webhook, which Fleet signs, but `notify.webhook.secret_env` is not set",
            // A bad URL has its own error, and only that one.
            "19:22: error: `webhook` must be an http:// or https:// URL, found `ftp://not-a-url`",
        ]
    );
}

#[test]
fn a_notify_step_webhook_is_not_a_publish_destination() {
    // Notify steps' webhooks are checked when the step runs (fleet-notify);
    // this check is about publish destinations only.
    let step = r#"{name: announce, kind: notify, depends_on: [go], webhook: "https://hooks.example.com/x", channels: [webhook]}"#;
    assert_eq!(errors(step), Vec::<String>::new());
}
