//! Turns a located YAML tree into a typed [`Config`], collecting every
//! problem on the way instead of stopping at the first.

use super::diag::Diagnostic;
use super::model::*;
use super::node::{Node, NodeKind, Pos};
use crate::dag;
use std::collections::{BTreeMap, HashMap};

mod corpus;
mod evidence;
mod fan_out;
mod models;
mod notify;
mod params;
mod publish;
mod scalars;
mod steps;
mod trigger;

const TOP_KEYS: &[&str] = &["genflows", "models", "notify", "server", "approvers"];
const GENFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "params",
    "release",
    "schedule",
    "schedule_params",
    "trigger",
    "approvers",
    "budget",
    "evidence",
    "steps",
];
const STEP_COMMON: &[&str] = &["name", "kind", "depends_on", "out", "retries", "timeout"];
/// Kind-specific step fields and the kinds they belong to.
const STEP_KIND_FIELDS: &[(&str, &[StepKind])] = &[
    ("prompt", &[StepKind::Report, StepKind::Review]),
    ("corpus", &[StepKind::Report, StepKind::Review]),
    ("include_ignored", &[StepKind::Report, StepKind::Review]),
    ("sources", &[StepKind::Report, StepKind::Review]),
    ("model", &[StepKind::Report, StepKind::Review]),
    ("on_flag", &[StepKind::Review]),
    ("question", &[StepKind::Approval]),
    ("approvers", &[StepKind::Approval]),
    ("required", &[StepKind::Approval]),
    ("allow_self_approval", &[StepKind::Approval]),
    ("remind_every", &[StepKind::Approval]),
    ("to", &[StepKind::Notify]),
    ("webhook", &[StepKind::Notify]),
    ("channels", &[StepKind::Notify]),
    ("from", &[StepKind::Publish]),
    ("destinations", &[StepKind::Publish]),
    ("for_each", &[StepKind::Report, StepKind::Review]),
    ("max_items", &[StepKind::Report, StepKind::Review]),
];
const MODEL_KEYS: &[&str] = &[
    "provider",
    "model",
    "base_url",
    "api_key_env",
    "temperature",
    "max_tokens",
    "context_tokens",
    "headers",
    "prices",
    "command",
    "timeout",
    "concurrency",
];
const SMTP_KEYS: &[&str] = &[
    "host",
    "port",
    "tls",
    "from",
    "username_env",
    "password_env",
];

/// The result of checking a config: the typed config when there were no
/// errors, and every diagnostic (errors and warnings) in source order.
pub struct Checked {
    pub config: Option<Config>,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn check(root: Option<&Node>) -> Checked {
    let mut cx = Checker::default();
    let config = match root {
        None => {
            cx.err(
                Pos { line: 1, col: 1 },
                "the config is empty: expected a mapping with a `genflows:` list",
                Some("run `fleet init` to write a working example"),
            );
            None
        }
        Some(root) => cx.config(root),
    };
    let mut diagnostics = cx.diags;
    diagnostics.sort_by_key(|d| (d.pos, d.severity));
    diagnostics.dedup();
    let has_errors = diagnostics.iter().any(Diagnostic::is_error);
    Checked {
        config: if has_errors { None } else { config },
        diagnostics,
    }
}

#[derive(Default)]
struct Checker {
    diags: Vec<Diagnostic>,
    /// Every name under `models:`, valid or not, so a step that names a model
    /// whose settings had errors does not get a second, misleading error.
    declared_models: std::collections::HashSet<String>,
    /// Which hook endpoints `server` sets up (GitHub, GitLab), valid or
    /// not, so a label trigger no endpoint can fire is an error and one
    /// whose setting has its own error gets no second one.
    hooks: (bool, bool),
}

/// The entries of a mapping, keyed by their (string) keys.
struct Fields<'a> {
    node: &'a Node,
    entries: Vec<(&'a str, &'a Node, &'a Node)>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries.iter().find(|(k, _, _)| *k == key).map(|e| e.2)
    }
    fn key_pos(&self, key: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|e| e.1.pos)
    }
}

/// The closest candidate within a small edit distance, for "did you mean".
fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<String> {
    suggest(word, candidates).map(|s| format!("did you mean `{s}`?"))
}

fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    matches!(rest, Some(r) if !r.is_empty() && !r.starts_with('/') && !r.chars().any(char::is_whitespace))
}

fn is_loopback_host(h: &str) -> bool {
    h == "localhost" || h == "::1" || h == "[::1]" || h.starts_with("127.")
}

/// Normalizes a relative output path for collision checks (`./a//b` == `a/b`).
fn normalize_out(s: &str) -> String {
    s.split(['/', '\\'])
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

impl Checker {
    fn err(&mut self, pos: Pos, msg: impl Into<String>, help: Option<&str>) {
        let mut d = Diagnostic::error(pos, msg);
        d.help = help.map(str::to_owned);
        self.diags.push(d);
    }

    fn err_help(&mut self, pos: Pos, msg: impl Into<String>, help: Option<String>) {
        let mut d = Diagnostic::error(pos, msg);
        d.help = help;
        self.diags.push(d);
    }

    fn warn(&mut self, pos: Pos, msg: impl Into<String>, help: Option<&str>) {
        let mut d = Diagnostic::warning(pos, msg);
        d.help = help.map(str::to_owned);
        self.diags.push(d);
    }

    fn config(&mut self, root: &Node) -> Option<Config> {
        let f = self.fields(root, "the config", TOP_KEYS)?;
        let approvers = f
            .get("approvers")
            .map(|n| self.email_list(n, "top-level `approvers`"))
            .unwrap_or_default();
        let models = f.get("models").map(|n| self.models(n)).unwrap_or_default();
        let notify = f.get("notify").map(|n| self.notify(n)).unwrap_or_default();
        let server = f.get("server").map(|n| self.server(n)).unwrap_or_default();

        let genflows = match f.get("genflows") {
            None => {
                self.err(
                    root.pos,
                    "the config has no `genflows:` list",
                    Some("add `genflows:` with at least one genflow, or run `fleet init` for an example"),
                );
                Vec::new()
            }
            Some(n) => self.genflows(n, &models, !approvers.is_empty()),
        };
        Some(Config {
            genflows,
            models,
            notify,
            server,
            approvers,
        })
    }

    fn genflows(
        &mut self,
        node: &Node,
        models: &BTreeMap<String, ModelConfig>,
        has_default_approvers: bool,
    ) -> Vec<Genflow> {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node.pos,
                format!("`genflows` must be a list, found {}", node.type_name()),
                None,
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.err(
                node.pos,
                "`genflows` is empty: define at least one genflow",
                None,
            );
        }
        let mut names: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for item in items {
            if let Some((g, name_pos)) = self.genflow(item, models, has_default_approvers) {
                if let Some(first) = names.get(&g.name) {
                    self.err(
                        name_pos,
                        format!(
                            "duplicate genflow name `{}` (first defined on line {})",
                            g.name, first.line
                        ),
                        None,
                    );
                    continue;
                }
                names.insert(g.name.clone(), name_pos);
                out.push(g);
            }
        }
        out
    }

    fn genflow(
        &mut self,
        node: &Node,
        models: &BTreeMap<String, ModelConfig>,
        has_default_approvers: bool,
    ) -> Option<(Genflow, Pos)> {
        let f = self.fields(node, "a genflow", GENFLOW_KEYS)?;
        let name_node = self.required(&f, "name", "a genflow");
        let name = name_node.and_then(|n| self.name(n, "genflow name"));
        let what = match &name {
            Some(n) => format!("genflow `{n}`"),
            None => "this genflow".to_owned(),
        };
        let description = f
            .get("description")
            .and_then(|n| self.string(n, "`description`"));
        let params = f.get("params").map(|n| self.params(n)).unwrap_or_default();
        let release = f.get("release").and_then(|n| self.release(n));
        let schedule = f.get("schedule").and_then(|n| {
            let s = self.nonempty_string(n, "`schedule`")?;
            match s.parse::<croner::Cron>() {
                Ok(_) => Some(s),
                Err(e) => {
                    self.err(
                        n.pos,
                        format!("invalid cron expression `{s}` in `schedule`: {e}"),
                        Some("use 5 fields (minute hour day month weekday), e.g. `0 9 * * 1-5`, or `@daily`"),
                    );
                    None
                }
            }
        });
        let schedule_params =
            self.schedule_params(f.get("schedule_params"), f.get("schedule"), &params);
        let trigger = f.get("trigger").and_then(|n| self.trigger(n, &params));
        let approvers = f
            .get("approvers")
            .map(|n| self.email_list(n, &format!("`approvers` of {what}")))
            .unwrap_or_default();
        let budget = f.get("budget").and_then(|n| self.budget(n));
        let evidence = f
            .get("evidence")
            .and_then(|n| self.evidence(n))
            .unwrap_or_default();
        let (steps, fanned) = match self.required(&f, "steps", &what) {
            Some(n) => {
                let default_approvers = has_default_approvers || !approvers.is_empty();
                self.steps(n, &what, models, default_approvers)
            }
            None => (Vec::new(), Default::default()),
        };
        self.param_uses(f.get("release"), f.get("steps"), &params, &fanned);
        let name = name?;
        Some((
            Genflow {
                name,
                description,
                params,
                release,
                schedule,
                schedule_params,
                trigger,
                approvers,
                budget,
                evidence,
                steps,
                param_values: BTreeMap::new(),
            },
            name_node.map(|n| n.pos).unwrap_or(node.pos),
        ))
    }

    fn budget(&mut self, node: &Node) -> Option<Budget> {
        let f = self.fields(node, "`budget`", &["tokens", "cost_usd"])?;
        let tokens = f
            .get("tokens")
            .and_then(|n| self.uint(n, "`budget.tokens`", 1, 1_000_000_000_000));
        let cost_usd = f
            .get("cost_usd")
            .and_then(|n| self.number(n, "`budget.cost_usd`", 0.0, 1e9));
        if f.get("tokens").is_none() && f.get("cost_usd").is_none() {
            self.err(
                node.pos,
                "`budget` needs `tokens`, `cost_usd` or both",
                Some("e.g. `budget: {tokens: 200000, cost_usd: 5}`"),
            );
            return None;
        }
        Some(Budget { tokens, cost_usd })
    }

    fn name(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.nonempty_string(node, what)?;
        if !is_valid_name(&s) || s.len() > 64 {
            self.err(
                node.pos,
                format!("{what} `{s}` is not a valid name"),
                Some("use 1-64 letters, digits, `-`, `_` or `.`, starting with a letter or digit"),
            );
            return None;
        }
        Some(s)
    }

    fn server(&mut self, node: &Node) -> ServerConfig {
        let Some(f) = self.fields(
            node,
            "`server`",
            &["public_url", "bind", "github", "gitlab"],
        ) else {
            return ServerConfig::default();
        };
        let public_url = f
            .get("public_url")
            .and_then(|n| self.url(n, "`public_url`"));
        let bind = f.get("bind").and_then(|n| {
            let s = self.nonempty_string(n, "`bind`")?;
            if s.parse::<std::net::SocketAddr>().is_err() {
                self.err(
                    n.pos,
                    format!("`bind: {s}` is not an address:port such as `127.0.0.1:8080`"),
                    None,
                );
                return None;
            }
            Some(s)
        });
        let (github, gitlab) = self.hook_settings(&f);
        ServerConfig {
            public_url,
            bind,
            github,
            gitlab,
        }
    }
}
