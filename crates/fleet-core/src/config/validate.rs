//! Turns a located YAML tree into a typed [`Config`], collecting every
//! problem on the way instead of stopping at the first.

use super::diag::Diagnostic;
use super::model::*;
use super::node::{Node, NodeKind, Pos};
use crate::dag;
use std::collections::{BTreeMap, HashMap};

mod corpus;
mod params;
mod publish;

const TOP_KEYS: &[&str] = &["genflows", "models", "notify", "server", "approvers"];
const GENFLOW_KEYS: &[&str] = &[
    "name",
    "description",
    "params",
    "release",
    "schedule",
    "schedule_params",
    "approvers",
    "budget",
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

    /// Checks that `node` is a mapping with string keys drawn from `allowed`;
    /// reports duplicates and unknown keys (with a suggestion).
    fn fields<'a>(&mut self, node: &'a Node, what: &str, allowed: &[&str]) -> Option<Fields<'a>> {
        let NodeKind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                format!("{what} must be a mapping, found {}", node.type_name()),
                None,
            );
            return None;
        };
        let mut out = Fields {
            node,
            entries: Vec::new(),
        };
        let mut seen: HashMap<&str, Pos> = HashMap::new();
        for (k, v) in entries {
            let NodeKind::Str(key) = &k.kind else {
                self.err(
                    k.pos,
                    format!("keys in {what} must be strings, found {}", k.type_name()),
                    None,
                );
                continue;
            };
            if let Some(first) = seen.get(key.as_str()) {
                self.err(
                    k.pos,
                    format!(
                        "duplicate key `{key}` in {what} (first set on line {})",
                        first.line
                    ),
                    None,
                );
                continue;
            }
            seen.insert(key, k.pos);
            if !allowed.contains(&key.as_str()) {
                let help = did_you_mean(key, allowed.iter().copied())
                    .unwrap_or_else(|| format!("expected one of: {}", allowed.join(", ")));
                self.err_help(k.pos, format!("unknown key `{key}` in {what}"), Some(help));
                continue;
            }
            out.entries.push((key, k, v));
        }
        Some(out)
    }

    fn required<'a>(&mut self, f: &Fields<'a>, key: &str, what: &str) -> Option<&'a Node> {
        let v = f.get(key);
        if v.is_none() {
            self.err(
                f.node.pos,
                format!("{what} is missing required key `{key}`"),
                None,
            );
        }
        v
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Str(s) => Some(s.clone()),
            NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => node.as_scalar_text(),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a string, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    fn nonempty_string(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if s.trim().is_empty() {
            self.err(node.pos, format!("{what} must not be empty"), None);
            return None;
        }
        Some(s)
    }

    fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.kind {
            NodeKind::Bool(b) => Some(b),
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be true or false, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    fn uint(&mut self, node: &Node, what: &str, min: u64, max: u64) -> Option<u64> {
        match node.kind {
            NodeKind::Int(i) if i >= min as i64 && (i as u64) <= max => Some(i as u64),
            NodeKind::Int(i) => {
                self.err(
                    node.pos,
                    format!("{what} must be between {min} and {max}, found {i}"),
                    None,
                );
                None
            }
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be an integer, found {}", node.type_name()),
                    None,
                );
                None
            }
        }
    }

    fn number(&mut self, node: &Node, what: &str, min: f64, max: f64) -> Option<f64> {
        let v = match node.kind {
            NodeKind::Int(i) => i as f64,
            NodeKind::Float(f) => f,
            _ => {
                self.err(
                    node.pos,
                    format!("{what} must be a number, found {}", node.type_name()),
                    None,
                );
                return None;
            }
        };
        if !(min..=max).contains(&v) {
            self.err(
                node.pos,
                format!("{what} must be between {min} and {max}, found {v}"),
                None,
            );
            return None;
        }
        Some(v)
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
        let text = match &node.kind {
            NodeKind::Int(i) if *i > 0 => format!("{i}s"),
            NodeKind::Str(s) => s.clone(),
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "{what} must be a duration like `90s` or `10m`, found {}",
                        node.type_name()
                    ),
                    None,
                );
                return None;
            }
        };
        match Duration::parse(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.err(node.pos, format!("{what}: {e}"), None);
                None
            }
        }
    }

    /// A list of strings; a single string is accepted as a one-item list.
    /// Returns each item with its position.
    fn string_list(&mut self, node: &Node, what: &str) -> Vec<(String, Pos)> {
        match &node.kind {
            NodeKind::Str(s) => vec![(s.clone(), node.pos)],
            NodeKind::Null => Vec::new(),
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(|i| {
                    let s = self.nonempty_string(i, &format!("each item of {what}"))?;
                    Some((s, i.pos))
                })
                .collect(),
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "{what} must be a list of strings, found {}",
                        node.type_name()
                    ),
                    None,
                );
                Vec::new()
            }
        }
    }

    fn email_list(&mut self, node: &Node, what: &str) -> Vec<String> {
        let items = self.string_list(node, what);
        let mut seen = BTreeMap::new();
        let mut out = Vec::new();
        for (s, pos) in items {
            if !is_email(&s) {
                self.err(
                    pos,
                    format!("`{s}` in {what} is not an email address"),
                    Some("write a plain address such as `alice@example.com`"),
                );
            } else if let Some(first) = seen.insert(s.to_lowercase(), pos) {
                self.err(
                    pos,
                    format!(
                        "`{s}` is listed twice in {what} (also on line {})",
                        first.line
                    ),
                    None,
                );
            } else {
                out.push(s);
            }
        }
        out
    }

    fn env_name(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.nonempty_string(node, what)?;
        if !is_env_name(&s) {
            let help = if s.len() > 20 || s.starts_with("sk-") {
                "this looks like a secret itself; put the secret in an environment variable and name the variable here"
            } else {
                "use the name of an environment variable, e.g. `OPENAI_API_KEY`"
            };
            self.err(
                node.pos,
                format!("{what} must name an environment variable"),
                Some(help),
            );
            return None;
        }
        Some(s)
    }

    fn url(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.nonempty_string(node, what)?;
        if !is_http_url(&s) {
            self.err(
                node.pos,
                format!("{what} must be an http:// or https:// URL, found `{s}`"),
                None,
            );
            return None;
        }
        Some(s)
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
        self.param_uses(f.get("release"), f.get("steps"), &params);
        let approvers = f
            .get("approvers")
            .map(|n| self.email_list(n, &format!("`approvers` of {what}")))
            .unwrap_or_default();
        let budget = f.get("budget").and_then(|n| self.budget(n));
        let steps = match self.required(&f, "steps", &what) {
            Some(n) => {
                let default_approvers = has_default_approvers || !approvers.is_empty();
                self.steps(n, &what, models, default_approvers)
            }
            None => Vec::new(),
        };
        let name = name?;
        Some((
            Genflow {
                name,
                description,
                params,
                release,
                schedule,
                schedule_params,
                approvers,
                budget,
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

    fn steps(
        &mut self,
        node: &Node,
        flow: &str,
        models: &BTreeMap<String, ModelConfig>,
        has_default_approvers: bool,
    ) -> Vec<Step> {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "`steps` of {flow} must be a list, found {}",
                    node.type_name()
                ),
                None,
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.err(node.pos, format!("{flow} has no steps"), None);
            return Vec::new();
        }
        // First pass: each step on its own.
        let mut parsed: Vec<ParsedStep> = items
            .iter()
            .filter_map(|item| self.step(item, models, has_default_approvers))
            .collect();

        // Duplicate names: keep the first, report the rest.
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut keep = Vec::new();
        for p in parsed.drain(..) {
            if let Some(&first) = index.get(&p.step.name) {
                let first_line: usize = keep
                    .get(first)
                    .map(|f: &ParsedStep| f.name_pos.line)
                    .unwrap_or(0);
                self.err(
                    p.name_pos,
                    format!(
                        "duplicate step name `{}` in {flow} (first defined on line {first_line})",
                        p.step.name
                    ),
                    None,
                );
                continue;
            }
            index.insert(p.step.name.clone(), keep.len());
            keep.push(p);
        }
        let parsed = keep;
        let names: Vec<&str> = parsed.iter().map(|p| p.step.name.as_str()).collect();

        // Dependencies by index; unknown names reported.
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); parsed.len()];
        for (i, p) in parsed.iter().enumerate() {
            for (d, pos) in &p.deps {
                match index.get(d) {
                    Some(&j) => {
                        if !deps[i].contains(&j) {
                            deps[i].push(j);
                        }
                    }
                    None => {
                        let help = did_you_mean(d, names.iter().copied())
                            .unwrap_or_else(|| format!("steps in {flow}: {}", names.join(", ")));
                        self.err_help(
                            *pos,
                            format!(
                                "step `{}` depends on `{d}`, which is not a step of {flow}",
                                p.step.name
                            ),
                            Some(help),
                        );
                    }
                }
            }
        }

        let cycles = dag::find_cycles(&deps);
        for cycle in &cycles {
            let path: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
            let start = cycle[0];
            self.err(
                parsed[start].name_pos,
                format!("dependency cycle in {flow}: {}", path.join(" -> ")),
                Some("a step cannot depend on itself, directly or through other steps"),
            );
        }
        let acyclic = cycles.is_empty();

        // Output collisions.
        let mut outs: HashMap<String, (usize, Pos)> = HashMap::new();
        for (i, p) in parsed.iter().enumerate() {
            let out = normalize_out(&p.step.out_path());
            if let Some((first, _)) = outs.get(&out) {
                self.err(
                    p.out_pos.unwrap_or(p.name_pos),
                    format!(
                        "`out: {}` of step `{}` collides with the output of step `{}`",
                        p.step.out_path(),
                        p.step.name,
                        names[*first]
                    ),
                    Some("each step needs its own output file"),
                );
            } else {
                outs.insert(out, (i, p.out_pos.unwrap_or(p.name_pos)));
            }
        }

        let approvals: Vec<usize> = (0..parsed.len())
            .filter(|&i| parsed[i].step.kind == StepKind::Approval)
            .collect();
        for (i, p) in parsed.iter().enumerate() {
            let ups = dag::ancestors(&deps, i);
            // Outbound steps must sit behind a gate when the flow has one.
            if acyclic
                && p.step.kind.is_outbound()
                && !approvals.is_empty()
                && !ups.iter().any(|u| approvals.contains(u))
            {
                self.warn(
                        p.name_pos,
                        format!(
                            "{} step `{}` does not depend on an approval, so it can run before anyone decides",
                            p.step.kind, p.step.name
                        ),
                        Some("add the approval step (or a step after it) to `depends_on`"),
                    );
            }
            if acyclic && p.step.kind == StepKind::Publish {
                let all: Vec<&Step> = parsed.iter().map(|p| &p.step).collect();
                self.publish_source(&p.step, p.from_pos, p.name_pos, &ups, &all);
            }
            if p.step.kind == StepKind::Review && p.step.depends_on.is_empty() {
                self.err(
                    p.name_pos,
                    format!(
                        "review step `{}` has nothing to review: add the report it reviews to `depends_on`",
                        p.step.name
                    ),
                    None,
                );
            }
            if p.step.kind == StepKind::Approval && p.step.depends_on.is_empty() {
                self.warn(
                    p.name_pos,
                    format!(
                        "approval step `{}` depends on nothing, so approvers will have no documents to look at",
                        p.step.name
                    ),
                    None,
                );
            }
            if let (Some(of), Some(pos)) = (&p.step.on_flag, p.redraft_pos) {
                match index.get(&of.redraft) {
                    None => {
                        let help = did_you_mean(&of.redraft, names.iter().copied());
                        self.err_help(
                            pos,
                            format!(
                                "`on_flag.redraft` names `{}`, which is not a step of {flow}",
                                of.redraft
                            ),
                            help,
                        );
                    }
                    Some(&j) => {
                        if parsed[j].step.kind != StepKind::Report {
                            self.err(
                                pos,
                                format!(
                                    "`on_flag.redraft` must name a report step; `{}` is a {} step",
                                    of.redraft, parsed[j].step.kind
                                ),
                                None,
                            );
                        } else if !ups.contains(&j) {
                            self.err(
                                pos,
                                format!(
                                    "`on_flag.redraft` names `{}`, which step `{}` does not depend on",
                                    of.redraft, p.step.name
                                ),
                                Some("a review can only send back a report it reviews"),
                            );
                        }
                    }
                }
            }
        }
        parsed.into_iter().map(|p| p.step).collect()
    }

    fn step(
        &mut self,
        node: &Node,
        models: &BTreeMap<String, ModelConfig>,
        has_default_approvers: bool,
    ) -> Option<ParsedStep> {
        let all_keys: Vec<&str> = STEP_COMMON
            .iter()
            .copied()
            .chain(STEP_KIND_FIELDS.iter().map(|(k, _)| *k))
            .collect();
        let f = self.fields(node, "a step", &all_keys)?;
        let name_node = self.required(&f, "name", "a step");
        // An invalid name is reported but kept, so that dependency checks
        // still see the step and do not pile up follow-on errors.
        let name = name_node.and_then(|n| self.name(n, "step name").or_else(|| n.as_scalar_text()));
        let name_pos = name_node.map(|n| n.pos).unwrap_or(node.pos);
        let label = match &name {
            Some(n) => format!("step `{n}`"),
            None => "this step".to_owned(),
        };

        let kind = self.required(&f, "kind", &label).and_then(|n| {
            let s = self.string(n, "`kind`")?;
            match StepKind::ALL.iter().find(|k| k.as_str() == s) {
                Some(k) => Some(*k),
                None => {
                    let kinds: Vec<&str> = StepKind::ALL.iter().map(|k| k.as_str()).collect();
                    let help = did_you_mean(&s, kinds.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", kinds.join(", ")));
                    self.err_help(n.pos, format!("unknown step kind `{s}`"), Some(help));
                    None
                }
            }
        });

        // Fields that do not belong to this kind.
        if let Some(kind) = kind {
            for (key, kinds) in STEP_KIND_FIELDS {
                if let Some(pos) = f.key_pos(key)
                    && !kinds.contains(&kind)
                {
                    let owners: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                    self.err(
                        pos,
                        format!(
                            "`{key}` does not belong on {} {kind} step (it applies to {} steps)",
                            if kind == StepKind::Approval {
                                "an"
                            } else {
                                "a"
                            },
                            owners.join(" and ")
                        ),
                        None,
                    );
                }
            }
        }

        let prompt = f
            .get("prompt")
            .and_then(|n| self.nonempty_string(n, "`prompt`"));
        let corpus = f.get("corpus").map(|n| self.corpus(n)).unwrap_or_default();
        let include_ignored = f
            .get("include_ignored")
            .and_then(|n| self.bool(n, "`include_ignored`"))
            .unwrap_or(false);
        let sources = f
            .get("sources")
            .map(|n| self.sources(n))
            .unwrap_or_default();
        let deps = f
            .get("depends_on")
            .map(|n| self.string_list(n, "`depends_on`"))
            .unwrap_or_default();
        for (d, pos) in &deps {
            if Some(d) == name.as_ref() {
                self.err(*pos, format!("{label} depends on itself"), None);
            }
        }
        let out_node = f.get("out");
        let out = out_node.and_then(|n| self.out_path(n));
        let model = f.get("model").and_then(|n| {
            let m = self.nonempty_string(n, "`model`")?;
            if m != BUILTIN_MODEL && !models.contains_key(&m) && !self.declared_models.contains(&m)
            {
                let mut known: Vec<&str> = models.keys().map(String::as_str).collect();
                known.push(BUILTIN_MODEL);
                let help = did_you_mean(&m, known.iter().copied()).unwrap_or_else(|| {
                    format!("define it under `models:` (known: {})", known.join(", "))
                });
                self.err_help(
                    n.pos,
                    format!("model `{m}` is not defined in `models`"),
                    Some(help),
                );
                return None;
            }
            Some(m)
        });
        let question = f
            .get("question")
            .and_then(|n| self.nonempty_string(n, "`question`"));
        let approvers = f
            .get("approvers")
            .map(|n| self.email_list(n, &format!("`approvers` of {label}")))
            .unwrap_or_default();
        let required_node = f.get("required");
        let required = required_node
            .and_then(|n| self.uint(n, "`required`", 1, 100))
            .unwrap_or(1) as u32;
        let allow_self_approval = f
            .get("allow_self_approval")
            .and_then(|n| self.bool(n, "`allow_self_approval`"))
            .unwrap_or(false);
        let remind_every = f
            .get("remind_every")
            .and_then(|n| self.duration(n, "`remind_every`"));
        let to = f
            .get("to")
            .map(|n| self.email_list(n, &format!("`to` of {label}")))
            .unwrap_or_default();
        let webhook = f.get("webhook").and_then(|n| self.url(n, "`webhook`"));
        let channels: Vec<String> = f
            .get("channels")
            .map(|n| self.string_list(n, "`channels`"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(c, pos)| self.channel(c, pos, !to.is_empty(), webhook.is_some()))
            .collect();
        let from_node = f.get("from");
        let from = from_node.and_then(|n| self.name(n, "`from`"));
        let destinations = f
            .get("destinations")
            .map(|n| self.destinations(n))
            .unwrap_or_default();
        let (on_flag, redraft_pos) = match f.get("on_flag") {
            Some(n) => self.on_flag(n),
            None => (None, None),
        };
        let retries = f
            .get("retries")
            .and_then(|n| self.uint(n, "`retries`", 0, 20))
            .unwrap_or(0) as u32;
        let timeout = f.get("timeout").and_then(|n| self.duration(n, "`timeout`"));

        // An unknown kind was reported above; carry on as a report (without
        // kind-specific checks) so later checks still see this step.
        let kind_known = kind.is_some();
        let kind = kind.unwrap_or(StepKind::Report);
        match kind {
            _ if !kind_known => {}
            StepKind::Report => {
                if f.get("prompt").is_none() {
                    self.err(
                        f.node.pos,
                        format!(
                            "report {label} has no `prompt`: say what the document should cover"
                        ),
                        None,
                    );
                }
                if f.get("corpus").is_none() && f.get("sources").is_none() {
                    self.err(
                        f.node.pos,
                        format!("report {label} reads nothing: give it `corpus` globs or `sources` commands"),
                        None,
                    );
                }
            }
            StepKind::Approval => {
                // An approvers list that was given but invalid was reported
                // already; do not also warn that there are none.
                let effective = if approvers.is_empty() && f.get("approvers").is_none() {
                    None
                } else {
                    Some(approvers.len())
                };
                match (effective, has_default_approvers) {
                    (Some(n), _) if n > 0 && (required as usize) > n => {
                        self.err(
                            required_node.map(|r| r.pos).unwrap_or(name_pos),
                            format!(
                                "{label} requires {required} approvals but names only {n} approver{}",
                                if n == 1 { "" } else { "s" }
                            ),
                            None,
                        );
                    }
                    (None, false) => {
                        if required > 1 {
                            self.err(
                                required_node.map(|r| r.pos).unwrap_or(name_pos),
                                format!("{label} requires {required} approvals but names no approvers"),
                                Some("list them under `approvers:` on the step, the genflow or the top level"),
                            );
                        } else {
                            self.warn(
                                name_pos,
                                format!("approval {label} names no approvers: anyone who can run `fleet approve` can decide"),
                                Some("add `approvers:` on the step, the genflow or the top level"),
                            );
                        }
                    }
                    _ => {}
                }
            }
            StepKind::Publish if f.get("destinations").is_none() => {
                self.err(
                    f.node.pos,
                    format!("publish {label} has no `destinations`: say where the approved document goes"),
                    Some("e.g. `destinations: [{path: dist/RELEASE_NOTES.md}]`"),
                );
            }
            _ => {}
        }

        let step = Step {
            name: name?,
            kind,
            prompt,
            corpus,
            include_ignored,
            sources,
            depends_on: deps.iter().map(|(d, _)| d.clone()).collect(),
            out,
            model,
            question,
            approvers,
            required,
            allow_self_approval,
            remind_every,
            to,
            webhook,
            channels,
            from,
            destinations,
            on_flag,
            retries,
            timeout,
        };
        Some(ParsedStep {
            step,
            name_pos,
            out_pos: out_node.map(|n| n.pos),
            redraft_pos,
            from_pos: from_node.map(|n| n.pos),
            deps,
        })
    }

    fn corpus_glob(&mut self, glob: String, pos: Pos) -> Option<String> {
        if glob.starts_with('/') || glob.starts_with('\\') || glob.get(1..2) == Some(":") {
            self.err(
                pos,
                format!(
                    "corpus glob `{glob}` is absolute; globs are relative to the workspace root"
                ),
                None,
            );
            return None;
        }
        if glob.split(['/', '\\']).any(|c| c == "..") {
            self.err(
                pos,
                format!("corpus glob `{glob}` contains `..` and could leave the workspace"),
                None,
            );
            return None;
        }
        Some(glob)
    }

    fn out_path(&mut self, node: &Node) -> Option<String> {
        let s = self.nonempty_string(node, "`out`")?;
        if s.starts_with('/') || s.starts_with('\\') || s.get(1..2) == Some(":") {
            self.err(
                node.pos,
                format!(
                    "`out: {s}` is an absolute path; outputs are relative to the run directory"
                ),
                Some("write a relative file name such as `readiness.md`"),
            );
            return None;
        }
        if s.split(['/', '\\']).any(|c| c == "..") {
            self.err(
                node.pos,
                format!("`out: {s}` contains `..` and would escape the run directory"),
                None,
            );
            return None;
        }
        if s.ends_with('/') || normalize_out(&s).is_empty() {
            self.err(node.pos, format!("`out: {s}` must name a file"), None);
            return None;
        }
        Some(s)
    }

    fn channel(&mut self, c: String, pos: Pos, has_to: bool, has_webhook: bool) -> Option<String> {
        match c.as_str() {
            "email" if !has_to => {
                self.err(pos, "channel `email` needs recipients in `to`", None);
                None
            }
            "webhook" if !has_webhook => {
                self.err(pos, "channel `webhook` needs a `webhook` URL", None);
                None
            }
            "email" | "webhook" | "file" => Some(c),
            other => match other.strip_prefix("slack:") {
                Some(url) if is_http_url(url) => Some(c),
                Some(_) => {
                    self.err(
                        pos,
                        format!("`{other}`: a slack channel needs an incoming-webhook URL after `slack:`"),
                        None,
                    );
                    None
                }
                None => {
                    let help =
                        did_you_mean(other, ["email", "webhook", "file"]).unwrap_or_else(|| {
                            "expected `email`, `webhook`, `file` or `slack:<url>`".into()
                        });
                    self.err_help(pos, format!("unknown channel `{other}`"), Some(help));
                    None
                }
            },
        }
    }

    fn on_flag(&mut self, node: &Node) -> (Option<OnFlag>, Option<Pos>) {
        let Some(f) = self.fields(node, "`on_flag`", &["redraft", "max"]) else {
            return (None, None);
        };
        let redraft_node = self.required(&f, "redraft", "`on_flag`");
        let redraft = redraft_node.and_then(|n| self.nonempty_string(n, "`on_flag.redraft`"));
        let max = f
            .get("max")
            .and_then(|n| self.uint(n, "`on_flag.max`", 1, 10))
            .unwrap_or(1) as u32;
        match redraft {
            Some(redraft) => (Some(OnFlag { redraft, max }), redraft_node.map(|n| n.pos)),
            None => (None, None),
        }
    }

    fn sources(&mut self, node: &Node) -> Vec<Source> {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "`sources` must be a list of {{name, command}}, found {}",
                    node.type_name()
                ),
                None,
            );
            return Vec::new();
        };
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for item in items {
            let Some(f) = self.fields(item, "a source", &["name", "command"]) else {
                continue;
            };
            let name_node = self.required(&f, "name", "a source");
            let name = name_node.and_then(|n| self.name(n, "source name"));
            let command = self
                .required(&f, "command", "a source")
                .and_then(|n| match &n.kind {
                    NodeKind::Seq(_) => {
                        let argv: Vec<String> = self
                            .string_list(n, "`command`")
                            .into_iter()
                            .map(|(s, _)| s)
                            .collect();
                        if argv.is_empty() {
                            self.err(n.pos, "`command` must not be empty", None);
                            None
                        } else {
                            Some(SourceCommand::Argv(argv))
                        }
                    }
                    _ => self
                        .nonempty_string(n, "`command`")
                        .map(SourceCommand::Shell),
                });
            if let (Some(name), Some(command), Some(np)) = (name, command, name_node) {
                if let Some(first) = seen.get(&name) {
                    self.err(
                        np.pos,
                        format!(
                            "duplicate source name `{name}` (first on line {})",
                            first.line
                        ),
                        None,
                    );
                    continue;
                }
                seen.insert(name.clone(), np.pos);
                out.push(Source {
                    name,
                    command,
                    env: BTreeMap::new(),
                });
            }
        }
        out
    }

    fn models(&mut self, node: &Node) -> BTreeMap<String, ModelConfig> {
        let mut out = BTreeMap::new();
        let NodeKind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "`models` must be a mapping of names to model settings, found {}",
                    node.type_name()
                ),
                None,
            );
            return out;
        };
        let mut seen: HashMap<String, Pos> = HashMap::new();
        for (k, v) in entries {
            let Some(name) = self.name(k, "model name") else {
                continue;
            };
            if let Some(first) = seen.get(&name) {
                self.err(
                    k.pos,
                    format!(
                        "duplicate model `{name}` (first defined on line {})",
                        first.line
                    ),
                    None,
                );
                continue;
            }
            seen.insert(name.clone(), k.pos);
            self.declared_models.insert(name.clone());
            if let Some(m) = self.model(v, &name) {
                out.insert(name, m);
            }
        }
        out
    }

    fn model(&mut self, node: &Node, name: &str) -> Option<ModelConfig> {
        let what = format!("model `{name}`");
        let f = self.fields(node, &what, MODEL_KEYS)?;
        let provider = self.required(&f, "provider", &what).and_then(|n| {
            let s = self.string(n, "`provider`")?;
            match Provider::ALL.iter().find(|p| p.as_str() == s) {
                Some(p) => Some(*p),
                None => {
                    let names: Vec<&str> = Provider::ALL.iter().map(|p| p.as_str()).collect();
                    let help = did_you_mean(&s, names.iter().copied())
                        .unwrap_or_else(|| format!("expected one of: {}", names.join(", ")));
                    self.err_help(n.pos, format!("unknown provider `{s}`"), Some(help));
                    None
                }
            }
        });
        let model = f
            .get("model")
            .and_then(|n| self.nonempty_string(n, "`model`"));
        let base_url = f.get("base_url").and_then(|n| self.url(n, "`base_url`"));
        let api_key_env = f
            .get("api_key_env")
            .and_then(|n| self.env_name(n, "`api_key_env`"));
        let temperature = f
            .get("temperature")
            .and_then(|n| self.number(n, "`temperature`", 0.0, 2.0));
        let max_tokens = f
            .get("max_tokens")
            .and_then(|n| self.uint(n, "`max_tokens`", 1, 10_000_000))
            .map(|v| v as u32);
        let context_tokens = f
            .get("context_tokens")
            .and_then(|n| self.uint(n, "`context_tokens`", 256, 100_000_000))
            .map(|v| v as u32);
        let headers = f
            .get("headers")
            .map(|n| self.headers(n))
            .unwrap_or_default();
        let prices = f.get("prices").and_then(|n| {
            let pf = self.fields(n, "`prices`", &["input", "output"])?;
            let input = self
                .required(&pf, "input", "`prices`")
                .and_then(|v| self.number(v, "`prices.input`", 0.0, 1e6));
            let output = self
                .required(&pf, "output", "`prices`")
                .and_then(|v| self.number(v, "`prices.output`", 0.0, 1e6));
            Some(Prices {
                input: input?,
                output: output?,
            })
        });
        let command: Vec<String> = f
            .get("command")
            .map(|n| match &n.kind {
                NodeKind::Seq(_) => self
                    .string_list(n, "`command`")
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect(),
                _ => {
                    self.err(
                        n.pos,
                        "`command` must be a list (an argv such as [\"claude\", \"-p\"]), not a shell string",
                        None,
                    );
                    Vec::new()
                }
            })
            .unwrap_or_default();
        let timeout = f.get("timeout").and_then(|n| self.duration(n, "`timeout`"));
        let concurrency = f
            .get("concurrency")
            .and_then(|n| self.uint(n, "`concurrency`", 1, 1024))
            .map(|v| v as u32);

        let provider = provider?;
        let http_only = [
            "model",
            "base_url",
            "api_key_env",
            "temperature",
            "max_tokens",
            "headers",
            "prices",
        ];
        match provider {
            Provider::Openai | Provider::Anthropic => {
                if f.get("model").is_none() {
                    self.err(
                        f.node.pos,
                        format!(
                            "{what} ({}) needs `model`: the model id to request",
                            provider.as_str()
                        ),
                        None,
                    );
                }
                if let Some(pos) = f.key_pos("command") {
                    self.err(
                        pos,
                        format!(
                            "`command` applies to the command provider, not {}",
                            provider.as_str()
                        ),
                        None,
                    );
                }
            }
            Provider::Command => {
                if f.get("command").is_none() {
                    self.err(
                        f.node.pos,
                        format!("{what} (command) needs `command`: the agent CLI's argv"),
                        None,
                    );
                }
                for key in http_only {
                    if let Some(pos) = f.key_pos(key) {
                        self.err(
                            pos,
                            format!(
                                "`{key}` applies to the openai and anthropic providers, not command"
                            ),
                            None,
                        );
                    }
                }
            }
            Provider::Builtin => {
                for key in http_only.iter().chain(["command"].iter()) {
                    if let Some(pos) = f.key_pos(key) {
                        self.err(
                            pos,
                            format!("`{key}` does not apply to the builtin provider"),
                            None,
                        );
                    }
                }
            }
        }
        Some(ModelConfig {
            provider,
            model,
            base_url,
            api_key_env,
            temperature,
            max_tokens,
            context_tokens,
            headers,
            prices,
            command,
            timeout,
            concurrency,
        })
    }

    fn headers(&mut self, node: &Node) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let NodeKind::Map(entries) = &node.kind else {
            self.err(
                node.pos,
                "`headers` must be a mapping of header names to values",
                None,
            );
            return out;
        };
        for (k, v) in entries {
            let (Some(name), Some(value)) = (
                self.nonempty_string(k, "a header name"),
                self.string(v, "a header value"),
            ) else {
                continue;
            };
            let lower = name.to_ascii_lowercase();
            if lower == "authorization" || lower == "x-api-key" {
                self.err(
                    k.pos,
                    format!(
                        "`{name}` must not be set in config: credentials come from `api_key_env`"
                    ),
                    None,
                );
                continue;
            }
            out.insert(name, value);
        }
        out
    }

    fn notify(&mut self, node: &Node) -> NotifyConfig {
        let Some(f) = self.fields(node, "`notify`", &["smtp", "webhook", "templates"]) else {
            return NotifyConfig::default();
        };
        let smtp = f.get("smtp").and_then(|n| self.smtp(n));
        let webhook = f.get("webhook").and_then(|n| {
            let wf = self.fields(n, "`notify.webhook`", &["secret_env", "timeout"])?;
            Some(WebhookConfig {
                secret_env: wf
                    .get("secret_env")
                    .and_then(|v| self.env_name(v, "`secret_env`")),
                timeout: wf
                    .get("timeout")
                    .and_then(|v| self.duration(v, "`timeout`")),
            })
        });
        let templates = f
            .get("templates")
            .map(|n| self.templates(n))
            .unwrap_or_default();
        NotifyConfig {
            smtp,
            webhook,
            templates,
        }
    }

    fn templates(&mut self, node: &Node) -> NotifyTemplates {
        let Some(f) = self.fields(node, "`notify.templates`", &NotifyTemplates::NAMES) else {
            return NotifyTemplates::default();
        };
        let mut text = |name: &str| {
            let node = f.get(name)?;
            let text = self.nonempty_string(node, &format!("`{name}`"))?;
            self.template(node, name, &text);
            Some(text)
        };
        NotifyTemplates {
            approval_subject: text("approval_subject"),
            approval_text: text("approval_text"),
            approval_html: text("approval_html"),
            announce_subject: text("announce_subject"),
            announce_text: text("announce_text"),
            announce_html: text("announce_html"),
        }
    }

    /// Compiles notify template `name` and checks that it uses only the
    /// variables it is rendered with, so a typo fails here and not when a
    /// gate opens (rendering is strict about undefined variables).
    fn template(&mut self, node: &Node, name: &str, text: &str) {
        let env = minijinja::Environment::new();
        let template = match env.template_from_str(text) {
            Ok(t) => t,
            Err(e) => {
                let at = e
                    .line()
                    .map(|l| format!(" (line {l} of the template)"))
                    .unwrap_or_default();
                self.err(
                    node.pos,
                    format!("`{name}` is not a valid template{at}: {}", e.kind()),
                    e.detail(),
                );
                return;
            }
        };
        let known = NotifyTemplates::variables(name);
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !known.contains(&v.as_str()) && !env.globals().any(|(g, _)| g == v))
            .collect();
        unknown.sort();
        for var in unknown {
            let help = did_you_mean(&var, known.iter().copied())
                .unwrap_or_else(|| format!("its variables are {}", known.join(", ")));
            self.err_help(
                node.pos,
                format!("`{name}` uses `{var}`, which is not one of its variables"),
                Some(help),
            );
        }
    }

    fn smtp(&mut self, node: &Node) -> Option<SmtpConfig> {
        let f = self.fields(node, "`notify.smtp`", SMTP_KEYS)?;
        let host = self
            .required(&f, "host", "`notify.smtp`")
            .and_then(|n| self.nonempty_string(n, "`host`"));
        let port = f
            .get("port")
            .and_then(|n| self.uint(n, "`port`", 1, 65535))
            .map(|p| p as u16);
        let tls_node = self.required(&f, "tls", "`notify.smtp`");
        let tls = tls_node.and_then(|n| {
            let s = self.string(n, "`tls`")?;
            match s.as_str() {
                "none" => Some(SmtpTls::None),
                "starttls" => Some(SmtpTls::Starttls),
                "implicit" => Some(SmtpTls::Implicit),
                other => {
                    let help = did_you_mean(other, ["none", "starttls", "implicit"])
                        .unwrap_or_else(|| "expected `starttls`, `implicit` or `none`".into());
                    self.err_help(n.pos, format!("unknown tls mode `{other}`"), Some(help));
                    None
                }
            }
        });
        if let (Some(SmtpTls::None), Some(h), Some(n)) = (tls, &host, tls_node)
            && !is_loopback_host(h)
        {
            self.err(
                n.pos,
                format!("`tls: none` sends mail in clear text; it is only allowed for a loopback host, not `{h}`"),
                Some("use `starttls` or `implicit`"),
            );
        }
        let from = self.required(&f, "from", "`notify.smtp`").and_then(|n| {
            let s = self.nonempty_string(n, "`from`")?;
            if !is_email(&s) {
                self.err(n.pos, format!("`from: {s}` is not an email address"), None);
                return None;
            }
            Some(s)
        });
        let username_env = f
            .get("username_env")
            .and_then(|n| self.env_name(n, "`username_env`"));
        let password_env = f
            .get("password_env")
            .and_then(|n| self.env_name(n, "`password_env`"));
        Some(SmtpConfig {
            host: host?,
            port,
            tls: tls?,
            from: from?,
            username_env,
            password_env,
        })
    }

    fn server(&mut self, node: &Node) -> ServerConfig {
        let Some(f) = self.fields(node, "`server`", &["public_url", "bind"]) else {
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
        ServerConfig { public_url, bind }
    }
}

struct ParsedStep {
    step: Step,
    name_pos: Pos,
    out_pos: Option<Pos>,
    redraft_pos: Option<Pos>,
    from_pos: Option<Pos>,
    deps: Vec<(String, Pos)>,
}
