//! Line rules for prose documents (runbooks, release notes, changelogs,
//! command snapshots): one pass per document, tracking the markdown section
//! each line sits in, since "Known issues" or "Rollback" headings change what
//! a line means.

use super::analysis::{
    Analysis, OpenIssue, OpenItem, RollbackCoverage, RollbackStatus, Rollout, SupportFigure, cite,
};
use crate::text::{heading, line_rules, own_words, re};
use fleet_core::flags::{Citation, FlagSeverity};
use regex::Regex;
use std::sync::LazyLock;

static TABLE_SEPARATOR: LazyLock<Regex> = LazyLock::new(|| re(r"^\s*\|?[\s:|-]*-[\s:|-]*$"));
static CODE_NAME: LazyLock<Regex> = LazyLock::new(|| re(r"`([A-Za-z][A-Za-z0-9_.:/-]*)`"));

line_rules!(HEADING_RULES, Heading, HEADING_PATTERNS {
    ISSUES_HEADING = r"(?i)\b(known (?:issues?|bugs|problems|limitations)|open (?:issues|bugs|regressions|defects|items)|outstanding (?:issues|bugs)|regressions|blockers)\b";
    ROLLBACK_HEADING = r"(?i)\b(roll(?:ing|ed)?[- ]?backs?|reverts?|reverting|back(?:ing)?[- ]?out|undo|fall ?back|recovery|downgrad(?:e|ing))\b";
    FLAG_HEADING = r"(?i)\b(feature[- ]?flags?|flags?|toggles?|rollouts?|experiments?|ramp(?:-?up)?)\b";
    SIGNOFF_HEADING = r"(?i)\b(sign[- ]?offs?|approvals?|approvers?|go/no-go)\b";
    SUPPORT_HEADING = r"(?i)\b(support (?:load|volume|tickets?|queue|metrics)|tickets?|customer impact|on-?call load|escalations)\b";
});

line_rules!(LINE_RULES, Rule, LINE_PATTERNS {
    CHECKBOX = r"^\s*(?:[-*+]|[0-9]{1,3}[.)])\s+\[([ xX])\]\s*(.*)$";
    LIST_ITEM = r"^\s*(?:[-*+]|[0-9]{1,3}[.)])\s+\S";
    BUG_WORD = r"(?i)\b(regressions?|bugs?|defects?|known issues?|crash(?:es)?|data loss|outages?)\b";
    OPEN_WORD = r"(?i)\b(open|opened|reopened|unresolved|outstanding|investigating|in progress|not (?:yet )?fixed|unfixed|unmitigated|blocker|blocking|triaged?|still (?:happening|occurring|present))\b";
    CLOSED_WORD = r"(?i)\b(fixed|fixes|resolved|closed|done|mitigated|merged|shipped|reverted|addressed)\b";
    pub(crate) ISSUE_ID = r"\b[A-Z][A-Z0-9]{1,9}-[0-9]{1,7}\b|#[0-9]{1,7}\b";
    SEVERITY = r"(?i)\b(P[0-4]|SEV-?[0-4]|S[0-4]|critical|blocker|high|major|medium|moderate|minor|low)\b";
    ROLLBACK_LABEL = r"(?i)^\s*(?:[-*+]\s+)?(?:\*\*|__)?(?:rollback|roll[- ]back)(?: plan| steps| procedure)?(?:\*\*|__)?\s*:(?:\*\*|__)?\s*(.*)$";
    TBD = r"(?i:\b(?:tbd|tbc|tba)\b|\bto be (?:decided|determined|confirmed)\b)|\b(?:TODO|FIXME)\b";
    NOTHING = r"(?i)^[\s*_>-]*(?:n/?a|none|nothing|-|—|\.\.\.|…)?[\s*_.]*$";
    ONE_WAY = r"(?i)\b(irreversibl[ey]|one-way|can(?:not| not|'t|’t) be (?:undone|reversed|rolled back|restored|recovered)|no (?:way|path) back|point of no return|not reversible|no kill[- ]?switch|permanently (?:delete[sd]?|remove[sd]?|drop(?:s|ped)?)|no rollback)\b";
    pub(crate) RISK_CLAIM = r"(?i)\b(?:risk(?:\s+level|\s+rating|\s+assessment)?\s*(?:\*\*|__)?\s*(?:[:=-]|–|—)\s*(?:\*\*|__)?\s*(?:low|minimal|none|negligible|green)\b|low[- ]risk\b|ready (?:to|for) (?:ship|release|launch|deploy|production|go)\b|no known (?:issues|risks|regressions|blockers|problems)\b|no (?:open )?blockers\b|all migrations (?:are )?reversible\b|safe to (?:ship|release|deploy)\b|recommend(?:ation|ed)?\s*:?\s*(?:\*\*)?go(?:\s|[.,;!)*]|$))";
    FLAG_WORD = r"(?i)\b(?:feature[- ]?flags?|flags?|toggles?|kill[- ]?switch)\b|\brolled out to\b|%\s+of\s+(?:merchants|users|customers|accounts|traffic|tenants|requests|orgs|organizations|workspaces|sessions|stores|devices)\b";
    PERCENT = r"([0-9]{1,3}(?:\.[0-9]+)?)\s?%";
    SIGNOFF_WORD = r"(?i)\b(sign[- ]?offs?|signed[- ]off|approvals?|approvers?)\b";
    PENDING = r"(?i)\b(pending|awaiting|waiting|not yet|outstanding|missing|requested|tbd|unsigned)\b";
    SUPPORT_WORD = r"(?i)\b(support tickets?|tickets?|pages|escalations?|support (?:load|volume|queue)|csat)\b";
    ELEVATED = r"(?i)\b(up|increased?|increasing|rising|spike[sd]?|doubled|tripled|above|higher)\b|\+[0-9]+(?:\.[0-9]+)?\s?%|\b[0-9]+(?:\.[0-9]+)?x\b";
});

/// [`RISK_CLAIM`] for ASCII-lowercased text: its literals are lowercase,
/// and without `(?i)` the engine can prefilter on them.
pub(crate) static RISK_CLAIM_LOWERCASE: LazyLock<Regex> = LazyLock::new(|| {
    let pattern = LINE_PATTERNS[Rule::RISK_CLAIM as usize];
    re(pattern.strip_prefix("(?i)").unwrap_or(pattern))
});

/// Which kinds of section a heading opens (several may apply).
#[derive(Debug, Default, Clone, Copy)]
struct SectionKind {
    issues: bool,
    flags: bool,
    signoff: bool,
    support: bool,
}

impl SectionKind {
    fn of(hits: &regex::bytes::SetMatches) -> SectionKind {
        SectionKind {
            issues: hits.matched(Heading::ISSUES_HEADING as usize),
            flags: hits.matched(Heading::FLAG_HEADING as usize),
            signoff: hits.matched(Heading::SIGNOFF_HEADING as usize),
            support: hits.matched(Heading::SUPPORT_HEADING as usize),
        }
    }
}

/// An open rollback section being read.
struct RollbackSection {
    level: usize,
    heading: Citation,
    has_content: bool,
    tbd: Option<Citation>,
}

impl RollbackSection {
    fn verdict(self) -> (RollbackStatus, Citation) {
        match (self.tbd, self.has_content) {
            (Some(tbd), _) => (RollbackStatus::Tbd, tbd),
            (None, false) => (RollbackStatus::Empty, self.heading),
            (None, true) => (RollbackStatus::Present, self.heading),
        }
    }
}

/// Is this document a plan that must say how to roll back, and is it a
/// runbook (true) or release notes (false)? Changelogs and READMEs describe
/// what changed, not how to ship it, so they are not held to it.
pub(crate) fn plan_kind(path: &str) -> Option<bool> {
    let lower = path.to_ascii_lowercase();
    let file = lower.rsplit('/').next().unwrap_or(&lower);
    const NOT_PLANS: &[&str] = &[
        "changelog",
        "changes",
        "history",
        "news",
        "readme",
        "license",
        "contributing",
        "code_of_conduct",
        "security",
        "authors",
        // A top-level RELEASES.md is a library's changelog, not a release plan.
        "releases.",
    ];
    if lower.starts_with("source:") || NOT_PLANS.iter().any(|p| file.starts_with(p)) {
        return None;
    }
    const RUNBOOK: &[&str] = &[
        "runbook",
        "playbook",
        "deploy",
        "cutover",
        "rollout",
        "upgrad",
        "procedure",
        "migration-guide",
        "migrating",
        "failover",
        "maintenance",
        "on-call",
        "oncall",
    ];
    if RUNBOOK.iter().any(|w| lower.contains(w)) {
        Some(true)
    } else if lower.contains("release") {
        Some(false)
    } else {
        None
    }
}

fn markdownish(path: &str) -> bool {
    let file = path.rsplit('/').next().unwrap_or(path);
    match file.rsplit_once('.') {
        None => true,
        Some((_, ext)) => matches!(
            ext.to_ascii_lowercase().as_str(),
            "md" | "markdown" | "mdx" | "txt" | "text"
        ),
    }
}

fn severity_of(label: &str) -> FlagSeverity {
    let l = label.to_ascii_lowercase();
    let digit = l.bytes().rev().find(u8::is_ascii_digit);
    match (l.as_str(), digit) {
        ("critical" | "blocker" | "high", _) => FlagSeverity::High,
        ("major" | "medium" | "moderate", _) => FlagSeverity::Medium,
        ("minor" | "low", _) => FlagSeverity::Low,
        (_, Some(b'0' | b'1')) => FlagSeverity::High,
        (_, Some(b'2')) => FlagSeverity::Medium,
        _ => FlagSeverity::Low,
    }
}

/// The tracker id on a line, skipping severity labels that look like ids (`SEV-1`).
fn issue_id(line: &str) -> Option<String> {
    ISSUE_ID
        .find_iter(line)
        .map(|m| m.as_str())
        .find(|id| !id.to_ascii_uppercase().starts_with("SEV-"))
        .map(str::to_string)
}

fn flag_name(line: &str) -> String {
    if let Some(caps) = CODE_NAME.captures(line)
        && let Some(m) = caps.get(1)
    {
        return m.as_str().to_string();
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

/// Runs the prose rules over one document, adding to `out`.
pub(crate) fn scan_document(path: &str, text: &str, out: &mut Analysis) {
    let markdown = markdownish(path);
    let plan = plan_kind(path);
    let mut section = SectionKind::default();
    let mut rollback: Option<RollbackSection> = None;
    let mut verdicts: Vec<(RollbackStatus, Citation)> = Vec::new();
    let mut title: Option<Citation> = None;
    let mut in_fence = false;

    for (index, line) in text.lines().enumerate() {
        let n = index as u64 + 1;
        let trimmed = line.trim();
        if markdown && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            in_fence = !in_fence;
            if let Some(rb) = rollback.as_mut() {
                rb.has_content = true;
            }
            continue;
        }
        if markdown
            && !in_fence
            && let Some((level, heading_text)) = heading(line)
        {
            let heading_hits = HEADING_RULES.matches(heading_text.as_bytes());
            if title.is_none() {
                title = Some(cite(path, n, line));
            }
            if let Some(rb) = rollback.take_if(|rb| level <= rb.level) {
                verdicts.push(rb.verdict());
            }
            if let Some(rb) = rollback.as_mut() {
                rb.has_content = true;
            } else if heading_hits.matched(Heading::ROLLBACK_HEADING as usize) {
                rollback = Some(RollbackSection {
                    level,
                    heading: cite(path, n, line),
                    has_content: false,
                    tbd: None,
                });
            }
            section = SectionKind::of(&heading_hits);
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if title.is_none() {
            title = Some(cite(path, n, line));
        }

        let hits = LINE_RULES.matches(line.as_bytes());
        let has = |rule: Rule| hits.matched(rule as usize);

        // Rollback sections and `Rollback:` lines: decide coverage, and keep
        // their TBDs out of the generic TODO list (they are worse than that).
        let mut tbd_handled = false;
        if let Some(rb) = rollback.as_mut() {
            rb.has_content = rb.has_content || !has(Rule::NOTHING);
            if has(Rule::TBD) || has(Rule::NOTHING) {
                rb.tbd.get_or_insert_with(|| cite(path, n, line));
                tbd_handled = true;
            }
        } else if has(Rule::ROLLBACK_LABEL)
            && let Some(caps) = ROLLBACK_LABEL.captures(line)
        {
            let rest = caps.get(1).map_or("", |m| m.as_str());
            let status = if TBD.is_match(rest) || NOTHING.is_match(rest) {
                tbd_handled = true;
                RollbackStatus::Tbd
            } else {
                RollbackStatus::Present
            };
            verdicts.push((status, cite(path, n, line)));
        }
        if in_fence {
            continue;
        }

        if !tbd_handled && has(Rule::TBD) {
            out.todos.push(cite(path, n, line));
        }
        if has(Rule::ONE_WAY) {
            out.one_way.push(cite(path, n, line));
        }
        if has(Rule::RISK_CLAIM) && RISK_CLAIM.is_match(&own_words(line)) {
            out.risk_claims.push(cite(path, n, line));
        }

        let is_table_row = trimmed.starts_with('|');
        if is_table_row && TABLE_SEPARATOR.is_match(trimmed) {
            continue;
        }
        let is_list_item = has(Rule::LIST_ITEM);

        if has(Rule::CHECKBOX)
            && let Some(caps) = CHECKBOX.captures(line)
        {
            let item = caps.get(2).map_or("", |m| m.as_str()).trim();
            if item.starts_with('~') {
                // Struck through: dropped, not open.
            } else if caps.get(1).is_some_and(|m| m.as_str() == " ") {
                let severity = match SEVERITY.find(item) {
                    Some(m) if severity_of(m.as_str()) == FlagSeverity::High => FlagSeverity::High,
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
                list_item: is_list_item,
                table_row: is_table_row,
            };
            scan_issue(path, n, line, section, kind, &has, out);
        }

        if (section.flags || has(Rule::FLAG_WORD))
            && has(Rule::PERCENT)
            && let Some(caps) = PERCENT.captures(line)
            && let Some(percent) = caps.get(1).and_then(|m| m.as_str().parse::<f64>().ok())
        {
            out.rollouts.push(Rollout {
                flag: flag_name(line),
                percent,
                cite: cite(path, n, line),
            });
        }

        if (section.signoff || has(Rule::SIGNOFF_WORD)) && has(Rule::PENDING) {
            out.pending_signoffs.push(cite(path, n, line));
        }

        if (section.support || has(Rule::SUPPORT_WORD)) && line.bytes().any(|b| b.is_ascii_digit())
        {
            out.support.push(SupportFigure {
                elevated: has(Rule::ELEVATED),
                cite: cite(path, n, line),
            });
        }
    }

    if let Some(rb) = rollback {
        verdicts.push(rb.verdict());
    }
    if let Some(runbook) = plan {
        let title = title.unwrap_or_else(|| cite(path, 1, ""));
        // A problem anywhere (TBD, empty) outweighs a good section elsewhere.
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
            runbook,
            status,
            cite,
            title,
        });
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
    has: &dyn Fn(Rule) -> bool,
    out: &mut Analysis,
) {
    let open = has(Rule::OPEN_WORD);
    let candidate = if section.issues {
        kind.list_item || (kind.table_row && (open || has(Rule::ISSUE_ID)))
    } else {
        open && has(Rule::BUG_WORD) && (has(Rule::ISSUE_ID) || has(Rule::SEVERITY))
    };
    // Fixed/resolved with no sign of still being open: history, not an open item.
    if !candidate || (!open && has(Rule::CLOSED_WORD)) {
        return;
    }
    let id = if has(Rule::ISSUE_ID) {
        issue_id(line)
    } else {
        None
    };
    let label = SEVERITY.find(line).map(|m| m.as_str().to_string());
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
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(path: &str, text: &str) -> Analysis {
        let mut analysis = Analysis::default();
        scan_document(path, text, &mut analysis);
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
        let notes = scan("docs/releases/1.0.md", "# 1.0\nnew things\n");
        assert_eq!(notes.rollback[0].severity(), Some(FlagSeverity::Medium));

        let nested = scan(
            "runbooks/x.md",
            "# X\n## Rollback\n### Database\nrestore the snapshot\n## After\nTODO later\n",
        );
        assert_eq!(nested.rollback[0].status, RollbackStatus::Present);
        assert_eq!(lines(&nested.todos), vec![6]);
    }

    #[test]
    fn changelogs_and_readmes_are_not_held_to_rollback_sections() {
        assert_eq!(plan_kind("CHANGELOG.md"), None);
        assert_eq!(plan_kind("docs/releases/README.md"), None);
        assert_eq!(plan_kind("docs/releases/2.4.0.md"), Some(false));
        assert_eq!(plan_kind("ops/deploy.md"), Some(true));
        assert_eq!(plan_kind("source:jira"), None);
        assert_eq!(plan_kind("rayon/RELEASES.md"), None);
        assert!(scan("CHANGELOG.md", "# Changes\n- a\n").rollback.is_empty());
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
}
