//! Migrations: pair files into migrations (`.up.sql`/`.down.sql`, Flyway
//! `V3__`/`U3__`, `up.sql`/`down.sql` directories, `up/`/`down/` trees) or
//! read single files (Rails, Alembic, Django, knex, plain SQL with a down
//! section), then decide reversibility and find destructive statements and
//! backfills in the forward direction only (a down migration dropping what
//! its up created is expected).

use super::analysis::{Migration, cite};
use super::lexicon::{Case, Gap, Hits, Lexicon, Phrases};
use crate::text::{
    Cursor, is_boundary, is_space_byte, is_word_byte, word_starts, word_starts_with,
};
use fleet_core::flags::Citation;
use fleet_corpus::Document;
use std::collections::BTreeMap;
use std::sync::LazyLock;

// The rules are written by hand, each with the regex it stands for (ASCII
// `\b`, `\s`, `\w` and `(?i)`); the tests in `spec.rs` hold them to it.

/// The rules of a migration line that are lists of phrases.
#[derive(Debug, Clone, Copy)]
pub(super) enum Word {
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

pub(super) static WORDS: LazyLock<Lexicon> = LazyLock::new(|| {
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
pub(super) fn is_sql_down_marker(h: &[u8]) -> bool {
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
pub(super) fn is_sql_up_marker(h: &[u8]) -> bool {
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
pub(super) fn sql_rollback_line(line: &str) -> Option<&str> {
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
pub(super) fn is_sql_statement(text: &str) -> bool {
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
pub(super) fn def_line(line: &str) -> Option<(bool, &str)> {
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
pub(super) fn is_js_down(h: &[u8]) -> bool {
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
pub(super) fn is_scale_figure(h: &[u8]) -> bool {
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
pub(super) fn sql_destructive(line: &str, words: Hits) -> Option<&str> {
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
pub(super) fn is_sql_backfill(h: &[u8], words: Hits) -> bool {
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
pub(super) fn rails_irreversible_call(line: &str) -> Option<&str> {
    let h = line.as_bytes();
    word_starts(h, 0).find_map(|start| {
        let mut c = Cursor::new(h, start);
        ((c.lit("change_column") || c.lit("execute")) && c.space()).then(|| &line[start..c.at - 1])
    })
}

/// `^([VvUu])([0-9][0-9._]*)__(.+)\.sql$`: a Flyway script's kind (`V`
/// versioned, `U` undo) and version.
pub(super) fn flyway(file: &str) -> Option<(u8, &str)> {
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
pub(super) fn leading_number(name: &str) -> Option<&str> {
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

/// Is this corpus path a migration file this module understands?
pub(crate) fn is_migration(path: &str) -> bool {
    let lower = crate::text::ascii_lowercase(path);
    let (dir, file) = lower.rsplit_once('/').unwrap_or(("", &lower));
    let ext = file.rsplit_once('.').map_or("", |(_, e)| e);
    if !matches!(ext, "sql" | "rb" | "py" | "js" | "ts") {
        return false;
    }
    if matches!(
        file,
        "__init__.py" | "env.py" | "schema.rb" | "seeds.rb" | "schema.sql"
    ) {
        return false;
    }
    let in_migration_dir = dir.split('/').any(|seg| {
        matches!(
            seg,
            "migrations"
                | "migration"
                | "migrate"
                | "versions"
                | "db_migrations"
                | "sql_migrations"
        )
    });
    in_migration_dir
        || flyway(file).is_some()
        || file.ends_with(".up.sql")
        || file.ends_with(".down.sql")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Up,
    Down,
    Single,
}

/// Which migration a file belongs to, and as which half.
fn role_and_key(path: &str) -> (Role, String, String) {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    for (suffix, role) in [
        (".up.sql", Role::Up),
        (".down.sql", Role::Down),
        (".undo.sql", Role::Down),
    ] {
        // `suffix` is lowercase: compared in place, not in a lowercased copy.
        let tail = file.get(file.len().saturating_sub(suffix.len())..);
        if file.len() > suffix.len() && tail.is_some_and(|tail| tail.eq_ignore_ascii_case(suffix)) {
            let stem = &file[..file.len() - suffix.len()];
            return (role, format!("{dir}/{stem}"), stem.to_string());
        }
    }
    let parent = dir.rsplit('/').next().unwrap_or(dir);
    match crate::text::ascii_lowercase(file).as_ref() {
        "up.sql" => return (Role::Up, dir.to_string(), parent.to_string()),
        "down.sql" => return (Role::Down, dir.to_string(), parent.to_string()),
        _ => {}
    }
    if let Some((kind, version)) = flyway(file) {
        let role = if kind.eq_ignore_ascii_case(&b'u') {
            Role::Down
        } else {
            Role::Up
        };
        let name = file.trim_end_matches(".sql");
        let name = if role == Role::Down {
            format!("V{}", &name[1..])
        } else {
            name.to_string()
        };
        return (role, format!("{dir}/flyway:{version}"), name);
    }
    let grandparent = dir.rsplit_once('/').map_or("", |(g, _)| g);
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    match crate::text::ascii_lowercase(parent).as_ref() {
        "down" | "rollback" | "rollbacks" | "undo" | "revert" => {
            return (
                Role::Down,
                format!("{grandparent}/{file}"),
                stem.to_string(),
            );
        }
        "up" => return (Role::Up, format!("{grandparent}/{file}"), stem.to_string()),
        _ => {}
    }
    (Role::Single, path.to_string(), stem.to_string())
}

/// What one pass over a migration file found.
#[derive(Debug, Default)]
struct FileScan {
    destructive: Vec<(String, Citation)>,
    backfill: Vec<Citation>,
    scale: Option<Citation>,
    first_statement: Option<Citation>,
    /// The first statement that runs in the down direction.
    first_down_statement: Option<Citation>,
    /// A down section / `def down` / `downgrade()` exists at this line.
    down_at: Option<Citation>,
    /// The down part has real statements.
    down_statements: bool,
    irreversible: Option<Citation>,
    /// Rails `def change`, or a Django migration (both reverse automatically).
    auto_reversible: bool,
    /// An operation that automatic reversal cannot undo.
    blocks_auto_reverse: Option<(String, Citation)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Sql,
    Ruby,
    Python,
    Js,
}

fn lang_of(path: &str) -> Lang {
    match path
        .rsplit_once('.')
        .map(|(_, e)| crate::text::ascii_lowercase(e))
    {
        Some(e) if e == "rb" => Lang::Ruby,
        Some(e) if e == "py" => Lang::Python,
        Some(e) if e == "js" || e == "ts" => Lang::Js,
        _ => Lang::Sql,
    }
}

fn destructive_op(matched: &str) -> Option<String> {
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

fn scan_file(doc: &Document, role: Role) -> FileScan {
    let lang = lang_of(&doc.path);
    let path = doc.path.as_str();
    let mut scan = FileScan {
        auto_reversible: lang == Lang::Python
            && (doc.text.contains("migrations.Migration") || doc.text.contains("class Migration(")),
        ..FileScan::default()
    };
    let django = scan.auto_reversible;
    let mut forward = role != Role::Down;
    let mut in_python_down = false;
    let mut reverse_calls = 0usize;
    let mut reverse_args = 0usize;

    for (index, line) in crate::text::lines(&doc.text).enumerate() {
        let n = index as u64 + 1;
        let trimmed = crate::text::trim(line);
        if trimmed.is_empty() {
            continue;
        }
        let h = line.as_bytes();
        let words = WORDS.scan(h);
        if scan.irreversible.is_none() && words.has(Word::Irreversible) {
            scan.irreversible = Some(cite(path, n, line));
        }
        let comment = match lang {
            Lang::Sql => trimmed.starts_with("--"),
            Lang::Ruby | Lang::Python => trimmed.starts_with('#'),
            Lang::Js => {
                trimmed.starts_with("//") || trimmed.starts_with('*') || trimmed.starts_with("/*")
            }
        };

        match lang {
            Lang::Sql => {
                if is_sql_down_marker(h) {
                    forward = false;
                    scan.down_at = Some(cite(path, n, line));
                    continue;
                }
                if is_sql_up_marker(h) {
                    forward = role != Role::Down;
                    continue;
                }
                if let Some(rest) = sql_rollback_line(line) {
                    scan.down_at.get_or_insert_with(|| cite(path, n, line));
                    if is_sql_statement(rest) {
                        scan.down_statements = true;
                        scan.first_down_statement
                            .get_or_insert_with(|| cite(path, n, line));
                    }
                    continue;
                }
            }
            Lang::Ruby => {
                if let Some((_, name)) = def_line(line) {
                    match name {
                        "up" => forward = true,
                        "change" => {
                            forward = true;
                            scan.auto_reversible = true;
                        }
                        "down" => {
                            forward = false;
                            scan.down_at = Some(cite(path, n, line));
                        }
                        _ => {}
                    }
                    continue;
                }
                if !forward && !comment && trimmed != "end" {
                    scan.down_statements = true;
                }
            }
            Lang::Python => {
                if let Some((false, name)) = def_line(line) {
                    // Top-level defs only: helpers nested in upgrade() stay in upgrade().
                    match name {
                        "upgrade" | "forwards" => {
                            forward = true;
                            in_python_down = false;
                        }
                        "downgrade" | "backwards" => {
                            forward = false;
                            in_python_down = true;
                            scan.down_at = Some(cite(path, n, line));
                        }
                        _ => in_python_down = false,
                    }
                    continue;
                }
                if in_python_down
                    && !comment
                    && trimmed != "pass"
                    && !trimmed.starts_with("\"\"\"")
                    && !trimmed.starts_with("'''")
                    && !trimmed.starts_with("raise NotImplementedError")
                {
                    scan.down_statements = true;
                }
                if django {
                    reverse_calls +=
                        line.matches("RunPython(").count() + line.matches("RunSQL(").count();
                    reverse_args +=
                        line.matches("reverse_code").count() + line.matches("reverse_sql").count();
                    if reverse_calls > reverse_args && scan.blocks_auto_reverse.is_none() {
                        // Provisional: a later line may still pass reverse_code.
                        scan.blocks_auto_reverse = Some((
                            "RunPython/RunSQL without a reverse".into(),
                            cite(path, n, line),
                        ));
                    }
                }
            }
            Lang::Js => {
                if is_js_down(h) {
                    forward = false;
                    scan.down_at = Some(cite(path, n, line));
                    scan.down_statements = true;
                    continue;
                }
            }
        }

        if !comment {
            let first = if forward {
                &mut scan.first_statement
            } else {
                &mut scan.first_down_statement
            };
            first.get_or_insert_with(|| cite(path, n, line));
        }
        if lang == Lang::Sql && !forward && !comment {
            scan.down_statements = true;
        }
        if forward && scan.scale.is_none() && (words.has(Word::Batch) || is_scale_figure(h)) {
            scan.scale = Some(cite(path, n, line));
        }
        if !forward || comment {
            continue;
        }
        if let Some(op) = sql_destructive(line, words).and_then(destructive_op) {
            scan.destructive.push((op, cite(path, n, line)));
        } else if words.has(Word::CodeDestructive)
            && let Some(call) = WORDS.find(h, Word::CodeDestructive)
        {
            scan.destructive
                .push((line[call].to_string(), cite(path, n, line)));
        }
        if (!words.has(Word::OnUpdate) && is_sql_backfill(h, words))
            || words.has(Word::CodeBackfill)
        {
            scan.backfill.push(cite(path, n, line));
        }
        if lang == Lang::Ruby
            && scan.auto_reversible
            && scan.blocks_auto_reverse.is_none()
            && let Some(call) = rails_irreversible_call(line)
            && !doc.text.contains("reversible do")
        {
            scan.blocks_auto_reverse =
                Some((format!("`{call}` inside def change"), cite(path, n, line)));
        }
    }
    if django && reverse_calls <= reverse_args {
        scan.blocks_auto_reverse = None;
    }
    scan
}

#[derive(Default)]
struct Unit<'d> {
    name: String,
    up: Option<(&'d Document, FileScan)>,
    down: Option<(&'d Document, FileScan)>,
    single: Option<(&'d Document, FileScan)>,
}

/// Groups migration files into migrations and judges each.
pub(crate) fn analyze(docs: &[&Document]) -> Vec<Migration> {
    // The map holds indexes: a `Unit` is large, and a B-tree shifts its
    // values around as keys arrive.
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    let mut units: Vec<Unit<'_>> = Vec::new();
    for doc in docs {
        let (role, key, name) = role_and_key(&doc.path);
        let index = *keys.entry(key).or_insert_with(|| {
            units.push(Unit::default());
            units.len() - 1
        });
        let unit = &mut units[index];
        if unit.name.is_empty() || role != Role::Down {
            unit.name = name;
        }
        let scanned = Some((*doc, scan_file(doc, role)));
        match role {
            Role::Up => unit.up = scanned,
            Role::Down => unit.down = scanned,
            Role::Single => unit.single = scanned,
        }
    }
    let mut judged: Vec<Migration> = keys
        .into_values()
        .filter_map(|index| judge(std::mem::take(&mut units[index])))
        .collect();
    // Corpus order (by path of the forward file) reads most naturally.
    judged.sort_by(|a, b| a.files.first().cmp(&b.files.first()));
    judged
}

fn judge(unit: Unit<'_>) -> Option<Migration> {
    let number = leading_number(&unit.name)
        .map(str::to_string)
        .or_else(|| flyway(&format!("{}.sql", unit.name)).map(|(_, version)| version.to_string()));
    let paired = unit.up.is_some();
    let (forward_doc, forward) = match (unit.up, unit.single) {
        (Some(up), _) => up,
        (None, Some(single)) => single,
        // A down file whose up is not in the corpus: nothing to judge.
        (None, None) => return None,
    };
    let mut files = vec![forward_doc.path.clone()];
    let top = || {
        cite(
            &forward_doc.path,
            1,
            forward_doc.text.lines().next().unwrap_or(""),
        )
    };
    let first_risk = forward
        .destructive
        .first()
        .map(|(_, c)| c.clone())
        .or_else(|| forward.first_statement.clone())
        .unwrap_or_else(top);

    let (reversible, reason, evidence) = if let Some((down_doc, down)) = &unit.down {
        files.push(down_doc.path.clone());
        if let Some(marker) = &down.irreversible {
            (
                false,
                "its down migration refuses to run".to_string(),
                marker.clone(),
            )
        } else if let Some(first) = &down.first_down_statement {
            (
                true,
                format!("down migration `{}`", down_doc.path),
                first.clone(),
            )
        } else {
            (
                false,
                format!("down migration `{}` has no statements", down_doc.path),
                cite(
                    &down_doc.path,
                    1,
                    down_doc.text.lines().next().unwrap_or(""),
                ),
            )
        }
    } else if let Some(marker) = &forward.irreversible {
        (false, "marked irreversible".to_string(), marker.clone())
    } else if let Some((what, at)) = &forward.blocks_auto_reverse {
        (
            false,
            format!("{what} cannot be reversed automatically"),
            at.clone(),
        )
    } else if let Some(down_at) = &forward.down_at {
        if forward.down_statements {
            (
                true,
                "has a down/rollback section".to_string(),
                down_at.clone(),
            )
        } else {
            (
                false,
                "its down/rollback section is empty".to_string(),
                down_at.clone(),
            )
        }
    } else if forward.auto_reversible {
        (
            true,
            "reversed automatically by the framework".to_string(),
            first_risk.clone(),
        )
    } else {
        let file = forward_doc
            .path
            .rsplit('/')
            .next()
            .unwrap_or(&forward_doc.path);
        let reason = match (paired, lang_of(&forward_doc.path)) {
            (true, _) if flyway(file).is_some() => "no undo (U) script".to_string(),
            (true, _) => format!("no down migration (`{}.down.sql`)", unit.name),
            (false, Lang::Ruby) => "def up without def down".to_string(),
            (false, Lang::Python) => "no downgrade()".to_string(),
            _ => "no down/rollback counterpart".to_string(),
        };
        (false, reason, first_risk.clone())
    };
    Some(Migration {
        name: unit.name,
        number,
        files,
        reversible,
        reason,
        evidence,
        destructive: forward.destructive,
        backfill: forward.backfill,
        scale: forward.scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str, text: &str) -> Document {
        Document {
            path: path.into(),
            text: text.into(),
        }
    }

    fn run(docs: &[Document]) -> Vec<Migration> {
        let refs: Vec<&Document> = docs.iter().filter(|d| is_migration(&d.path)).collect();
        analyze(&refs)
    }

    fn verdicts(ms: &[Migration]) -> Vec<(&str, bool)> {
        ms.iter().map(|m| (m.name.as_str(), m.reversible)).collect()
    }

    #[test]
    fn recognises_migration_paths() {
        for yes in [
            "migrations/0041_a.up.sql",
            "db/migrate/20240101000000_add_x.rb",
            "alembic/versions/ab12_add.py",
            "app/migrations/0003_auto.py",
            "sql/V3__orders.sql",
            "x/0001_init.down.sql",
        ] {
            assert!(is_migration(yes), "{yes}");
        }
        for no in [
            "docs/migrations.md",
            "db/schema.rb",
            "app/migrations/__init__.py",
            "src/update.sql.md",
            "scripts/fix.sql",
        ] {
            assert!(!is_migration(no), "{no}");
        }
    }

    #[test]
    fn up_down_pairs_and_missing_downs() {
        let ms = run(&[
            doc("migrations/0001_a.up.sql", "CREATE TABLE a (id int);\n"),
            doc("migrations/0001_a.down.sql", "DROP TABLE a;\n"),
            doc(
                "migrations/0002_b.up.sql",
                "-- drop it\nALTER TABLE a DROP COLUMN b;\n",
            ),
            doc(
                "migrations/0003_c.up.sql",
                "ALTER TABLE a ADD COLUMN c int;\n",
            ),
            doc("migrations/0003_c.down.sql", "-- nothing to do\n"),
        ]);
        assert_eq!(
            verdicts(&ms),
            vec![("0001_a", true), ("0002_b", false), ("0003_c", false)]
        );
        assert!(
            ms[0].destructive.is_empty(),
            "DROP in a down file is expected"
        );
        assert_eq!(ms[1].destructive[0].0, "DROP COLUMN");
        assert_eq!(ms[1].destructive[0].1.line, 2);
        assert_eq!(
            ms[1].severity(),
            Some(fleet_core::flags::FlagSeverity::High)
        );
        assert_eq!(ms[1].number.as_deref(), Some("0002"));
        assert!(ms[2].reason.contains("no statements"), "{}", ms[2].reason);
    }

    #[test]
    fn flyway_undo_scripts_pair_with_versions() {
        let ms = run(&[
            doc("db/V3__orders.sql", "CREATE TABLE orders (id int);\n"),
            doc("db/U3__orders.sql", "DROP TABLE orders;\n"),
            doc("db/V4__drop_legacy.sql", "DROP TABLE legacy;\n"),
        ]);
        assert_eq!(
            verdicts(&ms),
            vec![("V3__orders", true), ("V4__drop_legacy", false)]
        );
        assert_eq!(ms[1].reason, "no undo (U) script");
        assert_eq!(ms[1].destructive[0].0, "DROP TABLE");
    }

    #[test]
    fn rails_change_up_down_and_irreversible() {
        let ms = run(&[
            doc(
                "db/migrate/1_add.rb",
                "class Add < ActiveRecord::Migration[7.1]\n  def change\n    add_column :users, :x, :string\n  end\nend\n",
            ),
            doc(
                "db/migrate/2_up_only.rb",
                "class UpOnly < ActiveRecord::Migration[7.1]\n  def up\n    remove_column :users, :legacy\n  end\nend\n",
            ),
            doc(
                "db/migrate/3_raise.rb",
                "class R < ActiveRecord::Migration[7.1]\n  def up\n    drop_table :carts\n  end\n\n  def down\n    raise ActiveRecord::IrreversibleMigration\n  end\nend\n",
            ),
            doc(
                "db/migrate/4_both.rb",
                "class B < ActiveRecord::Migration[7.1]\n  def up\n    User.in_batches.update_all(active: true)\n  end\n  def down\n    remove_column :users, :active\n  end\nend\n",
            ),
            doc(
                "db/migrate/5_exec.rb",
                "class E < ActiveRecord::Migration[7.1]\n  def change\n    execute \"UPDATE users SET a = 1\"\n  end\nend\n",
            ),
        ]);
        assert_eq!(
            verdicts(&ms),
            vec![
                ("1_add", true),
                ("2_up_only", false),
                ("3_raise", false),
                ("4_both", true),
                ("5_exec", false)
            ]
        );
        assert_eq!(ms[1].reason, "def up without def down");
        assert_eq!(ms[2].evidence.line, 7);
        assert!(
            ms[3].destructive.is_empty(),
            "remove_column in def down is not forward"
        );
        assert_eq!(ms[3].backfill[0].line, 3);
        assert_eq!(ms[4].backfill[0].line, 3);
    }

    #[test]
    fn alembic_downgrade_pass_is_irreversible() {
        let ms = run(&[
            doc(
                "alembic/versions/a1_drop.py",
                "def upgrade():\n    op.drop_column('users', 'fax')\n\n\ndef downgrade():\n    pass\n",
            ),
            doc(
                "alembic/versions/b2_add.py",
                "def upgrade():\n    op.add_column('users', sa.Column('x', sa.Integer()))\n\n\ndef downgrade():\n    op.drop_column('users', 'x')\n",
            ),
        ]);
        assert_eq!(verdicts(&ms), vec![("a1_drop", false), ("b2_add", true)]);
        assert_eq!(ms[0].destructive[0].0, "op.drop_column");
        assert!(ms[0].reason.contains("empty"), "{}", ms[0].reason);
        assert!(ms[1].destructive.is_empty());
    }

    #[test]
    fn django_run_python_without_reverse_is_irreversible() {
        let ms = run(&[
            doc(
                "shop/migrations/0007_fill.py",
                "class Migration(migrations.Migration):\n    operations = [\n        migrations.RunPython(fill_prices),\n    ]\n",
            ),
            doc(
                "shop/migrations/0008_fill2.py",
                "class Migration(migrations.Migration):\n    operations = [\n        migrations.RunPython(\n            fill, reverse_code=unfill\n        ),\n        migrations.RemoveField(model_name='a', name='b'),\n    ]\n",
            ),
        ]);
        assert_eq!(
            verdicts(&ms),
            vec![("0007_fill", false), ("0008_fill2", true)]
        );
        assert_eq!(ms[0].backfill[0].line, 3);
        assert_eq!(ms[1].destructive[0].0, "RemoveField");
    }

    #[test]
    fn plain_sql_with_down_sections() {
        let ms = run(&[
            doc(
                "db/migrations/20240101_a.sql",
                "-- migrate:up\nCREATE TABLE a (id int);\n\n-- migrate:down\nDROP TABLE a;\n",
            ),
            doc(
                "db/migrations/20240102_b.sql",
                "-- +goose Up\nTRUNCATE audit_log;\n-- +goose Down\n",
            ),
            doc("db/migrations/20240103_c.sql", "DELETE FROM sessions;\n"),
            doc(
                "db/migrations/20240104_d.sql",
                "--changeset bob:1\nCREATE TABLE d (id int);\n--rollback DROP TABLE d;\n",
            ),
        ]);
        assert_eq!(
            verdicts(&ms),
            vec![
                ("20240101_a", true),
                ("20240102_b", false),
                ("20240103_c", false),
                ("20240104_d", true)
            ]
        );
        assert!(ms[0].destructive.is_empty());
        assert_eq!(ms[1].destructive[0].0, "TRUNCATE");
        assert_eq!(ms[2].destructive[0].0, "DELETE FROM");
    }

    #[test]
    fn backfills_and_their_scale() {
        let ms = run(&[doc(
            "migrations/0044_fill.up.sql",
            "-- ~38M rows, 40-60 minutes\nUPDATE invoices AS i\n   SET c = 1;\nCREATE TABLE t (a int REFERENCES x ON UPDATE CASCADE);\nINSERT INTO b SELECT * FROM a;\n",
        )]);
        assert_eq!(
            ms[0].backfill.iter().map(|c| c.line).collect::<Vec<_>>(),
            vec![2, 5]
        );
        assert_eq!(ms[0].scale.as_ref().map(|c| c.line), Some(1));
    }

    #[test]
    fn directory_pairs() {
        let ms = run(&[
            doc(
                "migrations/2020-01-01_init/up.sql",
                "CREATE TABLE a (id int);\n",
            ),
            doc("migrations/2020-01-01_init/down.sql", "DROP TABLE a;\n"),
            doc("migrations/up/005_x.sql", "DROP TABLE z;\n"),
        ]);
        assert_eq!(
            verdicts(&ms),
            vec![("2020-01-01_init", true), ("005_x", false)]
        );
    }
}
