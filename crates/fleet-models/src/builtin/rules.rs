//! Line rules for prose documents (runbooks, release notes, changelogs,
//! command snapshots): one pass per document, tracking the markdown section
//! each line sits in, since "Known issues" or "Rollback" headings change what
//! a line means.
//!
//! Most rules are lists of words and phrases ([`WORDS`], [`HEADINGS`]); the
//! rest are small functions below. Each says, as a regex, what it matches:
//! that regex is the rule's definition (ASCII `\b`, `\s` and `(?i)`), and
//! the tests in `spec.rs` hold the code to it.

use super::analysis::{
    Analysis, OpenIssue, OpenItem, RollbackCoverage, RollbackStatus, Rollout, SupportFigure, cite,
};
use super::lexicon::{Case, Gap, Hits, Lexicon, Phrases};
use crate::text::{Cursor, heading, is_boundary, is_space_byte, own_words, word_starts_with};
use fleet_core::flags::{Citation, FlagSeverity};
use std::ops::Range;
use std::sync::LazyLock;

/// The rules of a line that are lists of phrases.
#[derive(Debug, Clone, Copy)]
pub(super) enum Word {
    Bug,
    Open,
    Closed,
    Severity,
    Tbd,
    OneWay,
    /// The fixed phrases of [`risk_claim_at`].
    RiskClaim,
    Flag,
    Signoff,
    Pending,
    Support,
    Elevated,
}

impl From<Word> for u8 {
    fn from(word: Word) -> u8 {
        word as u8
    }
}

/// Phrases in any case, a space standing for one space.
const fn any(rule: Word, spec: &'static str) -> Phrases {
    Phrases {
        rule: rule as u8,
        case: Case::Any,
        gap: Gap::Space,
        spec,
    }
}

/// The phrase rules of a line, each with the regex it stands for.
pub(super) static WORDS: LazyLock<Lexicon> = LazyLock::new(|| {
    Lexicon::new(&[
        // (?i)\b(regressions?|bugs?|defects?|known issues?|crash(?:es)?|data loss|outages?)\b
        any(
            Word::Bug,
            "regression{,s}|bug{,s}|defect{,s}|known issue{,s}|crash{,es}|data loss|outage{,s}",
        ),
        // (?i)\b(open|opened|reopened|unresolved|outstanding|investigating|in progress|
        //   not (?:yet )?fixed|unfixed|unmitigated|blocker|blocking|triaged?|
        //   still (?:happening|occurring|present))\b
        any(
            Word::Open,
            "open|opened|reopened|unresolved|outstanding|investigating|in progress|not {,yet }fixed|\
             unfixed|unmitigated|blocker|blocking|triage{,d}|still {happening,occurring,present}",
        ),
        // (?i)\b(fixed|fixes|resolved|closed|done|mitigated|merged|shipped|reverted|addressed)\b
        any(
            Word::Closed,
            "fixed|fixes|resolved|closed|done|mitigated|merged|shipped|reverted|addressed",
        ),
        // (?i)\b(P[0-4]|SEV-?[0-4]|S[0-4]|critical|blocker|high|major|medium|moderate|minor|low)\b
        any(
            Word::Severity,
            "p{0,1,2,3,4}|sev{,-}{0,1,2,3,4}|s{0,1,2,3,4}|critical|blocker|high|major|medium|moderate|minor|low",
        ),
        // (?i:\b(?:tbd|tbc|tba)\b|\bto be (?:decided|determined|confirmed)\b)|\b(?:TODO|FIXME)\b
        any(
            Word::Tbd,
            "tbd|tbc|tba|to be {decided,determined,confirmed}",
        ),
        Phrases {
            rule: Word::Tbd as u8,
            case: Case::Exact,
            gap: Gap::Space,
            spec: "TODO|FIXME",
        },
        // (?i)\b(irreversibl[ey]|one-way|can(?:not| not|'t|’t) be (?:undone|reversed|rolled back|restored|recovered)|
        //   no (?:way|path) back|point of no return|not reversible|no kill[- ]?switch|
        //   permanently (?:delete[sd]?|remove[sd]?|drop(?:s|ped)?)|no rollback)\b
        any(
            Word::OneWay,
            "irreversibl{e,y}|one-way|can{not, not,'t,’t} be {undone,reversed,rolled back,restored,recovered}|\
             no {way,path} back|point of no return|not reversible|no kill{-, ,}switch|\
             permanently {delete,deletes,deleted,remove,removes,removed,drop,drops,dropped}|no rollback",
        ),
        // The fixed alternatives of RISK_CLAIM (see `risk_claim_at`):
        // low[- ]risk\b|ready (?:to|for) (?:ship|release|launch|deploy|production|go)\b|
        // no known (?:issues|risks|regressions|blockers|problems)\b|no (?:open )?blockers\b|
        // all migrations (?:are )?reversible\b|safe to (?:ship|release|deploy)\b
        any(
            Word::RiskClaim,
            "low{-, }risk|ready {to,for} {ship,release,launch,deploy,production,go}|\
             no known {issues,risks,regressions,blockers,problems}|no {,open }blockers|\
             all migrations {,are }reversible|safe to {ship,release,deploy}",
        ),
        // (?i)\b(?:feature[- ]?flags?|flags?|toggles?|kill[- ]?switch)\b|\brolled out to\b
        // (and `share_of_audience`)
        any(
            Word::Flag,
            "feature{-, ,}flag{,s}|flag{,s}|toggle{,s}|kill{-, ,}switch|rolled out to",
        ),
        // (?i)\b(sign[- ]?offs?|signed[- ]off|approvals?|approvers?)\b
        any(
            Word::Signoff,
            "sign{-, ,}off{,s}|signed{-, }off|approval{,s}|approver{,s}",
        ),
        // (?i)\b(pending|awaiting|waiting|not yet|outstanding|missing|requested|tbd|unsigned)\b
        any(
            Word::Pending,
            "pending|awaiting|waiting|not yet|outstanding|missing|requested|tbd|unsigned",
        ),
        // (?i)\b(support tickets?|tickets?|pages|escalations?|support (?:load|volume|queue)|csat)\b
        any(
            Word::Support,
            "support ticket{,s}|ticket{,s}|pages|escalation{,s}|support {load,volume,queue}|csat",
        ),
        // (?i)\b(up|increased?|increasing|rising|spike[sd]?|doubled|tripled|above|higher)\b
        // (and `rising_figure`)
        any(
            Word::Elevated,
            "up|increase{,d}|increasing|rising|spike{,s,d}|doubled|tripled|above|higher",
        ),
    ])
});

/// The rules of a heading: which kind of section it opens.
#[derive(Debug, Clone, Copy)]
pub(super) enum Heading {
    Issues,
    Rollback,
    Flags,
    Signoff,
    Support,
}

impl From<Heading> for u8 {
    fn from(heading: Heading) -> u8 {
        heading as u8
    }
}

const fn heading_words(rule: Heading, spec: &'static str) -> Phrases {
    Phrases {
        rule: rule as u8,
        case: Case::Any,
        gap: Gap::Space,
        spec,
    }
}

pub(super) static HEADINGS: LazyLock<Lexicon> = LazyLock::new(|| {
    Lexicon::new(&[
        // (?i)\b(known (?:issues?|bugs|problems|limitations)|open (?:issues|bugs|regressions|defects|items)|
        //   outstanding (?:issues|bugs)|regressions|blockers)\b
        heading_words(
            Heading::Issues,
            "known {issue,issues,bugs,problems,limitations}|open {issues,bugs,regressions,defects,items}|\
             outstanding {issues,bugs}|regressions|blockers",
        ),
        // (?i)\b(roll(?:ing|ed)?[- ]?backs?|reverts?|reverting|back(?:ing)?[- ]?out|undo|fall ?back|recovery|
        //   downgrad(?:e|ing))\b
        heading_words(
            Heading::Rollback,
            "roll{,ing,ed}{-, ,}back{,s}|revert{,s}|reverting|back{,ing}{-, ,}out|undo|fall{ ,}back|\
             recovery|downgrad{e,ing}",
        ),
        // (?i)\b(feature[- ]?flags?|flags?|toggles?|rollouts?|experiments?|ramp(?:-?up)?)\b
        heading_words(
            Heading::Flags,
            "feature{-, ,}flag{,s}|flag{,s}|toggle{,s}|rollout{,s}|experiment{,s}|ramp{,-up,up}",
        ),
        // (?i)\b(sign[- ]?offs?|approvals?|approvers?|go/no-go)\b
        heading_words(
            Heading::Signoff,
            "sign{-, ,}off{,s}|approval{,s}|approver{,s}|go/no-go",
        ),
        // (?i)\b(support (?:load|volume|tickets?|queue|metrics)|tickets?|customer impact|on-?call load|escalations)\b
        heading_words(
            Heading::Support,
            "support {load,volume,ticket,tickets,queue,metrics}|ticket{,s}|customer impact|\
             on{-,}call load|escalations",
        ),
    ])
});

/// `(?:[-*+]|[0-9]{1,3}[.)])`: a list bullet or number.
fn list_marker(c: &mut Cursor<'_>) -> bool {
    if c.byte_in(b"-*+") {
        return true;
    }
    let mut number = *c;
    // All the digits: were `{1,3}` to give some back, a digit would stand where `.` or `)` must.
    if (1..=3).contains(&number.digits()) && number.byte_in(b".)") {
        *c = number;
        return true;
    }
    false
}

/// `^\s*(?:[-*+]|[0-9]{1,3}[.)])\s+\S`
pub(super) fn is_list_item(line: &[u8]) -> bool {
    let mut c = Cursor::new(line, 0);
    c.spaces();
    list_marker(&mut c) && c.spaces1() && !c.at_end()
}

/// `^\s*(?:[-*+]|[0-9]{1,3}[.)])\s+\[([ xX])\]\s*(.*)$`: the box's mark and
/// what follows the box (to be trimmed).
pub(super) fn checkbox(line: &str) -> Option<(u8, &str)> {
    let mut c = Cursor::new(line.as_bytes(), 0);
    c.spaces();
    if !(list_marker(&mut c) && c.spaces1() && c.byte(b'[')) {
        return None;
    }
    let mark = c.peek()?;
    (c.byte_in(b" xX") && c.byte(b']')).then(|| (mark, &line[c.at..]))
}

/// `\b[A-Z][A-Z0-9]{1,9}-[0-9]{1,7}\b|#[0-9]{1,7}\b`: where a tracker id
/// starting at `start` ends.
fn issue_id_at(h: &[u8], start: usize) -> Option<usize> {
    let mut c = Cursor::new(h, start);
    let prefix = c.byte(b'#')
        || (c.at_boundary() && c.peek().is_some_and(|b| b.is_ascii_uppercase()) && {
            c.at += 1;
            // Runs are taken whole: a shorter one would leave `[A-Z0-9]` where `-` (or `\b`) must be.
            let key = c.skip_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
            (1..=9).contains(&key) && c.byte(b'-')
        });
    (prefix && (1..=7).contains(&c.digits()) && c.at_boundary()).then_some(c.at)
}

/// Every tracker id in `h`, left to right, as `find_iter` walks.
pub(super) fn issue_ids(h: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        let (start, end) = (from..h.len()).find_map(|s| issue_id_at(h, s).map(|e| (s, e)))?;
        from = end;
        Some(start..end)
    })
}

/// `(?i)^\s*(?:[-*+]\s+)?(?:\*\*|__)?(?:rollback|roll[- ]back)(?: plan| steps| procedure)?(?:\*\*|__)?\s*:(?:\*\*|__)?\s*(.*)$`:
/// what a `Rollback:` line says after the label. As in the regex that
/// captured it, which ran in Unicode mode, leading whitespace is dropped,
/// Unicode whitespace included.
pub(super) fn rollback_label(line: &str) -> Option<&str> {
    let mut start = Cursor::new(line.as_bytes(), 0);
    start.spaces();
    // A bullet, bold markers or the word itself come first: most lines
    // are ruled out here, before any alternative is tried.
    if !start
        .peek()
        .is_some_and(|b| matches!(b, b'-' | b'*' | b'+' | b'_' | b'r' | b'R'))
    {
        return None;
    }
    // Every optional piece is tried taken first, then skipped.
    for bullet in [true, false] {
        let mut c = start;
        if bullet && !(c.byte_in(b"-*+") && c.spaces1()) {
            continue;
        }
        for bold in [true, false] {
            let mut c = c;
            if (bold && !c.emphasis()) || !c.first_ci(&["rollback", "roll-back", "roll back"]) {
                continue;
            }
            for suffix in [" plan", " steps", " procedure", ""] {
                for bold in [true, false] {
                    let mut c = c;
                    if !c.lit_ci(suffix) || (bold && !c.emphasis()) {
                        continue;
                    }
                    c.spaces();
                    if c.byte(b':') {
                        c.emphasis();
                        return Some(line[c.at..].trim_start());
                    }
                }
            }
        }
    }
    None
}

/// `(?i)^[\s*_>-]*(?:n/?a|none|nothing|-|—|\.\.\.|…)?[\s*_.]*$`: a line
/// with nothing to say.
pub(super) fn is_nothing(h: &[u8]) -> bool {
    let mut lead = Cursor::new(h, 0);
    lead.skip_while(|b| is_space_byte(b) || b"*_>-".contains(&b));
    // Where the lead-in stops is the only place a placeholder can start:
    // each starts with a byte the lead-in cannot take (`-` it already took).
    ["n/a", "na", "none", "nothing", "-", "—", "...", "…", ""]
        .iter()
        .any(|placeholder| {
            let mut c = lead;
            c.lit_ci(placeholder) && {
                c.skip_while(|b| is_space_byte(b) || b"*_.".contains(&b));
                c.at_end()
            }
        })
}

/// `^\s*\|?[\s:|-]*-[\s:|-]*$`: a markdown table's `|---|:--|` row.
pub(super) fn is_table_separator(h: &[u8]) -> bool {
    h.contains(&b'-') && h.iter().all(|&b| is_space_byte(b) || b":|-".contains(&b))
}

/// `` `([A-Za-z][A-Za-z0-9_.:/-]*)` ``: the first code span that is a name.
pub(super) fn code_name(line: &str) -> Option<&str> {
    let h = line.as_bytes();
    memchr::memchr_iter(b'`', h).find_map(|at| {
        let mut c = Cursor::new(h, at + 1);
        if !c.peek().is_some_and(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        c.skip_while(|b| b.is_ascii_alphanumeric() || b"_.:/-".contains(&b));
        c.byte(b'`').then(|| &line[at + 1..c.at - 1])
    })
}

/// `RISK_CLAIM`, a line rating the release's risk or calling it ready:
///
/// ```text
/// (?i)\b(?:risk(?:\s+level|\s+rating|\s+assessment)?\s*(?:\*\*|__)?\s*(?:[:=-]|–|—)\s*(?:\*\*|__)?\s*
///          (?:low|minimal|none|negligible|green)\b
///   |low[- ]risk\b|ready (?:to|for) (?:ship|release|launch|deploy|production|go)\b
///   |no known (?:issues|risks|regressions|blockers|problems)\b|no (?:open )?blockers\b
///   |all migrations (?:are )?reversible\b|safe to (?:ship|release|deploy)\b
///   |recommend(?:ation|ed)?\s*:?\s*(?:\*\*)?go(?:\s|[.,;!)*]|$))
/// ```
///
/// Where a match starting at `word` (a word of `h`) ends. The fixed alternatives are the
/// [`Word::RiskClaim`] phrases; the first starts with `risk`, the last with
/// `recommend`, and none of the phrases does, so one alternative at most
/// can match at a start.
fn risk_claim_at(h: &[u8], word: Range<usize>) -> Option<usize> {
    risk_rating_at(h, word.start).or_else(|| WORDS.match_word(h, word, Word::RiskClaim))
}

/// The first and last alternatives of [`risk_claim_at`]: `risk: low`,
/// `recommendation: go`.
fn risk_rating_at(h: &[u8], start: usize) -> Option<usize> {
    if !is_boundary(h, start) || !h.get(start).is_some_and(|b| b.eq_ignore_ascii_case(&b'r')) {
        return None;
    }
    let mut risk = Cursor::new(h, start);
    if risk.lit_ci("risk") {
        for qualifier in [Some("level"), Some("rating"), Some("assessment"), None] {
            let mut c = risk;
            if let Some(qualifier) = qualifier
                && !(c.spaces1() && c.lit_ci(qualifier))
            {
                continue;
            }
            // What follows is a chain of pieces that each start with a byte
            // the one before cannot take, so taking each greedily is the
            // only way through.
            c.spaces();
            c.emphasis();
            c.spaces();
            if !(c.byte_in(b":=-") || c.lit("–") || c.lit("—")) {
                continue;
            }
            c.spaces();
            c.emphasis();
            c.spaces();
            if c.first_ci(&["low", "minimal", "none", "negligible", "green"]) && c.at_boundary() {
                return Some(c.at);
            }
        }
        return None;
    }
    let mut recommend = Cursor::new(h, start);
    if recommend.lit_ci("recommend") {
        for suffix in ["ation", "ed", ""] {
            let mut c = recommend;
            if !c.lit_ci(suffix) {
                continue;
            }
            c.spaces();
            c.byte(b':');
            c.spaces();
            c.lit("**");
            if c.lit_ci("go") && (c.space() || c.byte_in(b".,;!)*") || c.at_end()) {
                return Some(c.at);
            }
        }
    }
    None
}

/// Whether `h`, whose phrases are `words`, holds a `RISK_CLAIM` anywhere.
pub(super) fn has_risk_claim(h: &[u8], words: Hits) -> bool {
    words.has(Word::RiskClaim)
        || (words.has_word_starting(b'r')
            && word_starts_with(h, b'r').any(|s| risk_rating_at(h, s).is_some()))
}

/// Whether `text` holds a `RISK_CLAIM` anywhere.
pub(crate) fn is_risk_claim(text: &str) -> bool {
    let h = text.as_bytes();
    has_risk_claim(h, WORDS.scan(h))
}

/// The leftmost `RISK_CLAIM` at or after `from`, for
/// [`crate::text::line_spans_matching`]. The claim's letters are matched
/// in either case, so this also finds them in an ASCII-lowercased copy.
pub(crate) fn find_risk_claim(h: &[u8], from: usize) -> Option<Range<usize>> {
    crate::text::find_word(h, from, |start, end| {
        // Every alternative starts with one of these letters (`risk`,
        // `recommend`, `ready`, `low`, `no`, `all`, `safe`): most words are
        // passed over on their first byte.
        if !matches!(h[start] | 0x20, b'r' | b'l' | b'n' | b'a' | b's') {
            return None;
        }
        risk_claim_at(h, start..end).map(|claim_end| start..claim_end)
    })
}

/// `%\s+of\s+(?:merchants|users|...)\b`: the part of the flag rule that is
/// not a phrase.
pub(super) fn share_of_audience(h: &[u8]) -> bool {
    const AUDIENCES: &[&str] = &[
        "merchants",
        "users",
        "customers",
        "accounts",
        "traffic",
        "tenants",
        "requests",
        "orgs",
        "organizations",
        "workspaces",
        "sessions",
        "stores",
        "devices",
    ];
    memchr::memchr_iter(b'%', h).any(|at| {
        let mut c = Cursor::new(h, at + 1);
        c.spaces1()
            && c.lit_ci("of")
            && c.spaces1()
            && AUDIENCES.iter().any(|audience| {
                let mut c = c;
                c.lit_ci(audience) && c.at_boundary()
            })
    })
}

/// `[0-9]+(?:\.[0-9]+)?` then what `then` accepts, the fraction tried first.
/// Digit runs are taken whole: what follows a number never starts with a digit.
fn number_then(mut c: Cursor<'_>, then: impl Fn(Cursor<'_>) -> bool) -> bool {
    if c.digits() == 0 {
        return false;
    }
    let mut fraction = c;
    (fraction.byte(b'.') && fraction.digits() > 0 && then(fraction)) || then(c)
}

/// `\s?%`
fn percent_sign(c: Cursor<'_>) -> bool {
    let mut spaced = c;
    let mut tight = c;
    (spaced.space() && spaced.byte(b'%')) || tight.byte(b'%')
}

/// `([0-9]{1,3}(?:\.[0-9]+)?)\s?%`: the number of the first percentage.
pub(super) fn percent(line: &str) -> Option<&str> {
    let h = line.as_bytes();
    (0..h.len()).find_map(|start| {
        // All the digits: `{1,3}` giving some back would leave a digit where
        // `.`, a space or `%` must be. (Counting stops at four: a long run
        // is tried from every start, and must not cost its length each time.)
        let run = h[start..]
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if !(1..=3).contains(&run) {
            return None;
        }
        let c = Cursor::new(h, start + run);
        let mut fraction = c;
        if fraction.byte(b'.') && fraction.digits() > 0 && percent_sign(fraction) {
            return Some(&line[start..fraction.at]);
        }
        percent_sign(c).then(|| &line[start..c.at])
    })
}

/// `\+[0-9]+(?:\.[0-9]+)?\s?%|(?i)\b[0-9]+(?:\.[0-9]+)?x\b`: the figures
/// that say support load went up (`+30%`, `2x`), besides the words.
pub(super) fn rising_figure(h: &[u8]) -> bool {
    (0..h.len()).any(|start| {
        let mut c = Cursor::new(h, start);
        if c.byte(b'+') {
            return number_then(c, percent_sign);
        }
        c.at_boundary() && number_then(c, |mut c| c.byte_in(b"xX") && c.at_boundary())
    })
}

/// Which kinds of section a heading opens (several may apply).
#[derive(Debug, Default, Clone, Copy)]
struct SectionKind {
    issues: bool,
    flags: bool,
    signoff: bool,
    support: bool,
}

impl SectionKind {
    fn of(hits: Hits) -> SectionKind {
        SectionKind {
            issues: hits.has(Heading::Issues),
            flags: hits.has(Heading::Flags),
            signoff: hits.has(Heading::Signoff),
            support: hits.has(Heading::Support),
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
    let lower = crate::text::ascii_lowercase(path);
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
            crate::text::ascii_lowercase(ext).as_ref(),
            "md" | "markdown" | "mdx" | "txt" | "text"
        ),
    }
}

fn severity_of(label: &str) -> FlagSeverity {
    // Compared in place: labels are often uppercase (`P1`, `SEV-2`), and a
    // lowercased copy cost more than the comparisons.
    let is = |words: &[&str]| words.iter().any(|w| label.eq_ignore_ascii_case(w));
    if is(&["critical", "blocker", "high"]) {
        return FlagSeverity::High;
    }
    if is(&["major", "medium", "moderate"]) {
        return FlagSeverity::Medium;
    }
    if is(&["minor", "low"]) {
        return FlagSeverity::Low;
    }
    match label.bytes().rev().find(u8::is_ascii_digit) {
        Some(b'0' | b'1') => FlagSeverity::High,
        Some(b'2') => FlagSeverity::Medium,
        _ => FlagSeverity::Low,
    }
}

/// The tracker id on a line, skipping severity labels that look like ids (`SEV-1`).
fn issue_id(line: &str) -> Option<String> {
    issue_ids(line.as_bytes())
        .map(|span| &line[span])
        .find(|id| !id.to_ascii_uppercase().starts_with("SEV-"))
        .map(str::to_string)
}

fn flag_name(line: &str) -> String {
    if let Some(name) = code_name(line) {
        return name.to_string();
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

    for (index, line) in crate::text::lines(text).enumerate() {
        let n = index as u64 + 1;
        let trimmed = crate::text::trim(line);
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
            let heading_hits = HEADINGS.scan(heading_text.as_bytes());
            if title.is_none() {
                title = Some(cite(path, n, line));
            }
            if let Some(rb) = rollback.take_if(|rb| level <= rb.level) {
                verdicts.push(rb.verdict());
            }
            if let Some(rb) = rollback.as_mut() {
                rb.has_content = true;
            } else if heading_hits.has(Heading::Rollback) {
                rollback = Some(RollbackSection {
                    level,
                    heading: cite(path, n, line),
                    has_content: false,
                    tbd: None,
                });
            }
            section = SectionKind::of(heading_hits);
            continue;
        }
        if trimmed.is_empty() {
            continue;
        }
        if title.is_none() {
            title = Some(cite(path, n, line));
        }

        let h = line.as_bytes();
        let words = WORDS.scan(h);

        // Rollback sections and `Rollback:` lines: decide coverage, and keep
        // their TBDs out of the generic TODO list (they are worse than that).
        let mut tbd_handled = false;
        if let Some(rb) = rollback.as_mut() {
            let nothing = is_nothing(h);
            rb.has_content = rb.has_content || !nothing;
            if words.has(Word::Tbd) || nothing {
                rb.tbd.get_or_insert_with(|| cite(path, n, line));
                tbd_handled = true;
            }
        } else if let Some(rest) = rollback_label(line) {
            let status = if WORDS.find(rest.as_bytes(), Word::Tbd).is_some()
                || is_nothing(rest.as_bytes())
            {
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

        if !tbd_handled && words.has(Word::Tbd) {
            out.todos.push(cite(path, n, line));
        }
        if words.has(Word::OneWay) {
            out.one_way.push(cite(path, n, line));
        }
        if has_risk_claim(h, words) && is_risk_claim(&own_words(line)) {
            out.risk_claims.push(cite(path, n, line));
        }

        let is_table_row = trimmed.starts_with('|');
        if is_table_row && is_table_separator(trimmed.as_bytes()) {
            continue;
        }

        if let Some((mark, rest)) = checkbox(line) {
            let item = rest.trim();
            if item.starts_with('~') {
                // Struck through: dropped, not open.
            } else if mark == b' ' {
                let label = WORDS
                    .find(item.as_bytes(), Word::Severity)
                    .map(|span| &item[span]);
                let severity = match label {
                    Some(label) if severity_of(label) == FlagSeverity::High => FlagSeverity::High,
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
                list_item: is_list_item(h),
                table_row: is_table_row,
            };
            scan_issue(path, n, line, section, kind, words, out);
        }

        if (section.flags || words.has(Word::Flag) || share_of_audience(h))
            && let Some(number) = percent(line)
            && let Ok(percent) = number.parse::<f64>()
        {
            out.rollouts.push(Rollout {
                flag: flag_name(line),
                percent,
                cite: cite(path, n, line),
            });
        }

        if (section.signoff || words.has(Word::Signoff)) && words.has(Word::Pending) {
            out.pending_signoffs.push(cite(path, n, line));
        }

        if (section.support || words.has(Word::Support)) && h.iter().any(u8::is_ascii_digit) {
            out.support.push(SupportFigure {
                elevated: words.has(Word::Elevated) || rising_figure(h),
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
    words: Hits,
    out: &mut Analysis,
) {
    let open = words.has(Word::Open);
    let has_id = || issue_ids(line.as_bytes()).next().is_some();
    let candidate = if section.issues {
        kind.list_item || (kind.table_row && (open || has_id()))
    } else {
        open && words.has(Word::Bug) && (words.has(Word::Severity) || has_id())
    };
    // Fixed/resolved with no sign of still being open: history, not an open item.
    if !candidate || (!open && words.has(Word::Closed)) {
        return;
    }
    let id = issue_id(line);
    let label = WORDS
        .find(line.as_bytes(), Word::Severity)
        .map(|span| line[span].to_string());
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
