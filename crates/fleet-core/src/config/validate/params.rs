//! A genflow's `params` declarations, its `schedule_params`, and every
//! `{{ params.NAME }}` its texts use (each must name a declared param).

use super::{Checker, did_you_mean};
use crate::config::fan_out::{ITEM_FIELDS, ITEM_VAR};
use crate::config::model::Param;
use crate::config::node::{Node, NodeKind, Pos};
use crate::config::params::{template_env, uses_run_values, whole_value_regex};
use std::collections::{BTreeMap, BTreeSet, HashMap};

const PARAM_KEYS: &[&str] = &["name", "default", "description", "pattern"];

/// Step fields that are always templates.
const TEMPLATED_STEP_FIELDS: &[&str] = &["prompt", "question", "out"];

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Checker {
    /// A genflow's `params`: a list of `{name, default, description, pattern}`.
    pub(super) fn params(&mut self, node: &Node) -> Vec<Param> {
        let NodeKind::Seq(items) = &node.kind else {
            self.err(
                node.pos,
                format!(
                    "`params` must be a list of {{name, default, description, pattern}}, found {}",
                    node.type_name()
                ),
                Some("e.g. `params: [{name: version, pattern: '\\d+\\.\\d+\\.\\d+'}]`"),
            );
            return Vec::new();
        };
        // Compared without case: `FLEET_PARAM_<NAME>` is upper case.
        let mut seen: HashMap<String, Pos> = HashMap::new();
        let mut out = Vec::new();
        for item in items {
            let Some(p) = self.param(item) else { continue };
            let (param, pos) = p;
            if let Some(first) = seen.get(&param.name.to_ascii_uppercase()) {
                self.err(
                    pos,
                    format!(
                        "duplicate parameter `{}` (first declared on line {}; names are compared without case)",
                        param.name, first.line
                    ),
                    None,
                );
                continue;
            }
            seen.insert(param.name.to_ascii_uppercase(), pos);
            out.push(param);
        }
        out
    }

    fn param(&mut self, node: &Node) -> Option<(Param, Pos)> {
        let f = self.fields(node, "a parameter", PARAM_KEYS)?;
        let name_node = self.required(&f, "name", "a parameter");
        let name = name_node.and_then(|n| {
            let s = self.nonempty_string(n, "parameter name")?;
            if !is_identifier(&s) || s.len() > 64 {
                self.err(
                    n.pos,
                    format!("parameter name `{s}` is not an identifier"),
                    Some("use 1-64 letters, digits and `_`, not starting with a digit (templates write `{{ params.NAME }}`)"),
                );
                return None;
            }
            Some(s)
        });
        let description = f
            .get("description")
            .and_then(|n| self.string(n, "`description`"));
        let pattern_node = f.get("pattern");
        let regex = pattern_node.and_then(|n| {
            let pattern = self.nonempty_string(n, "`pattern`")?;
            match whole_value_regex(&pattern) {
                Ok(re) => Some((pattern, re)),
                Err(e) => {
                    let why = e.to_string();
                    let why = why.lines().last().unwrap_or("invalid").trim().to_owned();
                    self.err(
                        n.pos,
                        format!("`pattern` `{pattern}` is not a valid regular expression: {why}"),
                        Some("the pattern must match the whole value, e.g. `\\d+\\.\\d+\\.\\d+`"),
                    );
                    None
                }
            }
        });
        let default = f
            .get("default")
            .and_then(|n| self.param_value(n, "`default`"));
        if let (Some(d), Some((pattern, re)), Some(n)) = (&default, &regex, f.get("default"))
            && !re.is_match(d)
        {
            self.err(
                n.pos,
                format!("`default` `{d}` does not match the parameter's own pattern `{pattern}`"),
                None,
            );
        }
        let pos = name_node.map(|n| n.pos).unwrap_or(node.pos);
        Some((
            Param {
                name: name?,
                default,
                description,
                pattern: regex.map(|(p, _)| p),
            },
            pos,
        ))
    }

    /// A value given to a param in config. YAML reads `4.10` as the number
    /// 4.1, so an unquoted number with a fraction is refused, not changed.
    fn param_value(&mut self, node: &Node, what: &str) -> Option<String> {
        if let NodeKind::Float(f) = node.kind {
            self.err(
                node.pos,
                format!("{what} must be a string, found the number {f}"),
                Some("quote it, e.g. \"4.10\": YAML reads an unquoted 4.10 as 4.1"),
            );
            return None;
        }
        self.string(node, what)
    }

    /// `schedule_params`: the values scheduled runs get. With `schedule`
    /// set, every param without a default must have one here, so a
    /// scheduled run cannot fail for want of a value.
    pub(super) fn schedule_params(
        &mut self,
        node: Option<&Node>,
        schedule: Option<&Node>,
        params: &[Param],
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(node) = node {
            let NodeKind::Map(entries) = &node.kind else {
                self.err(
                    node.pos,
                    format!(
                        "`schedule_params` must be a mapping of parameter names to values, found {}",
                        node.type_name()
                    ),
                    None,
                );
                return out;
            };
            if schedule.is_none() {
                self.warn(
                    node.pos,
                    "`schedule_params` has no effect without a `schedule`",
                    None,
                );
            }
            for (k, v) in entries {
                let Some(name) = self.string(k, "a parameter name") else {
                    continue;
                };
                let Some(param) = params.iter().find(|p| p.name == name) else {
                    let help = did_you_mean(&name, params.iter().map(|p| p.name.as_str()));
                    self.err_help(
                        k.pos,
                        format!(
                            "`schedule_params` gives `{name}`, which is not a declared parameter"
                        ),
                        help.or(Some("declare it under `params:`".into())),
                    );
                    continue;
                };
                let what = format!("`schedule_params.{name}`");
                let Some(value) = self.param_value(v, &what) else {
                    continue;
                };
                if let Some(pattern) = &param.pattern
                    && !whole_value_regex(pattern).is_ok_and(|re| re.is_match(&value))
                {
                    self.err(
                        v.pos,
                        format!("{what} `{value}` does not match the pattern `{pattern}`"),
                        None,
                    );
                    continue;
                }
                out.insert(name, value);
            }
        }
        if let Some(s) = schedule {
            for p in params {
                if p.default.is_none() && !out.contains_key(&p.name) {
                    self.err(
                        s.pos,
                        format!(
                            "scheduled runs need a value for parameter `{}`, which has no default",
                            p.name
                        ),
                        Some("give it under `schedule_params:` or give the parameter a `default`"),
                    );
                }
            }
        }
        out
    }

    /// Every `{{ params.NAME }}` in the genflow's texts names a declared
    /// param, every `{{ item.… }}` is in a step that runs once per file
    /// (`fanned`), and every template compiles. Reads the located tree, so
    /// each error points at the text that has it.
    pub(super) fn param_uses(
        &mut self,
        release: Option<&Node>,
        steps: Option<&Node>,
        params: &[Param],
        fanned: &BTreeSet<String>,
    ) {
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        if let Some(n) = release {
            self.template_text(n, "`release`", &Vars::params(&names));
        }
        let Some(NodeKind::Seq(steps)) = steps.map(|s| &s.kind) else {
            return;
        };
        for step in steps {
            let NodeKind::Map(entries) = &step.kind else {
                continue;
            };
            let name = entries.iter().find_map(|(k, v)| match (&k.kind, &v.kind) {
                (NodeKind::Str(k), NodeKind::Str(v)) if k == "name" => Some(v.as_str()),
                _ => None,
            });
            let vars = Vars {
                params: &names,
                item: name
                    .filter(|n| fanned.contains(*n))
                    .map(|_| true)
                    .unwrap_or(false),
                step: name,
            };
            for (k, v) in entries {
                let NodeKind::Str(key) = &k.kind else {
                    continue;
                };
                match key.as_str() {
                    k if TEMPLATED_STEP_FIELDS.contains(&k) => {
                        self.template_text(v, &format!("`{k}`"), &vars)
                    }
                    // Listed before any instance exists: params only.
                    "for_each" => self.template_text(v, "`for_each`", &Vars::params(&names)),
                    "corpus" => self.corpus_uses(v, &vars),
                    "sources" => self.source_uses(v, &vars),
                    "destinations" => self.destination_uses(v, &vars),
                    _ => {}
                }
            }
        }
    }

    fn corpus_uses(&mut self, node: &Node, names: &Vars) {
        let items = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            _ => vec![node],
        };
        for item in items {
            match &item.kind {
                NodeKind::Str(_) => self.template_text(item, "corpus glob", names),
                NodeKind::Map(entries) => {
                    for (k, v) in entries {
                        if let NodeKind::Str(key) = &k.kind
                            && matches!(key.as_str(), "glob" | "changed_since")
                        {
                            self.template_text(v, &format!("`{key}`"), names);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// A publish step's destinations: a path or webhook is a template; a
    /// command element only when it uses `params` (as for argv sources).
    fn destination_uses(&mut self, node: &Node, names: &Vars) {
        let NodeKind::Seq(items) = &node.kind else {
            return;
        };
        for item in items {
            let NodeKind::Map(entries) = &item.kind else {
                continue;
            };
            for (k, v) in entries {
                match (&k.kind, &v.kind) {
                    (NodeKind::Str(key), NodeKind::Str(_)) if key == "path" || key == "webhook" => {
                        self.template_text(v, &format!("`{key}`"), names)
                    }
                    (NodeKind::Str(key), NodeKind::Seq(argv)) if key == "command" => {
                        for arg in argv {
                            if matches!(&arg.kind, NodeKind::Str(a) if uses_run_values(a)) {
                                self.template_text(arg, "`command` element", names);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn source_uses(&mut self, node: &Node, names: &Vars) {
        let NodeKind::Seq(sources) = &node.kind else {
            return;
        };
        for source in sources {
            let NodeKind::Map(entries) = &source.kind else {
                continue;
            };
            let Some((_, command)) = entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == "command"))
            else {
                continue;
            };
            match &command.kind {
                NodeKind::Str(shell) if uses_run_values(shell) => self.err(
                    command.pos,
                    "a shell `command` cannot use `{{ params… }}` or `{{ item… }}`: values are never spliced into a shell string",
                    Some("read `$FLEET_PARAM_<NAME>` (or `$FLEET_ITEM_PATH`) in the command, or write it as a list (argv) and use `{{ params.NAME }}` in an element"),
                ),
                NodeKind::Seq(argv) => {
                    for arg in argv {
                        if matches!(&arg.kind, NodeKind::Str(a) if uses_run_values(a)) {
                            self.template_text(arg, "`command` element", names);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// One templated text: it compiles, and uses no variable but `params`
    /// (each `params.NAME` declared) and, in a step that runs once per
    /// file, `item`.
    fn template_text(&mut self, node: &Node, what: &str, vars: &Vars) {
        let NodeKind::Str(text) = &node.kind else {
            return;
        };
        if !text.contains('{') {
            return;
        }
        let names = vars.params;
        let env = template_env();
        let template = match env.template_from_str(text) {
            Ok(t) => t,
            Err(e) => {
                let help = e
                    .detail()
                    .unwrap_or("parameters are written `{{ params.NAME }}`");
                self.err(
                    node.pos,
                    format!("{what} is not a valid template: {}", e.kind()),
                    Some(help),
                );
                return;
            }
        };
        let mut used: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        used.sort();
        for var in used {
            let (root, rest) = match var.split_once('.') {
                Some((root, rest)) => (root, Some(rest.split('.').next().unwrap_or(rest))),
                None => (var.as_str(), None),
            };
            if root == ITEM_VAR {
                self.item_use(node, what, vars, rest);
                continue;
            }
            let param = match (root, rest) {
                ("params", Some(rest)) => rest,
                // `params` used whole (e.g. `{% for p in params %}`).
                ("params", None) => continue,
                _ => {
                    self.err(
                        node.pos,
                        format!("{what} uses `{var}`, which is not a parameter"),
                        Some("parameters are written `{{ params.NAME }}`; a step with `for_each` also has `{{ item.path }}`"),
                    );
                    continue;
                }
            };
            if !names.contains(&param) {
                let help = did_you_mean(param, names.iter().copied()).unwrap_or_else(|| {
                    if names.is_empty() {
                        "declare it under the genflow's `params:`".to_owned()
                    } else {
                        format!("declared parameters: {}", names.join(", "))
                    }
                });
                self.err_help(
                    node.pos,
                    format!("{what} uses `params.{param}`, which is not a declared parameter"),
                    Some(help),
                );
            }
        }
    }

    /// One use of `item` (`field` = the attribute, if any).
    fn item_use(&mut self, node: &Node, what: &str, vars: &Vars, field: Option<&str>) {
        if !vars.item {
            let step = vars.step.unwrap_or("this step");
            self.err(
                node.pos,
                format!("{what} uses `item`, but step `{step}` does not run once per file"),
                Some("`item` is the file of a `for_each`: set `for_each` on this step or on a step it depends on"),
            );
            return;
        }
        if let Some(field) = field
            && !ITEM_FIELDS.contains(&field)
        {
            let help = did_you_mean(field, ITEM_FIELDS.iter().copied())
                .unwrap_or_else(|| format!("`item` has: {}", ITEM_FIELDS.join(", ")));
            self.err_help(
                node.pos,
                format!("{what} uses `item.{field}`, which a file does not have"),
                Some(help),
            );
        }
    }
}

/// What a template may use where it is written.
struct Vars<'a> {
    params: &'a [&'a str],
    /// The step runs once per file, so `item` is defined.
    item: bool,
    step: Option<&'a str>,
}

impl<'a> Vars<'a> {
    fn params(params: &'a [&'a str]) -> Vars<'a> {
        Vars {
            params,
            item: false,
            step: None,
        }
    }
}
