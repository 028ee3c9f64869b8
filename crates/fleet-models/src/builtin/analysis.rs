//! What the rules found in a corpus. Both the report and the review start
//! from one [`Analysis`]; the report renders it, the review turns it into
//! risks and holds the upstream documents against them.

use super::{migrations, rules};
use fleet_core::flags::{Citation, FlagSeverity};
use fleet_corpus::Corpus;

/// An open regression, bug or known issue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpenIssue {
    /// Tracker id such as `REG-1423` or `#2291`, when the line names one.
    pub id: Option<String>,
    /// The severity as written (`P1`, `SEV2`, `critical`), when stated.
    pub label: Option<String>,
    pub severity: FlagSeverity,
    pub cite: Citation,
}

/// An unchecked checklist item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OpenItem {
    /// The item's text without the checkbox.
    pub text: String,
    pub severity: FlagSeverity,
    pub cite: Citation,
}

/// A feature flag with a rollout percentage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rollout {
    pub flag: String,
    /// The first percentage on the line: the state it is in (later ones are usually the plan).
    pub percent: f64,
    pub cite: Citation,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SupportFigure {
    /// The line says the load went up (`up 52%`, `spike`, `2x`).
    pub elevated: bool,
    pub cite: Citation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RollbackStatus {
    /// A rollback section with content.
    Present,
    /// The rollback section (or `Rollback:` line) says TBD / TODO / none.
    Tbd,
    /// A rollback heading with nothing under it.
    Empty,
    /// No rollback section at all.
    Missing,
}

/// Rollback coverage of one runbook or release note.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollbackCoverage {
    pub path: String,
    /// A runbook (deploy, cutover, upgrade procedure) rather than release notes.
    pub runbook: bool,
    pub status: RollbackStatus,
    /// The heading (Present, Empty) or the TBD line (Tbd); `None` when Missing.
    pub cite: Option<Citation>,
    /// The document's title line, for a Missing verdict to cite.
    pub title: Citation,
}

impl RollbackCoverage {
    pub(crate) fn severity(&self) -> Option<FlagSeverity> {
        match self.status {
            RollbackStatus::Present => None,
            RollbackStatus::Tbd | RollbackStatus::Empty => Some(FlagSeverity::High),
            RollbackStatus::Missing if self.runbook => Some(FlagSeverity::High),
            RollbackStatus::Missing => Some(FlagSeverity::Medium),
        }
    }
}

/// One migration: an up/down pair, a Flyway V/U pair, or a single file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Migration {
    /// e.g. `0043_drop_legacy_tax_rate`, `V3__add_orders`.
    pub name: String,
    /// The leading version number, e.g. `0043`, `3`, `20240102030405`.
    pub number: Option<String>,
    pub files: Vec<String>,
    pub reversible: bool,
    /// No rollback by design (Prisma, Flyway without undo scripts): only
    /// what it destroys, rewrites or may fail on is worth a flag.
    pub forward_only: bool,
    /// Its reverse runs and does nothing (Django's `noop`): a rollback
    /// succeeds and restores no data.
    pub noop_reverse: bool,
    /// Why it is (or is not) reversible: a noun phrase that also reads
    /// after "has" ("no down migration (...)").
    pub reason: String,
    /// The line that shows how it rolls back: the reverse's first
    /// statement, the raising line, the empty down's header, the command
    /// the tool cannot reverse, or (none at all) the first data loss.
    pub evidence: Citation,
    /// Destructive statements in the forward direction: (operation, where).
    pub destructive: Vec<(String, Citation)>,
    /// Data backfill statements in the forward direction.
    pub backfill: Vec<Citation>,
    /// A line giving the size or duration of the backfill.
    pub scale: Option<Citation>,
    /// Changes that can fail on existing rows (Prisma's warnings): what, where.
    pub hazards: Vec<(String, Citation)>,
}

impl Migration {
    pub(crate) fn severity(&self) -> Option<FlagSeverity> {
        let destructive = !self.destructive.is_empty();
        let irreversible = !self.reversible && !self.forward_only;
        if !self.reversible && destructive {
            Some(FlagSeverity::High)
        } else if irreversible
            || destructive
            || !self.backfill.is_empty()
            || !self.hazards.is_empty()
        {
            Some(FlagSeverity::Medium)
        } else {
            None
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Analysis {
    pub documents: usize,
    pub checked_items: usize,
    pub open_items: Vec<OpenItem>,
    pub issues: Vec<OpenIssue>,
    pub migrations: Vec<Migration>,
    pub rollback: Vec<RollbackCoverage>,
    /// Steps or changes a document itself calls one-way / irreversible.
    pub one_way: Vec<Citation>,
    pub rollouts: Vec<Rollout>,
    pub pending_signoffs: Vec<Citation>,
    pub support: Vec<SupportFigure>,
    /// TBD / TODO outside rollback sections.
    pub todos: Vec<Citation>,
    /// Lines that call the release low-risk or ready.
    pub risk_claims: Vec<Citation>,
}

impl Analysis {
    /// Runs every rule over every document of the corpus.
    pub(crate) fn of(corpus: &Corpus) -> Analysis {
        let mut analysis = Analysis {
            documents: corpus.documents.len(),
            ..Analysis::default()
        };
        let mut migration_docs = Vec::new();
        for doc in &corpus.documents {
            if migrations::is_migration_doc(doc) {
                migration_docs.push(doc);
            } else {
                rules::scan_document(&doc.path, &doc.text, &mut analysis);
            }
        }
        analysis.migrations = migrations::analyze(&migration_docs);
        analysis
    }

    /// Highest-severity findings first: how many at each level.
    pub(crate) fn high_count(&self) -> usize {
        self.high_evidence().len()
    }

    /// One citation per high-severity finding, in report order.
    pub(crate) fn high_evidence(&self) -> Vec<&Citation> {
        let mut out = Vec::new();
        out.extend(
            self.issues
                .iter()
                .filter(|i| i.severity == FlagSeverity::High)
                .map(|i| &i.cite),
        );
        out.extend(
            self.open_items
                .iter()
                .filter(|i| i.severity == FlagSeverity::High)
                .map(|i| &i.cite),
        );
        for m in &self.migrations {
            if m.severity() == Some(FlagSeverity::High) {
                out.push(m.destructive.first().map_or(&m.evidence, |(_, c)| c));
            }
        }
        for r in &self.rollback {
            if r.severity() == Some(FlagSeverity::High) {
                out.push(r.cite.as_ref().unwrap_or(&r.title));
            }
        }
        out
    }
}

/// A citation of line `line` of `path`, quoting it.
pub(crate) fn cite(path: &str, line: u64, text: &str) -> Citation {
    Citation {
        path: path.to_string(),
        line,
        quote: crate::text::trim(text).to_string(),
    }
}
