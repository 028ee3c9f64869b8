//! What a step did not read: a glob that matched no file, a `sources:`
//! command that printed nothing, or no document at all. A gap is not an
//! error (the step still runs), but it must never look like a clean bill: the
//! engine turns every gap into a high flag on the review, the decision page
//! shows them first, and `fleet validate` warns about globs that match nothing.

use crate::{Corpus, gather::matched_globs};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One thing a step was asked to read and did not.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CorpusGap {
    /// A corpus glob that matched no file (often a typo in a directory name).
    GlobMatchedNothing {
        glob: String,
        /// A likely fix, e.g. `docs/runbooks/**` for a glob naming a directory.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    /// A `sources:` command that succeeded but printed nothing.
    SourceEmpty { name: String },
    /// The step read no document at all.
    NothingRead,
}

impl CorpusGap {
    /// One sentence for a flag, a warning or a page: what was not read.
    pub fn describe(&self) -> String {
        match self {
            CorpusGap::GlobMatchedNothing { glob, hint } => {
                let mut text =
                    format!("corpus glob `{glob}` matched no file, so nothing was read for it");
                if let Some(hint) = hint {
                    text.push_str(&format!(" ({hint})"));
                }
                text
            }
            CorpusGap::SourceEmpty { name } => {
                format!("source `{name}` printed nothing, so `source:{name}` is empty")
            }
            CorpusGap::NothingRead => {
                "the corpus is empty: no file or source was read, so no finding can be trusted"
                    .to_string()
            }
        }
    }
}

/// A gap for each of `globs` (as written) that matches none of `paths`,
/// the workspace-relative paths the walk matched (every file matched counts,
/// whatever became of its content).
pub(crate) fn unmatched_globs(root: &Path, globs: &[String], paths: &[&str]) -> Vec<CorpusGap> {
    if globs.is_empty() {
        return Vec::new();
    }
    globs
        .iter()
        .zip(matched_globs(globs, paths))
        .filter(|(_, matched)| !matched)
        .map(|(glob, _)| CorpusGap::GlobMatchedNothing {
            glob: glob.clone(),
            hint: directory_hint(root, glob),
        })
        .collect()
}

/// `unmatched` (from [`unmatched_globs`]) plus the gaps of the gathered
/// corpus: sources that printed nothing, and no document at all.
pub(crate) fn find(unmatched: Vec<CorpusGap>, corpus: &Corpus) -> Vec<CorpusGap> {
    let mut gaps = unmatched;
    for doc in &corpus.documents {
        if let Some(name) = doc.path.strip_prefix("source:")
            && doc.text.trim().is_empty()
        {
            gaps.push(CorpusGap::SourceEmpty {
                name: name.to_string(),
            });
        }
    }
    if corpus.documents.is_empty() {
        gaps.push(CorpusGap::NothingRead);
    }
    gaps
}

/// A glob without wildcards that names a directory matches nothing (globs
/// match files); `DIR/**` is what was meant.
pub(crate) fn directory_hint(root: &Path, glob: &str) -> Option<String> {
    let trimmed = glob.trim().trim_end_matches('/');
    if trimmed.is_empty() || trimmed.contains(['*', '?', '[', '{']) {
        return None;
    }
    root.join(trimmed).is_dir().then(|| {
        format!("`{trimmed}` is a directory; write `{trimmed}/**` to read the files in it")
    })
}
