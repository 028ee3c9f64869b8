//! Line diffs between two revisions of a document, as pages show them:
//! whole (the diff page) or unified, hunks with a few lines of context (the
//! decision page's redraft rounds). Lines are text; templates escape them.

use similar::{ChangeTag, TextDiff};

/// A line of a revision diff.
pub struct DiffLine {
    /// `add`, `del`, `ctx`, or `hunk` for a hunk's `@@ … @@` header.
    pub class: &'static str,
    pub sign: &'static str,
    pub text: String,
}

/// The line diff between two revisions of a document.
pub struct DiffView {
    pub added: usize,
    pub removed: usize,
    pub lines: Vec<DiffLine>,
}

impl DiffView {
    /// Every line of both revisions.
    pub fn new(old: &str, new: &str) -> DiffView {
        let diff = TextDiff::from_lines(old, new);
        let mut view = DiffView::empty();
        for change in diff.iter_all_changes() {
            view.push(change.tag(), change.value());
        }
        view
    }

    /// Only the changed lines, `context` lines around each, in hunks.
    pub fn unified(old: &str, new: &str, context: usize) -> DiffView {
        let diff = TextDiff::from_lines(old, new);
        let mut view = DiffView::empty();
        for hunk in diff.unified_diff().context_radius(context).iter_hunks() {
            view.lines.push(DiffLine {
                class: "hunk",
                sign: "",
                text: hunk.header().to_string(),
            });
            for change in hunk.iter_changes() {
                view.push(change.tag(), change.value());
            }
        }
        view
    }

    fn empty() -> DiffView {
        DiffView {
            added: 0,
            removed: 0,
            lines: Vec::new(),
        }
    }

    fn push(&mut self, tag: ChangeTag, value: &str) {
        let (class, sign) = match tag {
            ChangeTag::Insert => {
                self.added += 1;
                ("add", "+")
            }
            ChangeTag::Delete => {
                self.removed += 1;
                ("del", "-")
            }
            ChangeTag::Equal => ("ctx", " "),
        };
        self.lines.push(DiffLine {
            class,
            sign,
            text: value.trim_end_matches('\n').to_owned(),
        });
    }

    pub(crate) fn weight(&self) -> usize {
        256 + self.lines.iter().map(|l| 48 + l.text.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_keeps_only_the_context_around_changes() {
        let old: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 10\n", "line ten\n");
        let d = DiffView::unified(&old, &new, 2);
        let shown: Vec<(&str, &str)> = d.lines.iter().map(|l| (l.class, l.text.as_str())).collect();
        assert_eq!(
            shown,
            [
                ("hunk", "@@ -8,5 +8,5 @@"),
                ("ctx", "line 8"),
                ("ctx", "line 9"),
                ("del", "line 10"),
                ("add", "line ten"),
                ("ctx", "line 11"),
                ("ctx", "line 12"),
            ]
        );
        assert_eq!((d.added, d.removed), (1, 1));
        // The whole view keeps every line.
        assert_eq!(DiffView::new(&old, &new).lines.len(), 21);
        assert!(DiffView::unified(&old, &old, 3).lines.is_empty());
    }
}
