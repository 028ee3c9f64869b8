//! A genflow's `evidence` settings: `{keep_corpus: read|cited|none}`.

use super::*;

impl Checker {
    pub(super) fn evidence(&mut self, node: &Node) -> Option<Evidence> {
        let f = self.fields(node, "`evidence`", &["keep_corpus"])?;
        let keep_corpus = f
            .get("keep_corpus")
            .and_then(|n| self.keep_corpus(n))
            .unwrap_or_default();
        Some(Evidence { keep_corpus })
    }

    fn keep_corpus(&mut self, node: &Node) -> Option<KeepCorpus> {
        let s = self.string(node, "`evidence.keep_corpus`")?;
        let found = KeepCorpus::ALL.into_iter().find(|v| v.as_str() == s);
        if found.is_none() {
            let names = KeepCorpus::ALL.map(KeepCorpus::as_str);
            let help = did_you_mean(&s, names)
                .unwrap_or_else(|| format!("expected one of: {}", names.join(", ")));
            self.err_help(
                node.pos,
                format!("unknown `evidence.keep_corpus` `{s}`"),
                Some(help),
            );
        }
        found
    }
}
