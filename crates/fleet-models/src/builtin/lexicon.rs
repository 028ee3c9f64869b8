//! Whole-word phrases: most rules look for one of a list of words or short
//! phrases, as `\b(?:a|b|c)\b` would. A [`Lexicon`] holds the phrases of
//! several rules and finds them all in one pass over a line's words, with
//! a table lookup per word: no automaton to build, nothing to warm up.
//!
//! Phrases are written compactly with brace groups, as a shell expands them:
//! `"known issue{,s}|crash{,es}"` is `known issue`, `known issues`, `crash`,
//! `crashes`. Every phrase starts and ends with a word character, so a match
//! starts where a word starts and must end where a word ends.

use crate::text::{is_boundary, is_space_byte, is_word_byte};

/// How letters compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    /// ASCII letters in either case (`(?i)`).
    Any,
    /// Exactly as written.
    Exact,
}

/// What a space inside a phrase stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gap {
    /// One space character, as a space in a regex.
    Space,
    /// Any run of whitespace (`\s+`).
    Whitespace,
}

/// The phrases of one rule: `rule` is the rule's index in its enum, at most 31.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phrases {
    pub rule: u8,
    pub case: Case,
    pub gap: Gap,
    /// Alternatives separated by `|`, with `{a,b}` brace groups.
    pub spec: &'static str,
}

/// What [`Lexicon::scan`] saw in a text: the rules with a phrase there, and
/// the letters its words start with.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hits {
    rules: u32,
    initials: u32,
}

impl Hits {
    pub(crate) fn has(self, rule: impl Into<u8>) -> bool {
        self.rules & (1 << rule.into()) != 0
    }

    /// Whether a word starts with ASCII letter `letter` (in either case):
    /// rules that are not phrases check this before they look for their
    /// first word.
    pub(crate) fn has_word_starting(self, letter: u8) -> bool {
        self.initials & initial_bit(letter) != 0
    }
}

/// A word's first byte as a bit of [`Hits::initials`]: letters only.
fn initial_bit(b: u8) -> u32 {
    let index = (b | 0x20).wrapping_sub(b'a');
    if index < 26 { 1 << index } else { 0 }
}

#[derive(Debug)]
struct Entry {
    rule: u8,
    case: Case,
    gap: Gap,
    /// Lowercased when `case` is [`Case::Any`].
    phrase: Box<[u8]>,
}

impl Entry {
    /// Where the phrase ends if it starts at `start`.
    fn end_at(&self, h: &[u8], start: usize) -> Option<usize> {
        let mut at = start;
        for &p in self.phrase.iter() {
            if p == b' ' && self.gap == Gap::Whitespace {
                let run = h[at..].iter().take_while(|&&b| is_space_byte(b)).count();
                if run == 0 {
                    return None;
                }
                at += run;
                continue;
            }
            let b = *h.get(at)?;
            let same = match self.case {
                // `phrase` is lowercase.
                Case::Any => b.to_ascii_lowercase() == p,
                Case::Exact => b == p,
            };
            if !same {
                return None;
            }
            at += 1;
        }
        // The phrase ends with a word character: `\b` means a non-word one follows.
        is_boundary(h, at).then_some(at)
    }
}

/// How many buckets phrases are hashed into (a power of two).
const BUCKETS: usize = 4096;

/// The bucket of the phrases whose first word could be `word`: a hash of
/// its length and its first and last bytes (letters in either case). It
/// tells most words that start no phrase from the few that might, with no
/// byte-by-byte comparison.
#[inline]
fn bucket_of(word: &[u8]) -> Option<usize> {
    Some(bucket_key(*word.first()?, *word.last()?, word.len()))
}

/// [`bucket_of`] a word of `len` bytes from `first` to `last`.
#[inline]
fn bucket_key(first: u8, last: u8, len: usize) -> usize {
    let key = u32::from(first | 0x20) << 16 | u32::from(last | 0x20) << 8 | len.min(255) as u32;
    (key.wrapping_mul(0x9E37_79B1) >> 20) as usize % BUCKETS
}

/// The phrases of a set of rules, bucketed by their first word.
#[derive(Debug)]
pub(crate) struct Lexicon {
    /// Sorted by bucket; within a bucket, in the order the rules list them.
    entries: Vec<Entry>,
    /// `entries[starts[b]..starts[b + 1]]` is bucket `b`.
    starts: Vec<u16>,
    /// The rules with a phrase in bucket `b`, as a bit set: most words'
    /// buckets are empty, or hold only rules already found.
    rules: Vec<u32>,
    /// Bit `b % 64` of word `b / 64`: bucket `b` is not empty. Asked of
    /// every word, so it is kept small enough (512 bytes) to stay in cache.
    occupied: Vec<u64>,
    /// Per rule, the [`first_bit`]s of its phrases: a word that starts
    /// with none of them starts no phrase of the rule, and costs no lookup.
    firsts: [u32; 32],
}

/// A phrase's or word's first byte as a bit: letters in either case by
/// letter, every other byte as one more bit.
fn first_bit(b: u8) -> u32 {
    match initial_bit(b) {
        0 => 1 << 26,
        bit => bit,
    }
}

impl Lexicon {
    pub(crate) fn new(rules: &[Phrases]) -> Lexicon {
        let mut entries: Vec<(usize, Entry)> = Vec::new();
        for group in rules {
            expand(group.spec, |phrase| {
                let bytes = phrase.as_bytes();
                let first_len = bytes.iter().take_while(|&&b| is_word_byte(b)).count();
                let well_formed = bytes.last().is_some_and(|&b| is_word_byte(b)) && group.rule < 32;
                let bucket = bucket_of(&bytes[..first_len]).filter(|_| well_formed);
                // The specs are constants; the tests build every lexicon.
                debug_assert!(bucket.is_some(), "malformed phrase {phrase:?}");
                let Some(bucket) = bucket else { return };
                let phrase: Box<[u8]> = match group.case {
                    Case::Any => bytes.to_ascii_lowercase().into(),
                    Case::Exact => bytes.into(),
                };
                entries.push((
                    bucket,
                    Entry {
                        rule: group.rule,
                        case: group.case,
                        gap: group.gap,
                        phrase,
                    },
                ));
            });
        }
        entries.sort_by_key(|(bucket, _)| *bucket);
        let mut starts = vec![0u16; BUCKETS + 1];
        let mut bucket_rules = vec![0u32; BUCKETS];
        let mut firsts = [0u32; 32];
        for (bucket, entry) in &entries {
            starts[bucket + 1] += 1;
            bucket_rules[*bucket] |= 1 << entry.rule;
            firsts[usize::from(entry.rule)] |= first_bit(entry.phrase[0]);
        }
        for b in 0..BUCKETS {
            starts[b + 1] += starts[b];
        }
        let mut occupied = vec![0u64; BUCKETS / 64];
        for (b, rules) in bucket_rules.iter().enumerate() {
            occupied[b / 64] |= u64::from(*rules != 0) << (b % 64);
        }
        Lexicon {
            entries: entries.into_iter().map(|(_, e)| e).collect(),
            occupied,
            starts,
            rules: bucket_rules,
            firsts,
        }
    }

    /// Every phrase, as written (lowercased where case does not matter).
    #[cfg(test)]
    pub(crate) fn phrases(&self) -> impl Iterator<Item = String> + '_ {
        self.entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.phrase).into_owned())
    }

    /// The phrases of the rules in `wanted` (a bit set) whose first word
    /// could be `word`.
    #[inline]
    fn candidates(&self, word: &[u8], wanted: u32) -> impl Iterator<Item = &Entry> {
        let bucket = bucket_of(word).filter(|&b| self.rules[b] & wanted != 0);
        let entries = match bucket {
            Some(b) => &self.entries[usize::from(self.starts[b])..usize::from(self.starts[b + 1])],
            None => &[],
        };
        entries.iter().filter(move |e| wanted & (1 << e.rule) != 0)
    }

    /// Every rule with a phrase somewhere in `h`.
    pub(crate) fn scan(&self, h: &[u8]) -> Hits {
        let mut hits = Hits::default();
        // Where, in each 64-byte chunk, the words start whose bucket holds a
        // phrase. They are gathered without a branch per word, then tried:
        // whether a word's bucket is empty is a coin toss to the branch
        // predictor, and guessing wrong cost more than the lookup.
        let mut kept = [0u8; 32];
        let mut base = 0;
        let mut after_word = false;
        while base < h.len() {
            let mask = crate::text::word_mask(&h[base..h.len().min(base + 64)]);
            // The end of the word starting at bit `bit` of the chunk: its
            // bytes in this chunk, then any that run on past it.
            let word_end = |bit: usize| {
                let end = base + bit + (!(mask >> bit)).trailing_zeros() as usize;
                if end == base + 64 {
                    end + h[end..].iter().take_while(|&&b| is_word_byte(b)).count()
                } else {
                    end
                }
            };
            let mut starts = mask & !((mask << 1) | u64::from(after_word));
            let mut n = 0;
            while starts != 0 {
                let bit = starts.trailing_zeros() as usize;
                starts &= starts - 1;
                let (start, end) = (base + bit, word_end(bit));
                hits.initials |= initial_bit(h[start]);
                let bucket = bucket_key(h[start], h[end - 1], end - start);
                kept[n] = bit as u8;
                n += (self.occupied[bucket / 64] >> (bucket % 64)) as usize & 1;
            }
            for &bit in &kept[..n] {
                let (start, end) = (base + usize::from(bit), word_end(usize::from(bit)));
                let wanted = !hits.rules;
                let bucket = bucket_key(h[start], h[end - 1], end - start);
                if self.rules[bucket] & wanted == 0 {
                    continue;
                }
                let entries = &self.entries
                    [usize::from(self.starts[bucket])..usize::from(self.starts[bucket + 1])];
                for e in entries.iter().filter(|e| wanted & (1 << e.rule) != 0) {
                    if e.end_at(h, start).is_some() {
                        hits.rules |= 1 << e.rule;
                    }
                }
            }
            after_word = mask >> 63 == 1;
            base += 64;
        }
        hits
    }

    /// Where a phrase of `rule` ends if one starts at `word` (a word of `h`).
    pub(crate) fn match_word(
        &self,
        h: &[u8],
        word: std::ops::Range<usize>,
        rule: impl Into<u8>,
    ) -> Option<usize> {
        let rule = rule.into();
        if self.firsts[usize::from(rule)] & first_bit(*h.get(word.start)?) == 0 {
            return None;
        }
        self.candidates(&h[word.clone()], 1 << rule)
            .find_map(|e| e.end_at(h, word.start))
    }

    /// The leftmost phrase of `rule` in `h`, as a byte range.
    pub(crate) fn find(&self, h: &[u8], rule: impl Into<u8>) -> Option<std::ops::Range<usize>> {
        let rule = rule.into();
        crate::text::words(h, 0).find_map(|word| {
            self.match_word(h, word.clone(), rule)
                .map(|end| word.start..end)
        })
    }
}

/// Calls `each` with every phrase of `spec`: `|`-separated alternatives
/// with `{a,b,}` brace groups, expanded in order.
fn expand(spec: &str, mut each: impl FnMut(&str)) {
    let mut phrase = String::new();
    for alt in spec.split('|') {
        // The alternative's pieces: a literal is a piece with one option.
        let mut pieces: Vec<Vec<&str>> = Vec::new();
        let mut rest = alt;
        while let Some((literal, group)) = rest.split_once('{') {
            let Some((options, after)) = group.split_once('}') else {
                break;
            };
            pieces.push(vec![literal]);
            pieces.push(options.split(',').collect());
            rest = after;
        }
        pieces.push(vec![rest]);
        // An odometer over the options, the last piece turning fastest.
        let mut picks = vec![0; pieces.len()];
        loop {
            phrase.clear();
            for (options, &pick) in pieces.iter().zip(&picks) {
                phrase.push_str(options[pick]);
            }
            each(&phrase);
            let Some(turn) = (0..pieces.len())
                .rev()
                .find(|&i| picks[i] + 1 < pieces[i].len())
            else {
                break;
            };
            picks[turn] += 1;
            picks[turn + 1..].fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(spec: &str) -> Vec<String> {
        let mut out = Vec::new();
        super::expand(spec, |phrase| out.push(phrase.to_string()));
        out
    }

    #[test]
    fn braces_expand_in_order() {
        assert_eq!(
            expand("roll{,ing}{-, ,}back|undo"),
            [
                "roll-back",
                "roll back",
                "rollback",
                "rolling-back",
                "rolling back",
                "rollingback",
                "undo"
            ]
        );
        assert_eq!(expand("low{-, }risk"), ["low-risk", "low risk"]);
        assert_eq!(expand("a{b,c}d{,e}"), ["abd", "abde", "acd", "acde"]);
        assert_eq!(expand("plain|{x,y}"), ["plain", "x", "y"]);
    }

    #[test]
    fn phrases_match_whole_words() {
        let lexicon = Lexicon::new(&[
            Phrases {
                rule: 0,
                case: Case::Any,
                gap: Gap::Space,
                spec: "known issue{,s}|bug",
            },
            Phrases {
                rule: 1,
                case: Case::Exact,
                gap: Gap::Space,
                spec: "TODO",
            },
            Phrases {
                rule: 2,
                case: Case::Any,
                gap: Gap::Whitespace,
                spec: "drop table",
            },
        ]);
        let hits = |s: &str| {
            let h = lexicon.scan(s.as_bytes());
            (h.has(0u8), h.has(1u8), h.has(2u8))
        };
        assert_eq!(hits("Known Issues: none"), (true, false, false));
        assert_eq!(hits("known  issues, debug, bugs"), (false, false, false));
        assert_eq!(hits("a bug."), (true, false, false));
        assert_eq!(hits("todo TODO_x"), (false, false, false));
        assert_eq!(hits("(TODO)"), (false, true, false));
        assert_eq!(hits("DROP \t TABLE x"), (false, false, true));
        assert_eq!(hits("drop tables"), (false, false, false));
        assert_eq!(lexicon.find(b"a bug, a known issue", 0u8), Some(2..5));
        assert_eq!(lexicon.find(b"a known issue", 0u8), Some(2..13));
    }
}
