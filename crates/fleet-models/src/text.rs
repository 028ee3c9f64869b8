//! Small text helpers shared by the analyst and the citation check, and
//! [`Cursor`], the matcher the analyst's rules are written with.
//!
//! The rules used to be regexes. Compiling them (literal extraction for two
//! dozen case-insensitive alternations, Thompson NFAs, lazy-DFA warm-up) cost
//! every `fleet` process ~12 ms before the first line was read, for a corpus
//! of a few kilobytes. Written out by hand they cost nothing to set up and
//! scan faster. Each hand-written rule keeps its regex in its doc comment as
//! the definition, and the tests in `builtin/spec.rs` check the two agree.
//!
//! The regexes ran in ASCII mode (`\b`, `\s`, `\w` and case folding over
//! ASCII only), so these helpers are ASCII too: a non-ASCII byte is neither
//! a word byte nor whitespace.

/// An ASCII word byte (`\w`): `[0-9A-Za-z_]`.
pub(crate) fn is_word_byte(b: u8) -> bool {
    WORD_BYTES[usize::from(b)]
}

/// [`is_word_byte`] as a table: the rules ask it of every byte they scan.
const WORD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric() || b == b'_' as usize;
        b += 1;
    }
    table
};

/// ASCII whitespace as `\s` reads it: space, `\t`, `\n`, `\v`, `\f`, `\r`
/// (`u8::is_ascii_whitespace` leaves out `\v`).
pub(crate) fn is_space_byte(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// An ASCII word boundary (`\b`) at byte offset `at` of `h`.
pub(crate) fn is_boundary(h: &[u8], at: usize) -> bool {
    let before = at > 0 && h.get(at - 1).copied().is_some_and(is_word_byte);
    let after = h.get(at).copied().is_some_and(is_word_byte);
    before != after
}

/// The ASCII words of `h` (runs of `\w`) that start at or after `from`, as
/// byte ranges. Words are found 64 bytes at a time from a bit mask of the
/// word bytes, which costs a branch per word rather than a couple per byte:
/// every rule looks at words, and this is most of what a scan costs.
pub(crate) fn words(h: &[u8], from: usize) -> Words<'_> {
    let mut words = Words {
        h,
        base: from,
        mask: 0,
        starts: 0,
    };
    words.load(from > 0 && h.get(from - 1).copied().is_some_and(is_word_byte));
    words
}

/// The first `f(start, end)` that is `Some`, over the words of `h` that
/// start at or after `from`: [`words`] without the iterator. The risk-claim
/// search looks at every word of a report, and a plain loop over each
/// chunk's bits costs half what the iterator does there.
#[inline]
pub(crate) fn find_word<T>(
    h: &[u8],
    from: usize,
    mut f: impl FnMut(usize, usize) -> Option<T>,
) -> Option<T> {
    let mut base = from;
    let mut after_word = from > 0 && h.get(from - 1).copied().is_some_and(is_word_byte);
    while base < h.len() {
        let mask = word_mask(&h[base..h.len().min(base + 64)]);
        let mut starts = mask & !((mask << 1) | u64::from(after_word));
        while starts != 0 {
            let bit = starts.trailing_zeros() as usize;
            starts &= starts - 1;
            let start = base + bit;
            // The word's bytes in this chunk, then any that run on past it.
            let mut end = start + (!(mask >> bit)).trailing_zeros() as usize;
            if end == base + 64 {
                end += h[end..].iter().take_while(|&&b| is_word_byte(b)).count();
            }
            if let Some(found) = f(start, end) {
                return Some(found);
            }
        }
        after_word = mask >> 63 == 1;
        base += 64;
    }
    None
}

/// See [`words`].
pub(crate) struct Words<'h> {
    h: &'h [u8],
    /// Where the current 64-byte chunk starts.
    base: usize,
    /// Bit `i`: `h[base + i]` is a word byte.
    mask: u64,
    /// The word starts in this chunk not yet returned.
    starts: u64,
}

impl Words<'_> {
    /// Reads the chunk at `base`; `after_word`: the byte before it is a word byte.
    #[inline]
    fn load(&mut self, after_word: bool) {
        let chunk = self.h.get(self.base..).unwrap_or_default();
        self.mask = word_mask(&chunk[..chunk.len().min(64)]);
        self.starts = self.mask & !((self.mask << 1) | u64::from(after_word));
    }
}

/// Bit `i`: `chunk[i]` is a word byte (`chunk` is at most 64 bytes long).
/// Eight bytes at a time, as [`word_bits`]: a byte at a time cost more
/// than everything else the words are used for.
#[inline]
pub(crate) fn word_mask(chunk: &[u8]) -> u64 {
    let mut eights = chunk.chunks_exact(8);
    let mut mask = 0;
    for (k, eight) in (&mut eights).enumerate() {
        let v = u64::from_le_bytes(eight.try_into().expect("eight bytes"));
        mask |= u64::from(word_bits(v)) << (8 * k);
    }
    let done = chunk.len() - eights.remainder().len();
    for (i, &b) in eights.remainder().iter().enumerate() {
        mask |= u64::from(is_word_byte(b)) << (done + i);
    }
    mask
}

/// Which of the eight bytes of `v` (little-endian) are word bytes, as the
/// low eight bits: bit `i` for byte `i`. Each byte is range-checked in its
/// own lane: with its high bit cleared, adding `0x80 - lo` sets the high
/// bit exactly when the byte is at least `lo`, and never carries into the
/// next byte.
#[inline]
fn word_bits(v: u64) -> u8 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = ONES * 0x80;
    let at_least = |x: u64, lo: u8| x + ONES * u64::from(0x80 - lo);
    let above = |x: u64, hi: u8| x + ONES * u64::from(0x7F - hi);
    let x = v & !HIGH;
    let digit = at_least(x, b'0') & !above(x, b'9');
    let folded = x | (ONES * 0x20);
    let letter = at_least(folded, b'a') & !above(folded, b'z');
    let not_underscore = x ^ (ONES * u64::from(b'_'));
    // High bit set where the byte is zero, i.e. was `_`.
    let underscore = !((not_underscore + ONES * 0x7F) | not_underscore);
    // Non-ASCII bytes (high bit set in `v`) are never word bytes.
    let word = (digit | letter | underscore) & !v & HIGH;
    // Gathers the eight high bits into the top byte, in order.
    ((word >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8
}

impl Iterator for Words<'_> {
    type Item = std::ops::Range<usize>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        while self.starts == 0 {
            if self.base.saturating_add(64) >= self.h.len() {
                return None;
            }
            let after_word = self.mask >> 63 == 1;
            self.base += 64;
            self.load(after_word);
        }
        let bit = self.starts.trailing_zeros() as usize;
        self.starts &= self.starts - 1;
        let start = self.base + bit;
        // The word's bytes in this chunk, then any that run on past it.
        let mut end = start + (!(self.mask >> bit)).trailing_zeros() as usize;
        if end == self.base + 64 {
            end += self.h[end..]
                .iter()
                .take_while(|&&b| is_word_byte(b))
                .count();
        }
        Some(start..end)
    }
}

/// The start offsets of the ASCII words in `h` at or after `from` (where
/// `\b\w` matches).
pub(crate) fn word_starts(h: &[u8], from: usize) -> impl Iterator<Item = usize> + '_ {
    words(h, from).map(|word| word.start)
}

/// The offsets in `h` where an ASCII letter, in either case, starts a word:
/// where a rule whose first word starts with `letter` can match.
pub(crate) fn word_starts_with(h: &[u8], letter: u8) -> impl Iterator<Item = usize> + '_ {
    memchr::memchr2_iter(letter.to_ascii_lowercase(), letter.to_ascii_uppercase(), h)
        .filter(move |&i| i == 0 || !is_word_byte(h[i - 1]))
}

/// A position in a haystack that a hand-written rule advances through,
/// one regex piece at a time. A method that matches moves past what it
/// matched and returns `true`; one that does not match leaves the position
/// where it was. Optional pieces are tried greedily, as the regex would:
/// callers try the alternatives in the regex's order where a later piece
/// could make an earlier choice fail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'h> {
    pub h: &'h [u8],
    pub at: usize,
}

impl<'h> Cursor<'h> {
    pub(crate) fn new(h: &'h [u8], at: usize) -> Self {
        Cursor { h, at }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.h.get(self.at).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.at >= self.h.len()
    }

    /// `\b` here.
    pub(crate) fn at_boundary(&self) -> bool {
        is_boundary(self.h, self.at)
    }

    /// As many bytes as match `pred` (`[...]*`); how many.
    pub(crate) fn skip_while(&mut self, pred: impl Fn(u8) -> bool) -> usize {
        let from = self.at;
        while self.peek().is_some_and(&pred) {
            self.at += 1;
        }
        self.at - from
    }

    /// `\s*`: how many whitespace bytes.
    pub(crate) fn spaces(&mut self) -> usize {
        self.skip_while(is_space_byte)
    }

    /// `\s+`.
    pub(crate) fn spaces1(&mut self) -> bool {
        self.spaces() > 0
    }

    /// `\s`: one whitespace byte.
    pub(crate) fn space(&mut self) -> bool {
        match self.peek() {
            Some(b) if is_space_byte(b) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    /// `[0-9]+`, all of them: how many.
    pub(crate) fn digits(&mut self) -> usize {
        self.skip_while(|b| b.is_ascii_digit())
    }

    /// One byte equal to `b`.
    pub(crate) fn byte(&mut self, b: u8) -> bool {
        self.byte_in(&[b])
    }

    /// One byte out of `set`.
    pub(crate) fn byte_in(&mut self, set: &[u8]) -> bool {
        match self.peek() {
            Some(b) if set.contains(&b) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    /// `lit`, byte for byte.
    pub(crate) fn lit(&mut self, lit: &str) -> bool {
        if self
            .h
            .get(self.at..)
            .is_some_and(|rest| rest.starts_with(lit.as_bytes()))
        {
            self.at += lit.len();
            true
        } else {
            false
        }
    }

    /// `lit` with ASCII letters in either case (`(?i)`).
    pub(crate) fn lit_ci(&mut self, lit: &str) -> bool {
        match self.h.get(self.at..self.at + lit.len()) {
            Some(here) if here.eq_ignore_ascii_case(lit.as_bytes()) => {
                self.at += lit.len();
                true
            }
            _ => false,
        }
    }

    /// The first of `alts` that matches here, ASCII case-insensitively
    /// (`(?i)(?:a|b|c)`).
    pub(crate) fn first_ci(&mut self, alts: &[&str]) -> bool {
        alts.iter().any(|alt| self.lit_ci(alt))
    }

    /// `(?:\*\*|__)?`: markdown bold markers, if there.
    pub(crate) fn emphasis(&mut self) -> bool {
        self.lit("**") || self.lit("__")
    }
}

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
#[cfg(test)]
pub(crate) fn code_span(text: &str) -> String {
    CodeSpan(text).to_string()
}

/// [`code_span`] as something to format: reports write one per finding,
/// straight into the document.
pub(crate) struct CodeSpan<'t>(pub &'t str);

impl std::fmt::Display for CodeSpan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.trim();
        // Most quotes hold no backtick: one `memchr` says so.
        if memchr::memchr(b'`', text.as_bytes()).is_none() {
            f.write_str("`")?;
            f.write_str(text)?;
            return f.write_str("`");
        }
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
        // Written piece by piece: `write!` costs more than the copying.
        if longest == 0 {
            f.write_str("`")?;
            f.write_str(text)?;
            return f.write_str("`");
        }
        let fence = "`".repeat(longest + 1);
        f.write_str(&fence)?;
        f.write_str(" ")?;
        f.write_str(text)?;
        f.write_str(" ")?;
        f.write_str(&fence)
    }
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

/// The lines of `text` as `str::lines` splits them (at `\n`, dropping a
/// `\r` before it), found with `memchr`: the rules walk every line.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = text.get(at..).filter(|rest| !rest.is_empty())?;
        let Some(end) = memchr::memchr(b'\n', rest.as_bytes()) else {
            at = text.len();
            return Some(rest);
        };
        at += end + 1;
        let line = &rest[..end];
        Some(line.strip_suffix('\r').unwrap_or(line))
    })
}

/// The lines of `text` holding a match, each once, as 1-based numbers and
/// byte ranges (without the line ending). `find(text, from)` returns the
/// leftmost match at or after `from` as a byte range, the way a regex's
/// `find_iter` walks: the next search starts where a match ended, so a
/// match running over a line break can hide one that starts on the next
/// line. The ranges also find the same lines in a copy with identical
/// offsets (an ASCII-lowercased one).
pub(crate) fn line_spans_matching(
    text: &str,
    find: impl Fn(&[u8], usize) -> Option<std::ops::Range<usize>>,
) -> Vec<(u64, std::ops::Range<usize>)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut line_no = 1u64;
    let mut counted_to = 0;
    let mut next_line_start = 0;
    let mut from = 0;
    while let Some(m) = find(bytes, from) {
        // Matches are never empty, so this always moves forward.
        from = m.end.max(m.start + 1);
        if m.start < next_line_start {
            continue;
        }
        line_no += memchr::memchr_iter(b'\n', &bytes[counted_to..m.start]).count() as u64;
        counted_to = m.start;
        let start = memchr::memrchr(b'\n', &bytes[..m.start]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &bytes[m.start..]).map_or(bytes.len(), |i| m.start + i);
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

/// `str::trim`, answered from the end bytes when they are ASCII and not
/// whitespace (nearly every line): the Unicode-aware trim costs more than
/// the rules that read the line.
#[inline]
pub(crate) fn trim(text: &str) -> &str {
    match text.as_bytes() {
        [first, .., last]
            if first.is_ascii()
                && last.is_ascii()
                && !is_space_byte(*first)
                && !is_space_byte(*last) =>
        {
            text
        }
        _ => text.trim(),
    }
}

/// `text` ASCII-lowercased, copied only when it has an uppercase letter:
/// paths and labels are nearly always lowercase already.
pub(crate) fn ascii_lowercase(text: &str) -> std::borrow::Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(text.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// FxHash (as rustc uses): the tables of cited paths and lines are small and
/// built per call from the step's own documents, so SipHash's resistance to
/// chosen keys buys nothing and costs more than the lookups themselves.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

/// A `HashMap`/`HashSet` hasher: see [`FxHasher`].
pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut eights = bytes.chunks_exact(8);
        for eight in &mut eights {
            self.add(u64::from_le_bytes(eight.try_into().expect("eight bytes")));
        }
        let rest = eights.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
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
        let x = |h: &[u8], from: usize| {
            memchr::memchr(b'x', &h[from.min(h.len())..]).map(|i| from + i..from + i + 1)
        };
        let lines: Vec<(u64, &str)> = line_spans_matching(text, x)
            .into_iter()
            .map(|(n, span)| (n, &text[span]))
            .collect();
        assert_eq!(lines, vec![(1, "a x x"), (3, "c x"), (4, "x")]);
        assert_eq!(line_spans_matching("", x), vec![]);
    }

    #[test]
    fn words_are_found_across_chunks() {
        let mut text = String::new();
        for i in 0..60 {
            text.push_str(&"w".repeat(i % 70));
            text.push_str(if i % 3 == 0 { " " } else { "-é." });
        }
        let h = text.as_bytes();
        for from in [0, 1, 5, 63, 64, 65, 127, 128, 200, h.len() - 1, h.len()] {
            let slow: Vec<_> = (from..h.len())
                .filter(|&i| is_word_byte(h[i]) && (i == 0 || !is_word_byte(h[i - 1])))
                .map(|i| i..i + h[i..].iter().take_while(|&&b| is_word_byte(b)).count())
                .collect();
            assert_eq!(words(h, from).collect::<Vec<_>>(), slow, "from {from}");
            let mut each = Vec::new();
            find_word(h, from, |start, end| {
                each.push(start..end);
                None::<()>
            });
            assert_eq!(each, slow, "from {from}");
        }
        assert_eq!(words(b"", 0).count(), 0);
        assert_eq!(
            words(&[b'a'; 64], 0).map(|w| w.end).collect::<Vec<_>>(),
            [64]
        );
        assert_eq!(
            words(&[b'a'; 65], 0).map(|w| w.end).collect::<Vec<_>>(),
            [65]
        );
    }

    #[test]
    fn word_bits_agree_with_the_table() {
        for b in 0..=255u8 {
            for lane in 0..8 {
                let mut bytes = [b'-'; 8];
                bytes[lane] = b;
                let bits = word_bits(u64::from_le_bytes(bytes));
                assert_eq!(
                    bits,
                    u8::from(is_word_byte(b)) << lane,
                    "{b:#x} in lane {lane}"
                );
            }
        }
        let mixed = b"a_Z9-\xff`{@[/:x";
        for len in 0..=mixed.len() {
            let slow = (0..len).fold(0, |m, i| m | u64::from(is_word_byte(mixed[i])) << i);
            assert_eq!(word_mask(&mixed[..len]), slow);
        }
    }

    #[test]
    fn lines_split_as_str_lines_does() {
        for text in [
            "",
            "a",
            "a\n",
            "a\nb",
            "\n\n",
            "a\r\nb\r\n",
            "a\r",
            "a\r\r\n",
            "\r\n",
            "x\ny\r",
        ] {
            assert_eq!(
                lines(text).collect::<Vec<_>>(),
                text.lines().collect::<Vec<_>>(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn trim_is_str_trim() {
        for text in [
            "",
            "a",
            " ",
            "ab",
            " a",
            "a ",
            "\u{b}a\u{c}",
            "a\u{85}",
            "\u{a0}a",
            "é",
            "a\u{1c}",
            "\tx y\r",
        ] {
            assert_eq!(trim(text), text.trim(), "{text:?}");
        }
    }

    #[test]
    fn excerpts_cut_on_char_boundaries() {
        assert_eq!(excerpt("ééééé", 3), "ééé…");
        assert_eq!(excerpt(" short ", 10), "short");
    }
}
