//! Label triggers (`trigger:` on a genflow, `server.github` /
//! `server.gitlab`): config errors at their `line:col`, and the schema.

use fleet_core::config::{LabelTrigger, check_str};

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

/// A genflow with `params` and `trigger`, under a `server` section.
fn flow(server: &str, params: &str, trigger: &str) -> String {
    format!(
        "server: {server}\ngenflows:\n  - name: triage\n    params: {params}\n    trigger: {trigger}\n    steps:\n      - {{name: r, kind: report, corpus: [\"docs/*.md\"], prompt: \"Triage.\"}}\n"
    )
}

const BOTH: &str = "{github: {secret_env: GH_SECRET}, gitlab: {token_env: GL_TOKEN}}";
const TICKET: &str = "[{name: ticket_number}, {name: ticket_title}]";

#[test]
fn a_valid_trigger_is_read_into_the_config() {
    let checked = check_str(&flow(
        BOTH,
        TICKET,
        "{github: {label: fleet-triage}, gitlab: {label: 'needs review'}}",
    ));
    assert!(checked.diagnostics.is_empty(), "{:?}", checked.diagnostics);
    let config = checked.config.unwrap_or_else(|| panic!("no config"));
    let trigger = config.genflows[0]
        .trigger
        .clone()
        .unwrap_or_else(|| panic!("no trigger"));
    assert_eq!(
        trigger.github,
        Some(LabelTrigger {
            label: "fleet-triage".into()
        })
    );
    assert_eq!(
        trigger.gitlab,
        Some(LabelTrigger {
            label: "needs review".into()
        })
    );
    let github = config.server.github.unwrap_or_else(|| panic!("no github"));
    assert_eq!(github.secret_env, "GH_SECRET");
    let gitlab = config.server.gitlab.unwrap_or_else(|| panic!("no gitlab"));
    assert_eq!(gitlab.token_env, "GL_TOKEN");
}

#[test]
fn trigger_and_hook_settings_are_checked_at_their_position() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "no hook secret for the provider",
            flow("{}", TICKET, "{github: {label: x}, gitlab: {label: y}}"),
            &[
                "5:15: error: `trigger.github` needs `server.github`: the hook endpoint checks each delivery with the secret it names",
                "5:35: error: `trigger.gitlab` needs `server.gitlab`: the hook endpoint checks each delivery with the secret it names",
            ],
        ),
        (
            "secret in the file instead of a variable name",
            flow(
                "{github: {secret_env: 's3cr3t-value-pasted-here!'}, gitlab: {token: X}}",
                TICKET,
                "{github: {label: x}}",
            ),
            &[
                "1:31: error: `server.github.secret_env` must name an environment variable",
                "1:69: error: `server.gitlab` is missing required key `token_env`",
                "1:70: error: unknown key `token` in `server.gitlab`",
            ],
        ),
        (
            "unknown provider, empty label, missing label",
            flow(
                BOTH,
                TICKET,
                "{github: {label: ''}, gitlab: {}, jira: {label: x}}",
            ),
            &[
                "5:31: error: `trigger.github.label` must not be empty",
                "5:44: error: `trigger.gitlab` is missing required key `label`",
                "5:48: error: unknown key `jira` in `trigger`",
            ],
        ),
        (
            "a trigger naming no provider",
            flow(BOTH, TICKET, "{}"),
            &["5:14: error: `trigger` needs `github`, `gitlab` or both"],
        ),
        (
            "a non-ticket param without a default",
            flow(
                BOTH,
                "[{name: ticket_number}, {name: version}, {name: channel, default: stable}]",
                "{github: {label: x}}",
            ),
            &[
                "5:14: error: runs started by a label need a value for parameter `version`, which has no default",
            ],
        ),
        (
            "no ticket params declared",
            flow(BOTH, "[]", "{gitlab: {label: x}}"),
            &[
                "5:14: warning: the genflow declares none of the ticket parameters, so its steps cannot read the ticket that started a run",
            ],
        ),
    ];
    for (name, yaml, expected) in cases {
        assert_eq!(&headlines(yaml), expected, "case: {name}\n{yaml}");
    }
}

#[test]
fn the_schema_has_the_trigger_and_hook_keys() {
    let schema = fleet_core::config::json_schema();
    let text = schema.to_string();
    for key in [
        "\"trigger\"",
        "\"label\"",
        "\"secret_env\"",
        "\"token_env\"",
        "LabelTrigger",
        "GithubHook",
        "GitlabHook",
    ] {
        assert!(text.contains(key), "schema lacks {key}");
    }
}

#[test]
fn a_genflow_without_a_trigger_keeps_its_definition_hash() {
    // `trigger` serializes only when set, so definitions stored before it
    // existed hash the same.
    let yaml = flow(BOTH, TICKET, "{github: {label: x}}");
    let config = check_str(&yaml).config.unwrap_or_else(|| panic!("invalid"));
    let mut g = config.genflows[0].clone();
    assert!(g.canonical_json().contains("\"trigger\""));
    g.trigger = None;
    assert!(!g.canonical_json().contains("trigger"));
}
