//! What a step reads, exactly, and on the record.
//!
//! `gather` turns a step's `corpus` globs and `sources` commands into
//! [`Document`]s plus a [`Manifest`] that says, for every file considered,
//! whether it was included whole, truncated, or left out, and its blake3 hash.
//!
//! The pieces, in the order a step uses them:
//! - [`gather_globs`]: walk the workspace (`ignore` + `globset`), read and hash
//!   matching files in parallel, skip binaries, apply [`Limits`]. Walk
//!   results are kept per process and reused while a `stat` of everything
//!   they depend on is unchanged (`cache.rs`).
//! - [`run_sources`]: run `sources:` commands and snapshot their output as
//!   `source:NAME` documents.
//! - [`gather`]: both, for one [`fleet_core::config::Step`], with globs that
//!   have `changed_since` limited to what git says changed (`scope.rs`).
//! - [`pack`]: fit the corpus into a model's token budget, most relevant
//!   chunks first, and say in the prompt what was left out.
//! - [`render_manifest`] / [`CorpusReport`]: what `fleet corpus` shows.

mod cache;
mod error;
mod gaps;
mod gather;
mod pack;
mod parallel;
mod rank;
mod read;
mod render;
mod scope;
mod sources;
mod tokens;

pub use error::{CorpusError, EscapingSymlink};
pub use gaps::CorpusGap;
pub use gather::{gather, gather_globs};
#[doc(hidden)]
pub use gather::{gather_globs_is_cached, gather_globs_uncached};
pub use pack::{OmittedChunk, Packed, pack};
pub use render::{CorpusReport, CorpusTotals, render_manifest};
pub use sources::run_sources;
pub use tokens::{Tokenizer, count_tokens};

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a document made it into the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inclusion {
    Whole,
    /// Only the first whole lines that fit the per-file or total cap; `note` says how much.
    Truncated,
    /// Left out (total size cap, token budget, unreadable); `note` says why.
    Omitted,
    /// Not text (a NUL byte in the first 8 KiB, or not valid UTF-8).
    SkippedBinary,
    /// A symlink inside the workspace; not followed (its target is read only if a glob matches it).
    SkippedSymlink,
    /// Packed into a prompt only in part: the chunks most relevant to the prompt; `note` lists the rest.
    Partial,
}

impl Inclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Inclusion::Whole => "whole",
            Inclusion::Truncated => "truncated",
            Inclusion::Omitted => "omitted",
            Inclusion::SkippedBinary => "skipped_binary",
            Inclusion::SkippedSymlink => "skipped_symlink",
            Inclusion::Partial => "partial",
        }
    }
}

/// One line of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Workspace-relative path with `/` separators, or `source:NAME` for a command snapshot.
    pub path: String,
    /// Size in bytes of the whole file / command output.
    pub size: u64,
    /// blake3 of the whole file / command output, hex.
    pub blake3: String,
    /// Line count of the whole file (0 for binary).
    pub lines: u64,
    pub inclusion: Inclusion,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// sha256 (hex) of the text the model was given for this entry (the
    /// whole file, or its first part when truncated), set when the step kept
    /// those bytes (`evidence.keep_corpus`); absent in older manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
    /// Things a reader should know that belong to no single entry: a glob that
    /// matched nothing (often a typo), a directory that could not be read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the step was asked to read and did not (a glob that matched no
    /// file, a source that printed nothing, an empty corpus): never a clean bill.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<CorpusGap>,
    /// For each corpus glob with `changed_since`: the git range it was
    /// limited to, so the record shows what "this release" meant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<ScopeRange>,
}

/// A corpus glob limited to the files changed in git since a revision: the
/// range compared is `base_commit..head_commit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeRange {
    /// The glob, as written in the config.
    pub glob: String,
    /// The revision as written (`changed_since`), e.g. `v4.1.0`.
    pub since: String,
    /// The commit it named when the corpus was gathered.
    pub since_commit: String,
    /// Where the compared range starts: the merge base of `since_commit` and
    /// HEAD (the same commit when the revision is an ancestor of HEAD).
    pub base_commit: String,
    /// Where it ends, as written: `HEAD`.
    pub head: String,
    pub head_commit: String,
    /// Files the glob kept: matched, and added or changed in the range.
    pub files: usize,
}

impl ScopeRange {
    /// `abc1234..def5678`: the compared commits, abbreviated.
    pub fn short(&self) -> String {
        let short = |c: &str| c.get(..7).unwrap_or(c).to_owned();
        format!("{}..{}", short(&self.base_commit), short(&self.head_commit))
    }
}

/// A text document the model may read. `text` is what was included (the
/// whole file, or its first part when truncated); line numbers in citations
/// are 1-based lines of `text`, which are the file's own lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub path: String,
    pub text: String,
}

/// Everything a step read.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Corpus {
    /// Included documents (whole or truncated), sorted by path; sources last, by name.
    pub documents: Vec<Document>,
    pub manifest: Manifest,
}

/// Caps on what one step reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Per file (and per source output): beyond this only the first whole lines are kept.
    pub max_file_bytes: u64,
    /// All included text together; documents past it are truncated or omitted.
    pub max_total_bytes: u64,
    /// Wall-clock limit for each `sources:` command.
    pub source_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 1024 * 1024,
            max_total_bytes: 32 * 1024 * 1024,
            source_timeout: Duration::from_secs(60),
        }
    }
}
