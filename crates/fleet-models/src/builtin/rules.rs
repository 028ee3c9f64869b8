//! Line rules for prose documents (runbooks, release notes, changelogs,
//! command snapshots): what a line says. `scan.rs` runs them over a
//! document, section by section.
//!
//! Most rules are lists of words and phrases ([`WORDS`], [`HEADINGS`]); the
//! rest are small functions below. Each says, as a regex, what it matches:
//! that regex is the rule's definition (ASCII `\b`, `\s` and `(?i)`), and
//! the tests in `spec.rs` hold the code to it.

use super::lexicon::{Case, Gap, Hits, Lexicon, Phrases};
use crate::text::{Cursor, is_boundary, is_space_byte, word_starts_with};
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
    Breaking,
    Deprecated,
    DropsSupport,
    Upgrade,
    Blocked,
    Unstaffed,
    Rising,
    Falling,
    Hedge,
    OwnerLabel,
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
        // The rules below are phrases only; none was a regex before.
        any(
            Word::Breaking,
            "breaking|backward{,s}{-, }incompatible|no longer backward{,s} compatible",
        ),
        any(
            Word::Deprecated,
            "deprecate{,d,s}|deprecating|deprecation{,s}",
        ),
        // Support for a platform or version ending.
        any(
            Word::DropsSupport,
            "drop{,s,ped} support|dropping support|no longer support{,s,ed}|end of support|\
             end{-, }of{-, }life|minimum supported|{or newer,or later,or above} is {,now }required|\
             now requires|is now required|peer dependency|remove{,d,s} support",
        ),
        any(
            Word::Upgrade,
            "upgrade{,d,s}|upgrading|migrate{,d} to|moved to|major version",
        ),
        any(
            Word::Blocked,
            "blocked|blocks|blocking|blocker{,s}|on hold|held up|waiting on|waiting for|\
             {won't,won’t,will not,cannot,can't} sign off",
        ),
        // A release part with nobody to do it.
        any(
            Word::Unstaffed,
            "{nobody,no one,no-one} {,is }assigned|unassigned|not {,yet }assigned|\
             no owner{,s}|without {an ,}owner|needs {an ,}owner|no dri|{nobody,no one} owns|\
             understaffed|no on-call|{nobody,no one} {on call,on-call}|vacant|unstaffed|unowned",
        ),
        // Words that name who does a part: `Owner: TBD` is a staffing gap.
        any(
            Word::OwnerLabel,
            "owner{,s}|dri|assignee{,s}|on-call|oncall|secondary|release manager|\
             {tech,eng,engineering} lead|incident commander",
        ),
        // Support load forecast in words rather than figures.
        any(
            Word::Rising,
            "{will,to,expected to,likely to} {rise,grow,increase,climb,double,spike,go up}|\
             more tickets|higher volume|surge|uptick|{a spike,an increase,a rise,a jump} in",
        ),
        any(
            Word::Falling,
            "{will,to,should,expected to,likely to} {drop,fall,decrease,decline,shrink,go down}|\
             fewer|reduce{,d,s}",
        ),
        // Hedges that void a plan wherever they stand in it.
        any(
            Word::Hedge,
            "we'll see|we’ll see|we will see|figure {it,that} out|wing it|no plan|not sure|\
             fingers crossed|hopefully|unclear",
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
    Breaking,
    Removed,
    Deprecated,
    /// Release-notes sections of changes (Added, Fixed, Features…).
    Changes,
    /// Who does what: owners, staffing, contacts.
    Owners,
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
        //   downgrad(?:e|ing)|contingency|abort(?:ing)?)\b
        heading_words(
            Heading::Rollback,
            "roll{,ing,ed}{-, ,}back{,s}|revert{,s}|reverting|back{,ing}{-, ,}out|undo|fall{ ,}back|\
             recovery|downgrad{e,ing}|contingency|abort{,ing}",
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
        // The rules below are phrases only; none was a regex before.
        heading_words(
            Heading::Breaking,
            "breaking|backward{,s} incompatible|incompatible changes",
        ),
        heading_words(Heading::Removed, "removed|removal{,s}"),
        heading_words(Heading::Deprecated, "deprecated|deprecation{,s}"),
        heading_words(
            Heading::Changes,
            "added|new|feature{,s}|fixed|fix{,es}|bug{,s}|bugfixes|changed|change{,s}|highlights|\
             improvement{,s}|enhancement{,s}|dependencies|security|performance|documentation|\
             contributors|internal|chore{,s}",
        ),
        heading_words(
            Heading::Owners,
            "owner{,s}|ownership|who|staffing|roles|responsibilities|contacts|assignee{,s}|\
             dri{,s}|people",
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
        // A checklist item: `- [ ] Rollback plan: ...`.
        if bullet {
            let mut boxed = c;
            if (boxed.lit_ci("[ ]") || boxed.lit_ci("[x]")) && boxed.spaces1() {
                c = boxed;
            }
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

/// A rollback label's value that declines to roll back: `n/a, we roll
/// forward`, `None`, `not needed`, `fix forward`. Said of a release that
/// may hold a destructive change, that is no plan at all.
pub(super) fn declines_rollback(value: &str) -> bool {
    let v = value
        .trim_start_matches(|c: char| c.is_whitespace() || "*_>-".contains(c))
        .to_ascii_lowercase();
    let leads = [
        "n/a",
        "na,",
        "na ",
        "none",
        "no rollback",
        "not needed",
        "not applicable",
        "nothing",
    ]
    .iter()
    .any(|p| v.starts_with(p));
    leads
        || ["roll forward", "roll-forward", "fix forward", "fix-forward"]
            .iter()
            .any(|p| v.contains(p))
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

/// The words a line starts with, past list markers, checkboxes, quote
/// marks and emphasis: where a placeholder or a hedge stands.
fn lead(line: &str) -> &str {
    let mut t = line.trim_start();
    loop {
        let before = t.len();
        t = t.trim_start_matches(['-', '*', '+', '>', '_', ' ', '\t']);
        if let Some(rest) = t.strip_prefix("[ ]").or_else(|| t.strip_prefix("[x]")) {
            t = rest;
        }
        if t.len() == before {
            return t;
        }
    }
}

/// `(?i)^(?:later|n/?a|none|tbd|probably|maybe|hopefully|not sure|unclear|for now|soon|
/// coming soon|same as (?:usual|before|last time)|depends)\b`: a section line that opens
/// with a placeholder or a hedge.
fn leads_with_hedge(line: &str) -> bool {
    const LEADS: &[&str] = &[
        "later",
        "n/a",
        "na",
        "none",
        "tbd",
        "probably",
        "maybe",
        "hopefully",
        "not sure",
        "unclear",
        "for now",
        "soon",
        "coming soon",
        "same as usual",
        "same as before",
        "same as last time",
        "depends",
    ];
    let t = lead(line).as_bytes();
    LEADS.iter().any(|w| {
        let w = w.as_bytes();
        t.len() >= w.len()
            && t[..w.len()].eq_ignore_ascii_case(w)
            && crate::text::is_boundary(t, w.len())
    })
}

/// `\b(?i:ask|check with|talk to|ping|see) (?:[A-Z]|@)`: a plan that is a
/// person to ask rather than steps.
pub(super) fn asks_someone(h: &[u8]) -> bool {
    const VERBS: &[&str] = &["ask ", "check with ", "talk to ", "ping "];
    crate::text::word_starts(h, 0).any(|at| {
        VERBS.iter().any(|v| {
            let mut c = Cursor::new(h, at);
            c.lit_ci(v)
                && c.peek()
                    .is_some_and(|b| b.is_ascii_uppercase() || b == b'@')
        })
    })
}

/// A rollback or fallback line that only hedges: it opens with a
/// placeholder (`N/A for now`, `Later.`), says a hedge anywhere (`we'll
/// see`), or hands the plan to a person (`ask Tom`).
pub(super) fn is_hedge(line: &str, words: Hits) -> bool {
    words.has(Word::Hedge) || leads_with_hedge(line) || asks_someone(line.as_bytes())
}

/// A line that exclaims (`…ever!`): advertising, not a risk rating.
pub(super) fn exclaims(line: &str) -> bool {
    let h = line.as_bytes();
    memchr::memchr_iter(b'!', h).any(|at| !matches!(h.get(at + 1), Some(b'[' | b'=')))
}
