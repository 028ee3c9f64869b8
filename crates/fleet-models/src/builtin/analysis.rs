//! What the rules found in a corpus. Both the report and the review start
//! from one [`Analysis`]; the report renders it, the review turns it into
//! risks and holds the upstream documents against them.

use super::changelog::{self, Gate};
use super::roles::{self, Role};
use super::{migrations, scan};
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
    /// It holds up a sign-off (its line says so, or a pending sign-off names it).
    pub blocks_signoff: bool,
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
    /// The section says only a hedge or a placeholder ("We'll see", "ask
    /// Tom", "N/A for now", "later").
    Placeholder,
    /// No rollback section at all.
    Missing,
}

/// Rollback coverage of one runbook or release note.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RollbackCoverage {
    pub path: String,
    /// Runbook, plan or release notes (the only roles held to rollback).
    pub role: Role,
    pub status: RollbackStatus,
    /// The heading (Present, Empty) or the TBD or hedge line (Tbd,
    /// Placeholder); `None` when Missing.
    pub cite: Option<Citation>,
    /// The document's title line, for a Missing verdict to cite.
    pub title: Citation,
}

impl RollbackCoverage {
    pub(crate) fn severity(&self) -> Option<FlagSeverity> {
        match self.status {
            RollbackStatus::Present => None,
            RollbackStatus::Tbd | RollbackStatus::Empty | RollbackStatus::Placeholder => {
                Some(FlagSeverity::High)
            }
            RollbackStatus::Missing if self.role == Role::Runbook => Some(FlagSeverity::High),
            RollbackStatus::Missing if self.role == Role::Plan => Some(FlagSeverity::Medium),
            RollbackStatus::Missing => None,
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

/// What kind of change a release-notes entry of the gated release announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeKind {
    Breaking,
    /// Support for a platform, runtime or database version ends.
    DropsSupport,
    Removed,
    /// A framework, runtime or dependency moves to a new version.
    Upgrade,
    Deprecated,
}

impl ChangeKind {
    pub(crate) fn severity(self) -> FlagSeverity {
        match self {
            ChangeKind::Breaking => FlagSeverity::High,
            // A deprecation in the release being gated asks integrators to act
            // before the removal: as much a release owner's concern as an upgrade.
            ChangeKind::DropsSupport
            | ChangeKind::Removed
            | ChangeKind::Upgrade
            | ChangeKind::Deprecated => FlagSeverity::Medium,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            ChangeKind::Breaking => "breaking change",
            ChangeKind::DropsSupport => "dropped support",
            ChangeKind::Removed => "removal",
            ChangeKind::Upgrade => "upgrade",
            ChangeKind::Deprecated => "deprecation",
        }
    }
}

/// An entry of the gated release's notes worth a release owner's look.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReleaseChange {
    pub kind: ChangeKind,
    /// The release as its notes name it (`Unreleased`, `2.8.0`).
    pub release: String,
    pub cite: Citation,
}

/// A pending sign-off held up by an open issue.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockedSignoff {
    pub cite: Citation,
    /// The open issue's id.
    pub id: String,
    /// Where that issue is listed.
    pub issue: Citation,
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
    /// Breaking changes, dropped platforms, upgrades, removals and
    /// deprecations in the gated release's notes.
    pub changes: Vec<ReleaseChange>,
    /// Lines saying part of the release has no owner or nobody assigned.
    pub staffing: Vec<Citation>,
    /// Pending sign-offs that an open issue holds up.
    pub blocked_signoffs: Vec<BlockedSignoff>,
    /// Release notes read: (path, the gated release in it).
    pub gated: Vec<(String, String)>,
    /// Older releases in the notes, not read as findings: (path, releases).
    pub history: Vec<(String, Vec<String>)>,
}

impl Analysis {
    /// Runs every rule over every document of the corpus; `release` is the
    /// release being gated, when the run names one.
    pub(crate) fn of(corpus: &Corpus, release: Option<&str>) -> Analysis {
        let mut analysis = Analysis {
            documents: corpus.documents.len(),
            ..Analysis::default()
        };
        let mut migration_docs = Vec::new();
        let mut prose = Vec::new();
        let mut roles = Vec::new();
        for doc in &corpus.documents {
            if migrations::is_migration_doc(doc) {
                migration_docs.push(doc);
            } else {
                let role = roles::role_of(&doc.path, &doc.text);
                // Only release notes have versions to tell the gated release from history.
                let versions = (role == Role::ReleaseNotes)
                    .then(|| changelog::versions_of(&doc.path, &doc.text));
                prose.push(doc);
                roles.push((role, versions));
            }
        }
        let gates = changelog::gate(release, &roles);
        for ((doc, (role, _)), gate) in prose.iter().zip(&roles).zip(&gates) {
            note_release(&doc.path, gate, &mut analysis);
            if !gate.history {
                scan::scan_document(&doc.path, &doc.text, *role, gate, &mut analysis);
            }
        }
        scan::link_signoffs_to_issues(&mut analysis);
        analysis.migrations = migrations::analyze(&migration_docs);
        analysis
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
        out.extend(self.blocked_signoffs.iter().map(|b| &b.cite));
        out.extend(
            self.changes
                .iter()
                .filter(|c| c.kind.severity() == FlagSeverity::High)
                .map(|c| &c.cite),
        );
        out
    }
}

/// Records which release of a release-notes document is read and which are history.
fn note_release(path: &str, gate: &Gate, a: &mut Analysis) {
    if let Some(current) = &gate.current {
        a.gated.push((path.to_string(), current.clone()));
    }
    if !gate.older.is_empty() {
        a.history.push((path.to_string(), gate.older.clone()));
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
