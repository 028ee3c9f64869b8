//! Review flags: what an adversarial review says the draft understates or
//! misses. Written by review steps as a JSON sidecar next to their markdown
//! `out`, read by the gate page and the decision record.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Ordered most severe first: `High < Medium < Low`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FlagSeverity {
    High,
    Medium,
    Low,
}

impl FlagSeverity {
    pub const ALL: [FlagSeverity; 3] =
        [FlagSeverity::High, FlagSeverity::Medium, FlagSeverity::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            FlagSeverity::High => "high",
            FlagSeverity::Medium => "medium",
            FlagSeverity::Low => "low",
        }
    }

    /// Whether a flag of this severity is at or above `bar`.
    pub fn at_least(self, bar: FlagSeverity) -> bool {
        self <= bar
    }
}

/// How many flags a review raised, by severity: what the run state machine
/// needs to decide on a redraft.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlagCounts {
    #[serde(default)]
    pub high: u32,
    #[serde(default)]
    pub medium: u32,
    #[serde(default)]
    pub low: u32,
}

impl FlagCounts {
    pub const NONE: FlagCounts = FlagCounts {
        high: 0,
        medium: 0,
        low: 0,
    };

    /// Flags at or above `bar` (`Medium` counts high and medium ones).
    pub fn at_least(&self, bar: FlagSeverity) -> u32 {
        match bar {
            FlagSeverity::High => self.high,
            FlagSeverity::Medium => self.high.saturating_add(self.medium),
            FlagSeverity::Low => self
                .high
                .saturating_add(self.medium)
                .saturating_add(self.low),
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

    pub fn counts(&self) -> FlagCounts {
        let mut c = FlagCounts::NONE;
        for f in &self.flags {
            let n = match f.severity {
                FlagSeverity::High => &mut c.high,
                FlagSeverity::Medium => &mut c.medium,
                FlagSeverity::Low => &mut c.low,
            };
            *n = n.saturating_add(1);
        }
        c
    }
}

/// Path of the flags sidecar for a review step's `out` (`risks.md` -> `risks.flags.json`).
pub fn sidecar_path(out: &str) -> String {
    match out.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.contains('/') => format!("{stem}.flags.json"),
        _ => format!("{out}.flags.json"),
    }
}
