//! Where a value sits in the config text, for checks made after validation
//! (e.g. a corpus glob that matches no file is found by walking the
//! workspace, which the pure core cannot do) that must still point at
//! `file:line:col`.

use super::node::{self, Node, NodeKind, Pos};

/// One step down a path into the config: a mapping key or a list index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// The position of the node at `path` in config `text`, if the text parses
/// and the path exists. For a duplicated key, the first occurrence.
pub fn position(text: &str, path: &[Seg<'_>]) -> Option<Pos> {
    let root = node::parse(text).ok()??;
    let mut node: &Node = &root;
    for seg in path {
        node = match (seg, &node.kind) {
            (Seg::Key(key), NodeKind::Map(entries)) => entries
                .iter()
                .find(|(k, _)| matches!(&k.kind, NodeKind::Str(s) if s == key))
                .map(|(_, v)| v)?,
            (Seg::Index(i), NodeKind::Seq(items)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(node.pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_list_item_under_nested_keys() {
        let text = "genflows:\n  - name: a\n    steps:\n      - name: r\n        corpus:\n          - docs/*.md\n          - \"migrations/**\"\n";
        let path = [
            Seg::Key("genflows"),
            Seg::Index(0),
            Seg::Key("steps"),
            Seg::Index(0),
            Seg::Key("corpus"),
            Seg::Index(1),
        ];
        assert_eq!(position(text, &path), Some(Pos { line: 7, col: 13 }));
        let flow = "genflows: [{name: a, steps: [{name: r, corpus: [x, y]}]}]\n";
        assert_eq!(position(flow, &path), Some(Pos { line: 1, col: 52 }));
    }

    #[test]
    fn a_missing_path_or_bad_text_is_none() {
        assert_eq!(position("a: [1]\n", &[Seg::Key("b")]), None);
        assert_eq!(position("a: [1]\n", &[Seg::Key("a"), Seg::Index(3)]), None);
        assert_eq!(position("a: [1\n", &[Seg::Key("a")]), None);
    }
}
