//! A publish step's `destinations` (`{path}`, `{webhook}`, `{command}`) and
//! the step its `from` names.

use super::{Checked, Checker, did_you_mean};
use crate::config::Diagnostic;
use crate::config::model::{PublishDestination, Step, StepKind, publish_path_problem};
use crate::config::node::{Node, NodeKind, Pos};
use std::collections::BTreeSet;

const DESTINATION_KINDS: &[&str] = &["path", "webhook", "command"];
const EXAMPLE: &str = "e.g. `destinations: [{path: dist/NOTES.md}, {command: [gh, release, edit, \"{{ params.version }}\", --notes-file, \"-\"]}]`";

impl Checker {
    /// A publish step's `destinations`: a non-empty list of one-key maps.
    pub(super) fn destinations(&mut self, node: &Node) -> Vec<PublishDestination> {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node.pos,
                format!("`destinations` must be a list, found {}", node.type_name()),
                Some(EXAMPLE),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.err(
                node.pos,
                "`destinations` is empty: the step would publish nowhere",
                Some(EXAMPLE),
            );
        }
        items.iter().filter_map(|i| self.destination(i)).collect()
    }

    fn destination(&mut self, node: &Node) -> Option<PublishDestination> {
        let NodeKind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "a destination must be `{{path: …}}`, `{{webhook: …}}` or `{{command: […]}}`, found {}",
                    node.type_name()
                ),
                Some(EXAMPLE),
            );
            return None;
        };
        if entries.len() != 1 {
            self.err(
                node.pos,
                format!(
                    "a destination has exactly one key (path, webhook or command), found {}",
                    entries.len()
                ),
                Some("write each destination as its own list item"),
            );
            return None;
        }
        let (key, value) = &entries[0];
        let kind = self.string(key, "a destination key")?;
        match kind.as_str() {
            "path" => {
                let path = self.nonempty_string(value, "`path`")?;
                if let Some(problem) = publish_path_problem(&path) {
                    self.err(
                        value.pos,
                        problem,
                        Some("write a path inside the workspace, such as `dist/RELEASE_NOTES.md`"),
                    );
                    return None;
                }
                Some(PublishDestination::Path(path))
            }
            "webhook" => self
                .url(value, "`webhook`")
                .map(PublishDestination::Webhook),
            "command" => {
                let NodeKind::Seq(_) = &value.kind else {
                    self.err(
                        value.pos,
                        format!(
                            "a publish `command` must be a list (argv), found {}",
                            value.type_name()
                        ),
                        Some("commands run without a shell: write `[gh, release, edit, v1, --notes-file, \"-\"]`"),
                    );
                    return None;
                };
                let argv: Vec<String> = self
                    .string_list(value, "`command`")
                    .into_iter()
                    .map(|(a, _)| a)
                    .collect();
                if argv.is_empty() {
                    self.err(value.pos, "a publish `command` is empty", None);
                    return None;
                }
                Some(PublishDestination::Command(argv))
            }
            other => {
                let help =
                    did_you_mean(other, DESTINATION_KINDS.iter().copied()).unwrap_or_else(|| {
                        format!("expected one of: {}", DESTINATION_KINDS.join(", "))
                    });
                self.err_help(
                    key.pos,
                    format!("unknown destination `{other}`"),
                    Some(help),
                );
                None
            }
        }
    }

    /// The step a publish step publishes: `from`, which must be upstream
    /// and write a document, or else the first non-approval step in
    /// `depends_on`.
    pub(super) fn publish_source(
        &mut self,
        step: &Step,
        from_pos: Option<Pos>,
        name_pos: Pos,
        ups: &BTreeSet<usize>,
        steps: &[&Step],
    ) {
        let Some(from) = &step.from else {
            let has_default = step.depends_on.iter().any(|d| {
                steps
                    .iter()
                    .any(|s| &s.name == d && s.kind != StepKind::Approval)
            });
            if !has_default {
                self.err(
                    name_pos,
                    format!(
                        "publish step `{}` has no document to publish: its `depends_on` names only approvals",
                        step.name
                    ),
                    Some("name the step whose document it publishes with `from:`"),
                );
            }
            return;
        };
        let pos = from_pos.unwrap_or(name_pos);
        let Some(j) = steps.iter().position(|s| &s.name == from) else {
            let help = did_you_mean(from, steps.iter().map(|s| s.name.as_str()));
            self.err_help(
                pos,
                format!("`from` names `{from}`, which is not a step of this genflow"),
                help,
            );
            return;
        };
        if steps[j].kind == StepKind::Approval {
            self.err(
                pos,
                format!("`from` names `{from}`, an approval step, which writes no document"),
                Some("name the report or review the approvers looked at"),
            );
        } else if !ups.contains(&j) {
            self.err(
                pos,
                format!(
                    "`from` names `{from}`, which step `{}` does not depend on",
                    step.name
                ),
                Some("a publish step can only publish a document upstream of it"),
            );
        }
    }
}

/// The value under `key` in a mapping node, if the node is one and has it.
fn entry<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    let NodeKind::Map(entries) = &node.kind else {
        return None;
    };
    entries
        .iter()
        .find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key))
        .map(|(_, v)| v)
}

fn items(node: Option<&Node>) -> &[Node] {
    match node.map(|n| &n.kind) {
        Some(NodeKind::Seq(items)) => items,
        _ => &[],
    }
}

impl Checked {
    /// A publish `{webhook: …}` destination is signed with the secret that
    /// `notify.webhook.secret_env` names, as notify webhooks are; without it
    /// the step cannot succeed, so it is an error here, at the destination,
    /// and not a failure after the Go.
    ///
    /// The check spans two sections (`notify` and the genflows' steps), so it
    /// reads the node tree once the checker is done; `secret_env` counts as set
    /// when the key is present (a malformed value has its own error), and a
    /// destination that already has an error (a bad URL) is not reported twice.
    pub(in crate::config) fn require_webhook_secret(mut self, root: Option<&Node>) -> Self {
        let Some(root) = root else {
            return self;
        };
        let has_secret = entry(root, "notify")
            .and_then(|n| entry(n, "webhook"))
            .and_then(|n| entry(n, "secret_env"))
            .is_some();
        if has_secret {
            return self;
        }
        let mut found = Vec::new();
        for genflow in items(entry(root, "genflows")) {
            for step in items(entry(genflow, "steps")) {
                let is_publish = matches!(
                    entry(step, "kind").map(|k| &k.kind),
                    Some(NodeKind::Str(k)) if k == "publish"
                );
                if !is_publish {
                    continue;
                }
                let name = entry(step, "name").and_then(Node::as_scalar_text);
                for destination in items(entry(step, "destinations")) {
                    let NodeKind::Map(entries) = &destination.kind else {
                        continue;
                    };
                    let [(key, value)] = entries.as_slice() else {
                        continue;
                    };
                    if !matches!(&key.kind, NodeKind::Str(k) if k == "webhook") {
                        continue;
                    }
                    let reported = self
                        .diagnostics
                        .iter()
                        .any(|d| d.is_error() && (d.pos == key.pos || d.pos == value.pos));
                    if !reported {
                        found.push((key.pos, name.clone()));
                    }
                }
            }
        }
        if found.is_empty() {
            return self;
        }
        for (pos, name) in found {
            let step = name
                .map(|n| format!("publish step `{n}`"))
                .unwrap_or_else(|| "this publish step".to_owned());
            self.diagnostics.push(
                Diagnostic::error(
                    pos,
                    format!(
                        "{step} posts to a webhook, which Fleet signs, but `notify.webhook.secret_env` is not set"
                    ),
                )
                .with_help(
                    "add `notify: {webhook: {secret_env: NAME}}`, NAME being the environment variable that holds the signing secret",
                ),
            );
        }
        self.diagnostics.sort_by_key(|d| (d.pos, d.severity));
        self.diagnostics.dedup();
        self.config = None;
        self
    }
}
