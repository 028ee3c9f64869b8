//! What a step reads, exactly, and on the record.
//!
//! `gather` turns a step's `corpus` globs and `sources` commands into
//! [`Document`]s plus a [`Manifest`] that says, for every file considered,
//! whether it was included whole, truncated, or left out, and its blake3 hash.

use serde::{Deserialize, Serialize};

/// How a document made it into the corpus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Inclusion {
    Whole,
    Truncated,
    /// Left out (total size cap, token budget); `note` says why.
    Omitted,
    /// Not text.
    SkippedBinary,
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Manifest {
    pub entries: Vec<ManifestEntry>,
}

/// A text document the model may read. `text` is what was included (the
/// whole file, or its first part when truncated); line numbers in citations
/// are 1-based lines of `text`, which are the file's own lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub path: String,
    pub text: String,
}

/// Everything a step read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Corpus {
    /// Included documents (whole or truncated), sorted by path; sources last, by name.
    pub documents: Vec<Document>,
    pub manifest: Manifest,
}
