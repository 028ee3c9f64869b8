//! The line rules of a migration file, each written by hand beside the
//! regex it stands for (ASCII `\b`, `\s`, `\w` and `(?i)`); the tests in
//! `spec.rs` hold them to it.

use super::super::lexicon::{Case, Gap, Hits, Lexicon, Phrases};
use crate::text::{
    Cursor, is_boundary, is_space_byte, is_word_byte, word_starts, word_starts_with,
};
use std::sync::LazyLock;

/// The rules of a migration line that are lists of phrases.
#[derive(Debug, Clone, Copy)]
pub(in crate::builtin) enum Word {
    Irreversible,
    SqlDestructive,
    CodeDestructive,
    OnUpdate,
    CodeBackfill,
    Batch,
}

impl From<Word> for u8 {
    fn from(word: Word) -> u8 {
        word as u8
    }
}

const fn phrases(rule: Word, case: Case, gap: Gap, spec: &'static str) -> Phrases {
    Phrases {
        rule: rule as u8,
        case,
        gap,
        spec,
    }
}

pub(in crate::builtin) static WORDS: LazyLock<Lexicon> = LazyLock::new(|| {
    use Case::{Any, Exact};
    use Gap::{Space, Whitespace};
    Lexicon::new(&[
        // (?i)\bIrreversibleMigration\b|\braise\s+NotImplementedError\b|\bRAISE\s+EXCEPTION\b|\birreversible\b
        phrases(
            Word::Irreversible,
            Any,
            Whitespace,
            "irreversiblemigration|raise notimplementederror|raise exception|irreversible",
        ),
        // The fixed alternatives of `sql_destructive`:
        // (?i)\b(DROP\s+(?:TABLE|COLUMN|SCHEMA|DATABASE)|TRUNCATE|DELETE\s+FROM)\b
        phrases(
            Word::SqlDestructive,
            Any,
            Whitespace,
            "drop {table,column,schema,database}|truncate|delete from",
        ),
        // \b(remove_columns?|drop_table|remove_reference|remove_belongs_to|drop_join_table|op\.drop_column|
        //   op\.drop_table|RemoveField|DeleteModel|dropColumn|dropTable|dropTableIfExists|removeColumn)\b
        phrases(
            Word::CodeDestructive,
            Exact,
            Space,
            "remove_column{,s}|drop_table|remove_reference|remove_belongs_to|drop_join_table|op.drop_column|\
             op.drop_table|RemoveField|DeleteModel|dropColumn|dropTable|dropTableIfExists|removeColumn",
        ),
        // (?i)\bON\s+UPDATE\b
        phrases(Word::OnUpdate, Any, Whitespace, "on update"),
        // \b(update_all|in_batches|find_each|find_in_batches|bulk_update|RunPython|update_columns?)\b
        phrases(
            Word::CodeBackfill,
            Exact,
            Space,
            "update_all|in_batches|find_each|find_in_batches|bulk_update|RunPython|update_column{,s}",
        ),
        // (?i)\bbatch(?:es)?\b (and `scale_figure`)
        phrases(Word::Batch, Any, Space, "batch{,es}"),
    ])
});

/// An optional piece (`?`, `*`): matched or not, the match goes on.
fn optional(_matched: bool) -> bool {
    true
}

/// A line that is nothing but `marker`: `^\s*--\s*(?:marker)\s*$`.
fn is_sql_comment_marker(h: &[u8], markers: &[fn(&mut Cursor<'_>) -> bool]) -> bool {
    let mut c = Cursor::new(h, 0);
    c.spaces();
    if !c.lit("--") {
        return false;
    }
    c.spaces();
    markers.iter().any(|marker| {
        let mut c = c;
        marker(&mut c) && {
            c.spaces();
            c.at_end()
        }
    })
}

/// `(?i)^\s*--\s*(?:\+goose\s+down|\+migrate\s+down|migrate:down|down:?|rollback:?|undo:?|//\s*@undo)\s*$`
pub(in crate::builtin) fn is_sql_down_marker(h: &[u8]) -> bool {
    is_sql_comment_marker(
        h,
        &[
            |c| c.lit_ci("+goose") && c.spaces1() && c.lit_ci("down"),
            |c| c.lit_ci("+migrate") && c.spaces1() && c.lit_ci("down"),
            |c| c.lit_ci("migrate:down"),
            |c| {
                let word = c.first_ci(&["down", "rollback", "undo"]);
                word && optional(c.byte(b':'))
            },
            |c| {
                let slashes = c.lit("//");
                slashes && optional(c.spaces1()) && c.lit_ci("@undo")
            },
        ],
    )
}

/// `(?i)^\s*--\s*(?:\+goose\s+up|\+migrate\s+up|migrate:up|up:?|//\s*@do)\s*$`
pub(in crate::builtin) fn is_sql_up_marker(h: &[u8]) -> bool {
    is_sql_comment_marker(
        h,
        &[
            |c| c.lit_ci("+goose") && c.spaces1() && c.lit_ci("up"),
            |c| c.lit_ci("+migrate") && c.spaces1() && c.lit_ci("up"),
            |c| c.lit_ci("migrate:up"),
            |c| {
                let word = c.lit_ci("up");
                word && optional(c.byte(b':'))
            },
            |c| {
                let slashes = c.lit("//");
                slashes && optional(c.spaces1()) && c.lit_ci("@do")
            },
        ],
    )
}

/// `(?i)^\s*--rollback\s+(.+)$` (Liquibase formatted SQL): the rollback
/// statement, trimmed.
pub(in crate::builtin) fn sql_rollback_line(line: &str) -> Option<&str> {
    let mut c = Cursor::new(line.as_bytes(), 0);
    c.spaces();
    if !c.lit_ci("--rollback") {
        return None;
    }
    let rest = &line[c.at..];
    // `\s+` then `.+`: a space, then anything at all (even another space).
    let spaced = c.spaces1() && (!c.at_end() || rest.len() >= 2);
    spaced.then(|| rest.trim())
}

/// `(?i)^(?:DROP|ALTER|DELETE|INSERT|UPDATE|CREATE|TRUNCATE|RENAME|GRANT|REVOKE)\b`
pub(in crate::builtin) fn is_sql_statement(text: &str) -> bool {
    let word = &text.as_bytes()[..text.bytes().take_while(|&b| is_word_byte(b)).count()];
    [
        "drop", "alter", "delete", "insert", "update", "create", "truncate", "rename", "grant",
        "revoke",
    ]
    .iter()
    .any(|keyword| word.eq_ignore_ascii_case(keyword.as_bytes()))
}

/// `^(\s*)(?:async\s+)?def\s+([A-Za-z_][A-Za-z0-9_]*)`: whether the `def`
/// is indented, and the name it defines.
pub(in crate::builtin) fn def_line(line: &str) -> Option<(bool, &str)> {
    let h = line.as_bytes();
    let mut c = Cursor::new(h, 0);
    let indented = c.spaces() > 0;
    // Taken if there: without it, `def` would have to start where `async` does.
    let mut after_async = c;
    if after_async.lit("async") && after_async.spaces1() {
        c = after_async;
    }
    if !(c.lit("def")
        && c.spaces1()
        && c.peek()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_'))
    {
        return None;
    }
    let name = c.at;
    c.skip_while(is_word_byte);
    Some((indented, &line[name..c.at]))
}

/// `\bexports\.down\b|\b(?:async\s+)?down\s*\(|\bdown\s*[:=]\s*(?:async\s*)?(?:function|\()`:
/// a knex/JS `down` migration.
pub(in crate::builtin) fn is_js_down(h: &[u8]) -> bool {
    word_starts(h, 0).any(|start| {
        let mut c = Cursor::new(h, start);
        if c.lit("exports.down") {
            return c.at_boundary();
        }
        // `async ` before `down(` only widens a match that `down(` alone makes.
        if !(c.lit("down") && c.at_boundary()) {
            return false;
        }
        c.spaces();
        if c.byte(b'(') {
            return true;
        }
        if !c.byte_in(b":=") {
            return false;
        }
        c.spaces();
        let mut asynchronous = c;
        if asynchronous.lit("async") {
            asynchronous.spaces();
            let mut f = asynchronous;
            if f.lit("function") || f.byte(b'(') {
                return true;
            }
        }
        c.lit("function") || c.byte(b'(')
    })
}

/// The figures of `SCALE`, which also matches `batch(es)` ([`Word::Batch`]):
/// `(?i)[0-9][0-9,.]*\s*(?:k|m|b|million|billion|thousand)?\s*rows\b`
/// `|\b[0-9]+(?:\s*(?:-|–)\s*[0-9]+)?\s*(?:minutes|mins|hours|hrs)\b`.
/// A range (`40-60 minutes`) also matches from its second number, so only
/// `\b[0-9]+\s*(?:minutes|...)\b` is looked for.
pub(in crate::builtin) fn is_scale_figure(h: &[u8]) -> bool {
    let rows = |mut c: Cursor<'_>| {
        c.spaces();
        ["k", "m", "b", "million", "billion", "thousand", ""]
            .iter()
            .any(|unit| {
                let mut c = c;
                c.lit_ci(unit) && {
                    c.spaces();
                    c.lit_ci("rows") && c.at_boundary()
                }
            })
    };
    let duration = |mut c: Cursor<'_>| {
        c.spaces();
        ["minutes", "mins", "hours", "hrs"].iter().any(|unit| {
            let mut c = c;
            c.lit_ci(unit) && c.at_boundary()
        })
    };
    let mut i = 0;
    while i < h.len() {
        // `[0-9][0-9,.]*`: from any digit of a run of digits, commas and
        // dots the run ends in the same place, so each run is tried once,
        // from its first digit (the commas and dots before it start nothing).
        let Some(digit) = h[i..].iter().position(u8::is_ascii_digit) else {
            break;
        };
        i += digit;
        let mut run = Cursor::new(h, i);
        run.skip_while(|b| b.is_ascii_digit() || b == b',' || b == b'.');
        if rows(run) {
            return true;
        }
        // A duration starts at a word boundary: the run's start, or a digit after a `.` or `,`.
        for start in i..run.at {
            let mut c = Cursor::new(h, start);
            if c.at_boundary() && c.digits() > 0 && duration(c) {
                return true;
            }
        }
        i = run.at;
    }
    false
}

/// `(?i)\b(DROP\s+(?:TABLE|COLUMN|SCHEMA|DATABASE)|TRUNCATE|DELETE\s+FROM|
/// ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?[\w."]+\s+DROP\s+(?:IF\s+EXISTS\s+)?[\w"]+)\b`:
/// the first destructive statement, as written.
pub(in crate::builtin) fn sql_destructive(line: &str, words: Hits) -> Option<&str> {
    let h = line.as_bytes();
    let phrase = if words.has(Word::SqlDestructive) {
        WORDS.find(h, Word::SqlDestructive)
    } else {
        None
    };
    let before = phrase.as_ref().map_or(h.len(), |p| p.start);
    let alter = if words.has_word_starting(b'a') {
        word_starts_with(&h[..before], b'a')
            .find_map(|start| alter_drop_at(h, start).map(|end| start..end))
    } else {
        None
    };
    alter.or(phrase).map(|span| &line[span])
}

/// The `ALTER TABLE t DROP x` alternative of [`sql_destructive`]: where it
/// ends if it starts at `start`.
fn alter_drop_at(h: &[u8], start: usize) -> Option<usize> {
    let if_exists = |c: &mut Cursor<'_>| {
        let mut t = *c;
        let taken = t.lit_ci("if") && t.spaces1() && t.lit_ci("exists") && t.spaces1();
        if taken {
            *c = t;
        }
        taken
    };
    let names = |b: u8| is_word_byte(b) || b == b'.' || b == b'"';
    let mut c = Cursor::new(h, start);
    if !(c.lit_ci("alter") && c.spaces1() && c.lit_ci("table") && c.spaces1()) {
        return None;
    }
    for skip_if_exists in [false, true] {
        let mut c = c;
        if !skip_if_exists && !if_exists(&mut c) {
            continue;
        }
        // The table's name is taken whole: `\s+` must follow it.
        if c.skip_while(names) == 0 || !(c.spaces1() && c.lit_ci("drop") && c.spaces1()) {
            continue;
        }
        for skip_if_exists in [false, true] {
            let mut c = c;
            if !skip_if_exists && !if_exists(&mut c) {
                continue;
            }
            // `[\w"]+\b`: the longest name that ends at a word boundary.
            let from = c.at;
            let run = c.skip_while(|b| is_word_byte(b) || b == b'"');
            if let Some(end) = (from + 1..=from + run)
                .rev()
                .find(|&end| is_boundary(h, end))
            {
                return Some(end);
            }
        }
    }
    None
}

/// `(?i)(?:^|["'(\s])UPDATE\s+[\w."]+(?:\s+AS\s+\w+)?\s*(?:SET\b|$)|\bINSERT\s+INTO\b.*\bSELECT\b`:
/// a statement that rewrites existing rows. `words`: what the lexicon saw in `h`.
pub(in crate::builtin) fn is_sql_backfill(h: &[u8], words: Hits) -> bool {
    let names = |b: u8| is_word_byte(b) || b == b'.' || b == b'"';
    // `\s*(?:SET\b|$)` right here.
    let set_or_end = |mut c: Cursor<'_>| {
        c.spaces();
        c.at_end() || (c.lit_ci("set") && c.at_boundary())
    };
    // `UPDATE` and `INSERT` start words: they follow a quote, a bracket, a space or nothing.
    let update = words.has_word_starting(b'u')
        && memchr::memchr2_iter(b'u', b'U', h).any(|start| {
            let mut c = Cursor::new(h, start);
            let after_quote = start == 0 || {
                let b = h[start - 1];
                is_space_byte(b) || b"\"'(".contains(&b)
            };
            if !(after_quote && c.lit_ci("update") && c.spaces1()) {
                return false;
            }
            // The table name may end anywhere in its run: `set` can be glued on.
            let from = c.at;
            let run = c.skip_while(names);
            (1..=run).any(|len| {
                let name_end = Cursor::new(h, from + len);
                let mut alias = name_end;
                let aliased = alias.spaces1() && alias.lit_ci("as") && alias.spaces1() && {
                    let alias_from = alias.at;
                    let alias_run = alias.skip_while(is_word_byte);
                    (1..=alias_run).any(|len| set_or_end(Cursor::new(h, alias_from + len)))
                };
                aliased || set_or_end(name_end)
            })
        });
    update
        || words.has_word_starting(b'i') && {
            // The first `INSERT INTO` leaves the most room for a `SELECT` after it.
            let into = word_starts_with(h, b'i').find_map(|start| {
                let mut c = Cursor::new(h, start);
                (c.lit_ci("insert") && c.spaces1() && c.lit_ci("into") && c.at_boundary())
                    .then_some(c.at)
            });
            into.is_some_and(|into| {
                word_starts_with(&h[into..], b's').any(|at| {
                    let mut c = Cursor::new(h, into + at);
                    // A word start in the slice is one in `h` too: `into` ends a word.
                    c.lit_ci("select") && c.at_boundary()
                })
            })
        }
}

/// `\b(change_column|execute)\s`: a Rails call that `def change` cannot reverse.
pub(in crate::builtin) fn rails_irreversible_call(line: &str) -> Option<&str> {
    let h = line.as_bytes();
    word_starts(h, 0).find_map(|start| {
        let mut c = Cursor::new(h, start);
        ((c.lit("change_column") || c.lit("execute")) && c.space()).then(|| &line[start..c.at - 1])
    })
}

/// `^([VvUu])([0-9][0-9._]*)__(.+)\.sql$`: a Flyway script's kind (`V`
/// versioned, `U` undo) and version.
pub(in crate::builtin) fn flyway(file: &str) -> Option<(u8, &str)> {
    let h = file.as_bytes();
    if !(h.first().is_some_and(|b| b"VvUu".contains(b)) && h.get(1).is_some_and(u8::is_ascii_digit))
    {
        return None;
    }
    let run = h[2..]
        .iter()
        .take_while(|&&b| b.is_ascii_digit() || b == b'.' || b == b'_')
        .count();
    // The version is as long as it can be with `__`, a name and `.sql` after it.
    (0..=run).rev().find_map(|len| {
        let version_end = 2 + len;
        let name = file
            .get(version_end..)?
            .strip_prefix("__")?
            .strip_suffix(".sql")?;
        (!name.is_empty() && !name.contains('\n')).then(|| (h[0], &file[1..version_end]))
    })
}

/// `^[VvUuRr]?([0-9]{3,})`: a migration's leading version number.
pub(in crate::builtin) fn leading_number(name: &str) -> Option<&str> {
    let from = usize::from(
        name.as_bytes()
            .first()
            .is_some_and(|b| b"VvUuRr".contains(b)),
    );
    let digits = name.as_bytes()[from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    (digits >= 3).then(|| &name[from..from + digits])
}

/// The operation a [`sql_destructive`] match names (`DROP TABLE`,
/// `DELETE FROM`, ...), or `None` for an `ALTER TABLE ... DROP` of a
/// constraint, default or index, which loses no data.
pub(in crate::builtin) fn destructive_op(matched: &str) -> Option<String> {
    let upper = matched.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    let op = match words.as_slice() {
        ["TRUNCATE", ..] => "TRUNCATE",
        ["DELETE", ..] => "DELETE FROM",
        ["DROP", kind, ..] => return Some(format!("DROP {kind}")),
        ["ALTER", ..] => {
            // ALTER TABLE t DROP x: a column unless it is a constraint/default/not null.
            let dropped = words.last().copied().unwrap_or("");
            if matches!(
                dropped,
                "CONSTRAINT" | "DEFAULT" | "NOT" | "INDEX" | "IDENTITY" | "EXPRESSION"
            ) {
                return None;
            }
            "DROP COLUMN"
        }
        _ => return None,
    };
    Some(op.to_string())
}
