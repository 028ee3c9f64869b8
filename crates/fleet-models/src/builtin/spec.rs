//! The analyst's rules held to their definitions. Each rule was a regex,
//! matched the way `text::re`/`re_set` used to build them: in a `RegexSet`
//! in ASCII mode (does a line match?) and on its own, in ASCII mode where
//! the pattern allowed it, for captures and positions. The hand-written
//! rules must answer exactly as those regexes did, on the example and
//! fixture documents and on many generated lines built from the rules' own
//! words, glued with the punctuation and whitespace (ASCII and not) the
//! rules care about.

use super::lexicon::Hits;
use super::{migrations as m, rules as r};
use crate::citations::citation_spans;
use crate::text::{line_spans_matching, own_words};
use std::ops::Range;

// The regexes, as they were.
const CHECKBOX: &str = r"^\s*(?:[-*+]|[0-9]{1,3}[.)])\s+\[([ xX])\]\s*(.*)$";
const LIST_ITEM: &str = r"^\s*(?:[-*+]|[0-9]{1,3}[.)])\s+\S";
const BUG_WORD: &str =
    r"(?i)\b(regressions?|bugs?|defects?|known issues?|crash(?:es)?|data loss|outages?)\b";
const OPEN_WORD: &str = r"(?i)\b(open|opened|reopened|unresolved|outstanding|investigating|in progress|not (?:yet )?fixed|unfixed|unmitigated|blocker|blocking|triaged?|still (?:happening|occurring|present))\b";
const CLOSED_WORD: &str =
    r"(?i)\b(fixed|fixes|resolved|closed|done|mitigated|merged|shipped|reverted|addressed)\b";
const ISSUE_ID: &str = r"\b[A-Z][A-Z0-9]{1,9}-[0-9]{1,7}\b|#[0-9]{1,7}\b";
const SEVERITY: &str =
    r"(?i)\b(P[0-4]|SEV-?[0-4]|S[0-4]|critical|blocker|high|major|medium|moderate|minor|low)\b";
const ROLLBACK_LABEL: &str = r"(?i)^\s*(?:[-*+]\s+(?:\[[ x]\]\s+)?)?(?:\*\*|__)?(?:rollback|roll[- ]back)(?: plan| steps| procedure)?(?:\*\*|__)?\s*:(?:\*\*|__)?\s*(.*)$";
const TBD: &str =
    r"(?i:\b(?:tbd|tbc|tba)\b|\bto be (?:decided|determined|confirmed)\b)|\b(?:TODO|FIXME)\b";
const NOTHING: &str = r"(?i)^[\s*_>-]*(?:n/?a|none|nothing|-|—|\.\.\.|…)?[\s*_.]*$";
const ONE_WAY: &str = r"(?i)\b(irreversibl[ey]|one-way|can(?:not| not|'t|’t) be (?:undone|reversed|rolled back|restored|recovered)|no (?:way|path) back|point of no return|not reversible|no kill[- ]?switch|permanently (?:delete[sd]?|remove[sd]?|drop(?:s|ped)?)|no rollback)\b";
const RISK_CLAIM: &str = r"(?i)\b(?:risk(?:\s+level|\s+rating|\s+assessment)?\s*(?:\*\*|__)?\s*(?:[:=-]|–|—)\s*(?:\*\*|__)?\s*(?:low|minimal|none|negligible|green)\b|low[- ]risk\b|ready (?:to|for) (?:ship|release|launch|deploy|production|go)\b|no known (?:issues|risks|regressions|blockers|problems)\b|no (?:open )?blockers\b|all migrations (?:are )?reversible\b|safe to (?:ship|release|deploy)\b|recommend(?:ation|ed)?\s*:?\s*(?:\*\*)?go(?:\s|[.,;!)*]|$))";
const FLAG_WORD: &str = r"(?i)\b(?:feature[- ]?flags?|flags?|toggles?|kill[- ]?switch)\b|\brolled out to\b|%\s+of\s+(?:merchants|users|customers|accounts|traffic|tenants|requests|orgs|organizations|workspaces|sessions|stores|devices)\b";
const PERCENT: &str = r"([0-9]{1,3}(?:\.[0-9]+)?)\s?%";
const SIGNOFF_WORD: &str = r"(?i)\b(sign[- ]?offs?|signed[- ]off|approvals?|approvers?)\b";
const PENDING: &str =
    r"(?i)\b(pending|awaiting|waiting|not yet|outstanding|missing|requested|tbd|unsigned)\b";
const SUPPORT_WORD: &str =
    r"(?i)\b(support tickets?|tickets?|pages|escalations?|support (?:load|volume|queue)|csat)\b";
const ELEVATED: &str = r"(?i)\b(up|increased?|increasing|rising|spike[sd]?|doubled|tripled|above|higher)\b|\+[0-9]+(?:\.[0-9]+)?\s?%|\b[0-9]+(?:\.[0-9]+)?x\b";
const ISSUES_HEADING: &str = r"(?i)\b(known (?:issues?|bugs|problems|limitations)|open (?:issues|bugs|regressions|defects|items)|outstanding (?:issues|bugs)|regressions|blockers)\b";
const ROLLBACK_HEADING: &str = r"(?i)\b(roll(?:ing|ed)?[- ]?backs?|reverts?|reverting|back(?:ing)?[- ]?out|undo|fall ?back|recovery|downgrad(?:e|ing)|contingency|abort(?:ing)?)\b";
const FLAG_HEADING: &str =
    r"(?i)\b(feature[- ]?flags?|flags?|toggles?|rollouts?|experiments?|ramp(?:-?up)?)\b";
const SIGNOFF_HEADING: &str = r"(?i)\b(sign[- ]?offs?|approvals?|approvers?|go/no-go)\b";
const SUPPORT_HEADING: &str = r"(?i)\b(support (?:load|volume|tickets?|queue|metrics)|tickets?|customer impact|on-?call load|escalations)\b";
const TABLE_SEPARATOR: &str = r"^\s*\|?[\s:|-]*-[\s:|-]*$";
const CODE_NAME: &str = r"`([A-Za-z][A-Za-z0-9_.:/-]*)`";

const IRREVERSIBLE_MARKER: &str = r"(?i)\bIrreversibleMigration\b|\braise\s+NotImplementedError\b|\bRAISE\s+EXCEPTION\b|\birreversible\b";
const SQL_DOWN_MARKER: &str = r"(?i)^\s*--\s*(?:\+goose\s+down|\+migrate\s+down|migrate:down|down:?|rollback:?|undo:?|//\s*@undo)\s*$";
const SQL_UP_MARKER: &str =
    r"(?i)^\s*--\s*(?:\+goose\s+up|\+migrate\s+up|migrate:up|up:?|//\s*@do)\s*$";
const SQL_ROLLBACK_LINE: &str = r"(?i)^\s*--rollback\s+(.+)$";
const DEF_LINE: &str = r"^(\s*)(?:async\s+)?def\s+([A-Za-z_][A-Za-z0-9_]*)";
const JS_DOWN: &str =
    r"\bexports\.down\b|\b(?:async\s+)?down\s*\(|\bdown\s*[:=]\s*(?:async\s*)?(?:function|\()";
const SCALE: &str = r"(?i)[0-9][0-9,.]*\s*(?:k|m|b|million|billion|thousand)?\s*rows\b|\b[0-9]+(?:\s*(?:-|–)\s*[0-9]+)?\s*(?:minutes|mins|hours|hrs)\b|\bbatch(?:es)?\b";
const SQL_DESTRUCTIVE: &str = r#"(?i)\b(DROP\s+(?:TABLE|COLUMN|SCHEMA|DATABASE)|TRUNCATE|DELETE\s+FROM|ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?[\w."]+\s+DROP\s+(?:IF\s+EXISTS\s+)?[\w"]+)\b"#;
const CODE_DESTRUCTIVE: &str = r"\b(remove_columns?|drop_table|remove_reference|remove_belongs_to|drop_join_table|op\.drop_column|op\.drop_table|RemoveField|DeleteModel|dropColumn|dropTable|dropTableIfExists|removeColumn)\b";
const SQL_BACKFILL: &str = r#"(?i)(?:^|["'(\s])UPDATE\s+[\w."]+(?:\s+AS\s+\w+)?\s*(?:SET\b|$)|\bINSERT\s+INTO\b.*\bSELECT\b"#;
const ON_UPDATE: &str = r"(?i)\bON\s+UPDATE\b";
const CODE_BACKFILL: &str =
    r"\b(update_all|in_batches|find_each|find_in_batches|bulk_update|RunPython|update_columns?)\b";
const RAILS_CHANGE_IRREVERSIBLE: &str = r"\b(change_column|execute)\s";
const FLYWAY: &str = r"^([VvUu])([0-9][0-9._]*)__(.+)\.sql$";
const LEADING_NUMBER: &str = r"^[VvUuRr]?([0-9]{3,})";
const SQL_STATEMENT: &str =
    r"(?i)^(?:DROP|ALTER|DELETE|INSERT|UPDATE|CREATE|TRUNCATE|RENAME|GRANT|REVOKE)\b";
const CITATION: &str = r"(source:[A-Za-z0-9_.\-]+|[A-Za-z0-9_.@+\-]+(?:/[A-Za-z0-9_.@+\-]+)*):([0-9]{1,9})(?:-([0-9]{1,9}))?";

/// A rule as a member of the old `RegexSet`: ASCII mode, any bytes.
fn in_set(pattern: &str) -> regex::bytes::Regex {
    regex::bytes::RegexBuilder::new(&format!("(?-u){pattern}"))
        .build()
        .expect("a rule's regex compiles")
}

/// A rule on its own, as the old `text::re` built it.
fn alone(pattern: &str) -> regex::Regex {
    if let Ok(regex) = regex::RegexBuilder::new(pattern).unicode(false).build() {
        return regex;
    }
    regex::Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).expect("a rule's regex compiles")
}

/// Bits of text the rules react to, and some that look like them.
const FRAGMENTS: &[&str] = &[
    "risk",
    "Risk",
    "risk level",
    "risk  rating",
    "risk\tassessment",
    "riskassessment",
    "risks",
    "rating",
    ":",
    "=",
    "-",
    "–",
    "—",
    "**",
    "__",
    "_",
    "*",
    "low",
    "lower",
    "LOW",
    "none",
    "minimal",
    "green",
    "recommend",
    "recommendation",
    "recommended",
    "ation",
    "ed",
    "go",
    "go.",
    "go!",
    "Go)",
    "gopher",
    "ready",
    "to",
    "for",
    "ship",
    "no",
    "known",
    "open",
    "blockers",
    "all migrations",
    "are",
    "reversible",
    "safe",
    "%",
    "% of",
    "of",
    "users",
    "orgs",
    "organizations",
    "+",
    "+12",
    "+1.5",
    "12",
    "1234",
    "1.5",
    "0.25",
    "3.",
    "x",
    "X",
    "2x",
    "1.5x",
    "#123",
    "#12345678",
    "ABC-12",
    "SEV-1",
    "A-1",
    "AB-12345678",
    "Ab-1",
    "REG-1423",
    "[ ]",
    "[x]",
    "[X]",
    "[-]",
    "- ",
    "1. ",
    "12) ",
    "1234. ",
    "* ",
    "+ ",
    "|",
    "| ",
    "---",
    ":--",
    "|---|",
    "`",
    "`name`",
    "`a.b/c-d`",
    "`1x`",
    "rollback",
    "Roll back",
    "roll-back",
    "plan",
    " plan",
    "steps",
    "procedure",
    "n/a",
    "N/A",
    "na",
    "none.",
    "nothing",
    "...",
    "…",
    "> ",
    "TBD",
    "tbd",
    "TODO",
    "todo",
    "FIXME",
    "to be decided",
    "source:",
    "source:jira",
    "docs/x.md",
    "a/b",
    "x.sql",
    ":12",
    ":1234567890",
    "-14",
    "/",
    "@",
    "./",
    "update",
    "UPDATE",
    "set",
    "SET",
    "tSET",
    "as",
    "AS",
    "insert into",
    "INSERT  INTO",
    "select",
    "SELECT",
    "drop",
    "DROP",
    "table",
    "TABLE",
    "column",
    "alter table",
    "ALTER TABLE",
    "if exists",
    "IF EXISTS",
    "\"",
    "\"name\"",
    "'",
    "(",
    ")",
    "rows",
    "million",
    "k",
    "m",
    "b",
    "40-60 minutes",
    "40 – 60",
    "mins",
    "hrs",
    "hours",
    "batch",
    "batches",
    "def",
    "async",
    "async def",
    "down",
    "down(",
    "down:",
    "down =",
    "exports.down",
    "function",
    "--",
    "-- ",
    "+goose",
    "+migrate",
    "migrate:down",
    "migrate:up",
    "up",
    "up:",
    "@undo",
    "@do",
    "//",
    "change_column",
    "execute",
    "execute\t",
    "raise",
    "NotImplementedError",
    "RAISE EXCEPTION",
    "IrreversibleMigration",
    "irreversible",
    "on update",
    "ON\tUPDATE",
    "update_all",
    "RunPython",
    "op.drop_column",
    "dropTable",
    "dropTableIfExists",
    "remove_column",
    "remove_columns",
    "truncate",
    "delete from",
    "can't",
    "can’t",
    "cannot",
    "be undone",
    "kill switch",
    "killswitch",
    "sign-off",
    "signed off",
    "go/no-go",
    "on-call load",
    "é",
    "\u{a0}",
    "ſ",
    "\u{212a}",
    "\u{2003}",
    "\r",
    "\x0b",
];

/// Glue between fragments.
const GLUE: &[&str] = &[
    "", " ", " ", " ", " ", "  ", "\t", "-", "_", ".", ",", ":", "/", "\u{a0}", "*", "**", "\"",
    "(", "`",
];

/// Lines built from the fragments and every phrase the lexicons hold.
fn generated_lines(count: usize, seed: u64) -> Vec<String> {
    let mut words: Vec<String> = FRAGMENTS.iter().map(|f| f.to_string()).collect();
    for lexicon in [&*r::WORDS, &*r::HEADINGS, &*m::WORDS] {
        words.extend(lexicon.phrases());
    }
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut lines = random_lines(&mut rng, &words, GLUE, count);
    // Each rule's own pieces, close together, reach the corners sooner.
    for theme in THEMES {
        lines.extend(random_lines(&mut rng, theme, THEME_GLUE, count / 4));
    }
    lines
}

fn random_lines(
    rng: &mut fastrand::Rng,
    words: &[&str],
    glue: &[&str],
    count: usize,
) -> Vec<String> {
    (0..count)
        .map(|_| {
            let mut line = String::new();
            for i in 0..rng.usize(1..9) {
                if i > 0 || rng.u8(..4) == 0 {
                    line.push_str(glue[rng.usize(..glue.len())]);
                }
                let word = words[rng.usize(..words.len())];
                match rng.u8(..6) {
                    0 => line.push_str(&word.to_ascii_uppercase()),
                    1 => {
                        let mut chars = word.chars();
                        line.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                        line.push_str(chars.as_str());
                    }
                    _ => line.push_str(word),
                }
            }
            line
        })
        .collect()
}

const THEME_GLUE: &[&str] = &["", "", " ", " ", " ", "  ", "\t", "\u{a0}", "\x0b"];

/// The pieces of a few rules each, to be glued into lines.
const THEMES: &[&[&str]] = &[
    &[
        "risk",
        "level",
        "rating",
        "assessment",
        ":",
        "=",
        "-",
        "–",
        "—",
        "**",
        "__",
        "_",
        "*",
        "low",
        "lower",
        "none",
        "nonesuch",
        "minimal",
        "green",
        "greenish",
        "negligible",
        "recommend",
        "recommendation",
        "recommended",
        "ation",
        "ed",
        "go",
        "gone",
        ".",
        "!",
        ")",
        ",",
        ";",
        "ready",
        "to",
        "for",
        "ship",
        "no",
        "known",
        "issues",
        "open",
        "blockers",
        "all",
        "migrations",
        "are",
        "reversible",
        "safe",
        "release",
        "deploy",
    ],
    &[
        "1",
        "12",
        "123",
        "1234",
        "0.5",
        ".",
        ",",
        "%",
        "+",
        "x",
        "X",
        "of",
        "users",
        "orgs",
        "organizations",
        "rows",
        "k",
        "m",
        "b",
        "million",
        "billion",
        "thousand",
        "minutes",
        "mins",
        "hours",
        "hrs",
        "-",
        "–",
        "batch",
        "batches",
        "up",
        "spiked",
    ],
    &[
        "-",
        "*",
        "+",
        "1.",
        "12)",
        "1234.",
        "[",
        "]",
        "x",
        "X",
        "[ ]",
        "[x]",
        "rollback",
        "roll back",
        "roll-back",
        "plan",
        "steps",
        "procedure",
        ":",
        "**",
        "__",
        "n/a",
        "na",
        "n",
        "a",
        "/",
        "none",
        "nothing",
        "...",
        "..",
        "…",
        "—",
        ">",
        "TBD",
        "tbd",
        "todo",
        "TODO",
        "|",
        "---",
        ":--",
        "~",
    ],
    &[
        "ABC",
        "-",
        "12",
        "#",
        "SEV",
        "1",
        "A",
        "ABCDEFGHIJ",
        "12345678",
        "1234567",
        "P1",
        "s0",
        "REG",
        "é",
        "_",
        "x",
    ],
    &[
        "UPDATE",
        "update",
        "t",
        "tSET",
        "SET",
        "set",
        "AS",
        "as",
        "x",
        "\"",
        "'",
        "(",
        "INSERT",
        "INTO",
        "SELECT",
        "ALTER",
        "TABLE",
        "DROP",
        "IF",
        "EXISTS",
        "COLUMN",
        "CONSTRAINT",
        ";",
        ".",
        "ON",
        "--",
        "+goose",
        "+migrate",
        "Down",
        "Up",
        "migrate:down",
        "migrate:up",
        ":",
        "//",
        "@undo",
        "@do",
        "rollback",
        "undo",
        "--rollback",
        "def",
        "async",
        "down",
        "(",
        "=",
        "function",
        "exports.down",
        "exports",
        "change_column",
        "execute",
        "raise",
        "NotImplementedError",
        "RAISE",
        "EXCEPTION",
        "IrreversibleMigration",
        "irreversible",
        "dropTable",
        "dropTableIfExists",
        "op.drop_column",
        "op",
        "_",
    ],
    &[
        "docs",
        "/",
        "x.md",
        ":",
        "12",
        "-",
        "34",
        "source",
        "source:",
        "jira",
        "@",
        "+",
        ".",
        "./",
        "a",
        "1234567890",
        "_",
        "s",
        "sources",
        "é",
    ],
];

/// Every line of the example repository and the test fixtures.
fn document_lines() -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                out.extend(text.lines().map(str::to_string));
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut lines = Vec::new();
    walk(&root.join("../fleet-cli/example/release-gate"), &mut lines);
    walk(&root.join("tests/fixtures"), &mut lines);
    walk(&root.join("../../docs"), &mut lines);
    lines
}

/// Hand-picked lines for the corners each rule's comments argue about.
const CORNERS: &[&str] = &[
    "UPDATE tSET",
    "async\tdef f():",
    "async   def f",
    "risk: lower",
    "risk:nonesuch",
    "UPDATE tSET x = 1",
    "update a.bset",
    "ABCDEFGHIJ-1 ABCDEFGHI-12345678 ABCDEFGHI-1234567",
    "ABCDEFGHIJK-1",
    "40–60 minutes",
    "40 – 60 mins",
    "1–2 hrs",
    "UPDATE invoices_asset",
    "update t as xset",
    "(UPDATE \"a\".b AS c SET x",
    "xUPDATE t SET",
    "UPDATE t",
    "UPDATE t AS",
    "INSERT INTO t(SELECT 1)",
    "INSERT INTOSELECT",
    "insert into a select",
    "ALTER TABLE t DROP \"foo\";",
    "ALTER TABLE IF EXISTS t DROP IF EXISTS x",
    "ALTER TABLE t DROP IF EXISTS",
    "alter table t drop constraint c",
    "ALTER TABLE a.b DROP COLUMN c DROP TABLE d",
    "1234% of users",
    "99.5 % of traffic",
    "flag at 100.%",
    "+12.%",
    "1.5.2x",
    "10.2.3x faster",
    "v2x",
    "risk\u{a0}: low",
    "risk:\u{a0}low",
    "risk: __low",
    "risk: ___low",
    "risk** : **low**",
    "risk _ _: low",
    "risk level:low",
    "risk  level = none",
    "risklevel: low",
    "risk rating—green",
    "recommendation: **go**",
    "recommend **: go",
    "recommended go",
    "recommendgo.",
    "Recommendation:go",
    "ready for production-ready",
    "no open blockers",
    "no open  blockers",
    "Rollback: \u{a0}TBD",
    "- **Rollback plan**: n/a",
    "Rollback  plan: x",
    "* rollback steps :",
    "rollback:",
    "__Rollback__: TBD",
    "**rollback plan**:**none**",
    "- \u{a0}rollback: x",
    "  1. [ ] item",
    "1234. [ ] item",
    "- [x]",
    "-  [ ]\u{a0}text",
    "--rollback DROP TABLE x;",
    "--rollback  ",
    "--rollback \u{a0}",
    "--ROLLBACK x",
    "-- +goose Down",
    "--//@undo",
    "-- // @UNDO  ",
    "-- down:",
    "-- up: x",
    "    def downgrade():",
    "async def upgrade(",
    "async  define",
    "def _x",
    "exports.down = function",
    "down = async (",
    "down: asyncfunction",
    "async down (",
    "downtown(",
    "~38M rows, 40-60 minutes",
    ",,5 rows",
    "5 mrows",
    "5 millionrows",
    "1.5k rows",
    "40 –60 mins",
    "2hours",
    "AB-1#2",
    "XABC-1",
    "SEV-1 REG-2",
    "#1234567 #12345678",
    "source:foo:12:5",
    "source:12",
    "xsource:abc:1",
    "db.internal:5432 and a/b/c.md:3-9 and ./x.md:1",
    "a/:1 a//b:2 /a:3 a/b/:4",
    "x.md:1234567890",
    "x.md:1-1234567890",
    "https://example.com/docs/x.md:12",
    "|---|:--:|",
    "| - |",
    "  ---  ",
    "`1name` `name` `x y`",
    "``code``",
];

fn all_lines() -> Vec<String> {
    let mut lines = document_lines();
    lines.extend(CORNERS.iter().map(|l| l.to_string()));
    lines.extend(generated_lines(12_000, 0x5eed_0001));
    lines
}

fn spans(regex: &regex::Regex, text: &str) -> Vec<Range<usize>> {
    regex.find_iter(text).map(|m| m.range()).collect()
}

fn words(l: &str) -> Hits {
    r::WORDS.scan(l.as_bytes())
}

fn headings(l: &str) -> Hits {
    r::HEADINGS.scan(l.as_bytes())
}

fn migration_words(l: &str) -> Hits {
    m::WORDS.scan(l.as_bytes())
}

#[test]
fn prose_rules_match_where_their_regexes_did() {
    type Rule = (&'static str, &'static str, fn(&str) -> bool);
    let rules: &[Rule] = &[
        ("CHECKBOX", CHECKBOX, |l| r::checkbox(l).is_some()),
        ("LIST_ITEM", LIST_ITEM, |l| r::is_list_item(l.as_bytes())),
        ("BUG_WORD", BUG_WORD, |l| words(l).has(r::Word::Bug)),
        ("OPEN_WORD", OPEN_WORD, |l| words(l).has(r::Word::Open)),
        ("CLOSED_WORD", CLOSED_WORD, |l| {
            words(l).has(r::Word::Closed)
        }),
        ("ISSUE_ID", ISSUE_ID, |l| {
            r::issue_ids(l.as_bytes()).next().is_some()
        }),
        ("SEVERITY", SEVERITY, |l| words(l).has(r::Word::Severity)),
        ("ROLLBACK_LABEL", ROLLBACK_LABEL, |l| {
            r::rollback_label(l).is_some()
        }),
        ("TBD", TBD, |l| words(l).has(r::Word::Tbd)),
        ("NOTHING", NOTHING, |l| r::is_nothing(l.as_bytes())),
        ("ONE_WAY", ONE_WAY, |l| words(l).has(r::Word::OneWay)),
        ("RISK_CLAIM", RISK_CLAIM, |l| {
            r::has_risk_claim(l.as_bytes(), words(l))
        }),
        ("RISK_CLAIM", RISK_CLAIM, r::is_risk_claim),
        ("FLAG_WORD", FLAG_WORD, |l| {
            words(l).has(r::Word::Flag) || r::share_of_audience(l.as_bytes())
        }),
        ("PERCENT", PERCENT, |l| r::percent(l).is_some()),
        ("SIGNOFF_WORD", SIGNOFF_WORD, |l| {
            words(l).has(r::Word::Signoff)
        }),
        ("PENDING", PENDING, |l| words(l).has(r::Word::Pending)),
        ("SUPPORT_WORD", SUPPORT_WORD, |l| {
            words(l).has(r::Word::Support)
        }),
        ("ELEVATED", ELEVATED, |l| {
            words(l).has(r::Word::Elevated) || r::rising_figure(l.as_bytes())
        }),
        ("ISSUES_HEADING", ISSUES_HEADING, |l| {
            headings(l).has(r::Heading::Issues)
        }),
        ("ROLLBACK_HEADING", ROLLBACK_HEADING, |l| {
            headings(l).has(r::Heading::Rollback)
        }),
        ("FLAG_HEADING", FLAG_HEADING, |l| {
            headings(l).has(r::Heading::Flags)
        }),
        ("SIGNOFF_HEADING", SIGNOFF_HEADING, |l| {
            headings(l).has(r::Heading::Signoff)
        }),
        ("SUPPORT_HEADING", SUPPORT_HEADING, |l| {
            headings(l).has(r::Heading::Support)
        }),
        ("TABLE_SEPARATOR", TABLE_SEPARATOR, |l| {
            r::is_table_separator(l.as_bytes())
        }),
    ];
    let compiled: Vec<_> = rules.iter().map(|(_, p, _)| in_set(p)).collect();
    let checkbox = alone(CHECKBOX);
    let issue_id = alone(ISSUE_ID);
    let severity = alone(SEVERITY);
    let rollback_label = alone(ROLLBACK_LABEL);
    let percent = alone(PERCENT);
    let code_name = alone(CODE_NAME);
    let table_separator = alone(TABLE_SEPARATOR);
    let risk_claim = alone(RISK_CLAIM);
    let nothing = alone(NOTHING);
    let tbd = alone(TBD);

    for line in all_lines() {
        let l = line.as_str();
        for ((name, _, rule), regex) in rules.iter().zip(&compiled) {
            assert_eq!(rule(l), regex.is_match(l.as_bytes()), "{name} on {l:?}");
        }
        // The old code captured (in Unicode mode) only where the set matched (in ASCII mode).
        let gated = |rule: &str| {
            compiled[rules
                .iter()
                .position(|(name, _, _)| *name == rule)
                .unwrap_or(0)]
            .is_match(l.as_bytes())
        };
        let boxed = checkbox.captures(l).filter(|_| gated("CHECKBOX")).map(|c| {
            (
                c[1].as_bytes()[0],
                c.get(2).map_or("", |m| m.as_str()).trim(),
            )
        });
        assert_eq!(
            r::checkbox(l).map(|(mark, rest)| (mark, rest.trim())),
            boxed,
            "CHECKBOX on {l:?}"
        );
        let ids: Vec<_> = r::issue_ids(l.as_bytes()).collect();
        assert_eq!(ids, spans(&issue_id, l), "ISSUE_ID on {l:?}");
        let label = severity.find(l).map(|m| m.range());
        assert_eq!(
            r::WORDS.find(l.as_bytes(), r::Word::Severity),
            label,
            "SEVERITY on {l:?}"
        );
        let rest = rollback_label
            .captures(l)
            .filter(|_| gated("ROLLBACK_LABEL"))
            .map(|c| c.get(1).map_or("", |m| m.as_str()));
        assert_eq!(r::rollback_label(l), rest, "ROLLBACK_LABEL on {l:?}");
        if let Some(rest) = rest {
            assert_eq!(
                r::is_nothing(rest.as_bytes()),
                nothing.is_match(rest),
                "NOTHING on {rest:?}"
            );
            let tbd_rest = r::WORDS.find(rest.as_bytes(), r::Word::Tbd).is_some();
            assert_eq!(tbd_rest, tbd.is_match(rest), "TBD on {rest:?}");
        }
        let number = percent
            .captures(l)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str());
        assert_eq!(r::percent(l), number, "PERCENT on {l:?}");
        let name = code_name
            .captures(l)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str());
        assert_eq!(r::code_name(l), name, "CODE_NAME on {l:?}");
        let trimmed = l.trim();
        let separator = table_separator.is_match(trimmed);
        assert_eq!(
            r::is_table_separator(trimmed.as_bytes()),
            separator,
            "TABLE_SEPARATOR on {trimmed:?}"
        );
        let own = own_words(l);
        assert_eq!(
            r::is_risk_claim(&own),
            risk_claim.is_match(&own),
            "RISK_CLAIM on {own:?}"
        );
    }
}

#[test]
fn risk_claims_are_found_across_a_document_as_the_regex_walked() {
    let lowercase = alone(RISK_CLAIM.strip_prefix("(?i)").unwrap_or(RISK_CLAIM));
    let lines = generated_lines(6_000, 0x5eed_0002);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut documents: Vec<String> = CORNERS.iter().map(|l| l.to_string()).collect();
    documents
        .push("our risk\n- low-risk release\nrisk\n\n= none\nrecommend go\nready to ship".into());
    for chunk in lines.chunks(6) {
        let ending = if rng.bool() { "\n" } else { "\r\n" };
        documents.push(chunk.join(ending));
    }
    for text in documents {
        let lower = text.to_ascii_lowercase();
        let old: Vec<Range<usize>> = spans(&lowercase, &lower);
        let mut new = Vec::new();
        let mut from = 0;
        while let Some(found) = r::find_risk_claim(text.as_bytes(), from) {
            from = found.end;
            new.push(found);
        }
        assert_eq!(new, old, "RISK_CLAIM across {text:?}");
        let old_lines = old_line_spans(&lower, &lowercase);
        assert_eq!(
            line_spans_matching(&text, r::find_risk_claim),
            old_lines,
            "{text:?}"
        );
    }
}

/// `text::line_spans_matching` as it was, over a regex.
fn old_line_spans(text: &str, regex: &regex::Regex) -> Vec<(u64, Range<usize>)> {
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

#[test]
fn migration_rules_match_where_their_regexes_did() {
    let words = migration_words;
    type Rule = (&'static str, &'static str, fn(&str) -> bool);
    let rules: &[Rule] = &[
        ("IRREVERSIBLE_MARKER", IRREVERSIBLE_MARKER, |l| {
            migration_words(l).has(m::Word::Irreversible)
        }),
        ("SQL_DOWN_MARKER", SQL_DOWN_MARKER, |l| {
            m::is_sql_down_marker(l.as_bytes())
        }),
        ("SQL_UP_MARKER", SQL_UP_MARKER, |l| {
            m::is_sql_up_marker(l.as_bytes())
        }),
        ("SQL_ROLLBACK_LINE", SQL_ROLLBACK_LINE, |l| {
            m::sql_rollback_line(l).is_some()
        }),
        ("DEF_LINE", DEF_LINE, |l| m::def_line(l).is_some()),
        ("JS_DOWN", JS_DOWN, |l| m::is_js_down(l.as_bytes())),
        ("SCALE", SCALE, |l| {
            migration_words(l).has(m::Word::Batch) || m::is_scale_figure(l.as_bytes())
        }),
        ("SQL_DESTRUCTIVE", SQL_DESTRUCTIVE, |l| {
            m::sql_destructive(l, migration_words(l)).is_some()
        }),
        ("CODE_DESTRUCTIVE", CODE_DESTRUCTIVE, |l| {
            migration_words(l).has(m::Word::CodeDestructive)
        }),
        ("SQL_BACKFILL", SQL_BACKFILL, |l| {
            m::is_sql_backfill(l.as_bytes(), migration_words(l))
        }),
        ("ON_UPDATE", ON_UPDATE, |l| {
            migration_words(l).has(m::Word::OnUpdate)
        }),
        ("CODE_BACKFILL", CODE_BACKFILL, |l| {
            migration_words(l).has(m::Word::CodeBackfill)
        }),
        (
            "RAILS_CHANGE_IRREVERSIBLE",
            RAILS_CHANGE_IRREVERSIBLE,
            |l| m::rails_irreversible_call(l).is_some(),
        ),
        ("SQL_STATEMENT", SQL_STATEMENT, m::is_sql_statement),
    ];
    let compiled: Vec<_> = rules.iter().map(|(_, p, _)| in_set(p)).collect();
    let rollback_line = alone(SQL_ROLLBACK_LINE);
    let def_line = alone(DEF_LINE);
    let sql_destructive = alone(SQL_DESTRUCTIVE);
    let code_destructive = alone(CODE_DESTRUCTIVE);
    let rails = alone(RAILS_CHANGE_IRREVERSIBLE);
    let statement = alone(SQL_STATEMENT);

    for line in all_lines() {
        let l = line.as_str();
        for ((name, _, rule), regex) in rules.iter().zip(&compiled) {
            assert_eq!(rule(l), regex.is_match(l.as_bytes()), "{name} on {l:?}");
        }
        // The old code captured (in Unicode mode) only where the set matched (in ASCII mode).
        let rest = rollback_line
            .captures(l)
            .filter(|_| compiled[3].is_match(l.as_bytes()))
            .map(|c| c.get(1).map_or("", |m| m.as_str()).trim());
        assert_eq!(m::sql_rollback_line(l), rest, "SQL_ROLLBACK_LINE on {l:?}");
        if let Some(rest) = rest {
            assert_eq!(
                m::is_sql_statement(rest),
                statement.is_match(rest),
                "SQL_STATEMENT on {rest:?}"
            );
        }
        let def = def_line.captures(l).map(|c| {
            (
                !c.get(1).is_some_and(|m| m.as_str().is_empty()),
                c.get(2).map_or("", |m| m.as_str()),
            )
        });
        assert_eq!(m::def_line(l), def, "DEF_LINE on {l:?}");
        let destructive = sql_destructive.find(l).map(|m| m.as_str());
        assert_eq!(
            m::sql_destructive(l, words(l)),
            destructive,
            "SQL_DESTRUCTIVE on {l:?}"
        );
        let call = code_destructive.find(l).map(|m| m.range());
        assert_eq!(
            m::WORDS.find(l.as_bytes(), m::Word::CodeDestructive),
            call,
            "CODE_DESTRUCTIVE on {l:?}"
        );
        let rails_call = rails.captures(l).and_then(|c| c.get(1)).map(|m| m.as_str());
        assert_eq!(
            m::rails_irreversible_call(l),
            rails_call,
            "RAILS_CHANGE_IRREVERSIBLE on {l:?}"
        );
    }
}

#[test]
fn migration_file_names_are_read_as_the_regexes_did() {
    let flyway = alone(FLYWAY);
    let leading = alone(LEADING_NUMBER);
    const PIECES: &[&str] = &[
        "V", "U", "v", "u", "R", "r", "1", "20", "003", "1234", ".", "_", "__", "name", "add_x",
        ".sql", ".SQL", "sql", "\n", "é", "-", "x",
    ];
    let mut rng = fastrand::Rng::with_seed(11);
    let mut names: Vec<String> = [
        "V1__2__x.sql",
        "V3__orders.sql",
        "U3__orders.sql",
        "V1.2_3__a b.sql",
        "V1__.sql",
        "V1___.sql",
        "V1__\n.sql",
        "v20240102030405__x.sql",
        "0043_drop_legacy_tax_rate",
        "R123",
        "V12",
    ]
    .iter()
    .map(|n| n.to_string())
    .collect();
    for _ in 0..20_000 {
        names.push(
            (0..rng.usize(1..8))
                .map(|_| PIECES[rng.usize(..PIECES.len())])
                .collect(),
        );
    }
    for name in names {
        let want = flyway
            .captures(&name)
            .map(|c| (c[1].as_bytes()[0], c.get(2).map_or("", |m| m.as_str())));
        assert_eq!(m::flyway(&name), want, "FLYWAY on {name:?}");
        let number = leading
            .captures(&name)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str());
        assert_eq!(
            m::leading_number(&name),
            number,
            "LEADING_NUMBER on {name:?}"
        );
    }
}

#[test]
fn citations_are_found_as_the_regex_found_them() {
    let citation = alone(CITATION);
    let mut texts: Vec<String> = all_lines();
    let lines = generated_lines(3_000, 0x5eed_0003);
    texts.extend(lines.chunks(5).map(|chunk| chunk.join("\n")));
    for text in texts {
        let found: Vec<_> = citation_spans(text.as_bytes()).collect();
        assert_eq!(found, spans(&citation, &text), "CITATION in {text:?}");
    }
}

#[test]
fn every_phrase_is_well_formed() {
    // `Lexicon::new` drops (and in debug builds asserts on) a malformed phrase.
    for lexicon in [&*r::WORDS, &*r::HEADINGS, &*m::WORDS] {
        assert!(lexicon.phrases().count() > 0);
    }
}
