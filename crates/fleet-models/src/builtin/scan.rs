//! The per-document pass of the prose rules (runbooks, plans, release
//! notes, tracker exports, command snapshots): one pass per document,
//! tracking the markdown section each line sits in, since "Known issues" or
//! "Rollback" headings change what a line means, and the document's role,
//! since a rule only applies where it makes sense.

use super::analysis::{
    Analysis, BlockedSignoff, ChangeKind, OpenIssue, OpenItem, ReleaseChange, RollbackCoverage,
    RollbackStatus, Rollout, SupportFigure, cite,
};
use super::changelog::Gate;
use super::lexicon::Hits;
use super::roles::{Role, markdownish, underline_level};
use super::rules::{
    HEADINGS, Heading, WORDS, Word, asks_someone, checkbox, code_name, declines_rollback, exclaims,
    has_risk_claim, is_hedge, is_list_item, is_nothing, is_risk_claim, is_table_separator,
    issue_ids, percent, rising_figure, rollback_label, share_of_audience,
};
use super::tracker::{self, Columns};
use crate::text::{heading, own_words};
use fleet_core::flags::{Citation, FlagSeverity};

/// Which kinds of section a heading opens (several may apply).
#[derive(Debug, Default, Clone, Copy)]
struct SectionKind {
    issues: bool,
    flags: bool,
    signoff: bool,
    support: bool,
    breaking: bool,
    removed: bool,
    deprecated: bool,
    changes: bool,
    owners: bool,
}

impl SectionKind {
    fn of(hits: Hits) -> SectionKind {
        SectionKind {
            issues: hits.has(Heading::Issues),
            flags: hits.has(Heading::Flags),
            signoff: hits.has(Heading::Signoff),
            support: hits.has(Heading::Support),
            breaking: hits.has(Heading::Breaking),
            removed: hits.has(Heading::Removed),
            deprecated: hits.has(Heading::Deprecated),
            changes: hits.has(Heading::Changes),
            owners: hits.has(Heading::Owners),
        }
    }
}

/// An open rollback section being read.
struct RollbackSection {
    level: usize,
    heading: Citation,
    has_content: bool,
    tbd: Option<Citation>,
    /// The first line that only hedges ("We'll see", "ask Tom").
    hedge: Option<Citation>,
    /// Some line says something concrete: the hedges are not the whole plan.
    substantive: bool,
}

impl RollbackSection {
    fn verdict(self) -> (RollbackStatus, Citation) {
        match (self.tbd, self.has_content, self.hedge) {
            (Some(tbd), _, _) => (RollbackStatus::Tbd, tbd),
            (None, false, _) => (RollbackStatus::Empty, self.heading),
            (None, true, Some(hedge)) if !self.substantive => (RollbackStatus::Placeholder, hedge),
            (None, true, _) => (RollbackStatus::Present, self.heading),
        }
    }
}

fn severity_of(label: &str) -> FlagSeverity {
    // Compared in place: labels are often uppercase (`P1`, `SEV-2`), and a
    // lowercased copy cost more than the comparisons.
    let is = |words: &[&str]| words.iter().any(|w| label.eq_ignore_ascii_case(w));
    if is(&["critical", "blocker", "high"]) {
        return FlagSeverity::High;
    }
    if is(&["major", "medium", "moderate"]) {
        return FlagSeverity::Medium;
    }
    if is(&["minor", "low"]) {
        return FlagSeverity::Low;
    }
    match label.bytes().rev().find(u8::is_ascii_digit) {
        Some(b'0' | b'1') => FlagSeverity::High,
        Some(b'2') => FlagSeverity::Medium,
        _ => FlagSeverity::Low,
    }
}

/// The tracker id on a line, skipping severity labels that look like ids (`SEV-1`).
fn issue_id(line: &str) -> Option<String> {
    issue_ids(line.as_bytes())
        .map(|span| &line[span])
        .find(|id| !id.to_ascii_uppercase().starts_with("SEV-"))
        .map(str::to_string)
}

fn flag_name(line: &str) -> String {
    if let Some(name) = code_name(line) {
        return name.to_string();
    }
    let trimmed = line.trim();
    if let Some(row) = trimmed.strip_prefix('|')
        && let Some(cell) = row.split('|').next()
    {
        let cell = cell
            .trim()
            .trim_matches(|c| c == '*' || c == '_' || c == '`');
        if !cell.is_empty() {
            return cell.to_string();
        }
    }
    crate::text::excerpt(trimmed.trim_start_matches(['-', '*', '+', ' ']), 40)
}

/// Runs the prose rules over one document whose role is `role`, adding to
/// `out`; lines `gate` calls history (older releases) are passed over.
pub(crate) fn scan_document(path: &str, text: &str, role: Role, gate: &Gate, out: &mut Analysis) {
    let markdown = markdownish(path);
    let notes = role == Role::ReleaseNotes;
    let mut section = SectionKind::default();
    let mut rollback: Option<RollbackSection> = None;
    let mut verdicts: Vec<(RollbackStatus, Citation)> = Vec::new();
    let mut title: Option<Citation> = None;
    let mut in_fence = false;
    // The columns of the tracker table being read (a Markdown table, or the whole CSV file).
    let mut tracker: Option<Columns> = None;
    let mut csv_checked = false;
    let mut prev_table_row = false;
    // In a list entry (it may wrap), and whether it already gave a release change.
    let (mut in_item, mut item_changed) = (false, false);
    // The previous line named support load and its sentence runs on (a
    // soft-wrapped "we expect ticket / volume to climb").
    let mut support_said = false;
    // A CSV record whose quoted field runs on: (first line number, first line, record so far).
    let mut csv_record: Option<(u64, &str, String)> = None;
    let release = gate.current.as_deref().unwrap_or("this release");

    let mut lines = crate::text::lines(text).enumerate().peekable();
    let mut underline = false;
    while let Some((index, line)) = lines.next() {
        let n = index as u64 + 1;
        let trimmed = crate::text::trim(line);
        // The underline of a setext or reStructuredText heading is not content.
        if std::mem::take(&mut underline) {
            continue;
        }
        let csv = tracker.is_some_and(|c| c.is_csv());
        if markdown && !csv && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            in_fence = !in_fence;
            if let Some(rb) = rollback.as_mut() {
                rb.has_content = true;
                rb.substantive = true;
            }
            continue;
        }
        // A CSV export's lines are records, never Markdown headings.
        let setext = || {
            lines
                .peek()
                .and_then(|(_, next)| underline_level(line, next))
                .map(|level| (level, trimmed))
        };
        if markdown
            && !in_fence
            && !csv
            && let Some((level, heading_text)) = heading(line).or_else(setext)
        {
            underline = heading(line).is_none();
            let heading_hits = HEADINGS.scan(heading_text.as_bytes());
            if title.is_none() {
                title = Some(cite(path, n, line));
            }
            if let Some(rb) = rollback.take_if(|rb| level <= rb.level) {
                verdicts.push(rb.verdict());
            }
            if let Some(rb) = rollback.as_mut() {
                rb.has_content = true;
                rb.substantive = true;
            } else if heading_hits.has(Heading::Rollback) && !gate.is_history(n) {
                rollback = Some(RollbackSection {
                    level,
                    heading: cite(path, n, line),
                    has_content: false,
                    tbd: None,
                    hedge: None,
                    substantive: false,
                });
            }
            // A heading that is itself the announcement ("Dropped support for
            // PostgreSQL 13"), not a section title ("Dropped support").
            if notes
                && !gate.is_history(n)
                && heading_text.bytes().any(|b| b.is_ascii_digit())
                && WORDS.scan(heading_text.as_bytes()).has(Word::DropsSupport)
            {
                out.changes.push(ReleaseChange {
                    kind: ChangeKind::DropsSupport,
                    release: release.to_string(),
                    cite: cite(path, n, line),
                });
            }
            section = SectionKind::of(heading_hits);
            support_said = false;
            tracker = None;
            prev_table_row = false;
            continue;
        }
        if trimmed.is_empty() {
            support_said = false;
            // A blank line ends a Markdown table.
            prev_table_row = false;
            if tracker.is_some_and(|c| !c.is_csv()) {
                tracker = None;
            }
            continue;
        }
        if title.is_none() {
            title = Some(cite(path, n, line));
        }
        // Older releases in release notes are history, not findings.
        if gate.is_history(n) {
            continue;
        }

        let h = line.as_bytes();
        let is_table_row = trimmed.starts_with('|');
        if !csv_checked {
            csv_checked = true;
            if !notes
                && tracker::looks_like_csv_header(trimmed)
                && let Some(cols) = tracker::header(trimmed, true)
            {
                tracker = Some(cols);
                continue;
            }
        }
        if is_table_row && !in_fence {
            // Only a table's first row can be a tracker header.
            if tracker.is_none()
                && !prev_table_row
                && let Some(cols) = tracker::header(trimmed, false)
            {
                tracker = Some(cols);
                prev_table_row = true;
                continue;
            }
        } else if tracker.is_some_and(|c| !c.is_csv()) {
            tracker = None;
        }
        prev_table_row = is_table_row;
        if let Some(cols) = tracker.filter(|c| c.is_csv()) {
            // A quoted field can run over lines: the record is read whole
            // and cited at its first line.
            let (start, first, record) = match csv_record.take() {
                Some((start, first, mut record)) => {
                    record.push('\n');
                    record.push_str(line);
                    (start, first, record)
                }
                None => (n, line, line.to_string()),
            };
            if record.bytes().filter(|&b| b == b'"').count() % 2 == 1 {
                csv_record = Some((start, first, record));
            } else if let Some(row) = tracker::row(&record, cols) {
                let words = WORDS.scan(record.as_bytes());
                tracker_row(path, start, first, &record, &row, section, words, out);
            }
            continue;
        }
        let words = WORDS.scan(h);
        if let Some(cols) = tracker {
            if let Some(row) = tracker::row(trimmed, cols) {
                tracker_row(path, n, line, line, &row, section, words, out);
            }
            continue;
        }

        // Rollback sections and `Rollback:` lines: decide coverage, and keep
        // their TBDs out of the generic TODO list (they are worse than that).
        let mut tbd_handled = false;
        if let Some(rb) = rollback.as_mut() {
            let nothing = is_nothing(h);
            rb.has_content = rb.has_content || !nothing;
            if words.has(Word::Tbd) || nothing {
                rb.tbd.get_or_insert_with(|| cite(path, n, line));
                tbd_handled = true;
            } else if is_hedge(line, words) {
                rb.hedge.get_or_insert_with(|| cite(path, n, line));
            } else {
                rb.substantive = true;
            }
        } else if let Some(rest) = rollback_label(line) {
            let status = if WORDS.find(rest.as_bytes(), Word::Tbd).is_some()
                || is_nothing(rest.as_bytes())
            {
                tbd_handled = true;
                RollbackStatus::Tbd
            } else if is_hedge(rest, WORDS.scan(rest.as_bytes())) || declines_rollback(rest) {
                RollbackStatus::Placeholder
            } else {
                RollbackStatus::Present
            };
            verdicts.push((status, cite(path, n, line)));
        }
        if in_fence {
            continue;
        }

        if !tbd_handled && words.has(Word::Tbd) {
            out.todos.push(cite(path, n, line));
        }
        // Operational documents only: "irreversible" in site copy or a
        // README's prose is a turn of phrase, not a step someone will run.
        if words.has(Word::OneWay) && role != Role::Other {
            out.one_way.push(cite(path, n, line));
        }
        // An exclamation is advertising ("low-risk upgrades for everyone!"), not a rating.
        if has_risk_claim(h, words) && is_risk_claim(&own_words(line)) && !exclaims(line) {
            out.risk_claims.push(cite(path, n, line));
        }
        // A gap said outright, or a TBD / "ask X" where an owner is named.
        if words.has(Word::Unstaffed)
            || ((section.owners || words.has(Word::OwnerLabel))
                && (words.has(Word::Tbd) || asks_someone(h)))
        {
            out.staffing.push(cite(path, n, line));
        }

        if is_table_row && is_table_separator(trimmed.as_bytes()) {
            continue;
        }

        let list_item = is_list_item(h);
        // A wrapped entry goes on in indented lines: their words count for
        // it (by words only: the section already spoke on its first line).
        let continues = !list_item && in_item && line.starts_with([' ', '\t']);
        in_item = list_item || continues;
        if list_item {
            item_changed = false;
        }
        if notes && (list_item || (continues && !item_changed)) && !section.issues {
            let by = if list_item {
                section
            } else {
                SectionKind::default()
            };
            if let Some(kind) = change_kind(by, words, h) {
                item_changed = true;
                out.changes.push(ReleaseChange {
                    kind,
                    release: release.to_string(),
                    cite: cite(path, n, line),
                });
            }
        }

        if let Some((mark, rest)) = checkbox(line) {
            let item = rest.trim();
            if item.starts_with('~') {
                // Struck through: dropped, not open.
            } else if mark == b' ' {
                let label = WORDS
                    .find(item.as_bytes(), Word::Severity)
                    .map(|span| &item[span]);
                let severity = match label {
                    Some(label) if severity_of(label) == FlagSeverity::High => FlagSeverity::High,
                    _ => FlagSeverity::Medium,
                };
                out.open_items.push(OpenItem {
                    text: item.to_string(),
                    severity,
                    cite: cite(path, n, line),
                });
            } else {
                out.checked_items += 1;
            }
        } else {
            let kind = LineKind {
                list_item,
                table_row: is_table_row,
            };
            scan_issue(path, n, line, section, kind, words, out);
        }

        if (section.flags || words.has(Word::Flag) || share_of_audience(h))
            && let Some(number) = percent(line)
            && let Ok(percent) = number.parse::<f64>()
        {
            out.rollouts.push(Rollout {
                flag: flag_name(line),
                percent,
                cite: cite(path, n, line),
            });
        }

        if (section.signoff || words.has(Word::Signoff))
            && (words.has(Word::Pending) || words.has(Word::Blocked))
        {
            out.pending_signoffs.push(cite(path, n, line));
        }

        // Entries of a release's change list describe features ("a badge
        // with your unread support tickets"), not support load.
        let forecast = words.has(Word::Rising) || words.has(Word::Falling);
        let names_support = words.has(Word::Support);
        let runs_on = std::mem::replace(
            &mut support_said,
            names_support && !trimmed.ends_with(['.', '!', '?']),
        ) && forecast;
        if !(notes && section.changes)
            && (section.support || names_support || runs_on)
            && (forecast || h.iter().any(u8::is_ascii_digit))
        {
            let rising = words.has(Word::Elevated) || rising_figure(h);
            out.support.push(SupportFigure {
                elevated: words.has(Word::Rising) || (rising && !words.has(Word::Falling)),
                cite: cite(path, n, line),
            });
        }
    }

    if let Some(rb) = rollback {
        verdicts.push(rb.verdict());
    }
    // Runbooks and plans must say how to roll back; release notes are held
    // only to the rollback section they have.
    if role.needs_rollback() || (notes && !verdicts.is_empty()) {
        let title = title.unwrap_or_else(|| cite(path, 1, ""));
        // A problem anywhere (TBD, empty, a hedge) outweighs a good section elsewhere.
        let worst = verdicts
            .iter()
            .find(|(s, _)| *s != RollbackStatus::Present)
            .or_else(|| verdicts.first());
        let (status, cite) = match worst {
            Some((status, c)) => (*status, Some(c.clone())),
            None => (RollbackStatus::Missing, None),
        };
        out.rollback.push(RollbackCoverage {
            path: path.to_string(),
            role,
            status,
            cite,
            title,
        });
    }
}

/// What a release-notes entry of the gated release announces, if it is
/// worth a look: by its section (`### Breaking changes`, `### Removed`,
/// `### Deprecated`) or its own words.
fn change_kind(section: SectionKind, words: Hits, h: &[u8]) -> Option<ChangeKind> {
    let versioned = h.iter().any(u8::is_ascii_digit);
    // Only lines with the words pay for a lowercased copy.
    let says = |phrases: &[&str]| {
        let lower = h.to_ascii_lowercase();
        phrases
            .iter()
            .any(|p| lower.windows(p.len()).any(|w| w == p.as_bytes()))
    };
    let breaking = words.has(Word::Breaking)
        && !says(&[
            "no breaking",
            "non-breaking",
            "not breaking",
            "without breaking",
        ]);
    let upgrade = words.has(Word::Upgrade)
        && versioned
        && !says(&[
            "upgrade guide",
            "upgrading guide",
            "upgrade notes",
            "upgrade instructions",
        ]);
    if section.breaking || breaking {
        Some(ChangeKind::Breaking)
    } else if words.has(Word::DropsSupport) {
        Some(ChangeKind::DropsSupport)
    } else if section.removed {
        Some(ChangeKind::Removed)
    } else if section.deprecated || words.has(Word::Deprecated) {
        Some(ChangeKind::Deprecated)
    } else if upgrade && !section.issues {
        Some(ChangeKind::Upgrade)
    } else {
        None
    }
}

/// A row of a tracker export: an open bug (or any open high-priority row)
/// is an open issue, with the row's own priority; an open approval task is
/// a pending sign-off. Closed rows are history.
#[allow(clippy::too_many_arguments)]
fn tracker_row(
    path: &str,
    n: u64,
    line: &str,
    record: &str,
    row: &tracker::Row,
    section: SectionKind,
    words: Hits,
    out: &mut Analysis,
) {
    if !row.open {
        return;
    }
    let severity = row.severity.unwrap_or(FlagSeverity::Medium);
    if words.has(Word::Bug) || section.issues || severity == FlagSeverity::High {
        out.issues.push(OpenIssue {
            id: row.id.clone().or_else(|| issue_id(record)),
            label: row.priority.clone(),
            severity,
            cite: cite(path, n, line),
            blocks_signoff: words.has(Word::Signoff) && words.has(Word::Blocked),
        });
    } else if words.has(Word::Signoff) {
        out.pending_signoffs.push(cite(path, n, line));
    }
}

/// After every document is read: a pending sign-off that names an open
/// issue is blocked by it, and an issue that blocks a sign-off is high
/// whatever its own priority (the release cannot be approved around it).
pub(crate) fn link_signoffs_to_issues(a: &mut Analysis) {
    if a.issues.is_empty() {
        return;
    }
    let mut blocking: Vec<String> = a
        .issues
        .iter()
        .filter(|i| i.blocks_signoff)
        .filter_map(|i| i.id.clone())
        .collect();
    for s in &a.pending_signoffs {
        let h = s.quote.as_bytes();
        let named = issue_ids(h).map(|span| &s.quote[span]).find_map(|id| {
            a.issues
                .iter()
                .find(|i| i.id.as_deref() == Some(id))
                .map(|i| (id, i))
        });
        if let Some((id, issue)) = named {
            // The issue's own line is not a sign-off blocked by itself.
            if issue.cite.path == s.path && issue.cite.line == s.line {
                continue;
            }
            blocking.push(id.to_string());
            a.blocked_signoffs.push(BlockedSignoff {
                cite: s.clone(),
                id: id.to_string(),
                issue: issue.cite.clone(),
            });
        }
    }
    for issue in &mut a.issues {
        if issue.id.as_ref().is_some_and(|id| blocking.contains(id)) {
            issue.blocks_signoff = true;
            issue.severity = FlagSeverity::High;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct LineKind {
    list_item: bool,
    table_row: bool,
}

fn scan_issue(
    path: &str,
    n: u64,
    line: &str,
    section: SectionKind,
    kind: LineKind,
    words: Hits,
    out: &mut Analysis,
) {
    let open = words.has(Word::Open);
    let has_id = || issue_ids(line.as_bytes()).next().is_some();
    let candidate = if section.issues {
        kind.list_item || (kind.table_row && (open || has_id()))
    } else {
        open && words.has(Word::Bug) && (words.has(Word::Severity) || has_id())
    };
    // Fixed/resolved with no sign of still being open: history, not an open item.
    if !candidate || (!open && words.has(Word::Closed)) {
        return;
    }
    let id = issue_id(line);
    let label = WORDS
        .find(line.as_bytes(), Word::Severity)
        .map(|span| line[span].to_string());
    let is_issue = if section.issues && kind.table_row {
        id.is_some() || open
    } else {
        section.issues || id.is_some() || label.is_some()
    };
    if !is_issue {
        return;
    }
    let severity = label.as_deref().map_or(FlagSeverity::Medium, severity_of);
    out.issues.push(OpenIssue {
        id,
        label,
        severity,
        cite: cite(path, n, line),
        blocks_signoff: words.has(Word::Signoff) && words.has(Word::Blocked),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(path: &str, text: &str) -> Analysis {
        let mut analysis = Analysis::default();
        let role = super::super::roles::role_of(path, text);
        scan_document(path, text, role, &Gate::default(), &mut analysis);
        link_signoffs_to_issues(&mut analysis);
        analysis
    }

    fn lines(cites: &[Citation]) -> Vec<u64> {
        cites.iter().map(|c| c.line).collect()
    }

    #[test]
    fn unchecked_checklist_items_are_open_items() {
        let a = scan(
            "notes.md",
            "# Checklist\n- [x] done\n- [ ] load test\n* [ ] P1 blocker: fix login\n1. [ ] numbered\n- [X] also done\n- not a box\n",
        );
        let items: Vec<(&str, u64, FlagSeverity)> = a
            .open_items
            .iter()
            .map(|i| (i.text.as_str(), i.cite.line, i.severity))
            .collect();
        assert_eq!(
            items,
            vec![
                ("load test", 3, FlagSeverity::Medium),
                ("P1 blocker: fix login", 4, FlagSeverity::High),
                ("numbered", 5, FlagSeverity::Medium),
            ]
        );
        assert_eq!(a.checked_items, 2);
    }

    #[test]
    fn open_regressions_need_an_open_state_and_skip_fixed_ones() {
        let a = scan(
            "CHANGELOG.md",
            "## 1.2.0\n\
             - Fixed a regression in the parser (#120).\n\
             - Regression ABC-12 (P2) is still open on Windows.\n\
             - Open bug: crash on empty input, severity critical.\n\
             - We opened a discussion about the bug tracker.\n\
             - Bug JIRA-9 resolved.\n",
        );
        let got: Vec<(Option<&str>, Option<&str>, FlagSeverity, u64)> = a
            .issues
            .iter()
            .map(|i| (i.id.as_deref(), i.label.as_deref(), i.severity, i.cite.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("ABC-12"), Some("P2"), FlagSeverity::Medium, 3),
                (None, Some("critical"), FlagSeverity::High, 4),
            ]
        );
    }

    #[test]
    fn known_issue_sections_make_list_items_and_id_rows_issues() {
        let a = scan(
            "release.md",
            "# R\n## Known issues\n\n- Safari sorts by the wrong date\n- ENG-7 (SEV-1): payments stuck\n- ENG-8 resolved last week\n\n| id | sev | state |\n|---|---|---|\n| OPS-3 | low | open |\n\n## Next\n- not an issue\n",
        );
        let got: Vec<(Option<&str>, FlagSeverity, u64)> = a
            .issues
            .iter()
            .map(|i| (i.id.as_deref(), i.severity, i.cite.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (None, FlagSeverity::Medium, 4),
                (Some("ENG-7"), FlagSeverity::High, 5),
                (Some("OPS-3"), FlagSeverity::Low, 10),
            ]
        );
    }

    #[test]
    fn rollback_sections_present_tbd_empty_missing() {
        let present = scan("runbooks/deploy.md", "# Deploy\n## Rollback\n1. redeploy\n");
        assert_eq!(present.rollback[0].status, RollbackStatus::Present);
        assert_eq!(present.rollback[0].cite.as_ref().map(|c| c.line), Some(2));

        let tbd = scan(
            "runbooks/cutover.md",
            "# Cutover\n## Steps\ngo\n## Rollback\n\nTBD - ask Sam\n",
        );
        assert_eq!(tbd.rollback[0].status, RollbackStatus::Tbd);
        assert_eq!(tbd.rollback[0].cite.as_ref().map(|c| c.line), Some(6));
        assert_eq!(tbd.todos, vec![], "a rollback TBD is not a generic TODO");

        let empty = scan(
            "runbooks/a.md",
            "# A\n## Rolling back\n\n## Contacts\nbob\n",
        );
        assert_eq!(empty.rollback[0].status, RollbackStatus::Empty);

        let inline = scan("releases/3.0.md", "# 3.0\nRollback: n/a\n");
        assert_eq!(inline.rollback[0].status, RollbackStatus::Tbd);
        assert_eq!(inline.rollback[0].cite.as_ref().map(|c| c.line), Some(2));

        let missing = scan(
            "docs/runbooks/upgrade.md",
            "# Upgrade\n## Steps\n1. do it\n",
        );
        assert_eq!(missing.rollback[0].status, RollbackStatus::Missing);
        assert_eq!(missing.rollback[0].severity(), Some(FlagSeverity::High));
        // Release notes are not held to a rollback section they do not have.
        let notes = scan("docs/releases/1.0.md", "# 1.0\nnew things\n");
        assert!(notes.rollback.is_empty());
        let plan = scan("docs/plans/q2.md", "# Q2\nmove billing\n");
        assert_eq!(plan.rollback[0].severity(), Some(FlagSeverity::Medium));

        let nested = scan(
            "runbooks/x.md",
            "# X\n## Rollback\n### Database\nrestore the snapshot\n## After\nTODO later\n",
        );
        assert_eq!(nested.rollback[0].status, RollbackStatus::Present);
        assert_eq!(lines(&nested.todos), vec![6]);
    }

    #[test]
    fn changelogs_readmes_rosters_and_scripts_are_not_held_to_rollback_sections() {
        for (path, text) in [
            ("CHANGELOG.md", "# Changes\n- a\n"),
            ("docs/releases/README.md", "# Releases\n"),
            ("source:jira", "a,b\n"),
            (
                "docs/oncall/roster.md",
                "# On-call roster\n| week | who |\n",
            ),
            ("scripts/deploy.sh", "#!/bin/sh\nhelm upgrade x\n"),
            ("deploy/deploy.json", "{}\n"),
        ] {
            assert!(scan(path, text).rollback.is_empty(), "{path}");
        }
        assert_eq!(
            scan("ops/deploy.md", "# Deploy\n").rollback[0].role,
            Role::Runbook
        );
    }

    #[test]
    fn hedges_and_placeholders_are_not_rollback_plans() {
        for body in [
            "We'll see. If it breaks we can probably point it back, ask Tom.",
            "N/A for now, we'll figure it out later.",
            "- [ ] ask Tom",
            "Later.",
        ] {
            let a = scan("runbooks/x.md", &format!("# X\n## Rollback\n\n{body}\n"));
            assert_eq!(a.rollback[0].status, RollbackStatus::Placeholder, "{body}");
            assert_eq!(
                a.rollback[0].cite.as_ref().map(|c| c.line),
                Some(4),
                "{body}"
            );
        }
        let real = scan(
            "runbooks/x.md",
            "# X\n## Rollback\nSet the prefix back with `cachectl prefix set v41`. Warming later is optional.\n",
        );
        assert_eq!(real.rollback[0].status, RollbackStatus::Present);
        let contingency = scan("plans/z.md", "# Z\n## Contingency plan\n\nWe'll see.\n");
        assert_eq!(contingency.rollback[0].status, RollbackStatus::Placeholder);
        let label = scan("runbooks/y.md", "# Y\n- Rollback: ask Priya\n");
        assert_eq!(label.rollback[0].status, RollbackStatus::Placeholder);
    }

    #[test]
    fn staffing_gaps_and_support_forecasts() {
        let a = scan(
            "runbooks/x.md",
            "# X\n## Who\nThe on-call engineer is nobody assigned yet.\nComms: ask Marta\nDBA: Ravi\n\
             ## Support\nSupport expects tickets to rise next week.\nEscalations should drop after the fix.\n\
             ## Rollback\nredeploy\n",
        );
        assert_eq!(lines(&a.staffing), vec![3, 4]);
        let support: Vec<(u64, bool)> = a
            .support
            .iter()
            .map(|s| (s.cite.line, s.elevated))
            .collect();
        assert_eq!(support, vec![(7, true), (8, false)]);
    }

    #[test]
    fn a_support_forecast_wrapped_over_two_lines() {
        // The noun ends one line, the rising verb starts the next; a full
        // stop ends the sentence, so the third line's verb is not about tickets.
        let a = scan(
            "docs/plan.md",
            "# Plan\nWe expect ticket\nvolume to climb in week one.\nSignups to grow too.\n",
        );
        let support: Vec<(u64, bool)> = a
            .support
            .iter()
            .map(|s| (s.cite.line, s.elevated))
            .collect();
        assert_eq!(support, vec![(3, true)]);
    }

    #[test]
    fn release_notes_changes_and_advertising() {
        let a = scan(
            "docs/releases/7.2.0.md",
            "# 7.2.0\nUpgrade today: zero-downtime, low-risk upgrades for every plan!\n\
             ## Breaking changes\n- `/v1` is removed\n## Features\n- Favicon shows unread support tickets (up to 99)\n\
             - Upgraded Django to 5.0\n## Removed\n- Support for PostgreSQL 12\n- The fax field\n\
             ## Deprecated\n- `TALLY_AUTH`\n## Changed\n- No breaking changes in 7.2\n- Upgrade guide for 7.x added\n",
        );
        let got: Vec<(ChangeKind, u64)> = a.changes.iter().map(|c| (c.kind, c.cite.line)).collect();
        assert_eq!(
            got,
            vec![
                (ChangeKind::Breaking, 4),
                (ChangeKind::Upgrade, 7),
                (ChangeKind::Removed, 9),
                (ChangeKind::Removed, 10),
                (ChangeKind::Deprecated, 12),
            ]
        );
        assert!(a.risk_claims.is_empty() && a.support.is_empty());
    }

    #[test]
    fn tracker_tables_and_blocked_signoffs() {
        let a = scan(
            "source:linear",
            "# Export\n| ID | Title | Status | Priority | Labels |\n|---|---|---|---|---|\n\
             | PAY-1 | Refunds fail | In Progress | Urgent | Bug |\n\
             | PAY-2 | Webhook check | Todo | Medium | Bug, blocks security sign-off |\n\
             | PAY-3 | Old bug | Done | Urgent | Bug |\n\
             | PAY-4 | Tooltip | Backlog | Low | Bug |\n",
        );
        let got: Vec<(Option<&str>, FlagSeverity, u64)> = a
            .issues
            .iter()
            .map(|i| (i.id.as_deref(), i.severity, i.cite.line))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("PAY-1"), FlagSeverity::High, 4),
                (Some("PAY-2"), FlagSeverity::High, 5),
                (Some("PAY-4"), FlagSeverity::Low, 7),
            ]
        );
        let mut b = scan(
            "source:jira",
            "Summary,Issue key,Issue Type,Status,Priority,Resolution\n\
             \"Failover drops jobs\",OPS-1,Bug,Open,Major,Unresolved\n\
             \"CAB approval\",OPS-2,Task,Open,Major,Unresolved\n\
             \"Backup\",OPS-3,Bug,Closed,Critical,Fixed\n",
        );
        let plan = "# Change\n## Approvals\n- CAB: waiting on OPS-1\n";
        scan_document("change.md", plan, Role::Other, &Gate::default(), &mut b);
        link_signoffs_to_issues(&mut b);
        assert_eq!(b.issues.len(), 1);
        assert_eq!(
            b.issues[0].severity,
            FlagSeverity::High,
            "it blocks the CAB sign-off"
        );
        assert_eq!(lines(&b.pending_signoffs), vec![3, 3]);
        assert_eq!(b.blocked_signoffs.len(), 1);
        assert_eq!(b.blocked_signoffs[0].cite.path, "change.md");
    }

    #[test]
    fn one_way_steps_todos_and_risk_claims() {
        let a = scan(
            "plan.md",
            "# Plan\nThis step is one-way.\nData cannot be restored after this.\n\
             Overall risk: low\nWe are ready to ship.\nTODO: owner\nThe toDo list\n\
             They said `risk: low` once.\nNo kill switch.\n",
        );
        assert_eq!(lines(&a.one_way), vec![2, 3, 9]);
        let b = scan(
            "README.md",
            "There is only one way to do it.\nThe recommended go-to tool.\nBytes to be written.\n- [ ] ~dropped idea~\n",
        );
        assert_eq!(
            (b.one_way.len(), b.risk_claims.len(), b.todos.len()),
            (0, 0, 0)
        );
        assert!(b.open_items.is_empty());
        assert_eq!(lines(&a.risk_claims), vec![4, 5]);
        assert_eq!(lines(&a.todos), vec![6]);
    }

    #[test]
    fn flag_rollouts_need_flag_context_and_a_percentage() {
        let a = scan(
            "release.md",
            "# R\nRaise `new_checkout` to 25% of users.\nCPU at 80% on db.\n\
             The flag `dark_mode` is at 100%.\n\n## Feature flags\n| flag | state |\n|---|---|\n| search_v2 | 10% |\n",
        );
        let got: Vec<(&str, f64, u64)> = a
            .rollouts
            .iter()
            .map(|r| (r.flag.as_str(), r.percent, r.cite.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("new_checkout", 25.0, 2),
                ("dark_mode", 100.0, 4),
                ("search_v2", 10.0, 9)
            ]
        );
    }

    #[test]
    fn pending_signoffs_and_support_figures() {
        let a = scan(
            "release.md",
            "# R\n## Sign-offs\n| area | who | status |\n|--|--|--|\n| QA | Jo | approved |\n| Security | Al | pending |\n\n\
             ## Notes\nLegal sign-off: awaiting review\nSupport tickets this week: 40 (up 30%)\nPages last week: 3\n",
        );
        assert_eq!(lines(&a.pending_signoffs), vec![6, 9]);
        let support: Vec<(u64, bool)> = a
            .support
            .iter()
            .map(|s| (s.cite.line, s.elevated))
            .collect();
        assert_eq!(support, vec![(10, true), (11, false)]);
    }

    #[test]
    fn fenced_code_is_not_read_as_findings() {
        let a = scan(
            "runbook.md",
            "# R\n```\n- [ ] not a box\nTODO in code\n```\n- [ ] real\n",
        );
        assert_eq!(a.open_items.len(), 1);
        assert_eq!(a.open_items[0].cite.line, 6);
        assert!(a.todos.is_empty());
    }

    #[test]
    fn odd_documents_do_not_panic() {
        use crate::{Builtin, ModelRequest, UpstreamDoc};
        use fleet_core::config::StepKind;
        use fleet_corpus::{Corpus, Document};
        let odd = [
            "",
            "\n\n",
            "#",
            "## [",
            "## [Unreleased",
            "## v",
            "## 1.",
            "## 99999999999999999999999.1",
            "tag:",
            "tag: v",
            "--",
            "|",
            "||",
            "| status |",
            "| id | status |\n|",
            ",,,",
            "\"",
            "\",\"",
            "Status,Key\n\"unterminated,K-1",
            "- [ ]",
            "- [ ] ask",
            "ask Tom",
            "## Rollback\n- [ ] ask Tom",
            "## Rollback\nN/A",
            "## Owners\nask",
            "## Breaking\n- ",
            "* **",
            "[x](",
            "[a](b",
            "é🚀ü\n## 🚀\n- é",
            "## Sign-offs\n| a | b |\n| x | blocked on #1 |",
            "title:\tv1.0\ntag:\tv1.0\n--\n## What's Changed\n* x by @",
        ];
        let documents: Vec<Document> = odd
            .iter()
            .enumerate()
            .flat_map(|(i, text)| {
                [
                    "CHANGELOG.md",
                    "docs/runbooks/x.md",
                    "source:s",
                    "docs/releases/1.0.md",
                    "a.csv",
                ]
                .into_iter()
                .map(move |p| Document {
                    path: format!("{i}/{p}"),
                    text: text.to_string(),
                })
            })
            .collect();
        let corpus = Corpus {
            documents,
            ..Corpus::default()
        };
        for release in [None, Some("1.0"), Some("v"), Some("")] {
            let mut req = ModelRequest {
                genflow: "g".into(),
                step: "s".into(),
                kind: StepKind::Report,
                prompt: String::new(),
                corpus: corpus.clone(),
                upstream: vec![],
                feedback: None,
                budget: None,
                release: release.map(str::to_string),
            };
            let report = Builtin.complete_now(&req).expect("report").text;
            req.kind = StepKind::Review;
            req.upstream = vec![UpstreamDoc {
                step: "r".into(),
                kind: StepKind::Report,
                path: "r.md".into(),
                text: report,
                flags: None,
            }];
            Builtin.complete_now(&req).expect("review");
        }
    }
}
