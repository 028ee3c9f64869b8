//! Release notes read as release notes: which part of them is the release
//! being gated. A changelog (Keep a Changelog, `## [1.2.0] - date`) holds
//! one section per version; release notes of one version (`2.4.0.md`, a
//! `gh release view` snapshot) are one document per version. The gated
//! release is the one a run names (`ModelRequest::release`), else a
//! changelog's `Unreleased` section when it has content, else the newest
//! version. Everything older is history: summarised, never a finding.

use super::roles::{Role, underline_level};
use crate::text::heading;
use std::ops::Range;

/// A version number as numbers, trailing zeros dropped (`2.8` = `2.8.0`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version(Vec<u64>);

impl Version {
    fn new(mut parts: Vec<u64>) -> Version {
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Version(parts)
    }
}

/// The first `v?N.N[.N…]` in `s` (at least one dot, so dates and counts
/// are not versions): its numbers and its text.
pub(crate) fn version_in(s: &str) -> Option<(Version, &str)> {
    let h = s.as_bytes();
    let mut i = 0;
    while i < h.len() {
        let starts = h[i].is_ascii_digit()
            && (i == 0 || !(h[i - 1].is_ascii_alphanumeric() || h[i - 1] == b'.') || {
                // `v1.2`: a `v` that starts a word.
                (h[i - 1] | 0x20) == b'v' && (i < 2 || !h[i - 2].is_ascii_alphanumeric())
            });
        if !starts {
            i += 1;
            continue;
        }
        let mut parts = Vec::new();
        let mut j = i;
        loop {
            let from = j;
            while j < h.len() && h[j].is_ascii_digit() {
                j += 1;
            }
            // A run too long for a version part (a timestamp) is not one.
            let Ok(n) = s[from..j].parse::<u64>() else {
                break;
            };
            parts.push(n);
            if j + 1 < h.len() && h[j] == b'.' && h[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        // Dates (`2026-01-12`) have no dot; `10.5%` is a figure, not a version.
        if parts.len() >= 2 && h.get(j) != Some(&b'%') {
            return Some((Version::new(parts), &s[i..j]));
        }
        i = j.max(i + 1);
    }
    None
}

/// Whether `version` (a slice of `heading`) follows a preposition: the
/// heading is about something in, since or for that release.
fn refers_to(heading: &str, version: &str) -> bool {
    let offset = heading.find(version).unwrap_or(0);
    let before = heading[..offset]
        .trim_end()
        .trim_end_matches(['v', 'V'])
        .trim_end();
    let last = before
        .rsplit(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    [
        "in", "since", "from", "to", "for", "until", "before", "after", "than",
    ]
    .contains(&last.as_str())
}

/// What a version heading names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// `Unreleased`, maybe with the version it will become (`[Unreleased] - v5.0.0`).
    Unreleased(Option<Version>),
    Version(Version),
}

impl Key {
    fn of(text: &str) -> Option<Key> {
        let found = version_in(text);
        // "What's new in 4.2", "Upgrading from 4.1": a section that refers to
        // a version, not a version's section.
        if let Some((_, v)) = found
            && refers_to(text, v)
        {
            return None;
        }
        let version = found.map(|(v, _)| v);
        let lower = crate::text::ascii_lowercase(text);
        if [
            "unreleased",
            "development version",
            "in development",
            "upcoming",
        ]
        .iter()
        .any(|w| lower.contains(w))
        {
            return Some(Key::Unreleased(version));
        }
        version.map(Key::Version)
    }

    fn is(&self, want: &Version) -> bool {
        match self {
            Key::Unreleased(v) => v.as_ref() == Some(want),
            Key::Version(v) => v == want,
        }
    }

    fn newness(&self) -> Option<&Version> {
        match self {
            Key::Version(v) => Some(v),
            Key::Unreleased(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Section {
    /// 1-based lines from the heading to the next version heading.
    lines: Range<u64>,
    key: Key,
    label: String,
    has_content: bool,
}

/// A release-notes document as versions: a changelog's sections, or the
/// one version a single release's notes are for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Versions {
    sections: Vec<Section>,
    own: Option<(Version, String)>,
}

/// Reads the versions of a release-notes document: one pass over its
/// headings (and, for a `gh release view` snapshot, its `tag:` line).
/// Versions are sections at the shallowest heading level that names two
/// or more of them (`## [1.2.0]` in a changelog, `# pkg 1.2.0` in an R
/// NEWS.md); a single versioned title is the document's own version.
pub(crate) fn versions_of(path: &str, text: &str) -> Versions {
    let mut out = Versions::default();
    // (line, level, key) of every heading naming a version; which lines have content.
    let mut keyed: Vec<(u64, usize, Key, String)> = Vec::new();
    let mut content: Vec<u64> = Vec::new();
    let mut total = 0u64;
    let mut in_fence = false;
    let mut lines = crate::text::lines(text).enumerate().peekable();
    let mut underline = false;
    while let Some((index, line)) = lines.next() {
        let n = index as u64 + 1;
        total = n;
        let t = line.trim();
        if std::mem::take(&mut underline) {
            continue;
        }
        if t.starts_with("```") {
            in_fence = !in_fence;
        }
        if in_fence {
            continue;
        }
        if let Some(tag) = t.strip_prefix("tag:")
            && out.own.is_none()
            && let Some((v, text)) = version_in(tag)
        {
            out.own = Some((v, text.to_string()));
            continue;
        }
        let setext = lines
            .peek()
            .and_then(|(_, next)| underline_level(line, next))
            .map(|level| (level, t));
        underline = setext.is_some();
        match setext.or_else(|| heading(line)) {
            Some((level, head)) => {
                if let Some(key) = Key::of(head) {
                    let label = match &key {
                        Key::Unreleased(_) => "Unreleased".to_string(),
                        Key::Version(_) => version_in(head).map_or(head, |(_, t)| t).to_string(),
                    };
                    keyed.push((n, level, key, label));
                }
            }
            // Link definitions (`[1.0.0]: https://…`) are not content.
            None if !t.is_empty() && !t.starts_with('[') => content.push(n),
            None => {}
        }
    }
    let level = (1..=6).find(|&l| {
        let at_level = keyed.iter().filter(|k| k.1 == l).count();
        at_level >= 2 || (at_level == 1 && l >= 2)
    });
    if let Some(level) = level {
        let heads: Vec<&(u64, usize, Key, String)> =
            keyed.iter().filter(|k| k.1 == level).collect();
        for (i, (line, _, key, label)) in heads.iter().enumerate() {
            let end = heads.get(i + 1).map_or(total + 1, |next| next.0);
            out.sections.push(Section {
                lines: *line..end,
                key: key.clone(),
                label: label.clone(),
                has_content: content.iter().any(|c| (*line..end).contains(c)),
            });
        }
    } else if out.own.is_none() {
        out.own = keyed.first().and_then(|(_, _, key, label)| match key {
            Key::Version(v) => Some((v.clone(), label.clone())),
            Key::Unreleased(_) => None,
        });
    }
    if out.own.is_none() && out.sections.is_empty() {
        let file = path.rsplit(['/', ':']).next().unwrap_or(path);
        out.own = version_in(file).map(|(v, t)| (v, t.to_string()));
    }
    out
}

/// How one document stands against the gated release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Gate {
    /// The whole document is an older release.
    pub history: bool,
    /// Line ranges (1-based, end exclusive) that are older releases.
    pub history_lines: Vec<Range<u64>>,
    /// The release this document's findings belong to, as written.
    pub current: Option<String>,
    /// The older releases it holds, as written.
    pub older: Vec<String>,
}

impl Gate {
    pub(crate) fn is_history(&self, line: u64) -> bool {
        self.history || self.history_lines.iter().any(|r| r.contains(&line))
    }
}

/// Decides, for every document, what is the gated release and what is
/// history. `docs` are (role, versions) in corpus order; the answer is in
/// the same order.
pub(crate) fn gate(release: Option<&str>, docs: &[(Role, Option<Versions>)]) -> Vec<Gate> {
    let want = release.and_then(|r| version_in(r).map(|(v, _)| v));
    // Single-release documents: the named release, else the newest one.
    let singles = docs
        .iter()
        .filter_map(|(_, v)| v.as_ref().and_then(|v| v.own.as_ref()));
    let chosen = match &want {
        Some(w)
            if docs.iter().any(|(_, v)| {
                v.as_ref()
                    .and_then(|v| v.own.as_ref())
                    .is_some_and(|(own, _)| own == w)
            }) =>
        {
            Some(w.clone())
        }
        _ => singles.map(|(v, _)| v).max().cloned(),
    };
    docs.iter()
        .map(|(role, versions)| {
            let Some(versions) = versions.as_ref().filter(|_| *role == Role::ReleaseNotes) else {
                return Gate::default();
            };
            if !versions.sections.is_empty() {
                return gate_sections(&versions.sections, want.as_ref());
            }
            match &versions.own {
                Some((v, text)) if Some(v) != chosen.as_ref() => Gate {
                    history: true,
                    older: vec![text.clone()],
                    ..Gate::default()
                },
                Some((_, text)) => Gate {
                    current: Some(text.clone()),
                    ..Gate::default()
                },
                None => Gate::default(),
            }
        })
        .collect()
}

fn gate_sections(sections: &[Section], want: Option<&Version>) -> Gate {
    let named = want.and_then(|w| sections.iter().position(|s| s.key.is(w)));
    let unreleased = || {
        sections
            .iter()
            .position(|s| matches!(s.key, Key::Unreleased(_)) && s.has_content)
    };
    let newest = || {
        sections
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.key.newness().map(|v| (v, i)))
            .max()
            .map(|(_, i)| i)
    };
    let current = named.or_else(unreleased).or_else(newest);
    let mut gate = Gate::default();
    for (i, s) in sections.iter().enumerate() {
        if Some(i) == current {
            gate.current = Some(s.label.clone());
        } else {
            gate.history_lines.push(s.lines.clone());
            if s.has_content {
                gate.older.push(s.label.clone());
            }
        }
    }
    gate
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_heading_that_refers_to_a_version_is_not_its_section() {
        for (heading, versioned) in [
            ("What's new in 4.2", false),
            ("Backwards incompatible changes in 4.2", false),
            ("Upgrading from v4.1", false),
            ("Clinic 4.2 release notes", true),
            ("[1.2.0] - 2024-01-02", true),
            ("Version 1.2.0", true),
            ("pkg 1.2.0", true),
        ] {
            assert_eq!(Key::of(heading).is_some(), versioned, "{heading}");
        }
    }

    use super::*;

    #[test]
    fn versions_are_dotted_numbers() {
        let v = |s: &str| version_in(s).map(|(v, t)| (v.0, t.to_string()));
        assert_eq!(
            v("## [3.4.1] - 2026-01-12"),
            Some((vec![3, 4, 1], "3.4.1".into()))
        );
        assert_eq!(v("v2.8.0"), Some((vec![2, 8], "2.8.0".into())));
        assert_eq!(v("Released 2026-01-14"), None);
        assert_eq!(v("up 10.5% this week"), None);
        assert_eq!(v("ipv4.2"), None);
        assert_eq!(v("Shop 7.2 is out"), Some((vec![7, 2], "7.2".into())));
    }

    const CHANGELOG: &str = "# Changelog\n\n## [Unreleased]\n\n### Added\n- a\n\n\
        ## [1.1.0] - 2026-01-02\n### Fixed\n- b\n\n## [1.0.0] - 2025-12-01\n- c\n[1.1.0]: https://x\n";

    #[test]
    fn the_gated_section_is_named_or_unreleased_or_newest() {
        let docs = [(
            Role::ReleaseNotes,
            Some(versions_of("CHANGELOG.md", CHANGELOG)),
        )];
        let g = &gate(None, &docs)[0];
        assert_eq!(g.current.as_deref(), Some("Unreleased"));
        assert_eq!(g.history_lines, vec![8..12, 12..15]);
        assert!(g.is_history(14) && !g.is_history(6));
        let g = &gate(Some("v1.0"), &docs)[0];
        assert_eq!(g.current.as_deref(), Some("1.0.0"));
        let empty = "# Changelog\n## [Unreleased]\n## [2.0.0]\n- x\n## [1.0.0]\n- y\n";
        let docs = [(Role::ReleaseNotes, Some(versions_of("CHANGELOG.md", empty)))];
        assert_eq!(gate(None, &docs)[0].history_lines, vec![2..3, 5..7]);
    }

    #[test]
    fn underlined_headings_are_versions_too() {
        let rst = "Changes\n=======\n\nVersion 2.1.0\n-------------\n\nUnreleased\n\n- a\n\n\
                   Version 2.0.0\n-------------\n\n- b\n";
        let docs = [(Role::ReleaseNotes, Some(versions_of("CHANGES.rst", rst)))];
        let g = &gate(None, &docs)[0];
        assert_eq!(g.current.as_deref(), Some("2.1.0"));
        assert_eq!(g.history_lines, vec![11..15]);
    }

    #[test]
    fn single_release_notes_older_than_the_gated_one_are_history() {
        let docs = [
            (
                Role::ReleaseNotes,
                Some(versions_of("docs/releases/7.1.0.md", "# Shop 7.1.0\n")),
            ),
            (
                Role::ReleaseNotes,
                Some(versions_of("docs/releases/7.2.0.md", "# Shop 7.2.0\n")),
            ),
            (
                Role::ReleaseNotes,
                Some(versions_of(
                    "source:rel",
                    "title:\tv7.0.1\ntag:\tv7.0.1\n--\n",
                )),
            ),
            (Role::Runbook, None),
        ];
        let gates = gate(None, &docs);
        let history: Vec<bool> = gates.iter().map(|g| g.history).collect();
        assert_eq!(history, vec![true, false, true, false]);
        let gates = gate(Some("7.1"), &docs);
        assert!(!gates[0].history && gates[1].history);
    }
}
