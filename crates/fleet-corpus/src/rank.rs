//! BM25 relevance of corpus chunks to a query, computed in one pass.
//!
//! The scores are those of the `bm25` crate's `Embedder` (fit to the chunks,
//! English, `k1` 1.2, `b` 0.75) and `Scorer`, which `pack` used directly: a
//! chunk's score is the sum over the query's tokens (repeats included) of
//! `idf × tf·(k1+1) / (tf + k1·(1 − b + b·len/avgdl))`. What differs is the
//! cost. The crate tokenizes every chunk twice (once to fit the average
//! length, once to embed), stems every word, and builds a hash set per
//! token of the whole corpus, when only the query's terms can score. Here
//! each chunk is split into words once; a word is no token if it is a stop
//! word (the crate's list) and one otherwise; only a word that could stem to
//! a query term (same first letter) goes through the crate's tokenizer, once
//! per distinct word; and per chunk only its length and the counts of the
//! query's terms are kept. Tests check the scores, the tokens and those
//! shortcuts against the crate.
//!
//! Splitting: the crate transliterates the text to ASCII (`deunicode`),
//! lowercases it and splits it into Unicode words (UAX #29). On ASCII text
//! those rules come down to [`ascii_words`], which is what runs here, on the
//! same transliteration.

use bm25::{DefaultTokenizer, Language, Tokenizer as _};
use deunicode::AsciiChars;
use rayon::prelude::*;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

const K1: f32 = 1.2;
const B: f32 = 0.75;
/// What the crate assumes when the corpus has no tokens at all.
const FALLBACK_AVGDL: f32 = 256.0;
/// A token that is none of the query's terms.
const OTHER: u32 = u32::MAX;
/// A range of `Words::tokens` holding one `OTHER`.
const ONE_OTHER: (u32, u32) = (0, 1);
/// An empty range of `Words::tokens`.
const NONE: (u32, u32) = (0, 0);
/// Pieces handed to a worker at a time.
const PIECES_PER_GRAB: usize = 64;

/// The query's terms and how often each occurs in it.
struct Query {
    /// Distinct terms (stems), index = term id.
    terms: HashMap<String, u32>,
    /// For each token of the query in order, its term id.
    tokens: Vec<u32>,
    /// Bytes some term starts with. The English Snowball stemmer only ever
    /// rewrites a word's ending (its regions R1 and R2 start after the
    /// first letter; the exceptions it maps whole, like `dying` → `die`,
    /// keep the first letter; a leading apostrophe, which it drops, never
    /// starts a word here), so a word whose first letter starts no term
    /// cannot stem to one.
    first_bytes: [bool; 256],
}

/// The words the crate's English tokenizer drops: its list (`stop_words`,
/// NLTK, the same features), transliterated as it does. Every other word is
/// one token, its stem.
struct StopWords {
    /// Those of up to 16 bytes, zero-padded into one integer (all of them,
    /// with the NLTK list).
    short: HashSet<u128, BuildHasherDefault<WordHasher>>,
    long: HashSet<Box<[u8]>, BuildHasherDefault<WordHasher>>,
}

impl StopWords {
    fn english() -> StopWords {
        let mut stop = StopWords {
            short: HashSet::default(),
            long: HashSet::default(),
        };
        for word in stop_words::get(stop_words::LANGUAGE::English) {
            let word = deunicode::deunicode_with_tofu_cow(word, "[?]");
            match padded_key(word.as_bytes()) {
                Some(key) => stop.short.insert(key),
                None => stop.long.insert(word.as_bytes().into()),
            };
        }
        stop
    }
}

/// A word of up to 16 bytes as one integer, zero-padded (no word has a NUL).
fn padded_key(word: &[u8]) -> Option<u128> {
    let mut padded = [0u8; 16];
    padded.get_mut(..word.len())?.copy_from_slice(word);
    Some(u128::from_le_bytes(padded))
}

/// BM25 scores of `pieces` for `query`, one per piece. A piece is one chunk
/// as rendered into the prompt, given as (header, body) and scored as their
/// concatenation; the header must end with a character that is not part of
/// a word, then `\n` (as `=== PATH (lines A-B) ===\n` does).
pub(crate) fn bm25_scores(pieces: &[(&str, &str)], query: &str) -> Vec<f32> {
    let tokenizer = DefaultTokenizer::new(Language::English);
    let query = parse_query(&tokenizer, query);
    let stop = StopWords::english();
    let terms = query.terms.len();
    let n = pieces.len();
    if n == 0 {
        return Vec::new();
    }

    // Per piece: its length in tokens and how often each term occurs in it.
    let mut lengths = vec![0u32; n];
    let mut counts = vec![0u32; n * terms];
    let next = AtomicUsize::new(0);
    let workers = rayon::current_num_threads().max(1);
    // Each worker keeps its own table of words seen, and takes the next
    // pieces as it goes, so a slow worker does not hold the others back.
    let parts: Vec<Vec<(usize, u32, Vec<u32>)>> = (0..workers)
        .into_par_iter()
        .map(|_| {
            let mut words = Words::new(&tokenizer, &query, &stop);
            let mut out = Vec::new();
            let mut tf = vec![0u32; terms];
            loop {
                let start = next.fetch_add(PIECES_PER_GRAB, Ordering::Relaxed);
                if start >= n {
                    break;
                }
                for (i, &(header, body)) in
                    pieces.iter().enumerate().skip(start).take(PIECES_PER_GRAB)
                {
                    tf.iter_mut().for_each(|c| *c = 0);
                    let length = words.count_piece(header, body, &mut tf);
                    out.push((i, length, tf.clone()));
                }
            }
            out
        })
        .collect();
    for (i, length, tf) in parts.into_iter().flatten() {
        lengths[i] = length;
        counts[i * terms..(i + 1) * terms].copy_from_slice(&tf);
    }

    // As the crate computes them, in f32, in the same order.
    let total: u64 = lengths.iter().map(|&l| u64::from(l)).sum();
    let avgdl = (total as f64 / n as f64) as f32;
    let avgdl = if avgdl <= 0.0 { FALLBACK_AVGDL } else { avgdl };
    let idf: Vec<f32> = (0..terms)
        .map(|t| {
            let containing = (0..n).filter(|&i| counts[i * terms + t] > 0).count() as f32;
            let numerator = n as f32 - containing + 0.5;
            let denominator = containing + 0.5;
            (1f32 + (numerator / denominator)).ln()
        })
        .collect();
    (0..n)
        .map(|i| {
            let tf = &counts[i * terms..(i + 1) * terms];
            if tf.iter().all(|&c| c == 0) {
                return 0.0;
            }
            let length = lengths[i] as f32;
            let mut score = 0f32;
            for &t in &query.tokens {
                let t = t as usize;
                let frequency = tf[t] as f32;
                let value = if tf[t] == 0 {
                    0.0
                } else {
                    frequency * (K1 + 1.0) / (frequency + K1 * (1.0 - B + B * (length / avgdl)))
                };
                score += idf[t] * value;
            }
            score
        })
        .collect()
}

fn parse_query(tokenizer: &DefaultTokenizer, query: &str) -> Query {
    let mut terms = HashMap::new();
    let tokens = tokenizer
        .tokenize(query)
        .into_iter()
        .map(|token| {
            let next = terms.len() as u32;
            *terms.entry(token).or_insert(next)
        })
        .collect();
    let mut first_bytes = [false; 256];
    for term in terms.keys() {
        if let Some(&b) = term.as_bytes().first() {
            first_bytes[usize::from(b)] = true;
        }
    }
    Query {
        terms,
        tokens,
        first_bytes,
    }
}

/// Turns text into tokens, remembering what each distinct word gave.
struct Words<'a> {
    tokenizer: &'a DefaultTokenizer,
    query: &'a Query,
    stop: &'a StopWords,
    /// Lowercased words of up to 16 bytes, zero-padded into one integer (a
    /// word has no NUL), → their tokens' term ids, a range of `tokens`.
    short: HashMap<u128, (u32, u32), BuildHasherDefault<WordHasher>>,
    /// Longer lowercased words, likewise.
    long: HashMap<Box<[u8]>, (u32, u32), BuildHasherDefault<WordHasher>>,
    tokens: Vec<u32>,
    lower: Vec<u8>,
}

impl<'a> Words<'a> {
    fn new(tokenizer: &'a DefaultTokenizer, query: &'a Query, stop: &'a StopWords) -> Words<'a> {
        // `ONE_OTHER`: one token, no term.
        let tokens = vec![OTHER];
        Words {
            tokenizer,
            query,
            stop,
            short: HashMap::default(),
            long: HashMap::default(),
            tokens,
            lower: Vec::new(),
        }
    }

    /// Adds the occurrences of each query term in `header + body` to `tf`;
    /// returns how many tokens it has.
    fn count_piece(&mut self, header: &str, body: &str, tf: &mut [u32]) -> u32 {
        let (header, body) = transliterate(header, body);
        self.count(&header, tf) + self.count(&body, tf)
    }

    /// [`Words::count_piece`] for text already transliterated to ASCII.
    fn count(&mut self, ascii: &str, tf: &mut [u32]) -> u32 {
        let mut length = 0u32;
        ascii_words(ascii.as_bytes(), |word| {
            let (start, end) = self.tokens_of(word);
            length += end - start;
            for &t in &self.tokens[start as usize..end as usize] {
                if t != OTHER {
                    tf[t as usize] += 1;
                }
            }
        });
        length
    }

    /// A word is no token if it is a stop word, else one: its stem, which
    /// can be a query term only if it starts with the same letter as one
    /// ([`Query::first_bytes`]); only such words go to the crate's
    /// tokenizer, once each.
    fn tokens_of(&mut self, word: &[u8]) -> (u32, u32) {
        if word.len() <= 16 {
            let mut padded = [0u8; 16];
            for (to, from) in padded.iter_mut().zip(word) {
                *to = from.to_ascii_lowercase();
            }
            let key = u128::from_le_bytes(padded);
            if !self.query.first_bytes[usize::from(padded[0])] {
                return if self.stop.short.contains(&key) {
                    NONE
                } else {
                    ONE_OTHER
                };
            }
            if let Some(&range) = self.short.get(&key) {
                return range;
            }
            let range = self.tokenize(&padded[..word.len()]);
            self.short.insert(key, range);
            return range;
        }
        self.lower.clear();
        self.lower.extend(word.iter().map(u8::to_ascii_lowercase));
        if !self.query.first_bytes[usize::from(self.lower[0])] {
            return if self.stop.long.contains(self.lower.as_slice()) {
                NONE
            } else {
                ONE_OTHER
            };
        }
        if let Some(&range) = self.long.get(self.lower.as_slice()) {
            return range;
        }
        let lower = std::mem::take(&mut self.lower);
        let range = self.tokenize(&lower);
        self.long.insert(lower.as_slice().into(), range);
        self.lower = lower;
        range
    }

    /// Runs the crate's tokenizer on one lowercased word.
    fn tokenize(&mut self, lower: &[u8]) -> (u32, u32) {
        // ASCII, so UTF-8.
        let text = String::from_utf8_lossy(lower);
        let start = self.tokens.len() as u32;
        for token in self.tokenizer.tokenize(&text) {
            let id = self.query.terms.get(&token).copied().unwrap_or(OTHER);
            self.tokens.push(id);
        }
        (start, self.tokens.len() as u32)
    }

    /// The tokens of `text` as strings, for tests: term ids become the
    /// query's terms and every other token becomes `*`.
    #[cfg(test)]
    fn tokens(&mut self, text: &str) -> Vec<String> {
        let (_, text) = transliterate("", text);
        let names: HashMap<u32, &str> = self
            .query
            .terms
            .iter()
            .map(|(term, &id)| (id, term.as_str()))
            .collect();
        let mut out = Vec::new();
        ascii_words(text.as_bytes(), |word| {
            let (start, end) = self.tokens_of(word);
            for &t in &self.tokens[start as usize..end as usize] {
                out.push(names.get(&t).map_or("*", |n| n).to_string());
            }
        });
        out
    }
}

/// `header + body` transliterated to ASCII as the crate's tokenizer does it
/// to the whole piece (`deunicode_with_tofu_cow`): text is kept as is up to
/// the first byte from 0x7F on, and from there on every character is
/// replaced by its transliteration, which drops control characters, line
/// breaks included. Done in two parts so the piece need not be rendered:
/// the header's words stay apart from the body's because the header ends in
/// a non-word character.
fn transliterate<'t>(header: &'t str, body: &'t str) -> (Cow<'t, str>, Cow<'t, str>) {
    const TOFU: &str = "[?]";
    // What `deunicode_with_tofu_cow` keeps as is, checked faster.
    let kept = |text: &str| text.is_ascii() && memchr::memchr(0x7f, text.as_bytes()).is_none();
    let header = deunicode::deunicode_with_tofu_cow(header, TOFU);
    if let Cow::Borrowed(_) = header {
        // All of the header kept as is: the body continues the same way.
        if kept(body) {
            return (header, Cow::Borrowed(body));
        }
        return (header, deunicode::deunicode_with_tofu_cow(body, TOFU));
    }
    let body: String = body.ascii_chars().map(|c| c.unwrap_or(TOFU)).collect();
    (header, Cow::Owned(body))
}

/// Word-break class of an ASCII byte (UAX #29 `Word_Break`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    /// `ALetter`: A-Z, a-z.
    Letter,
    /// `Numeric`: 0-9.
    Digit,
    /// `ExtendNumLet`: `_`.
    Connector,
    /// `MidLetter`: `:`.
    MidLetter,
    /// `MidNum`: `,` `;`.
    MidNum,
    /// `MidNumLet` and `Single_Quote`: `.` `'`.
    MidNumLet,
    Other,
}

fn class(b: u8) -> Class {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Digit,
        b'_' => Class::Connector,
        b':' => Class::MidLetter,
        b',' | b';' => Class::MidNum,
        b'.' | b'\'' => Class::MidNumLet,
        _ => Class::Other,
    }
}

/// Letters, digits and `_`.
static WORD_CHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    table
};

fn is_word_char(b: u8) -> bool {
    WORD_CHAR[usize::from(b)]
}

/// Calls `f` with every word of ASCII `text`, as `unicode_words` splits it:
/// runs of letters, digits and `_` (WB5, WB8–WB10, WB13a–b), joined across
/// one `:` `.` `'` between two letters (WB6–7) or one `,` `;` `.` `'`
/// between two digits (WB11–12); runs without a letter or digit are not
/// words. Any other byte (space, punctuation, line breaks, non-ASCII) ends a
/// word.
pub(crate) fn ascii_words(text: &[u8], mut f: impl FnMut(&[u8])) {
    let n = text.len();
    let mut i = 0;
    while i < n {
        if !is_word_char(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        loop {
            while i < n && is_word_char(text[i]) {
                i += 1;
            }
            // `text[i]` may join the run before it to the one after it.
            if i + 1 < n && i > start && is_word_char(text[i + 1]) {
                let joined = matches!(
                    (class(text[i - 1]), class(text[i]), class(text[i + 1])),
                    (
                        Class::Letter,
                        Class::MidLetter | Class::MidNumLet,
                        Class::Letter
                    ) | (Class::Digit, Class::MidNum | Class::MidNumLet, Class::Digit)
                );
                if joined {
                    i += 1;
                    continue;
                }
            }
            break;
        }
        let word = &text[start..i];
        if word.iter().any(u8::is_ascii_alphanumeric) {
            f(word);
        }
    }
}

/// A fast hash for words of the corpus (not adversarial input worth
/// SipHash's cost here): 64×64→128-bit multiplies folded, as in foldhash.
#[derive(Default)]
struct WordHasher {
    hash: u64,
}

const MIX_A: u64 = 0x243f_6a88_85a3_08d3;
const MIX_B: u64 = 0x1319_8a2e_0370_7344;

fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.hash = folded_multiply(self.hash ^ u64::from_le_bytes(word) ^ MIX_A, MIX_B);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.hash = folded_multiply(self.hash ^ u64::from_le_bytes(word) ^ MIX_A, MIX_B);
        }
    }

    fn write_usize(&mut self, i: usize) {
        self.hash = folded_multiply(self.hash ^ i as u64 ^ MIX_A, MIX_B);
    }

    fn write_u128(&mut self, i: u128) {
        self.hash = folded_multiply(self.hash ^ (i as u64) ^ MIX_A, ((i >> 64) as u64) ^ MIX_B);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bm25::{Embedder, EmbedderBuilder, Scorer};

    /// What `pack` computed before: the crate's embedder and scorer.
    fn crate_scores(texts: &[&str], query: &str) -> Vec<f32> {
        let embedder: Embedder =
            EmbedderBuilder::with_fit_to_corpus(Language::English, texts).build();
        let mut scorer = Scorer::<usize>::new();
        for (i, text) in texts.iter().enumerate() {
            scorer.upsert(&i, embedder.embed(text));
        }
        let mut scores = vec![0f32; texts.len()];
        for scored in scorer.matches(&embedder.embed(query)) {
            scores[scored.id] = scored.score;
        }
        scores
    }

    /// Random text over an alphabet heavy in the characters that decide
    /// word breaks, plus some non-ASCII.
    pub(super) fn random_text(rng: &mut fastrand::Rng, max_len: usize) -> String {
        let len = rng.usize(0..max_len);
        const PIECES: &[&str] = &[
            "a",
            "B",
            "z",
            "e",
            "s",
            "0",
            "7",
            "_",
            ":",
            ".",
            "'",
            ",",
            ";",
            " ",
            "\n",
            "\r",
            "\"",
            "-",
            "/",
            "(",
            "\t",
            "é",
            "ß",
            "—",
            "中",
            "🍕",
            "\u{7f}",
            "\u{b}",
            "x",
            "q",
            "ing",
            "roll",
            "back",
            "migration",
            "the",
            "and",
            "Rollback",
            "plan",
            "1.5",
            "it's",
            "don't",
            "a:b",
            "e.g.",
            "__init__",
            "::",
            "..",
            "x86_64",
            "’",
        ];
        (0..len)
            .map(|_| PIECES[rng.usize(..PIECES.len())])
            .collect()
    }

    #[test]
    fn words_and_tokens_match_the_crate_tokenizer() {
        let tokenizer = DefaultTokenizer::new(Language::English);
        let stop = StopWords::english();
        for query in [
            "rollback migration plan",
            "a e i o u 1 _ x86_64 it's and the sky",
        ] {
            let query = parse_query(&tokenizer, query);
            let mut words = Words::new(&tokenizer, &query, &stop);
            let mut rng = fastrand::Rng::with_seed(15);
            for round in 0..20_000 {
                let text = random_text(&mut rng, 40);
                let expected: Vec<String> = tokenizer
                    .tokenize(&text)
                    .into_iter()
                    .map(|t| {
                        if query.terms.contains_key(&t) {
                            t
                        } else {
                            "*".to_string()
                        }
                    })
                    .collect();
                assert_eq!(words.tokens(&text), expected, "round {round}: {text:?}");
            }
        }
    }

    #[test]
    fn scores_match_the_crate() {
        let mut rng = fastrand::Rng::with_seed(42);
        for round in 0..60 {
            let pieces: Vec<(String, String)> = (0..rng.usize(1..40))
                .map(|_| {
                    let path = random_text(&mut rng, 6).replace(['\n', '\r', '\u{b}'], "/");
                    let header = format!("=== {path} (lines 1-{}) ===\n", rng.u8(..));
                    let mut body = random_text(&mut rng, 200);
                    // As `render_piece` does.
                    if rng.bool() && !body.ends_with('\n') {
                        body.push('\n');
                    }
                    (header, body)
                })
                .collect();
            let rendered: Vec<String> = pieces.iter().map(|(h, b)| format!("{h}{b}")).collect();
            let refs: Vec<&str> = rendered.iter().map(String::as_str).collect();
            let parts: Vec<(&str, &str)> = pieces
                .iter()
                .map(|(h, b)| (h.as_str(), b.as_str()))
                .collect();
            let query = "Rollback the migration plan: rollback, e.g. 1.5 and x86_64";
            assert_eq!(
                bm25_scores(&parts, query),
                crate_scores(&refs, query),
                "round {round}: {pieces:?}"
            );
        }
    }

    #[test]
    fn stop_words_are_the_crates_and_other_words_one_token_with_their_first_letter() {
        let tokenizer = DefaultTokenizer::new(Language::English);
        let stop = StopWords::english();
        assert!(stop.long.is_empty());
        for word in stop_words::get(stop_words::LANGUAGE::English) {
            assert_eq!(tokenizer.tokenize(word), Vec::<String>::new(), "{word}");
        }
        let mut rng = fastrand::Rng::with_seed(7);
        let mut words = Vec::new();
        ascii_words(include_str!("rank.rs").as_bytes(), |w| {
            words.push(String::from_utf8(w.to_ascii_lowercase()).unwrap())
        });
        // Every exception the stemmer maps whole, and words made of the
        // endings it rewrites.
        words.extend(
            [
                "skis",
                "skies",
                "dying",
                "lying",
                "tying",
                "idly",
                "gently",
                "ugly",
                "early",
                "only",
                "singly",
                "news",
                "howe",
                "atlas",
                "cosmos",
                "bias",
                "andes",
                "inning",
                "outing",
                "canning",
                "proceed",
                "exceed",
                "succeed",
                "generate",
                "communism",
                "arsenal",
                "yes",
                "y",
                "ies",
                "sses",
                "ying",
                "eed",
                "ing",
                "ed",
                "ly",
                "yy",
            ]
            .map(String::from),
        );
        const ENDINGS: &[&str] = &[
            "a", "e", "i", "o", "u", "y", "s", "d", "l", "t", "n", "g", "ing", "ed", "ies",
            "ational", "tional", "izer", "ousli", "fulness", "ement", "ion", "ative", "'s", "1",
            "_",
        ];
        for _ in 0..20_000 {
            let word: String = (0..rng.usize(1..5))
                .map(|_| ENDINGS[rng.usize(..ENDINGS.len())])
                .collect();
            words.push(word);
        }
        for word in &words {
            // Only what the splitter yields: one whole word.
            let mut split = Vec::new();
            ascii_words(word.as_bytes(), |w| split.push(w.to_vec()));
            if split != [word.as_bytes()] {
                continue;
            }
            let tokens = tokenizer.tokenize(word);
            let key = padded_key(word.as_bytes());
            if key.is_some_and(|k| stop.short.contains(&k)) {
                assert!(tokens.is_empty(), "{word}");
                continue;
            }
            assert_eq!(tokens.len(), 1, "{word} -> {tokens:?}");
            assert_eq!(
                tokens[0].as_bytes()[0],
                word.as_bytes()[0],
                "{word} -> {tokens:?}"
            );
        }
    }

    #[test]
    fn splits_like_unicode_words() {
        let words = |text: &str| {
            let mut out = Vec::new();
            ascii_words(text.as_bytes(), |w| {
                out.push(String::from_utf8(w.to_vec()).unwrap())
            });
            out
        };
        assert_eq!(
            words("a:b a::b 1.5 1,5 a.1 it's __init__ ___ x86_64 e.g. end."),
            [
                "a:b", "a", "b", "1.5", "1,5", "a", "1", "it's", "__init__", "x86_64", "e.g", "end"
            ]
        );
    }
}
