//! Review flags: what an adversarial review says the draft understates or
//! misses. Written by review steps as a JSON sidecar next to their markdown
//! `out`, read by the gate page and the decision record.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlagSeverity {
    High,
    Medium,
    Low,
}

impl FlagSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagSeverity::High => "high",
            FlagSeverity::Medium => "medium",
            FlagSeverity::Low => "low",
        }
    }
}

/// A `path:line` reference into the corpus (or an upstream document), with
/// the quoted line so a reader can check it without opening the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    pub path: String,
    pub line: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub quote: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    /// Stable within one review, e.g. `F1`.
    pub id: String,
    pub severity: FlagSeverity,
    /// One line: what is understated or missing.
    pub claim: String,
    #[serde(default)]
    pub evidence: Vec<Citation>,
}

/// The JSON sidecar a review step writes (`<out>.flags.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FlagSet {
    /// The review step that raised them.
    pub step: String,
    pub flags: Vec<Flag>,
}

impl FlagSet {
    pub fn count(&self, severity: FlagSeverity) -> usize {
        self.flags.iter().filter(|f| f.severity == severity).count()
    }
}

/// Path of the flags sidecar for a review step's `out` (`risks.md` -> `risks.flags.json`).
pub fn sidecar_path(out: &str) -> String {
    match out.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.contains('/') => format!("{stem}.flags.json"),
        _ => format!("{out}.flags.json"),
    }
}
