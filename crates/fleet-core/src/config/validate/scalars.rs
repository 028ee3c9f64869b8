//! Typed readers of config nodes: each reports a wrong shape or value at
//! its file:line:col and returns `None`, so checking carries on.

use super::*;

impl Checker {
    /// Checks that `node` is a mapping with string keys drawn from `allowed`;
    /// reports duplicates and unknown keys (with a suggestion).
    pub(super) fn fields<'a>(
        &mut self,
        node: &'a Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'a>> {
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

    pub(super) fn required<'a>(
        &mut self,
        f: &Fields<'a>,
        key: &str,
        what: &str,
    ) -> Option<&'a Node> {
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

    pub(super) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
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

    pub(super) fn nonempty_string(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.string(node, what)?;
        if s.trim().is_empty() {
            self.err(node.pos, format!("{what} must not be empty"), None);
            return None;
        }
        Some(s)
    }

    pub(super) fn bool(&mut self, node: &Node, what: &str) -> Option<bool> {
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

    pub(super) fn uint(&mut self, node: &Node, what: &str, min: u64, max: u64) -> Option<u64> {
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

    pub(super) fn number(&mut self, node: &Node, what: &str, min: f64, max: f64) -> Option<f64> {
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

    pub(super) fn duration(&mut self, node: &Node, what: &str) -> Option<Duration> {
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
    pub(super) fn string_list(&mut self, node: &Node, what: &str) -> Vec<(String, Pos)> {
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

    pub(super) fn email_list(&mut self, node: &Node, what: &str) -> Vec<String> {
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

    pub(super) fn env_name(&mut self, node: &Node, what: &str) -> Option<String> {
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

    pub(super) fn url(&mut self, node: &Node, what: &str) -> Option<String> {
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
}
