//! The adversarial review: re-derive the risks from the corpus the report
//! read, then hold every upstream document against them. A risk is flagged
//! whether or not the report mentions it (the approver sees the list); one
//! the report leaves out says so; a report that rates the release low-risk
//! or ready while high-severity risks stand is itself flagged, as is every
//! citation in it that does not point at a real line.

use super::analysis::{Analysis, ChangeKind, OpenIssue, RollbackStatus, cite};
use super::report::{RULE_BASED_NOTICE, evidence};
use super::rules::{find_risk_claim, is_risk_claim};
use crate::citations::{CitationIndex, CitedRef, find_citations};
use crate::text::{FxBuild, excerpt, line_spans_matching, own_words};
use crate::{ModelRequest, UpstreamDoc};
use fleet_core::config::StepKind;
use fleet_core::flags::{Citation, Flag, FlagSet, FlagSeverity};
use std::collections::HashSet;
use std::fmt::Write;

/// What would show that a report covered a risk: any one suffices.
/// Borrowed from the [`Analysis`]: only the evidence of a flag is copied out.
#[derive(Debug, Default)]
struct Mention<'a> {
    /// A citation of exactly this line.
    lines: Vec<&'a Citation>,
    /// A citation of any line of these files.
    files: &'a [String],
    /// Tracker ids or flag names, matched as ids or words.
    ids: Vec<String>,
    /// Each of these words appears (lowercase).
    all_words: Vec<String>,
}

#[derive(Debug)]
struct Risk<'a> {
    severity: FlagSeverity,
    claim: String,
    evidence: Vec<Citation>,
    mention: Mention<'a>,
    /// Only worth a flag when the report leaves it out.
    only_if_omitted: bool,
}

/// One upstream document, read once: its ASCII-lowercased text (same byte
/// offsets as the original) and its citations.
struct ReadDoc<'u> {
    doc: &'u UpstreamDoc,
    lower: String,
    citations: Vec<CitedRef<'u>>,
}

/// What the upstream documents say, indexed once.
struct Upstream<'u> {
    docs: Vec<ReadDoc<'u>>,
    cited_lines: HashSet<(&'u str, u64), FxBuild>,
    cited_files: HashSet<&'u str, FxBuild>,
}

impl<'u> Upstream<'u> {
    fn new(docs: &'u [UpstreamDoc], index: &CitationIndex<'_>) -> Self {
        let mut cited_lines = HashSet::default();
        let mut cited_files = HashSet::default();
        let docs: Vec<ReadDoc<'u>> = docs
            .iter()
            .map(|doc| {
                let citations = find_citations(&doc.text, &|p| index.knows(p));
                for c in &citations {
                    cited_files.insert(c.path);
                    for line in c.first..=c.last.min(c.first.saturating_add(200)) {
                        cited_lines.insert((c.path, line));
                    }
                }
                ReadDoc {
                    doc,
                    lower: doc.text.to_ascii_lowercase(),
                    citations,
                }
            })
            .collect();
        Upstream {
            docs,
            cited_lines,
            cited_files,
        }
    }

    fn contains(&self, lowercase_word: &str) -> bool {
        self.docs.iter().any(|d| d.lower.contains(lowercase_word))
    }

    fn mentions(&self, m: &Mention<'_>) -> bool {
        m.lines
            .iter()
            .any(|c| self.cited_lines.contains(&(c.path.as_str(), c.line)))
            || m.files
                .iter()
                .any(|f| self.cited_files.contains(f.as_str()))
            || m.ids
                .iter()
                .any(|id| self.contains(&id.to_ascii_lowercase()))
            || (!m.all_words.is_empty() && m.all_words.iter().all(|w| self.contains(w)))
    }
}

fn file_stem(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split('.').next().unwrap_or(file).to_ascii_lowercase()
}

fn max_severity(a: FlagSeverity, b: FlagSeverity) -> FlagSeverity {
    // FlagSeverity orders High < Medium < Low.
    a.min(b)
}

/// Groups citations by document, keeping first-seen order.
fn by_path<'a, T>(
    items: impl Iterator<Item = (&'a Citation, T)>,
) -> Vec<(&'a str, Vec<(&'a Citation, T)>)> {
    // A handful of documents: a linear search beats a map.
    let mut groups: Vec<(&'a str, Vec<(&'a Citation, T)>)> = Vec::new();
    for (c, t) in items {
        match groups.iter_mut().find(|(path, _)| *path == c.path) {
            Some((_, group)) => group.push((c, t)),
            None => groups.push((&c.path, vec![(c, t)])),
        }
    }
    groups
}

/// The quoted line as a short phrase: list markers dropped, table cells
/// joined with dashes.
fn quote_excerpt(c: &Citation) -> String {
    let q = c.quote.trim();
    if q.starts_with('|') {
        let cells: Vec<&str> = q
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        return excerpt(&cells.join(" — "), 90);
    }
    let q = q.trim_start_matches(['-', '*', '+', ' ', '>']);
    let q = q
        .strip_prefix("[ ]")
        .or_else(|| q.strip_prefix("[x]"))
        .unwrap_or(q)
        .trim_start();
    excerpt(&unlink(q), 90)
}

/// A tracker row as a phrase: its longest cell or field (the title), for
/// Markdown table rows and CSV lines alike; any other line as [`quote_excerpt`].
fn row_excerpt(c: &Citation) -> String {
    let q = c.quote.trim();
    let cells: Vec<&str> = if q.starts_with('|') {
        q.split('|').collect()
    } else if q.matches(',').count() >= 2 && !q.starts_with(['-', '*', '+']) {
        q.split(',').collect()
    } else {
        return quote_excerpt(c);
    };
    cells
        .into_iter()
        .map(|cell| cell.trim().trim_matches('"'))
        .max_by_key(|cell| cell.len())
        .map_or_else(|| quote_excerpt(c), |cell| excerpt(cell, 90))
}

/// The sentence of `c`'s line around the first phrase of `rule`: a long
/// prose line says many things, and the claim should say the one that counts.
fn sentence_of(c: &Citation, rule: super::rules::Word) -> String {
    let q = c.quote.trim();
    let Some(span) = super::rules::WORDS
        .find(q.as_bytes(), rule)
        .filter(|_| !q.starts_with('|'))
    else {
        return quote_excerpt(c);
    };
    let start = q[..span.start].rfind(". ").map_or(0, |at| at + 2);
    let end = q[span.end..]
        .find(". ")
        .map_or(q.len(), |at| span.end + at + 1);
    excerpt(&q[start..end], 90)
}

/// What an issue line says beyond its id and severity label:
/// `- REG-1 (P1, open): PDFs break` -> `PDFs break`; a tracker row's title.
fn issue_summary(c: &Citation, id: Option<&str>) -> String {
    let q = c.quote.trim();
    if q.starts_with('|') || (q.matches(',').count() >= 2 && !q.starts_with(['-', '*', '+'])) {
        // A tracker row: its title.
        return row_excerpt(c);
    }
    let q = q.trim_start_matches(['-', '*', '+', ' ']);
    let rest = id
        .and_then(|id| q.find(id).map(|at| &q[at + id.len()..]))
        .and_then(|after| {
            // `REG-1 (P1, open): …`, not the `:` of a link's `https:` after the id.
            after
                .find(": ")
                .filter(|&colon| colon < 30 && !after[..colon].contains("]("))
                .map(|colon| &after[colon + 1..])
        })
        .unwrap_or(q);
    excerpt(&unlink(rest), 90)
}

/// Markdown links as their text: `[#1450](https://…)` -> `#1450`.
fn unlink(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let Some(close) = after.find("](") else {
            break;
        };
        let Some(end) = after[close + 2..].find(')') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&after[..close]);
        rest = &after[close + 2 + end + 1..];
    }
    out.push_str(rest);
    out
}

/// A release-notes entry as a phrase: without the `by @user in https://…`
/// credit GitHub appends, and links as their text.
fn change_text(c: &Citation) -> String {
    let q = c.quote.trim();
    // The list marker, then emphasis (`* **config:** …` -> `config: …`).
    let q = q
        .strip_prefix(['-', '*', '+'])
        .map_or(q, str::trim_start)
        .replace("**", "");
    let q = q.split(" by @").next().unwrap_or(&q);
    excerpt(&unlink(q), 90)
}

fn risks_from(a: &Analysis) -> Vec<Risk<'_>> {
    let mut risks = Vec::new();

    // One risk per issue: an id listed in several places (a tracker export
    // and the release notes) is one issue, cited everywhere it appears.
    let mut seen_ids: Vec<&str> = Vec::new();
    for issue in &a.issues {
        let same: Vec<&OpenIssue> = match issue.id.as_deref() {
            Some(id) if seen_ids.contains(&id) => continue,
            Some(id) => {
                seen_ids.push(id);
                a.issues
                    .iter()
                    .filter(|i| i.id.as_deref() == Some(id))
                    .collect()
            }
            None => vec![issue],
        };
        let severity = same
            .iter()
            .fold(issue.severity, |s, i| max_severity(s, i.severity));
        let what = issue.id.clone().unwrap_or_else(|| "an issue".to_string());
        let label = issue
            .label
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        let blocks = if same.iter().any(|i| i.blocks_signoff) {
            " and holds up a sign-off"
        } else {
            ""
        };
        risks.push(Risk {
            severity,
            claim: format!(
                "{what}{label} is still open{blocks}: {}",
                issue_summary(&issue.cite, issue.id.as_deref())
            ),
            evidence: same.iter().map(|i| i.cite.clone()).collect(),
            mention: Mention {
                lines: same.iter().map(|i| &i.cite).collect(),
                ids: issue.id.iter().cloned().collect(),
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    for b in &a.blocked_signoffs {
        risks.push(Risk {
            severity: FlagSeverity::High,
            claim: format!(
                "a sign-off is blocked by open issue {}: {}",
                b.id,
                // A sign-off table row reads best whole; a CSV row by its title.
                if b.cite.quote.trim_start().starts_with('|') {
                    quote_excerpt(&b.cite)
                } else {
                    row_excerpt(&b.cite)
                }
            ),
            evidence: vec![b.cite.clone(), b.issue.clone()],
            mention: Mention {
                lines: vec![&b.cite],
                ids: vec![b.id.clone()],
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    for (path, items) in by_path(a.open_items.iter().map(|i| (&i.cite, i))) {
        let severity = items.iter().fold(FlagSeverity::Medium, |s, (_, i)| {
            max_severity(s, i.severity)
        });
        let first = items
            .first()
            .map(|(_, i)| excerpt(&i.text, 60))
            .unwrap_or_default();
        let more = if items.len() > 1 { ", …" } else { "" };
        risks.push(Risk {
            severity,
            claim: format!(
                "{} readiness checklist item{} still unchecked in {path}: {first}{more}",
                items.len(),
                if items.len() == 1 { " is" } else { "s are" }
            ),
            evidence: items.iter().map(|(c, _)| (*c).clone()).collect(),
            mention: Mention {
                lines: items.iter().map(|(c, _)| *c).collect(),
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    for m in &a.migrations {
        let Some(severity) = m.severity() else {
            continue;
        };
        let mut words = vec![m.name.to_ascii_lowercase()];
        if let Some(n) = &m.number {
            words.push(n.clone());
        }
        let mention = || Mention {
            files: &m.files,
            ids: words.clone(),
            ..Mention::default()
        };
        let mut ops: Vec<&str> = Vec::new();
        for (op, _) in &m.destructive {
            if !ops.contains(&op.as_str()) {
                ops.push(op);
            }
        }
        let destroys: Vec<Citation> = m.destructive.iter().map(|(_, c)| c.clone()).collect();
        // The destructive lines, then the line that shows the rollback cannot help.
        let with_reverse = || {
            let mut evidence = destroys.clone();
            if !evidence.contains(&m.evidence) {
                evidence.push(m.evidence.clone());
            }
            evidence
        };
        let claim = match (m.reversible, ops.is_empty()) {
            (false, false) => Some((
                format!(
                    "migration {} is irreversible: it runs {} and has {}",
                    m.name,
                    ops.join(", "),
                    m.reason
                ),
                with_reverse(),
            )),
            // Forward-only by design: nothing lost, nothing to say.
            (false, true) if m.forward_only => None,
            (false, true) => Some((
                format!("migration {} cannot be rolled back: {}", m.name, m.reason),
                with_reverse(),
            )),
            (true, false) if m.noop_reverse => Some((
                format!(
                    "migration {} destroys data: it runs {}, and its reverse is a no-op, so a rollback restores no data",
                    m.name,
                    ops.join(", ")
                ),
                with_reverse(),
            )),
            // The written reverse re-creates the schema; what shows the loss is the forward line.
            (true, false) => Some((
                format!(
                    "migration {} destroys data: it runs {}, and its rollback cannot bring the data back",
                    m.name,
                    ops.join(", ")
                ),
                destroys.clone(),
            )),
            (true, true) => None,
        };
        if let Some((claim, evidence)) = claim {
            risks.push(Risk {
                severity,
                claim,
                evidence,
                mention: mention(),
                only_if_omitted: false,
            });
        }
        if let Some((what, _)) = m.hazards.first() {
            risks.push(Risk {
                severity: FlagSeverity::Medium,
                claim: format!(
                    "migration {} can fail on existing data: {}",
                    m.name,
                    excerpt(what, 110)
                ),
                evidence: m.hazards.iter().map(|(_, c)| c.clone()).collect(),
                mention: mention(),
                only_if_omitted: false,
            });
        }
        if let Some(first) = m.backfill.first() {
            // "Long-running" only when the corpus gives a size or a duration.
            let claim = match &m.scale {
                Some(c) => format!(
                    "migration {} is a long-running data backfill: {}",
                    m.name,
                    quote_excerpt(c).trim_start_matches("-- ")
                ),
                None => format!("migration {} is a data backfill", m.name),
            };
            risks.push(Risk {
                severity: FlagSeverity::Medium,
                claim,
                evidence: std::iter::once(first.clone())
                    .chain(m.scale.clone())
                    .collect(),
                mention: mention(),
                only_if_omitted: false,
            });
        }
    }

    for r in &a.rollback {
        let Some(severity) = r.severity() else {
            continue;
        };
        let kind = r.role.name();
        let claim = match (r.status, &r.cite) {
            (RollbackStatus::Tbd, _) => {
                format!("the rollback plan in {kind} {} is still TBD", r.path)
            }
            (RollbackStatus::Empty, _) => {
                format!("the rollback section of {kind} {} is empty", r.path)
            }
            (RollbackStatus::Placeholder, Some(at)) => format!(
                "the rollback plan in {kind} {} is only a hedge or a placeholder: {}",
                r.path,
                code_span_plain(&quote_excerpt(at))
            ),
            _ => format!("no rollback section in {kind} {}", r.path),
        };
        let at = r.cite.as_ref().unwrap_or(&r.title);
        risks.push(Risk {
            severity,
            claim,
            evidence: vec![at.clone()],
            mention: Mention {
                lines: vec![at],
                all_words: vec![file_stem(&r.path), "rollback".into()],
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    for c in &a.changes {
        let rel = format!("{} ({})", c.cite.path, c.release);
        let text = change_text(&c.cite);
        let claim = match c.kind {
            ChangeKind::Breaking => format!("breaking change in {rel}: {text}"),
            ChangeKind::DropsSupport => format!("{rel} drops support: {text}"),
            ChangeKind::Removed => format!("{rel} removes: {text}"),
            ChangeKind::Upgrade => format!("{rel} upgrades a framework or dependency: {text}"),
            ChangeKind::Deprecated => format!("{rel} deprecates: {text}"),
        };
        risks.push(Risk {
            severity: c.kind.severity(),
            claim,
            evidence: vec![c.cite.clone()],
            mention: Mention {
                lines: vec![&c.cite],
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    for (path, steps) in by_path(a.one_way.iter().map(|c| (c, ()))) {
        let first = steps
            .first()
            .map(|(c, _)| quote_excerpt(c))
            .unwrap_or_default();
        risks.push(Risk {
            severity: FlagSeverity::Medium,
            claim: format!(
                "{path} names {} one-way step{}: {first}",
                steps.len(),
                if steps.len() == 1 { "" } else { "s" }
            ),
            evidence: steps.iter().map(|(c, _)| (*c).clone()).collect(),
            mention: Mention {
                lines: steps.iter().map(|(c, _)| *c).collect(),
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    let mut flags: Vec<(&str, f64, Vec<&Citation>)> = Vec::new();
    for r in &a.rollouts {
        match flags.iter_mut().find(|(name, _, _)| *name == r.flag) {
            Some((_, percent, cites)) => {
                *percent = percent.max(r.percent);
                cites.push(&r.cite);
            }
            None => flags.push((&r.flag, r.percent, vec![&r.cite])),
        }
    }
    for (name, percent, cites) in flags {
        let (severity, claim, only_if_omitted) = if percent >= 100.0 {
            (
                FlagSeverity::Medium,
                format!(
                    "feature flag `{name}` is at 100% at release: no gradual rollout to fall back on"
                ),
                false,
            )
        } else if percent >= 50.0 {
            (
                FlagSeverity::Medium,
                format!("feature flag `{name}` already reaches {percent}% of traffic at release"),
                false,
            )
        } else {
            (
                FlagSeverity::Low,
                format!("feature flag `{name}` is mid-rollout at {percent}%"),
                true,
            )
        };
        risks.push(Risk {
            severity,
            claim,
            evidence: cites.iter().map(|c| (*c).clone()).collect(),
            mention: Mention {
                lines: cites,
                ids: vec![name.to_string()],
                ..Mention::default()
            },
            only_if_omitted,
        });
    }

    // A sign-off an open issue holds up has its own (high) flag above.
    let unblocked = a
        .pending_signoffs
        .iter()
        .filter(|c| !a.blocked_signoffs.iter().any(|b| b.cite == **c));
    for (path, pending) in by_path(unblocked.map(|c| (c, ()))) {
        let first = pending
            .first()
            .map(|(c, _)| quote_excerpt(c))
            .unwrap_or_default();
        risks.push(Risk {
            severity: FlagSeverity::Medium,
            claim: format!(
                "{} sign-off{} still pending in {path}: {first}",
                pending.len(),
                if pending.len() == 1 { " is" } else { "s are" }
            ),
            evidence: pending.iter().map(|(c, _)| (*c).clone()).collect(),
            mention: Mention {
                lines: pending.iter().map(|(c, _)| *c).collect(),
                all_words: vec!["sign".into(), "pending".into()],
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    for (path, gaps) in by_path(a.staffing.iter().map(|c| (c, ()))) {
        let first = gaps
            .first()
            .map(|(c, _)| sentence_of(c, super::rules::Word::Unstaffed))
            .unwrap_or_default();
        let more = if gaps.len() > 1 {
            format!(" ({} lines)", gaps.len())
        } else {
            String::new()
        };
        risks.push(Risk {
            severity: FlagSeverity::Medium,
            claim: format!("staffing or ownership gap in {path}{more}: {first}"),
            evidence: gaps.iter().map(|(c, _)| (*c).clone()).collect(),
            mention: Mention {
                lines: gaps.iter().map(|(c, _)| *c).collect(),
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    for s in a.support.iter().filter(|s| s.elevated) {
        risks.push(Risk {
            severity: FlagSeverity::Medium,
            claim: format!("support load is rising: {}", quote_excerpt(&s.cite)),
            evidence: vec![s.cite.clone()],
            mention: Mention {
                lines: vec![&s.cite],
                all_words: vec!["support".into(), "ticket".into()],
                ..Mention::default()
            },
            only_if_omitted: false,
        });
    }

    for (path, todos) in by_path(a.todos.iter().map(|c| (c, ()))) {
        risks.push(Risk {
            severity: FlagSeverity::Low,
            claim: format!(
                "{} TBD or TODO marker{} left in {path}: {}",
                todos.len(),
                if todos.len() == 1 { " is" } else { "s are" },
                todos
                    .first()
                    .map(|(c, _)| quote_excerpt(c))
                    .unwrap_or_default()
            ),
            evidence: todos.iter().map(|(c, _)| (*c).clone()).collect(),
            mention: Mention {
                lines: todos.iter().map(|(c, _)| *c).collect(),
                ..Mention::default()
            },
            only_if_omitted: true,
        });
    }

    // A source document that rates the release low-risk while it lists a
    // high-severity finding itself understates it.
    let high = a.high_evidence();
    for claim in &a.risk_claims {
        let own_highs: Vec<&Citation> = high
            .iter()
            .copied()
            .filter(|c| c.path == claim.path)
            .collect();
        if let Some(first) = own_highs.first() {
            let mut evidence = vec![claim.clone()];
            evidence.extend(own_highs.iter().map(|c| (*c).clone()));
            risks.push(Risk {
                severity: FlagSeverity::High,
                claim: format!(
                    "{} rates the release {} while it lists a high-severity finding ({})",
                    claim.path,
                    code_span_plain(&quote_excerpt(claim)),
                    quote_excerpt(first)
                ),
                evidence,
                mention: Mention::default(),
                only_if_omitted: false,
            });
        }
    }
    risks
}

/// Quotes a phrase inline in a claim (claims are plain one-liners).
fn code_span_plain(text: &str) -> String {
    format!("“{text}”")
}

/// Risks about the upstream documents themselves: low-risk claims against
/// standing high risks, topics they skip, citations that do not check out.
fn upstream_risks<'a>(
    upstream: &Upstream<'_>,
    a: &'a Analysis,
    index: &CitationIndex<'_>,
    high: &[&Risk<'_>],
) -> Vec<Risk<'a>> {
    let mut risks = Vec::new();
    for read in &upstream.docs {
        let doc = read.doc;
        if doc.kind == StepKind::Review {
            continue;
        }
        if !high.is_empty() {
            // The whole document is searched, not line by line: a claim can run
            // over a line break (and hide one on the next line), as it did when
            // this was a regex.
            for (n, span) in line_spans_matching(&doc.text, find_risk_claim) {
                let line = &doc.text[span];
                // Blockquotes and quoted passages report what others said.
                if line.trim_start().starts_with('>') || !is_risk_claim(&own_words(line)) {
                    continue;
                }
                let at = cite(&doc.path, n, line);
                let mut evidence = vec![at.clone()];
                evidence.extend(
                    high.iter()
                        .take(3)
                        .filter_map(|r| r.evidence.first().cloned()),
                );
                risks.push(Risk {
                    severity: FlagSeverity::High,
                    claim: format!(
                        "the report rates the release {} but {} high-severity risk{} stand{}, e.g. {}",
                        code_span_plain(&quote_excerpt(&at)),
                        high.len(),
                        if high.len() == 1 { "" } else { "s" },
                        if high.len() == 1 { "s" } else { "" },
                        high.first().map(|r| r.claim.as_str()).unwrap_or_default()
                    ),
                    evidence,
                    mention: Mention::default(),
                    only_if_omitted: false,
                });
            }
        }
        let lower = &read.lower;
        if !a.migrations.is_empty() && !lower.contains("migration") {
            risks.push(Risk {
                severity: FlagSeverity::Medium,
                claim: format!(
                    "{} never discusses migrations, but the corpus holds {} of them",
                    doc.path,
                    a.migrations.len()
                ),
                evidence: a
                    .migrations
                    .iter()
                    .take(3)
                    .map(|m| m.evidence.clone())
                    .collect(),
                mention: Mention::default(),
                only_if_omitted: false,
            });
        }
        if !a.rollback.is_empty() && !lower.contains("rollback") && !lower.contains("roll back") {
            risks.push(Risk {
                severity: FlagSeverity::Medium,
                claim: format!("{} never discusses rollback", doc.path),
                evidence: a
                    .rollback
                    .iter()
                    .take(3)
                    .map(|r| r.cite.clone().unwrap_or_else(|| r.title.clone()))
                    .collect(),
                mention: Mention::default(),
                only_if_omitted: false,
            });
        }
        // A report cites dozens of lines: a set, not a list, remembers them.
        let mut seen: HashSet<&str, FxBuild> = HashSet::default();
        for cited in &read.citations {
            if !seen.insert(cited.written) {
                continue;
            }
            let Some(problem) = index.problem(cited) else {
                continue;
            };
            let quote = crate::text::nth_line(&doc.text, cited.at_line).unwrap_or("");
            risks.push(Risk {
                severity: FlagSeverity::Medium,
                claim: format!("{}: {problem}", doc.path),
                evidence: vec![cite(&doc.path, cited.at_line, quote)],
                mention: Mention::default(),
                only_if_omitted: false,
            });
        }
    }
    risks
}

pub(crate) struct Review {
    pub text: String,
    pub flags: FlagSet,
}

pub(crate) fn review(req: &ModelRequest, a: &Analysis) -> Review {
    let index = CitationIndex::new(&req.corpus, &req.upstream);
    let reviewed: Vec<&UpstreamDoc> = req
        .upstream
        .iter()
        .filter(|d| d.kind != StepKind::Review)
        .collect();
    let upstream = Upstream::new(&req.upstream, &index);

    let mut corpus_risks = risks_from(a);
    let mut omitted = vec![false; corpus_risks.len()];
    if !reviewed.is_empty() {
        for (risk, omitted) in corpus_risks.iter_mut().zip(omitted.iter_mut()) {
            if !risk.mention.lines.is_empty()
                || !risk.mention.files.is_empty()
                || !risk.mention.ids.is_empty()
                || !risk.mention.all_words.is_empty()
            {
                *omitted = !upstream.mentions(&risk.mention);
            }
        }
    }
    let high: Vec<&Risk> = corpus_risks
        .iter()
        .filter(|r| r.severity == FlagSeverity::High)
        .collect();
    let doc_risks = upstream_risks(&upstream, a, &index, &high);

    let mut kept: Vec<(Risk, bool)> = corpus_risks
        .into_iter()
        .zip(omitted)
        .filter(|(r, omitted)| *omitted || !r.only_if_omitted)
        .collect();
    kept.extend(doc_risks.into_iter().map(|r| (r, false)));
    // Stable: within a severity, the order the rules found them.
    kept.sort_by_key(|(r, _)| r.severity);

    let flags: Vec<Flag> = kept
        .into_iter()
        .map(|(risk, omitted)| Flag {
            id: String::new(),
            severity: risk.severity,
            claim: if omitted {
                format!("{}; the report does not mention it", risk.claim)
            } else {
                risk.claim
            },
            evidence: risk.evidence,
        })
        .collect();
    let mut flags = super::rank::rank(flags, a);
    for (i, flag) in flags.iter_mut().enumerate() {
        flag.id = format!("F{}", i + 1);
    }
    let flags = FlagSet {
        step: req.step.clone(),
        flags,
    };
    Review {
        text: render(req, a, &reviewed, &flags),
        flags,
    }
}

fn render(req: &ModelRequest, a: &Analysis, reviewed: &[&UpstreamDoc], flags: &FlagSet) -> String {
    let mut out = String::with_capacity(8 * 1024);
    let _ = writeln!(out, "# Risk review: {} / {}\n", req.genflow, req.step);
    let _ = writeln!(out, "{RULE_BASED_NOTICE}\n");
    let _ = writeln!(
        out,
        "> This pass re-read the {} documents the report read, applied the rules again, and held the \
         upstream documents against what they show. A risk is flagged even when the report covers it; \
         one the report leaves out says so.\n",
        a.documents
    );
    if !req.prompt.trim().is_empty() {
        let _ = writeln!(out, "**Asked:** {}\n", req.prompt.trim());
    }
    // Corpus gaps are not repeated here: the engine puts them, as high
    // flags and a note, at the top of every review, whatever the model.
    if reviewed.is_empty() {
        let _ = writeln!(
            out,
            "**Reviewed:** no upstream report; flags come from the corpus alone.\n"
        );
    } else {
        let names: Vec<String> = reviewed
            .iter()
            .map(|d| format!("`{}` (step `{}`)", d.path, d.step))
            .collect();
        let _ = writeln!(out, "**Reviewed:** {}\n", names.join(", "));
    }
    let _ = writeln!(
        out,
        "**Flags:** {} high, {} medium, {} low\n",
        flags.count(FlagSeverity::High),
        flags.count(FlagSeverity::Medium),
        flags.count(FlagSeverity::Low)
    );
    let _ = writeln!(out, "## Flags\n");
    if flags.flags.is_empty() {
        let _ = writeln!(out, "No flags raised by the rules.\n");
    }
    for flag in &flags.flags {
        let _ = writeln!(
            out,
            "### {} · {} · {}\n",
            flag.id,
            flag.severity.as_str(),
            flag.claim
        );
        for c in &flag.evidence {
            let _ = writeln!(out, "- {}", evidence(c));
        }
        out.push('\n');
    }
    let covered_migrations: Vec<&str> = a
        .migrations
        .iter()
        .filter(|m| m.severity().is_none() && !m.forward_only)
        .map(|m| m.name.as_str())
        .collect();
    let covered_docs: Vec<&str> = a
        .rollback
        .iter()
        .filter(|r| r.status == RollbackStatus::Present)
        .map(|r| r.path.as_str())
        .collect();
    let _ = writeln!(out, "## Checked and not flagged\n");
    let _ = writeln!(
        out,
        "- Reversible, non-destructive migrations: {}",
        if covered_migrations.is_empty() {
            "none".to_string()
        } else {
            covered_migrations.join(", ")
        }
    );
    let forward_only: Vec<&str> = a
        .migrations
        .iter()
        .filter(|m| m.forward_only && m.severity().is_none())
        .map(|m| m.name.as_str())
        .collect();
    if !forward_only.is_empty() {
        let _ = writeln!(
            out,
            "- Forward-only migrations that destroy nothing: {}",
            forward_only.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "- Documents with a rollback section: {}",
        if covered_docs.is_empty() {
            "none".to_string()
        } else {
            covered_docs.join(", ")
        }
    );
    for (path, older) in &a.history {
        let _ = writeln!(
            out,
            "- History, not findings: {path} ({})",
            older.join(", ")
        );
    }
    out
}
