//! A YAML document as a tree of nodes that remember where they came from.
//!
//! serde-saphyr parses the text; we deserialize into this generic, span-carrying
//! tree instead of straight into typed structs because serde stops at the first
//! error, and a config checker must report every problem at once, each at its
//! own line and column.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// 1-based line and column (in characters) of a node in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; duplicates are kept so they can be reported.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub kind: NodeKind,
}

impl Node {
    /// What the node is, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "null",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// The scalar as text, if it is a scalar (numbers and booleans included,
    /// since YAML users rarely quote `name: 2024`).
    pub fn as_scalar_text(&self) -> Option<String> {
        match &self.kind {
            NodeKind::Str(s) => Some(s.clone()),
            NodeKind::Int(i) => Some(i.to_string()),
            NodeKind::Float(f) => Some(f.to_string()),
            NodeKind::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

struct SpannedNode(Node);

impl<'de> Deserialize<'de> for SpannedNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<NodeKindDe>::deserialize(d)?;
        let loc = spanned.referenced;
        Ok(SpannedNode(Node {
            pos: Pos {
                line: loc.line() as usize,
                col: loc.column() as usize,
            },
            kind: spanned.value.0,
        }))
    }
}

struct NodeKindDe(NodeKind);

impl<'de> Deserialize<'de> for NodeKindDe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(KindVisitor).map(NodeKindDe)
    }
}

struct KindVisitor;

impl<'de> Visitor<'de> for KindVisitor {
    type Value = NodeKind;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<NodeKind, E> {
        Ok(NodeKind::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<NodeKind, E> {
        Ok(NodeKind::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<NodeKind, E> {
        Ok(i64::try_from(v)
            .map(NodeKind::Int)
            .unwrap_or(NodeKind::Float(v as f64)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<NodeKind, E> {
        Ok(NodeKind::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<NodeKind, E> {
        Ok(NodeKind::Str(v))
    }
    fn visit_unit<E>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_none<E>(self) -> Result<NodeKind, E> {
        Ok(NodeKind::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<NodeKind, A::Error> {
        let mut items = Vec::new();
        while let Some(SpannedNode(n)) = seq.next_element()? {
            items.push(n);
        }
        Ok(NodeKind::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeKind, A::Error> {
        let mut entries = Vec::new();
        while let Some(SpannedNode(k)) = map.next_key()? {
            let SpannedNode(v) = map.next_value()?;
            entries.push((k, v));
        }
        Ok(NodeKind::Map(entries))
    }
}

/// A YAML syntax error, located.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
    pub help: Option<String>,
}

/// Parses YAML text into a located tree. `Ok(None)` means the document is empty
/// (only whitespace and comments).
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    // YAML counts CR, LF and CRLF each as one line break, but parsers (and
    // our own renderer) disagree on a lone CR; one form keeps every position
    // on the line `Diagnostic::render` shows.
    let text = &*super::diag::normalize_line_breaks(text);
    let opts = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    };
    if text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    }) {
        return Ok(None);
    }
    match serde_saphyr::from_str_with_options::<SpannedNode>(text, opts) {
        Ok(SpannedNode(n)) if n.kind == NodeKind::Null => Ok(None),
        Ok(SpannedNode(n)) => Ok(Some(n)),
        Err(e) => {
            let pos = e
                .location()
                .map(|l| Pos {
                    line: l.line() as usize,
                    col: l.column() as usize,
                })
                .unwrap_or(Pos { line: 1, col: 1 });
            let message = syntax_message(&e);
            Err(match super::syntax::cause(text, pos, &message) {
                Some(cause) => SyntaxError {
                    pos: cause.pos,
                    message: cause.message.unwrap_or(message),
                    help: cause.help,
                },
                None => SyntaxError {
                    pos,
                    message,
                    help: None,
                },
            })
        }
    }
}

/// serde-saphyr's message without its own location suffix and snippet; we
/// print the location ourselves in the house format.
fn syntax_message(e: &serde_saphyr::Error) -> String {
    let raw = e.without_snippet().to_string();
    let first = raw.lines().next().unwrap_or("invalid YAML").trim();
    let first = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    format!("invalid YAML: {first}")
}
