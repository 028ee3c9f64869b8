//! Small text helpers shared by the analyst and the citation check.

use regex::Regex;
use regex::bytes::RegexSet;

/// Compiles a built-in pattern. `\b` becomes an ASCII word boundary: the
/// Unicode one makes the fast DFA engines give up on any non-ASCII line
/// (an em dash is enough), and these patterns only anchor ASCII words.
pub(crate) fn re(pattern: &str) -> Regex {
    // ASCII mode where the pattern allows it (it cannot where `.` or a negated
    // class could match half of a UTF-8 sequence): case folding and classes
    // over ASCII compile to a far smaller automaton, and every `fleet`
    // process compiles these afresh.
    if let Ok(regex) = regex::RegexBuilder::new(pattern).unicode(false).build() {
        return regex;
    }
    let ascii_boundaries = pattern.replace(r"\b", r"(?-u:\b)");
    match Regex::new(&ascii_boundaries) {
        Ok(regex) => regex,
        // The patterns are constants in this crate, compiled by every test run.
        Err(err) => panic!("built-in pattern {pattern:?} does not compile: {err}"),
    }
}

/// [`re`] for a set of patterns matched together in one pass, in ASCII
/// mode (`\s`, `\w`, case folding): the rules key on ASCII words, and a
/// Unicode-aware union of two dozen case-insensitive patterns makes a much
/// larger automaton that costs more per line than all the rules are worth.
pub(crate) fn re_set(patterns: &[&str]) -> RegexSet {
    let ascii = patterns.iter().map(|p| format!("(?-u){p}"));
    match regex::bytes::RegexSetBuilder::new(ascii)
        .dfa_size_limit(32 << 20)
        .build()
    {
        Ok(set) => set,
        Err(err) => panic!("built-in pattern set does not compile: {err}"),
    }
}

/// Declares line rules: one `Regex` static per rule (for captures and
/// positions) plus one `RegexSet` over all of them, so a line is matched
/// against every rule in a single pass and the individual regexes run only
/// where the set says they match. Per-call overhead, not scanning, is what
/// costs on short lines.
macro_rules! line_rules {
    ($set:ident, $index:ident, $patterns:ident { $($vis:vis $name:ident = $pat:expr;)* }) => {

        #[allow(dead_code)]
        const $patterns: &[&str] = &[$($pat),*];
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        enum $index { $($name),* }
        $(
            // Rules only ever tested through the set never build their own regex.
            #[allow(dead_code)]
            $vis static $name: std::sync::LazyLock<regex::Regex> =
                std::sync::LazyLock::new(|| crate::text::re($pat));
        )*
        static $set: std::sync::LazyLock<regex::bytes::RegexSet> =
            std::sync::LazyLock::new(|| crate::text::re_set(&[$($pat),*]));
    };
}
pub(crate) use line_rules;

/// A markdown ATX heading: `## Title` -> (2, "Title").
pub(crate) fn heading(line: &str) -> Option<(usize, &str)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.bytes().take_while(|&b| b == b'#').count();
    if level == 0 || level > 6 {
        return None;
    }
    let rest = &trimmed[level..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim()))
}

/// Renders `text` as a markdown code span that survives backticks inside it.
pub(crate) fn code_span(text: &str) -> String {
    let text = text.trim();
    let mut longest = 0;
    let mut run = 0;
    for b in text.bytes() {
        if b == b'`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    if longest == 0 {
        return format!("`{text}`");
    }
    let fence = "`".repeat(longest + 1);
    format!("{fence} {text} {fence}")
}

/// The line with code spans and double-quoted passages removed: what the
/// author says in their own words, not what they quote.
pub(crate) fn own_words(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    let mut copied_from = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'`' => {
                let run = bytes[i..].iter().take_while(|&&b| b == b'`').count();
                if let Some(end) = closing_backticks(bytes, i + run, run) {
                    out.push_str(&line[copied_from..i]);
                    i = end + run;
                    copied_from = i;
                } else {
                    i += run;
                }
            }
            b'"' => {
                if let Some(end) = line[i + 1..].find('"') {
                    out.push_str(&line[copied_from..i]);
                    i = i + 1 + end + 1;
                    copied_from = i;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&line[copied_from..]);
    out
}

fn closing_backticks(bytes: &[u8], from: usize, run: usize) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let len = bytes[i..].iter().take_while(|&&b| b == b'`').count();
            if len == run {
                return Some(i);
            }
            i += len;
        } else {
            i += 1;
        }
    }
    None
}

/// The lines of `text` holding a match of `regex`, each once, as 1-based
/// numbers and byte ranges (without the line ending). One pass of the regex
/// over the whole text instead of a call per line; the ranges also find the
/// same lines in a copy with identical offsets (an ASCII-lowercased one).
pub(crate) fn line_spans_matching(text: &str, regex: &Regex) -> Vec<(u64, std::ops::Range<usize>)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut line_no = 1u64;
    let mut counted_to = 0;
    let mut next_line_start = 0;
    for m in regex.find_iter(text) {
        if m.start() < next_line_start {
            continue;
        }
        line_no += memchr::memchr_iter(b'\n', &bytes[counted_to..m.start()]).count() as u64;
        counted_to = m.start();
        let start = memchr::memrchr(b'\n', &bytes[..m.start()]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &bytes[m.start()..]).map_or(bytes.len(), |i| m.start() + i);
        next_line_start = end + 1;
        let end_without_cr = if end > start && bytes[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        found.push((line_no, start..end_without_cr));
    }
    found
}

/// At most `max` characters of `text`, trimmed, with `…` when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
    }
}

/// Number of lines as `str::lines` counts them.
pub(crate) fn line_count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    let newlines = memchr::memchr_iter(b'\n', text.as_bytes()).count() as u64;
    if text.ends_with('\n') {
        newlines
    } else {
        newlines + 1
    }
}

/// The 1-based line `n` of `text`, without its line ending.
pub(crate) fn nth_line(text: &str, n: u64) -> Option<&str> {
    let index = usize::try_from(n.checked_sub(1)?).ok()?;
    text.lines().nth(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_are_atx_only() {
        assert_eq!(heading("## Rollback"), Some((2, "Rollback")));
        assert_eq!(heading("# Title #"), Some((1, "Title")));
        assert_eq!(heading("#hashtag"), None);
        assert_eq!(heading("    # code"), None);
        assert_eq!(heading("text"), None);
    }

    #[test]
    fn code_spans_survive_backticks() {
        assert_eq!(code_span("plain"), "`plain`");
        assert_eq!(code_span("run `x`"), "`` run `x` ``");
    }

    #[test]
    fn own_words_drop_quotes_and_code() {
        assert_eq!(own_words("we say `risk: low` here"), "we say  here");
        assert_eq!(own_words(r#"they said "low risk" ok"#), "they said  ok");
        assert_eq!(own_words("risk: low"), "risk: low");
        assert_eq!(own_words("unclosed ` tick"), "unclosed ` tick");
        assert_eq!(own_words("a `` b ` c `` d"), "a  d");
    }

    #[test]
    fn line_counts_match_lines() {
        for text in ["", "a", "a\n", "a\nb", "a\nb\n", "\n", "a\r\nb\r\n"] {
            assert_eq!(line_count(text), text.lines().count() as u64, "{text:?}");
        }
        assert_eq!(nth_line("a\nb\n", 2), Some("b"));
        assert_eq!(nth_line("a\nb\n", 3), None);
        assert_eq!(nth_line("a", 0), None);
    }

    #[test]
    fn lines_matching_numbers_each_line_once() {
        let text = "a x x\nb\nc x\r\nx";
        let regex = re("x");
        let lines: Vec<(u64, &str)> = line_spans_matching(text, &regex)
            .into_iter()
            .map(|(n, span)| (n, &text[span]))
            .collect();
        assert_eq!(lines, vec![(1, "a x x"), (3, "c x"), (4, "x")]);
        assert_eq!(line_spans_matching("", &regex), vec![]);
    }

    #[test]
    fn excerpts_cut_on_char_boundaries() {
        assert_eq!(excerpt("ééééé", 3), "ééé…");
        assert_eq!(excerpt(" short ", 10), "short");
    }
}
