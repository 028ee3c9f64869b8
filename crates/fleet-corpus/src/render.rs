//! What `fleet corpus FLOW STEP` shows: the manifest as a table, totals, and
//! everything that did not go in whole, with why.

use crate::{Corpus, Inclusion, Manifest};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The manifest plus totals, for `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusReport {
    pub totals: CorpusTotals,
    pub manifest: Manifest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CorpusTotals {
    /// Manifest entries that are files (every file a glob matched).
    pub files: usize,
    /// Manifest entries that are `source:` snapshots.
    pub sources: usize,
    /// Documents the model gets (whole, truncated or partial).
    pub included: usize,
    pub truncated: usize,
    pub omitted: usize,
    /// Binary files and symlinks.
    pub skipped: usize,
    /// Size of everything considered, whole.
    pub bytes: u64,
    /// Size of the text the model gets.
    pub included_bytes: u64,
    /// Tokens of the included text, as counted by the caller.
    pub tokens: usize,
}

impl CorpusReport {
    pub fn new(corpus: &Corpus, tokens: usize) -> CorpusReport {
        let mut totals = CorpusTotals {
            tokens,
            included_bytes: corpus.documents.iter().map(|d| d.text.len() as u64).sum(),
            ..CorpusTotals::default()
        };
        for entry in &corpus.manifest.entries {
            if entry.path.starts_with("source:") {
                totals.sources += 1;
            } else {
                totals.files += 1;
            }
            totals.bytes += entry.size;
            match entry.inclusion {
                Inclusion::Whole => totals.included += 1,
                Inclusion::Truncated => {
                    totals.included += 1;
                    totals.truncated += 1;
                }
                Inclusion::Partial => totals.included += 1,
                Inclusion::Omitted => totals.omitted += 1,
                Inclusion::SkippedBinary | Inclusion::SkippedSymlink => totals.skipped += 1,
            }
        }
        CorpusReport {
            totals,
            manifest: corpus.manifest.clone(),
        }
    }
}

/// Human summary: a table of the manifest (path, size, lines, inclusion,
/// short hash), totals (files, bytes, `tokens` as counted by the caller), and
/// everything skipped, truncated or omitted with why, then warnings.
pub fn render_manifest(corpus: &Corpus, tokens: usize) -> String {
    let report = CorpusReport::new(corpus, tokens);
    let entries = &report.manifest.entries;
    let mut out = String::new();

    let path_width = entries
        .iter()
        .map(|e| e.path.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 72);
    let _ = writeln!(
        out,
        "{:<path_width$}  {:>10}  {:>8}  {:<15}  BLAKE3",
        "PATH", "SIZE", "LINES", "INCLUSION"
    );
    for e in entries {
        let short_hash = e.blake3.get(..12).unwrap_or(&e.blake3);
        let _ = writeln!(
            out,
            "{:<path_width$}  {:>10}  {:>8}  {:<15}  {}",
            e.path,
            human_bytes(e.size),
            e.lines,
            e.inclusion.as_str(),
            if short_hash.is_empty() {
                "-"
            } else {
                short_hash
            }
        );
    }
    if entries.is_empty() {
        let _ = writeln!(out, "(nothing matched)");
    }

    let t = report.totals;
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{} file{}, {} source{}: {} included ({} truncated), {} omitted, {} skipped",
        t.files,
        plural(t.files),
        t.sources,
        plural(t.sources),
        t.included,
        t.truncated,
        t.omitted,
        t.skipped
    );
    let _ = writeln!(
        out,
        "{} of {} in the corpus, ~{} tokens",
        human_bytes(t.included_bytes),
        human_bytes(t.bytes),
        tokens
    );

    if !report.manifest.scopes.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "Limited to files committed since a revision (merge base..HEAD):"
        );
        for s in &report.manifest.scopes {
            let _ = writeln!(
                out,
                "  {}: changed since `{}` ({}), {} file{}",
                s.glob,
                s.since,
                s.short(),
                s.files,
                plural(s.files)
            );
        }
    }

    let not_whole: Vec<_> = entries
        .iter()
        .filter(|e| e.inclusion != Inclusion::Whole)
        .collect();
    if !not_whole.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Not included whole:");
        for e in not_whole {
            let _ = writeln!(
                out,
                "  {} [{}]: {}",
                e.path,
                e.inclusion.as_str(),
                e.note.as_deref().unwrap_or("no reason recorded")
            );
        }
    }
    if !report.manifest.warnings.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Warnings:");
        for w in &report.manifest.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `512 B`, `1.5 KiB`, `32.0 MiB`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
