//! `path:line` citations: finding them in a document and checking each one
//! points at a line that exists in what the step actually read.

use crate::UpstreamDoc;
use crate::text::{Cursor, FxBuild, line_count, nth_line};
use fleet_core::flags::{Citation, Flag, FlagSeverity};
use fleet_corpus::Corpus;
use std::collections::HashMap;
use std::ops::Range;

/// A byte of a path (`[A-Za-z0-9_.@+\-]`).
fn is_path_byte(b: u8) -> bool {
    PATH_BYTES[usize::from(b)]
}

/// [`is_path_byte`] as a table: it is asked of nearly every byte of a document.
const PATH_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'@' | b'+' | b'-');
        b += 1;
    }
    table
};

/// `:([0-9]{1,9})(?:-([0-9]{1,9}))?` after a path: where the line numbers end.
fn line_numbers(mut c: Cursor<'_>) -> Option<usize> {
    let digits = |c: &Cursor<'_>| {
        c.h[c.at..]
            .iter()
            .take(9)
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    if !c.byte(b':') {
        return None;
    }
    let first = digits(&c);
    if first == 0 {
        return None;
    }
    c.at += first;
    let mut range = c;
    if range.byte(b'-') {
        let last = digits(&range);
        if last > 0 {
            c.at = range.at + last;
        }
    }
    Some(c.at)
}

/// `source:[A-Za-z0-9_.\-]+` then the line numbers: where a citation of a
/// command source starting at `start` ends.
fn source_citation_at(h: &[u8], start: usize) -> Option<usize> {
    if h.get(start) != Some(&b's') {
        return None;
    }
    let mut c = Cursor::new(h, start);
    // The name is taken whole: a shorter one would leave a name byte where `:` must be.
    let named = c.lit("source:") && c.skip_while(|b| is_path_byte(b) && b != b'@' && b != b'+') > 0;
    if named { line_numbers(c) } else { None }
}

/// Every citation-shaped span of `h` (`source:NAME:12`, `docs/x.md:12`,
/// `x.sql:3-9`, `src/a.rs:12:5` with the column left out), left to right,
/// as a regex's `find_iter` would walk
/// `(source:[A-Za-z0-9_.\-]+|[A-Za-z0-9_.@+\-]+(?:/[A-Za-z0-9_.@+\-]+)*):([0-9]{1,9})(?:-([0-9]{1,9}))?`.
///
/// Every match has a `:` and a digit where its line number starts, so the
/// search goes from one such colon to the next and reads back from it to
/// where the match starts: the leftmost byte its path could start from.
pub(crate) fn citation_spans(h: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    // Matches start at or after `from`; colons are looked for from `search`.
    let (mut from, mut search) = (0, 0);
    std::iter::from_fn(move || {
        while let Some(i) = h.get(search..).and_then(|rest| memchr::memchr(b':', rest)) {
            let colon = search + i;
            search = colon + 1;
            if !h.get(colon + 1).is_some_and(u8::is_ascii_digit) {
                continue;
            }
            let found = citation_ending_at(h, from, colon);
            if let Some(span) = &found {
                (from, search) = (span.end, span.end);
                return found;
            }
        }
        from = h.len();
        None
    })
}

/// The match, starting at or after `from`, whose line numbers follow the
/// `:` at `colon` (a digit follows it), if there is one.
fn citation_ending_at(h: &[u8], from: usize, colon: usize) -> Option<Range<usize>> {
    // `source:NAME:` before the colon: the name is a whole run of name bytes.
    let is_name_byte = |b: u8| is_path_byte(b) && b != b'@' && b != b'+';
    let mut name = colon;
    while name > from && is_name_byte(h[name - 1]) {
        name -= 1;
    }
    if name < colon
        && name >= from + 7
        && &h[name - 7..name] == b"source:"
        && let Some(end) = source_citation_at(h, name - 7)
    {
        return Some(name - 7..end);
    }
    // A path before the colon: path bytes, and `/` with one after it. Its
    // first byte is the leftmost start whose path runs to this colon.
    let mut start = colon;
    while start > from
        && (is_path_byte(h[start - 1])
            || (h[start - 1] == b'/' && start < colon && is_path_byte(h[start])))
    {
        start -= 1;
    }
    if h[start] == b'/' {
        start += 1;
    }
    if start >= colon {
        return None;
    }
    // At the same start `source:` comes first (a path `source` ending here).
    let end = source_citation_at(h, start).or_else(|| line_numbers(Cursor::new(h, colon)))?;
    Some(start..end)
}

/// Extensions that make a bare `name.ext:12` a file citation rather than a
/// host and port (`db.internal:5432`) or a time.
const FILE_EXTENSIONS: &[&str] = &[
    "md",
    "markdown",
    "txt",
    "rst",
    "adoc",
    "sql",
    "rb",
    "py",
    "rs",
    "go",
    "js",
    "mjs",
    "ts",
    "tsx",
    "jsx",
    "java",
    "kt",
    "yaml",
    "yml",
    "json",
    "toml",
    "ini",
    "cfg",
    "conf",
    "sh",
    "html",
    "csv",
    "log",
    "xml",
    "proto",
    "c",
    "h",
    "cc",
    "cpp",
    "hpp",
    "cs",
    "php",
    "swift",
    "scala",
    "ex",
    "exs",
    "erl",
    "tf",
    "hcl",
    "lock",
    "env",
    "properties",
    "gradle",
];

/// One citation as written in a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CitedRef<'t> {
    /// As written, e.g. `docs/x.md:12-14`.
    pub written: &'t str,
    /// Normalised path (no leading `./`).
    pub path: &'t str,
    pub first: u64,
    pub last: u64,
    /// 1-based line of the citing document the citation sits on.
    pub at_line: u64,
}

/// Every citation-shaped reference in `text`, in order. `known` decides
/// whether a bare `name:12` without a directory or file extension counts
/// (it does when it names a document the step read).
pub(crate) fn find_citations<'t>(text: &'t str, known: &dyn Fn(&str) -> bool) -> Vec<CitedRef<'t>> {
    let mut found = Vec::new();
    let mut line_no: u64 = 1;
    let mut counted_to = 0;
    for span in citation_spans(text.as_bytes()) {
        let whole = &text[span.clone()];
        // A path glued to what precedes it (`https://host/x.md:1`, `a:b.md:1`) is not a citation.
        if let Some(prev) = text[..span.start].chars().next_back()
            && (prev.is_alphanumeric() || matches!(prev, '/' | ':' | '@' | '.' | '-' | '_'))
        {
            continue;
        }
        if let Some(next) = text[span.end..].chars().next()
            && (next.is_alphanumeric() || next == '_')
        {
            continue;
        }
        // The match is `path:N` or `path:N-M`; the path itself may hold a colon (`source:x`).
        let Some((path, lines)) = whole.rsplit_once(':') else {
            continue;
        };
        // `trim_start_matches("./")`, without building a substring searcher per citation.
        let mut path = path;
        while let Some(rest) = path.strip_prefix("./") {
            path = rest;
        }
        if !looks_like_document(path, known) {
            continue;
        }
        let (first, last) = match lines.split_once('-') {
            Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
            None => (lines.parse::<u64>(), lines.parse::<u64>()),
        };
        let (Ok(first), Ok(last)) = (first, last) else {
            continue;
        };
        line_no +=
            memchr::memchr_iter(b'\n', &text.as_bytes()[counted_to..span.start]).count() as u64;
        counted_to = span.start;
        found.push(CitedRef {
            written: whole,
            path,
            first,
            last,
            at_line: line_no,
        });
    }
    found
}

fn looks_like_document(path: &str, known: &dyn Fn(&str) -> bool) -> bool {
    if path.starts_with("source:") || known(path) {
        return true;
    }
    if !path.bytes().any(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    if path.contains('/') {
        return true;
    }
    match path.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => FILE_EXTENSIONS
            .iter()
            .any(|known_ext| ext.eq_ignore_ascii_case(known_ext)),
        _ => false,
    }
}

/// The documents a citation may point into, with their line counts.
pub(crate) struct CitationIndex<'c> {
    lines: HashMap<&'c str, (u64, &'c str), FxBuild>,
}

impl<'c> CitationIndex<'c> {
    pub(crate) fn new(corpus: &'c Corpus, upstream: &'c [UpstreamDoc]) -> Self {
        let mut lines = HashMap::with_capacity_and_hasher(
            corpus.documents.len() + upstream.len(),
            FxBuild::default(),
        );
        for doc in &corpus.documents {
            lines.insert(
                doc.path.as_str(),
                (line_count(&doc.text), doc.text.as_str()),
            );
        }
        for doc in upstream {
            lines.insert(
                doc.path.as_str(),
                (line_count(&doc.text), doc.text.as_str()),
            );
        }
        CitationIndex { lines }
    }

    pub(crate) fn knows(&self, path: &str) -> bool {
        self.lines.contains_key(path)
    }

    /// The cited line's text, when the citation is good.
    pub(crate) fn line(&self, path: &str, line: u64) -> Option<&'c str> {
        let (count, text) = self.lines.get(path)?;
        if line == 0 || line > *count {
            return None;
        }
        nth_line(text, line)
    }

    /// Why `cited` does not point at an existing line, or `None` when it does.
    pub(crate) fn problem(&self, cited: &CitedRef<'_>) -> Option<String> {
        let Some((count, _)) = self.lines.get(cited.path) else {
            return Some(format!(
                "citation {} points at `{}`, which is not a document this step read",
                cited.written, cited.path
            ));
        };
        let count = *count;
        if cited.first == 0 || cited.last < cited.first || cited.last > count {
            return Some(format!(
                "citation {} points past the end of `{}` ({count} lines)",
                cited.written, cited.path
            ));
        }
        None
    }

    /// Every bad citation in `text`, one per distinct written form.
    pub(crate) fn bad_citations<'t>(&self, text: &'t str) -> Vec<(CitedRef<'t>, String)> {
        let mut seen: Vec<&str> = Vec::new();
        let mut bad = Vec::new();
        for cited in find_citations(text, &|p| self.knows(p)) {
            if seen.contains(&cited.written) {
                continue;
            }
            seen.push(cited.written);
            if let Some(problem) = self.problem(&cited) {
                bad.push((cited, problem));
            }
        }
        bad
    }
}

/// The corpus documents `text` cites: as `path:line` (found exactly as
/// [`check_citations`] finds them), or by naming the document's path as a
/// whole word. What `evidence.keep_corpus: cited` keeps.
pub fn cited_paths(text: &str, corpus: &Corpus) -> std::collections::BTreeSet<String> {
    let known: std::collections::BTreeSet<&str> =
        corpus.documents.iter().map(|d| d.path.as_str()).collect();
    let mut out: std::collections::BTreeSet<String> =
        find_citations(text, &|p: &str| known.contains(p))
            .into_iter()
            .filter(|c| known.contains(c.path))
            .map(|c| c.path.to_owned())
            .collect();
    for path in &known {
        if !out.contains(*path) && names_path(text, path) {
            out.insert((*path).to_owned());
        }
    }
    out
}

/// Whether `path` occurs in `text` not glued to a longer path on either side.
fn names_path(text: &str, path: &str) -> bool {
    let h = text.as_bytes();
    memchr::memmem::find_iter(h, path.as_bytes()).any(|at| {
        let end = at + path.len();
        let before = at.checked_sub(1).map(|i| h[i]);
        let after = h.get(end).copied();
        !before.is_some_and(|b| is_path_byte(b) || b == b'/')
            && !after.is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'-'))
    })
}

/// Verifies every `path:line` citation in `text` points at an existing line
/// of a corpus document or an upstream document (paths as in the manifest,
/// e.g. `docs/runbooks/deploy.md:42`; `source:NAME:12` for command sources).
/// Each unverifiable citation becomes a medium flag (ids `C1`, `C2`, ...)
/// whose claim names it. Use [`check_citations_in`] to get evidence pointing
/// at where the citing document makes the bad reference.
pub fn check_citations(text: &str, corpus: &Corpus, upstream: &[UpstreamDoc]) -> Vec<Flag> {
    citation_flags(None, text, corpus, upstream)
}

/// [`check_citations`] for a document stored at `doc_path`: each flag's
/// evidence cites the line of that document holding the bad citation.
pub fn check_citations_in(
    doc_path: &str,
    text: &str,
    corpus: &Corpus,
    upstream: &[UpstreamDoc],
) -> Vec<Flag> {
    citation_flags(Some(doc_path), text, corpus, upstream)
}

fn citation_flags(
    doc_path: Option<&str>,
    text: &str,
    corpus: &Corpus,
    upstream: &[UpstreamDoc],
) -> Vec<Flag> {
    let index = CitationIndex::new(corpus, upstream);
    index
        .bad_citations(text)
        .into_iter()
        .enumerate()
        .map(|(i, (cited, problem))| Flag {
            id: format!("C{}", i + 1),
            severity: FlagSeverity::Medium,
            claim: problem,
            evidence: doc_path
                .map(|path| Citation {
                    path: path.to_string(),
                    line: cited.at_line,
                    quote: nth_line(text, cited.at_line)
                        .unwrap_or("")
                        .trim()
                        .to_string(),
                })
                .into_iter()
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_corpus::Document;

    fn corpus() -> Corpus {
        Corpus {
            documents: vec![
                Document {
                    path: "docs/runbooks/deploy.md".into(),
                    text: "# Deploy\n\n## Rollback\nredeploy\n".into(),
                },
                Document {
                    path: "source:open-bugs".into(),
                    text: "REG-1 open\nREG-2 open\n".into(),
                },
                Document {
                    path: "NOTES".into(),
                    text: "one\n".into(),
                },
            ],
            manifest: Default::default(),
        }
    }

    fn upstream() -> Vec<UpstreamDoc> {
        vec![UpstreamDoc {
            step: "readiness".into(),
            kind: fleet_core::config::StepKind::Report,
            path: "readiness.md".into(),
            text: "a\nb\nc\n".into(),
            flags: None,
        }]
    }

    #[test]
    fn cited_paths_are_citations_and_named_documents() {
        let c = corpus();
        let cited = super::cited_paths("See docs/runbooks/deploy.md:3 and the NOTES.", &c);
        assert_eq!(
            cited.into_iter().collect::<Vec<_>>(),
            ["NOTES", "docs/runbooks/deploy.md"]
        );
        let glued = super::cited_paths("see xdocs/runbooks/deploy.md.bak and NOTES2", &c);
        assert!(glued.is_empty(), "{glued:?}");
        let source = super::cited_paths("per source:open-bugs:2", &c);
        assert!(source.contains("source:open-bugs"), "{source:?}");
    }

    #[test]
    fn good_citations_pass() {
        let text = "See docs/runbooks/deploy.md:3, `docs/runbooks/deploy.md:1-4`, \
                    source:open-bugs:2, ./docs/runbooks/deploy.md:4, readiness.md:3, NOTES:1 \
                    and docs/runbooks/deploy.md:2:7.";
        assert_eq!(check_citations(text, &corpus(), &upstream()), vec![]);
    }

    #[test]
    fn bad_citations_become_medium_flags_naming_them() {
        let text = "ok docs/runbooks/deploy.md:2\n\
                    past the end docs/runbooks/deploy.md:5\n\
                    missing docs/runbooks/rollback.md:1 and source:nope:1\n\
                    zero readiness.md:0, backwards docs/runbooks/deploy.md:3-2, range docs/runbooks/deploy.md:2-9\n";
        let flags = check_citations(text, &corpus(), &upstream());
        let claims: Vec<&str> = flags.iter().map(|f| f.claim.as_str()).collect();
        assert_eq!(flags.len(), 6, "{claims:#?}");
        assert!(claims[0].contains("docs/runbooks/deploy.md:5") && claims[0].contains("4 lines"));
        assert!(
            claims[1].contains("docs/runbooks/rollback.md:1")
                && claims[1].contains("not a document")
        );
        assert!(claims[2].contains("source:nope:1"));
        assert!(claims[3].contains("readiness.md:0"));
        assert!(claims[4].contains("docs/runbooks/deploy.md:3-2"));
        assert!(claims[5].contains("docs/runbooks/deploy.md:2-9"));
        assert!(flags.iter().all(|f| f.severity == FlagSeverity::Medium));
        assert_eq!(flags[0].id, "C1");
        assert_eq!(flags[5].id, "C6");
    }

    #[test]
    fn evidence_points_at_the_citing_line() {
        let text = "intro\nthe plan is at docs/runbooks/deploy.md:40\n";
        let flags = check_citations_in("readiness.md", text, &corpus(), &upstream());
        assert_eq!(flags.len(), 1);
        assert_eq!(
            flags[0].evidence,
            vec![Citation {
                path: "readiness.md".into(),
                line: 2,
                quote: "the plan is at docs/runbooks/deploy.md:40".into()
            }]
        );
    }

    #[test]
    fn hosts_times_urls_and_versions_are_not_citations() {
        let text = "db at db.internal:5432 and localhost:8080, at 10:30, see \
                    https://example.com/docs/x.md:12, version 2.4.0:1, key:value, ratio 1:2";
        let found = find_citations(text, &|_| false);
        assert_eq!(found, vec![], "{found:#?}");
    }

    #[test]
    fn repeated_bad_citations_are_reported_once() {
        let text = "x/y.md:1 and again x/y.md:1\n";
        assert_eq!(check_citations(text, &corpus(), &[]).len(), 1);
    }
}
