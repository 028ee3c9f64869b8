//! The analyst's answer keys: small repositories written from each tool's
//! public documentation (`tests/fixtures/analyst/<name>/repo`), each with a
//! `key.yaml` naming the facts a release owner must see (and their minimum
//! severity) and the lines that must not be flagged. [`evaluate`] runs the
//! builtin report and review over every fixture, the way a run would (the
//! corpus is gathered with `fleet_corpus::gather_globs`), and scores the
//! review's flags against the keys.
//!
//! Shared by the test (`tests/analyst_fixtures.rs`, which fails below the
//! targets) and the example that prints the table (`examples/analyst_eval.rs`).

#![allow(dead_code)]

use fleet_core::config::StepKind;
use fleet_core::flags::{Flag, FlagSet, FlagSeverity};
use fleet_corpus::{Corpus, Document, Limits, gather_globs};
use fleet_models::{Builtin, ModelRequest, UpstreamDoc, check_citations};
use regex::RegexBuilder;
use serde::Deserialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Recall of must-find facts must be at least this.
pub const MIN_RECALL: f64 = 0.95;
/// At most this share of must-not-flag entries may be cited by a flag.
pub const MAX_FALSE_FLAG_RATE: f64 = 0.05;

/// One fixture's `key.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    /// What the fixture is, one line.
    pub about: String,
    /// The report step's corpus globs, relative to `repo/`.
    pub corpus: Vec<String>,
    /// Command snapshots, given as files beside `key.yaml`: each becomes
    /// the document `source:NAME`, as a `sources:` command's output would.
    #[serde(default)]
    pub sources: Vec<KeySource>,
    /// The release being gated (`ModelRequest::release`).
    #[serde(default)]
    pub release: Option<String>,
    #[serde(default)]
    pub must_find: Vec<Fact>,
    #[serde(default)]
    pub must_not_flag: Vec<Quiet>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    pub name: String,
    pub file: String,
}

/// A fact the review must flag: some flag of at least `severity` cites
/// `path` at one of `lines` (the line that shows the fact) and, when
/// `claim` is given, says so (a case-insensitive regex over the flag's claim).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    pub fact: String,
    pub path: String,
    pub lines: Vec<u64>,
    pub severity: Severity,
    #[serde(default)]
    pub claim: Option<String>,
}

/// A line (or, without `line`, a whole document) no flag may cite.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quiet {
    pub path: String,
    #[serde(default)]
    pub line: Option<u64>,
    pub why: String,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    fn admits(self, got: FlagSeverity) -> bool {
        let need = match self {
            Severity::High => FlagSeverity::High,
            Severity::Medium => FlagSeverity::Medium,
            Severity::Low => FlagSeverity::Low,
        };
        // FlagSeverity orders High < Medium < Low.
        got <= need
    }
}

/// How one fixture scored.
#[derive(Debug)]
pub struct FixtureScore {
    pub name: String,
    pub facts: usize,
    pub found: usize,
    pub quiet: usize,
    /// Must-not-flag entries some flag cited.
    pub false_flags: usize,
    pub flags: usize,
    /// Flags citing at least one must-find line.
    pub flags_on_facts: usize,
    /// Citations (in the report or the flags) that do not quote their line.
    pub bad_citations: usize,
    /// One line per miss, false flag or bad citation, naming the fixture and the fact.
    pub problems: Vec<String>,
}

#[derive(Debug)]
pub struct Evaluation {
    pub fixtures: Vec<FixtureScore>,
}

impl Evaluation {
    fn sum(&self, f: impl Fn(&FixtureScore) -> usize) -> usize {
        self.fixtures.iter().map(f).sum()
    }
    pub fn recall(&self) -> f64 {
        ratio(self.sum(|s| s.found), self.sum(|s| s.facts))
    }
    pub fn false_flag_rate(&self) -> f64 {
        1.0 - ratio(
            self.sum(|s| s.quiet) - self.sum(|s| s.false_flags),
            self.sum(|s| s.quiet),
        )
    }
    pub fn precision(&self) -> f64 {
        ratio(self.sum(|s| s.flags_on_facts), self.sum(|s| s.flags))
    }
    pub fn bad_citations(&self) -> usize {
        self.sum(|s| s.bad_citations)
    }
    pub fn meets_targets(&self) -> bool {
        self.recall() >= MIN_RECALL
            && self.false_flag_rate() <= MAX_FALSE_FLAG_RATE
            && self.bad_citations() == 0
    }

    /// The table: one row per fixture, then the totals, then every problem.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| fixture | must-find | found | recall | must-not-flag | flagged | flags | on facts | precision | bad citations |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
        for s in &self.fixtures {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0}% | {} | {} | {} | {} | {:.0}% | {} |",
                s.name,
                s.facts,
                s.found,
                100.0 * ratio(s.found, s.facts),
                s.quiet,
                s.false_flags,
                s.flags,
                s.flags_on_facts,
                100.0 * ratio(s.flags_on_facts, s.flags),
                s.bad_citations
            );
        }
        let _ = writeln!(
            out,
            "| **all {}** | {} | {} | **{:.1}%** | {} | {} | {} | {} | {:.0}% | {} |",
            self.fixtures.len(),
            self.sum(|s| s.facts),
            self.sum(|s| s.found),
            100.0 * self.recall(),
            self.sum(|s| s.quiet),
            self.sum(|s| s.false_flags),
            self.sum(|s| s.flags),
            self.sum(|s| s.flags_on_facts),
            100.0 * self.precision(),
            self.bad_citations()
        );
        let _ = writeln!(
            out,
            "\nrecall {:.1}% (target >= {:.0}%), must-not-flag lines flagged {:.1}% (target <= {:.0}%), bad citations {} (target 0)",
            100.0 * self.recall(),
            100.0 * MIN_RECALL,
            100.0 * self.false_flag_rate(),
            100.0 * MAX_FALSE_FLAG_RATE,
            self.bad_citations()
        );
        for s in &self.fixtures {
            for p in &s.problems {
                let _ = writeln!(out, "- {}: {p}", s.name);
            }
        }
        out
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

/// `tests/fixtures/analyst` of this crate.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/analyst")
}

/// Every fixture (a directory with a `key.yaml`), by name.
pub fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures/analyst exists")
        .flatten()
        .filter(|e| e.path().join("key.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

pub fn load_key(name: &str) -> Key {
    let path = fixtures_dir().join(name).join("key.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The corpus a report step with the key's globs and sources would read.
pub fn corpus_of(name: &str, key: &Key) -> Corpus {
    let dir = fixtures_dir().join(name);
    let mut corpus = gather_globs(&dir.join("repo"), &key.corpus, false, &Limits::default())
        .unwrap_or_else(|e| panic!("{name}: gathering the corpus: {e}"));
    for source in &key.sources {
        let path = dir.join(&source.file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        corpus.documents.push(Document {
            path: format!("source:{}", source.name),
            text,
        });
    }
    corpus
}

fn request(kind: StepKind, corpus: Corpus, release: Option<String>) -> ModelRequest {
    let (step, prompt) = match kind {
        StepKind::Report => (
            "readiness",
            "Assemble the release readiness report: open issues, migration state, rollback plan, known risks.",
        ),
        _ => (
            "risk-review",
            "Adversarially review the readiness report. Flag understated risks and missing rollback steps.",
        ),
    };
    ModelRequest {
        genflow: "release-gate".into(),
        step: step.into(),
        kind,
        prompt: prompt.into(),
        corpus,
        upstream: vec![],
        feedback: None,
        budget: None,
        release,
    }
}

/// The builtin report and review over one fixture: (report text, flags, corpus).
pub fn run_fixture(name: &str, key: &Key) -> (String, FlagSet, Corpus) {
    let corpus = corpus_of(name, key);
    let report = Builtin
        .complete_now(&request(
            StepKind::Report,
            corpus.clone(),
            key.release.clone(),
        ))
        .unwrap_or_else(|e| panic!("{name}: report: {e}"))
        .text;
    let mut review_req = request(StepKind::Review, corpus.clone(), key.release.clone());
    review_req.upstream = vec![UpstreamDoc {
        step: "readiness".into(),
        kind: StepKind::Report,
        path: "readiness.md".into(),
        text: report.clone(),
        flags: None,
    }];
    let flags = Builtin
        .complete_now(&review_req)
        .unwrap_or_else(|e| panic!("{name}: review: {e}"))
        .flags
        .unwrap_or_else(|| panic!("{name}: the review wrote no flags"));
    (report, flags, corpus)
}

fn cites(flag: &Flag, path: &str, line: Option<u64>) -> bool {
    flag.evidence
        .iter()
        .any(|c| c.path == path && line.is_none_or(|l| c.line == l))
}

/// Scores one fixture against its key.
pub fn score(name: &str) -> FixtureScore {
    let key = load_key(name);
    let (report, flags, corpus) = run_fixture(name, &key);
    let mut problems = Vec::new();

    for q in &key.must_not_flag {
        assert!(
            corpus.documents.iter().any(|d| d.path == q.path),
            "{name}: key.yaml names {} (must_not_flag), which the corpus does not hold",
            q.path
        );
    }
    let mut found = 0;
    for fact in &key.must_find {
        assert!(
            corpus.documents.iter().any(|d| d.path == fact.path),
            "{name}: key.yaml names {} ({}), which the corpus does not hold",
            fact.path,
            fact.fact
        );
        let claim = fact.claim.as_ref().map(|re| {
            RegexBuilder::new(re)
                .case_insensitive(true)
                .build()
                .unwrap_or_else(|e| panic!("{name}: claim regex {re:?}: {e}"))
        });
        let citing: Vec<&Flag> = flags
            .flags
            .iter()
            .filter(|f| fact.lines.iter().any(|&l| cites(f, &fact.path, Some(l))))
            .collect();
        let hit = citing.iter().any(|f| {
            fact.severity.admits(f.severity)
                && claim.as_ref().is_none_or(|re| re.is_match(&f.claim))
        });
        if hit {
            found += 1;
            continue;
        }
        let at = format!("{}:{:?}", fact.path, fact.lines);
        let why = if citing.is_empty() {
            "no flag cites it".to_string()
        } else {
            let seen: Vec<String> = citing
                .iter()
                .map(|f| format!("{} {:?}", f.severity.as_str(), f.claim))
                .collect();
            format!(
                "cited only below {:?} or without matching {:?}: {}",
                fact.severity,
                fact.claim.as_deref().unwrap_or(""),
                seen.join("; ")
            )
        };
        problems.push(format!("MISSED {} ({at}): {why}", fact.fact));
    }

    let mut false_flags = 0;
    for q in &key.must_not_flag {
        if let Some(f) = flags.flags.iter().find(|f| cites(f, &q.path, q.line)) {
            false_flags += 1;
            let at = q.line.map_or(q.path.clone(), |l| format!("{}:{l}", q.path));
            problems.push(format!(
                "FALSE FLAG on {at} ({}): {} {:?}",
                q.why,
                f.severity.as_str(),
                f.claim
            ));
        }
    }

    let fact_lines = |f: &Flag| {
        key.must_find
            .iter()
            .any(|fact| fact.lines.iter().any(|&l| cites(f, &fact.path, Some(l))))
    };
    let flags_on_facts = flags.flags.iter().filter(|f| fact_lines(f)).count();

    // Every citation must quote the line it names, in the report and in the flags.
    let mut bad_citations = 0;
    for bad in check_citations(&report, &corpus, &[]) {
        bad_citations += 1;
        problems.push(format!("BAD CITATION in the report: {}", bad.claim));
    }
    for f in &flags.flags {
        for c in &f.evidence {
            let Some(doc) = corpus.documents.iter().find(|d| d.path == c.path) else {
                continue; // upstream documents (readiness.md) are checked above
            };
            let line = doc
                .text
                .lines()
                .nth((c.line as usize).saturating_sub(1))
                .map(str::trim);
            if c.line == 0 || (!c.quote.is_empty() && line != Some(c.quote.trim())) {
                bad_citations += 1;
                problems.push(format!(
                    "BAD CITATION in flag {:?}: {}:{} quotes {:?}, the line is {:?}",
                    f.claim, c.path, c.line, c.quote, line
                ));
            }
        }
    }

    FixtureScore {
        name: name.to_string(),
        facts: key.must_find.len(),
        found,
        quiet: key.must_not_flag.len(),
        false_flags,
        flags: flags.flags.len(),
        flags_on_facts,
        bad_citations,
        problems,
    }
}

/// Scores every fixture.
pub fn evaluate() -> Evaluation {
    Evaluation {
        fixtures: fixture_names().iter().map(|n| score(n)).collect(),
    }
}
