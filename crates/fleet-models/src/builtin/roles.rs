//! What a document is. A rule only means something in the right kind of
//! document: a missing rollback section is a gap in a runbook, not in an
//! on-call roster, a deploy script or last year's release notes. Roles come
//! from the name first (cheap, and what people name files for), then from
//! the title line.

use crate::text::ascii_lowercase;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A procedure to run (deploy, cutover, upgrade): must say how to roll back.
    Runbook,
    /// A plan for a change (release plan, migration plan): should say how to fall back.
    Plan,
    /// Release notes, changelogs, GitHub release bodies: what changed.
    ReleaseNotes,
    /// Who is on call when: no procedure in it.
    Roster,
    /// Scripts, configuration and data files: not prose.
    ScriptOrData,
    /// Anything else (READMEs, tracker exports, guides).
    Other,
}

impl Role {
    /// How the report and the flags name the kind of document.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Runbook => "runbook",
            Role::Plan => "plan",
            Role::ReleaseNotes => "release notes",
            Role::Roster => "roster",
            Role::ScriptOrData => "script or data file",
            Role::Other => "document",
        }
    }

    /// Must the document have a rollback section (and how bad is it if not)?
    /// Release notes are judged only on a rollback section they have.
    pub(crate) fn needs_rollback(self) -> bool {
        matches!(self, Role::Runbook | Role::Plan)
    }
}

/// File names of documents that describe what changed, not how to ship it.
const CHANGELOG_NAMES: &[&str] = &[
    "changelog",
    "changes",
    "history",
    "news",
    "releases.",
    "release-notes",
    "release_notes",
    "releasenotes",
];

/// File names of documents that are neither plans nor notes.
const OTHER_NAMES: &[&str] = &[
    "readme",
    "license",
    "contributing",
    "code_of_conduct",
    "security",
    "authors",
];

/// Names of rosters; a title says so with the first two.
const ROSTER_WORDS: &[&str] = &["roster", "rota", "schedule", "contacts"];

const RUNBOOK_WORDS: &[&str] = &[
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
    "releasing",
    "release-process",
    "release_process",
];

/// The role of the document at `path` whose text is `text`.
pub(crate) fn role_of(path: &str, text: &str) -> Role {
    let lower = ascii_lowercase(path);
    let file = lower.rsplit('/').next().unwrap_or(&lower);
    let title = title_of(text);
    let title = ascii_lowercase(title);
    if lower.starts_with("source:") {
        return if is_release_body(text) {
            Role::ReleaseNotes
        } else {
            Role::Other
        };
    }
    if !markdownish(path) {
        return Role::ScriptOrData;
    }
    if CHANGELOG_NAMES.iter().any(|p| file.starts_with(p)) {
        return Role::ReleaseNotes;
    }
    if OTHER_NAMES.iter().any(|p| file.starts_with(p)) {
        return Role::Other;
    }
    // A roster lives beside the runbooks (`docs/oncall/roster.md`): it is
    // told apart before the runbook words, which `oncall` is one of.
    if ROSTER_WORDS.iter().any(|w| file.contains(w))
        || ROSTER_WORDS[..2].iter().any(|w| title.contains(w))
    {
        return Role::Roster;
    }
    // Told apart by content too: an on-call page that is only who is on
    // when (a rotation table, no steps to run) is a roster, whatever its name.
    let on_call = ["on-call", "oncall", "on call", "pager", "rotation"]
        .iter()
        .any(|w| file.contains(w) || title.contains(w));
    if on_call && is_rotation_only(text) {
        return Role::Roster;
    }
    if RUNBOOK_WORDS.iter().any(|w| lower.contains(w)) {
        return Role::Runbook;
    }
    // A checklist is a plan to work through: it should say how to back out.
    let plan_dir = lower.split('/').any(|seg| seg == "plans" || seg == "plan")
        || file.contains("checklist")
        || title.contains("checklist");
    if plan_dir || file.contains("plan") || title.starts_with("plan") || title.contains(" plan") {
        return Role::Plan;
    }
    if lower.contains("release") || title.contains("release notes") || title.contains("changelog") {
        return Role::ReleaseNotes;
    }
    if RUNBOOK_WORDS.iter().any(|w| title.contains(w)) {
        return Role::Runbook;
    }
    Role::Other
}

/// A rotation (a table whose header names weeks, shifts or primary and
/// secondary) and nothing to run: no numbered steps, no code, no commands.
fn is_rotation_only(text: &str) -> bool {
    let mut rotation = false;
    for line in crate::text::lines(text) {
        let t = line.trim_start();
        let numbered = t
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if numbered || t.starts_with("```") || t.starts_with("~~~") || t.starts_with('$') {
            return false;
        }
        if t.starts_with('|') {
            let lower = t.to_ascii_lowercase();
            rotation |= ["week", "shift", "primary", "secondary"]
                .iter()
                .any(|w| lower.contains(w));
        }
    }
    rotation
}

/// `gh release view` output (`tag:` and `--` before the body) or a body with
/// the headings release tooling writes.
fn is_release_body(text: &str) -> bool {
    let mut tag = false;
    for line in crate::text::lines(text).take(40) {
        let t = line.trim();
        if t.starts_with("tag:") {
            tag = true;
        }
        if (tag && t == "--")
            || t.eq_ignore_ascii_case("## what's changed")
            || t.eq_ignore_ascii_case("## what’s changed")
        {
            return true;
        }
    }
    false
}

/// The first non-empty line, without heading marks.
pub(crate) fn title_of(text: &str) -> &str {
    crate::text::lines(text)
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map_or("", |l| l.trim_start_matches('#').trim())
}

/// Markdown or plain text (a name without an extension counts: `source:` snapshots).
pub(crate) fn markdownish(path: &str) -> bool {
    // A snapshot's name is not a file name (`source:release-v2.8.0`).
    if path.starts_with("source:") {
        return true;
    }
    let file = path.rsplit('/').next().unwrap_or(path);
    match file.rsplit_once('.') {
        None => true,
        Some((_, ext)) => matches!(
            ascii_lowercase(ext).as_ref(),
            "md" | "markdown" | "mdx" | "txt" | "text" | "rst"
        ),
    }
}

/// The level of a setext (Markdown) or reStructuredText heading whose
/// underline is `next`: `===` 1, `---` 2, `~~~` or `^^^` 3. `line` is the
/// heading's text: not blank, not a list item or table row.
pub(crate) fn underline_level(line: &str, next: &str) -> Option<usize> {
    let t = line.trim();
    let u = next.trim();
    let first = u.bytes().next()?;
    if t.is_empty()
        || u.len() < 3
        || !u.bytes().all(|b| b == first)
        || t.starts_with(['|', '-', '*', '+', '#', '>'])
        || t.bytes().all(|b| b == first)
    {
        return None;
    }
    match first {
        b'=' => Some(1),
        b'-' => Some(2),
        b'~' | b'^' => Some(3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_on_call_page_that_is_only_a_rotation_is_a_roster() {
        let rotation = "# On-call\n\n| Week of | Primary | Secondary |\n|---|---|---|\n| 2026-11-30 | Amara | Jonas |\n";
        assert_eq!(role_of("docs/ops/on-call.md", rotation), Role::Roster);
        // Steps to run make it a runbook, whatever the table beside them.
        let guide = format!("{rotation}\n## First five minutes\n\n1. Acknowledge the page.\n");
        assert_eq!(role_of("docs/ops/on-call.md", &guide), Role::Runbook);
        // A rotation table in a deploy runbook does not make it a roster.
        let deploy = rotation.replace("# On-call", "# Deploy");
        assert_eq!(role_of("docs/runbooks/deploy.md", &deploy), Role::Runbook);
    }

    #[test]
    fn roles_come_from_names_then_titles() {
        let cases = [
            ("CHANGELOG.md", "# Changelog", Role::ReleaseNotes),
            ("docs/releases/2.4.0.md", "# 2.4.0", Role::ReleaseNotes),
            ("docs/releases/README.md", "# Releases", Role::Other),
            ("docs/runbooks/deploy.md", "# Deploy", Role::Runbook),
            ("docs/runbooks/on-call.md", "# On-call guide", Role::Runbook),
            ("docs/oncall/roster.md", "# On-call roster", Role::Roster),
            ("scripts/deploy.sh", "#!/bin/sh", Role::ScriptOrData),
            ("deploy/deploy.json", "{", Role::ScriptOrData),
            ("docs/plans/billing.md", "# Billing", Role::Plan),
            ("docs/release-4.2-plan.md", "# 4.2", Role::Plan),
            ("docs/notes.md", "# Plan: move billing", Role::Plan),
            ("source:jira", "Summary,Issue key", Role::Other),
            (
                "source:release-v1",
                "title:\tv1\ntag:\tv1\n--\n## What's Changed",
                Role::ReleaseNotes,
            ),
            ("rayon/RELEASES.md", "# Release 1.0", Role::ReleaseNotes),
            ("RELEASE_CHECKLIST.md", "# Release checklist", Role::Plan),
            ("docs/releasing.md", "# Releasing", Role::Runbook),
        ];
        for (path, text, role) in cases {
            assert_eq!(role_of(path, text), role, "{path}");
        }
    }
}
