//! Flags ordered for the person who decides: high first; within a
//! severity, the newest migrations before older ones (without a revision
//! scope, the highest version numbers are the likeliest to be this
//! release's), so a destructive change of this release is never buried
//! below historical ones; and a long tail of same-kind lower-severity
//! findings is summarised with a count and its most recent examples
//! instead of listed flag by flag.

use super::analysis::Analysis;
use fleet_core::flags::{Citation, Flag, FlagSeverity};
use std::collections::HashMap;

/// A kind with more lower-severity flags than this is summarised.
const TAIL: usize = 10;
/// How many of a summarised kind stay flags of their own (the most recent).
const KEEP: usize = 5;
/// How many examples a summary cites.
const EXAMPLES: usize = 10;

/// Orders `flags` (already sorted by severity, stable) and summarises long tails.
pub(crate) fn rank(mut flags: Vec<Flag>, a: &Analysis) -> Vec<Flag> {
    if a.migrations.len() > 1 {
        newest_migrations_first(&mut flags, a);
    }
    // Only a kind with more than TAIL lower-severity flags is summarised.
    if flags
        .iter()
        .filter(|f| f.severity != FlagSeverity::High)
        .count()
        <= TAIL
    {
        return flags;
    }
    summarise_tails(flags, a)
}

/// A migration's place in version order: numbers compare as numbers
/// (`0043` < `20240102030405`), names break ties.
fn version_key<'a>(number: Option<&str>, name: &'a str) -> (u128, &'a str) {
    let n = number
        .and_then(|n| n.parse::<u128>().ok())
        .unwrap_or_default();
    (n, name)
}

fn newest_migrations_first(flags: &mut [Flag], a: &Analysis) {
    // A handful of migrations per flag run: a linear search beats a map.
    let key = |f: &Flag| {
        let path = f.evidence.first()?.path.as_str();
        a.migrations
            .iter()
            .find(|m| m.files.iter().any(|file| file == path))
            .map(|m| version_key(m.number.as_deref(), &m.name))
    };
    let mut start = 0;
    while start < flags.len() {
        let severity = flags[start].severity;
        let end = flags[start..]
            .iter()
            .position(|f| f.severity != severity)
            .map_or(flags.len(), |p| start + p);
        // The slots migration flags hold in this run keep holding
        // migration flags; only which migration sits where changes.
        let slots: Vec<usize> = (start..end).filter(|&i| key(&flags[i]).is_some()).collect();
        if slots.len() > 1 {
            let mut order: Vec<usize> = slots.clone();
            order.sort_by(|&x, &y| key(&flags[y]).cmp(&key(&flags[x])));
            let moved: Vec<Flag> = order.iter().map(|&i| flags[i].clone()).collect();
            for (&slot, f) in slots.iter().zip(moved) {
                flags[slot] = f;
            }
        }
        start = end;
    }
}

/// The report's lead list in the same order: citations of migrations,
/// newest first, in the slots migrations hold.
pub(crate) fn newest_migrations_first_in(cites: &mut [&Citation], a: &Analysis) {
    if a.migrations.len() < 2 {
        return;
    }
    let key = |c: &Citation| {
        a.migrations
            .iter()
            .find(|m| m.files.contains(&c.path))
            .map(|m| version_key(m.number.as_deref(), &m.name))
    };
    let slots: Vec<usize> = (0..cites.len())
        .filter(|&i| key(cites[i]).is_some())
        .collect();
    let mut order = slots.clone();
    order.sort_by(|&x, &y| key(cites[y]).cmp(&key(cites[x])));
    let moved: Vec<&Citation> = order.iter().map(|&i| cites[i]).collect();
    for (&slot, c) in slots.iter().zip(moved) {
        cites[slot] = c;
    }
}

/// What kind of finding a flag is, from what its first citation is in the analysis.
fn kinds(a: &Analysis) -> HashMap<(&str, u64), &'static str> {
    let mut cites: Vec<(&Citation, &'static str)> = Vec::new();
    cites.extend(a.issues.iter().map(|i| (&i.cite, "open issue")));
    cites.extend(
        a.open_items
            .iter()
            .map(|i| (&i.cite, "unchecked checklist")),
    );
    cites.extend(a.changes.iter().map(|c| (&c.cite, c.kind.name())));
    cites.extend(a.one_way.iter().map(|c| (c, "one-way step")));
    cites.extend(a.rollouts.iter().map(|r| (&r.cite, "flag rollout")));
    cites.extend(a.pending_signoffs.iter().map(|c| (c, "pending sign-off")));
    cites.extend(a.staffing.iter().map(|c| (c, "staffing")));
    cites.extend(a.support.iter().map(|s| (&s.cite, "support load")));
    cites.extend(a.todos.iter().map(|c| (c, "TBD/TODO")));
    let mut kinds = HashMap::new();
    for (c, kind) in cites {
        kinds.entry((c.path.as_str(), c.line)).or_insert(kind);
    }
    kinds
}

fn summarise_tails(flags: Vec<Flag>, a: &Analysis) -> Vec<Flag> {
    let known = kinds(a);
    let migration_files: Vec<&str> = a
        .migrations
        .iter()
        .flat_map(|m| m.files.iter().map(String::as_str))
        .collect();
    let kind_of = |f: &Flag| -> Option<&'static str> {
        if f.severity == FlagSeverity::High {
            return None;
        }
        let c = f.evidence.first()?;
        if migration_files.contains(&c.path.as_str()) {
            return Some("migration");
        }
        known.get(&(c.path.as_str(), c.line)).copied()
    };
    let kinds: Vec<Option<&'static str>> = flags.iter().map(kind_of).collect();
    let mut count: HashMap<(&'static str, FlagSeverity), usize> = HashMap::new();
    for (f, k) in flags.iter().zip(&kinds) {
        if let Some(k) = k {
            *count.entry((k, f.severity)).or_default() += 1;
        }
    }
    if count.values().all(|&n| n <= TAIL) {
        return flags;
    }
    let mut out = Vec::with_capacity(flags.len());
    // Per (kind, severity) being summarised: how many were kept, and where its summary is.
    let mut seen: HashMap<(&'static str, FlagSeverity), (usize, Option<usize>)> = HashMap::new();
    for (f, k) in flags.into_iter().zip(kinds) {
        let Some(k) = k.filter(|k| count[&(*k, f.severity)] > TAIL) else {
            out.push(f);
            continue;
        };
        let total = count[&(k, f.severity)];
        let entry = seen.entry((k, f.severity)).or_default();
        if entry.0 < KEEP {
            entry.0 += 1;
            out.push(f);
            continue;
        }
        match entry.1 {
            None => {
                entry.1 = Some(out.len());
                out.push(Flag {
                    id: String::new(),
                    severity: f.severity,
                    claim: format!(
                        "{} more {k} findings of {} severity, summarised rather than listed (the {KEEP} most \
                         recent are flagged above); e.g. {}",
                        total - KEEP,
                        f.severity.as_str(),
                        f.claim
                    ),
                    evidence: f.evidence.into_iter().take(1).collect(),
                });
            }
            Some(at) => {
                let summary = &mut out[at];
                if summary.evidence.len() < EXAMPLES
                    && let Some(c) = f.evidence.into_iter().next()
                {
                    summary.evidence.push(c);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtin::analysis::{OpenIssue, cite};

    fn flag(severity: FlagSeverity, claim: &str, path: &str, line: u64) -> Flag {
        Flag {
            id: String::new(),
            severity,
            claim: claim.to_string(),
            evidence: vec![cite(path, line, "")],
        }
    }

    /// Migrations as the analysis reads them (not built by hand, so this
    /// test does not depend on `Migration`'s fields).
    fn migrations(numbers: &[&str]) -> Vec<crate::builtin::analysis::Migration> {
        let docs: Vec<fleet_corpus::Document> = numbers
            .iter()
            .map(|n| fleet_corpus::Document {
                path: format!("db/{n}_drop.up.sql"),
                text: "DROP TABLE legacy;\n".into(),
            })
            .collect();
        let refs: Vec<&fleet_corpus::Document> = docs.iter().collect();
        crate::builtin::migrations::analyze(&refs)
    }

    #[test]
    fn the_newest_migration_leads_its_severity() {
        let a = Analysis {
            migrations: migrations(&["0001", "0002", "0100"]),
            ..Analysis::default()
        };
        let flags = vec![
            flag(FlagSeverity::High, "issue", "notes.md", 3),
            flag(FlagSeverity::High, "m1", "db/0001_drop.up.sql", 1),
            flag(FlagSeverity::High, "m2", "db/0002_drop.up.sql", 1),
            flag(FlagSeverity::High, "rollback", "deploy.md", 9),
            flag(FlagSeverity::High, "m100", "db/0100_drop.up.sql", 1),
            flag(FlagSeverity::Medium, "support", "notes.md", 8),
        ];
        let claims: Vec<String> = rank(flags, &a).into_iter().map(|f| f.claim).collect();
        assert_eq!(claims, ["issue", "m100", "m2", "rollback", "m1", "support"]);
    }

    #[test]
    fn a_long_tail_of_one_kind_is_summarised() {
        let issues: Vec<OpenIssue> = (1..=30)
            .map(|n| OpenIssue {
                id: Some(format!("BUG-{n}")),
                label: Some("Low".into()),
                severity: FlagSeverity::Low,
                cite: cite("source:jira", n, ""),
                blocks_signoff: false,
            })
            .collect();
        let mut flags = vec![flag(FlagSeverity::High, "breaking", "CHANGELOG.md", 5)];
        flags.extend(issues.iter().map(|i| {
            flag(
                FlagSeverity::Low,
                "BUG is still open",
                "source:jira",
                i.cite.line,
            )
        }));
        let a = Analysis {
            issues,
            ..Analysis::default()
        };
        let ranked = rank(flags, &a);
        assert_eq!(ranked.len(), 1 + KEEP + 1);
        let summary = &ranked[KEEP + 1];
        assert!(
            summary
                .claim
                .starts_with("25 more open issue findings of low severity"),
            "{}",
            summary.claim
        );
        assert_eq!(summary.evidence.len(), EXAMPLES);
        assert_eq!(summary.evidence[0].line, 6);
    }
}
