//! `corpus` entries (a glob, or `{glob, changed_since}`) and the revision and
//! release names they carry.

use super::Checker;
use crate::config::model::{CorpusEntry, ScopedGlob};
use crate::config::node::{Node, NodeKind};

const ENTRY_KEYS: &[&str] = &["glob", "changed_since"];

impl Checker {
    /// A step's `corpus`: a list of entries, or one entry on its own.
    pub(super) fn corpus(&mut self, node: &Node) -> Vec<CorpusEntry> {
        match &node.kind {
            NodeKind::Null => Vec::new(),
            NodeKind::Seq(items) => items.iter().filter_map(|i| self.corpus_entry(i)).collect(),
            NodeKind::Str(_) | NodeKind::Map(_) => self.corpus_entry(node).into_iter().collect(),
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "`corpus` must be a list of globs, found {}",
                        node.type_name()
                    ),
                    Some("e.g. `corpus: [\"docs/**/*.md\", {glob: \"db/migrate/**\", changed_since: v4.1.0}]`"),
                );
                Vec::new()
            }
        }
    }

    fn corpus_entry(&mut self, node: &Node) -> Option<CorpusEntry> {
        match &node.kind {
            NodeKind::Map(_) => {
                let f = self.fields(node, "a `corpus` entry", ENTRY_KEYS)?;
                let glob = self.required(&f, "glob", "a `corpus` entry").and_then(|n| {
                    let g = self.nonempty_string(n, "`glob`")?;
                    self.corpus_glob(g, n.pos)
                });
                let since = f.get("changed_since").map(|n| self.revision(n));
                match (glob?, since) {
                    (glob, Some(since)) => Some(CorpusEntry::Scoped(ScopedGlob {
                        glob,
                        changed_since: since?,
                    })),
                    // `{glob: x}` alone means what `x` means.
                    (glob, None) => Some(CorpusEntry::Glob(glob)),
                }
            }
            NodeKind::Str(_) | NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => {
                let g = self.nonempty_string(node, "each item of `corpus`")?;
                self.corpus_glob(g, node.pos).map(CorpusEntry::Glob)
            }
            _ => {
                self.err(
                    node.pos,
                    format!(
                        "each item of `corpus` must be a glob or a mapping `{{glob, changed_since}}`, found {}",
                        node.type_name()
                    ),
                    None,
                );
                None
            }
        }
    }

    /// `changed_since`: one git revision, passed to git as an argument of
    /// its own, so it must not read as an option or a range.
    fn revision(&mut self, node: &Node) -> Option<String> {
        let what = "`changed_since`";
        let rev = self.version_like(node, what)?;
        let problem = if rev.starts_with('-') {
            Some(format!(
                "{what} `{rev}` starts with `-`, which git would read as an option"
            ))
        } else if rev.contains("..") {
            Some(format!(
                "{what} `{rev}` is a range; name one revision (the range ends at HEAD)"
            ))
        } else if rev.chars().any(char::is_whitespace) && !rev.contains("{{") {
            // A template's spaces are its own; the rendered revision is
            // checked again when a run starts.
            Some(format!("{what} `{rev}` contains spaces; name one revision"))
        } else {
            None
        };
        match problem {
            Some(message) => {
                self.err(
                    node.pos,
                    message,
                    Some("use a tag, branch or commit id, e.g. `changed_since: v4.1.0`"),
                );
                None
            }
            None => Some(rev),
        }
    }

    /// The genflow's `release`: the version being gated.
    pub(super) fn release(&mut self, node: &Node) -> Option<String> {
        let release = self.version_like(node, "`release`")?;
        if release.chars().any(char::is_control) || release.chars().count() > 128 {
            self.err(
                node.pos,
                "`release` must be one line of at most 128 characters",
                Some("name the version being gated, e.g. `release: \"4.2.0\"`"),
            );
            return None;
        }
        Some(release)
    }

    /// A non-empty string that names a version or revision. YAML reads
    /// `4.10` as the number 4.1, so an unquoted number with a fraction is
    /// refused rather than silently changed.
    fn version_like(&mut self, node: &Node, what: &str) -> Option<String> {
        if let NodeKind::Float(f) = node.kind {
            self.err(
                node.pos,
                format!("{what} must be a string, found the number {f}"),
                Some("quote it, e.g. \"4.10\": YAML reads an unquoted 4.10 as 4.1"),
            );
            return None;
        }
        let text = self.nonempty_string(node, what)?;
        if text.trim() != text {
            self.err(
                node.pos,
                format!("{what} `{text}` has leading or trailing spaces"),
                None,
            );
            return None;
        }
        Some(text)
    }
}
