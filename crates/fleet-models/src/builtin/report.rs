//! The readiness report: everything the rules found, grouped the way a
//! release owner reads it, each finding with `path:line` and the quoted line.

use super::analysis::{Analysis, ChangeKind, RollbackStatus};
use crate::ModelRequest;
use crate::citations::CitationIndex;
use crate::text::{CodeSpan, excerpt};
use fleet_core::flags::{Citation, FlagSet, FlagSeverity};
use std::fmt::Write;

/// `path:line` followed by the quoted line as a code span, formatted
/// straight into the document.
pub(crate) fn evidence(c: &Citation) -> Evidence<'_> {
    Evidence(c)
}

/// See [`evidence`].
pub(crate) struct Evidence<'c>(&'c Citation);

impl std::fmt::Display for Evidence<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written piece by piece: `write!` costs more than the copying.
        let c = self.0;
        f.write_str(&c.path)?;
        f.write_str(":")?;
        std::fmt::Display::fmt(&c.line, f)?;
        if c.quote.is_empty() {
            return Ok(());
        }
        f.write_str(" ")?;
        std::fmt::Display::fmt(&CodeSpan(&c.quote), f)
    }
}

pub(crate) const RULE_BASED_NOTICE: &str = "> Written by Fleet's **builtin analyst**: offline and rule-based, not a language model. \
Every finding comes from a pattern rule and cites `path:line` with the quoted line, so you can check it \
against the source. The rules cannot weigh overall risk, and a missing finding is not evidence that \
something is safe.";

pub(crate) fn render(req: &ModelRequest, a: &Analysis) -> String {
    let mut out = String::with_capacity(8 * 1024);
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "# Readiness report: {} / {}\n", req.genflow, req.step);
    let _ = writeln!(out, "{RULE_BASED_NOTICE}\n");
    if !req.prompt.trim().is_empty() {
        let _ = writeln!(out, "**Asked:** {}\n", req.prompt.trim());
    }
    summary(&mut out, req, a);
    if let Some(feedback) = &req.feedback {
        feedback_section(&mut out, req, feedback);
    }
    release_notes(&mut out, a);
    open_items(&mut out, a);
    migrations(&mut out, a);
    rollback(&mut out, a);
    rollouts(&mut out, a);
    signoffs_and_support(&mut out, a);
    claims_and_todos(&mut out, a);
    sources(&mut out, req);
    out
}

fn summary(out: &mut String, req: &ModelRequest, a: &Analysis) {
    // A changelog holds many changesets: each file is counted once.
    let mut files: Vec<&str> = a
        .migrations
        .iter()
        .flat_map(|m| m.files.iter().map(String::as_str))
        .collect();
    files.sort_unstable();
    files.dedup();
    let migration_files = files.len();
    let irreversible = a.migrations.iter().filter(|m| !m.reversible).count();
    let destructive = a
        .migrations
        .iter()
        .filter(|m| !m.destructive.is_empty())
        .count();
    let backfills = a
        .migrations
        .iter()
        .filter(|m| !m.backfill.is_empty())
        .count();
    let count = |s: RollbackStatus| a.rollback.iter().filter(|r| r.status == s).count();
    let elevated = a.support.iter().filter(|s| s.elevated).count();
    let _ = writeln!(out, "## Summary\n");
    corpus_gaps(out, req);
    scoped_to(out, req);
    let _ = writeln!(
        out,
        "- Documents read: {} ({} migration files); manifest entries: {}",
        a.documents,
        migration_files,
        req.corpus.manifest.entries.len()
    );
    let mut high = a.high_evidence();
    super::rank::newest_migrations_first_in(&mut high, a);
    let _ = writeln!(out, "- High-severity findings: {}", high.len());
    // The highest findings lead: a person reads these first.
    for c in high.iter().take(LEAD) {
        let _ = writeln!(out, "  - {}", evidence(c));
    }
    if high.len() > LEAD {
        let _ = writeln!(out, "  - … and {} more, listed below", high.len() - LEAD);
    }
    let _ = writeln!(
        out,
        "- Open items: {} open regressions or bugs; {} unchecked checklist items ({} checked)",
        a.issues.len(),
        a.open_items.len(),
        a.checked_items
    );
    let forward_only = a.migrations.iter().filter(|m| m.forward_only).count();
    let by_design = if forward_only > 0 {
        format!(", {forward_only} of them forward-only by design")
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "- Migrations: {} ({irreversible} without a working rollback{by_design}, {destructive} destructive, {backfills} with a data backfill)",
        a.migrations.len()
    );
    let _ = writeln!(
        out,
        "- Rollback coverage: {} runbooks, plans and release notes; {} TBD, {} empty, {} missing",
        a.rollback.len(),
        count(RollbackStatus::Tbd),
        count(RollbackStatus::Empty),
        count(RollbackStatus::Missing)
    );
    let _ = writeln!(
        out,
        "- One-way steps named in the documents: {}",
        a.one_way.len()
    );
    let _ = writeln!(out, "- Feature flag rollout lines: {}", a.rollouts.len());
    let _ = writeln!(out, "- Pending sign-offs: {}", a.pending_signoffs.len());
    let _ = writeln!(
        out,
        "- Support load figures: {} ({elevated} rising)",
        a.support.len()
    );
    let _ = writeln!(
        out,
        "- Lines in the sources rating the release's risk: {}\n",
        a.risk_claims.len()
    );
}

/// Which git range `changed_since` globs compared, one line per range, so
/// the report says what "this release" meant.
fn scoped_to(out: &mut String, req: &ModelRequest) {
    let mut ranges: Vec<(&str, String, Vec<String>)> = Vec::new();
    for s in &req.corpus.manifest.scopes {
        let glob = format!(
            "`{}` ({} file{})",
            s.glob,
            s.files,
            if s.files == 1 { "" } else { "s" }
        );
        match ranges
            .iter_mut()
            .find(|r| r.0 == s.since && r.1 == s.short())
        {
            Some(r) => r.2.push(glob),
            None => ranges.push((&s.since, s.short(), vec![glob])),
        }
    }
    for (since, range, globs) in ranges {
        let _ = writeln!(
            out,
            "- Scoped to changes since `{since}` ({range}): {}",
            globs.join(", ")
        );
    }
}

/// How many findings a list shows one by one before it summarises the rest.
const LEAD: usize = 10;

/// Nothing read is never a clean bill: an empty corpus, a glob that matched
/// nothing or a source that printed nothing opens the summary, naming what
/// was not read. Other warnings (a directory that could not be read) follow.
fn corpus_gaps(out: &mut String, req: &ModelRequest) {
    if req.corpus.documents.is_empty() {
        let _ = writeln!(
            out,
            "**Nothing was read:** the corpus holds no documents, so this report is not evidence that the release \
             is ready.\n"
        );
    }
    let manifest = &req.corpus.manifest;
    for gap in &manifest.gaps {
        if *gap == fleet_corpus::CorpusGap::NothingRead {
            continue; // said above
        }
        let _ = writeln!(
            out,
            "**Corpus gap:** {}. What it was meant to cover was not read, and no finding below speaks for it.\n",
            gap.describe()
        );
    }
    // Globs that matched nothing are the gaps above (with their hints); a
    // scoped glob with no change in its range is in the scope line below.
    for warning in manifest
        .warnings
        .iter()
        .filter(|w| !w.contains("matched no file"))
    {
        let _ = writeln!(
            out,
            "**Corpus warning:** {}.\n",
            warning.trim_end_matches('.')
        );
    }
}

/// The gated release's notes: what changed that a release owner must see,
/// most severe first, then which older releases were read only as history.
fn release_notes(out: &mut String, a: &Analysis) {
    if a.gated.is_empty() && a.history.is_empty() && a.changes.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Release notes\n");
    for (path, release) in &a.gated {
        let _ = writeln!(out, "- Read as this release: {path} ({release})");
    }
    for (path, older) in &a.history {
        let _ = writeln!(
            out,
            "- History, not findings: {path} ({} older release{}: {})",
            older.len(),
            if older.len() == 1 { "" } else { "s" },
            older.join(", ")
        );
    }
    out.push('\n');
    for (kind, title) in [
        (ChangeKind::Breaking, "Breaking changes"),
        (
            ChangeKind::DropsSupport,
            "Dropped platform or dependency support",
        ),
        (ChangeKind::Removed, "Removed"),
        (ChangeKind::Upgrade, "Framework and dependency upgrades"),
        (ChangeKind::Deprecated, "Deprecations"),
    ] {
        let changes: Vec<_> = a.changes.iter().filter(|c| c.kind == kind).collect();
        if changes.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "### {title} ({}, {})\n",
            changes.len(),
            kind.severity().as_str()
        );
        for c in changes.iter().take(LEAD) {
            let _ = writeln!(out, "- {}", evidence(&c.cite));
        }
        if changes.len() > LEAD {
            let _ = writeln!(out, "- … and {} more", changes.len() - LEAD);
        }
        out.push('\n');
    }
}

fn feedback_section(out: &mut String, req: &ModelRequest, feedback: &FlagSet) {
    let index = CitationIndex::new(&req.corpus, &req.upstream);
    let _ = writeln!(out, "## Response to review `{}`\n", feedback.step);
    let _ = writeln!(
        out,
        "The review raised {} flags. The builtin analyst cannot change the sources; for each flag it re-checked \
         the evidence against the corpus this redraft read. A flag whose evidence is still there still stands: \
         fix the source (or record the decision) and run again.\n",
        feedback.flags.len()
    );
    for flag in &feedback.flags {
        let _ = writeln!(
            out,
            "- **{}** ({}) {}",
            flag.id,
            flag.severity.as_str(),
            flag.claim
        );
        if flag.evidence.is_empty() {
            let _ = writeln!(out, "  - no evidence cited; nothing to re-check");
        }
        for cited in &flag.evidence {
            let verdict = match index.line(&cited.path, cited.line) {
                Some(now) if cited.quote.is_empty() || now.trim() == cited.quote.trim() => {
                    "still in the corpus unchanged: the finding stands".to_string()
                }
                Some(now) => format!("the line now reads {}", CodeSpan(now)),
                None if index.knows(&cited.path) => "that line no longer exists".to_string(),
                None => "not a document this step read".to_string(),
            };
            let _ = writeln!(out, "  - {}:{}: {verdict}", cited.path, cited.line);
        }
    }
    out.push('\n');
}

fn open_items(out: &mut String, a: &Analysis) {
    let _ = writeln!(out, "## Open items\n");
    let _ = writeln!(out, "### Open regressions and bugs\n");
    if a.issues.is_empty() {
        let _ = writeln!(out, "None found by the rules.\n");
    }
    // High ones all, then the rest up to a count; a long tail is counted.
    let (mut lower, mut skipped) = (0, 0);
    for issue in &a.issues {
        if issue.severity != FlagSeverity::High {
            if lower == LEAD {
                skipped += 1;
                continue;
            }
            lower += 1;
        }
        let id = issue.id.as_deref().unwrap_or("open issue");
        let label = issue
            .label
            .as_deref()
            .map(|l| format!("{l}, "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "- **{id}** ({label}{}) — {}",
            issue.severity.as_str(),
            evidence(&issue.cite)
        );
    }
    if skipped > 0 {
        let _ = writeln!(
            out,
            "- … and {skipped} more lower-severity open issues, not listed one by one"
        );
    }
    if !a.issues.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "### Unchecked checklist items\n");
    if a.open_items.is_empty() {
        let _ = writeln!(
            out,
            "None found by the rules ({} checked items).\n",
            a.checked_items
        );
        return;
    }
    for item in &a.open_items {
        let _ = writeln!(
            out,
            "- {} ({})",
            evidence(&item.cite),
            item.severity.as_str()
        );
    }
    out.push('\n');
}

fn migrations(out: &mut String, a: &Analysis) {
    let _ = writeln!(out, "## Migrations\n");
    if a.migrations.is_empty() {
        let _ = writeln!(out, "No migration files in the corpus.\n");
        return;
    }
    let _ = writeln!(out, "| migration | reversible | destructive | backfill |");
    let _ = writeln!(out, "|---|---|---|---|");
    for m in &a.migrations {
        let mut ops: Vec<&str> = Vec::new();
        for (op, _) in &m.destructive {
            if !ops.contains(&op.as_str()) {
                ops.push(op);
            }
        }
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            m.name,
            reversible_cell(m),
            if ops.is_empty() {
                "—".to_string()
            } else {
                ops.join(", ")
            },
            if m.backfill.is_empty() { "—" } else { "yes" }
        );
    }
    out.push('\n');
    for m in &a.migrations {
        let verdict = if m.reversible {
            "reversible"
        } else if m.forward_only {
            "**forward-only**"
        } else {
            "**not reversible**"
        };
        let _ = writeln!(
            out,
            "- **{}** ({}): {verdict}: {} — {}",
            m.name,
            m.files.join(", "),
            m.reason,
            evidence(&m.evidence)
        );
        for (op, at) in &m.destructive {
            let _ = writeln!(out, "  - destructive: {op} — {}", evidence(at));
        }
        if let Some(first) = m.backfill.first() {
            let _ = writeln!(out, "  - backfill — {}", evidence(first));
        }
        if let Some(scale) = &m.scale {
            let _ = writeln!(out, "  - size — {}", evidence(scale));
        }
        for (_, at) in &m.hazards {
            let _ = writeln!(out, "  - may fail on existing rows — {}", evidence(at));
        }
    }
    out.push('\n');
}

/// The table's "reversible" cell: a forward-only migration that destroys
/// data is as irreversible as any.
fn reversible_cell(m: &super::analysis::Migration) -> &'static str {
    match (m.reversible, m.forward_only) {
        (true, _) => "yes",
        (false, true) if m.destructive.is_empty() => "forward-only",
        (false, true) => "**no** (forward-only)",
        (false, false) => "**no**",
    }
}

fn rollback(out: &mut String, a: &Analysis) {
    let _ = writeln!(out, "## Rollback coverage\n");
    if a.rollback.is_empty() {
        let _ = writeln!(
            out,
            "No runbook or plan in the corpus, and no rollback section in its release notes.\n"
        );
    } else {
        let _ = writeln!(out, "| document | kind | rollback section | where |");
        let _ = writeln!(out, "|---|---|---|---|");
        for r in &a.rollback {
            let status = match r.status {
                RollbackStatus::Present => "present",
                RollbackStatus::Tbd => "**TBD**",
                RollbackStatus::Empty => "**empty**",
                RollbackStatus::Placeholder => "**placeholder**",
                RollbackStatus::Missing => "**missing**",
            };
            let at = r
                .cite
                .as_ref()
                .map_or_else(|| "—".to_string(), |c| format!("{}:{}", c.path, c.line));
            let kind = r.role.name();
            let _ = writeln!(out, "| {} | {kind} | {status} | {at} |", r.path);
        }
        out.push('\n');
        for r in a
            .rollback
            .iter()
            .filter(|r| r.status != RollbackStatus::Present)
        {
            if let Some(c) = &r.cite {
                let _ = writeln!(out, "- {}", evidence(c));
            }
        }
    }
    let _ = writeln!(out, "\n### One-way steps named in the documents\n");
    if a.one_way.is_empty() {
        let _ = writeln!(out, "None found by the rules.");
    }
    for c in &a.one_way {
        let _ = writeln!(out, "- {}", evidence(c));
    }
    out.push('\n');
}

fn rollouts(out: &mut String, a: &Analysis) {
    let _ = writeln!(out, "## Feature flags and rollouts\n");
    if a.rollouts.is_empty() {
        let _ = writeln!(out, "No flag rollout percentages found.\n");
        return;
    }
    for r in &a.rollouts {
        let _ = writeln!(
            out,
            "- {} at {}% — {}",
            CodeSpan(&r.flag),
            r.percent,
            evidence(&r.cite)
        );
    }
    out.push('\n');
}

fn signoffs_and_support(out: &mut String, a: &Analysis) {
    let _ = writeln!(out, "## Sign-offs\n");
    if a.pending_signoffs.is_empty() {
        let _ = writeln!(out, "No pending sign-offs found.");
    }
    for c in &a.pending_signoffs {
        match a.blocked_signoffs.iter().find(|b| b.cite == *c) {
            Some(b) => {
                let _ = writeln!(
                    out,
                    "- **blocked by open issue {}** ({}:{}) — {}",
                    b.id,
                    b.issue.path,
                    b.issue.line,
                    evidence(c)
                );
            }
            None => {
                let _ = writeln!(out, "- pending — {}", evidence(c));
            }
        }
    }
    if !a.staffing.is_empty() {
        let _ = writeln!(out, "\n## Owners and staffing gaps\n");
        for c in &a.staffing {
            let _ = writeln!(out, "- {}", evidence(c));
        }
    }
    let _ = writeln!(out, "\n## Support load\n");
    if a.support.is_empty() {
        let _ = writeln!(out, "No support figures found.");
    }
    for s in &a.support {
        let rising = if s.elevated { " (rising)" } else { "" };
        let _ = writeln!(out, "- {}{rising}", evidence(&s.cite));
    }
    out.push('\n');
}

fn claims_and_todos(out: &mut String, a: &Analysis) {
    let _ = writeln!(out, "## Risk ratings stated in the sources\n");
    if a.risk_claims.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for c in &a.risk_claims {
        let _ = writeln!(out, "- {}", evidence(c));
    }
    let _ = writeln!(out, "\n## TBD and TODO\n");
    if a.todos.is_empty() {
        let _ = writeln!(out, "None outside rollback sections.");
    }
    for c in &a.todos {
        let _ = writeln!(out, "- {}", evidence(c));
    }
    out.push('\n');
}

fn sources(out: &mut String, req: &ModelRequest) {
    let _ = writeln!(out, "## Sources\n");
    if req.corpus.manifest.entries.is_empty() {
        let _ = writeln!(out, "Documents read (no manifest was supplied):\n");
        for doc in &req.corpus.documents {
            let _ = writeln!(out, "- {}", doc.path);
        }
        return;
    }
    let _ = writeln!(out, "| path | lines | bytes | included | blake3 |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for e in &req.corpus.manifest.entries {
        let inclusion = e.inclusion.as_str().replace('_', " ");
        let note = e
            .note
            .as_deref()
            .map(|n| format!(" ({})", excerpt(n, 60).replace('|', "/")))
            .unwrap_or_default();
        let hash = e.blake3.get(..12).unwrap_or(&e.blake3);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {inclusion}{note} | {hash} |",
            e.path, e.lines, e.size
        );
    }
}
