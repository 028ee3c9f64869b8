//! Ecto (`ecto_sql`) migrations, judged by how `def change` reverses each
//! command: `create`/`create_if_not_exists`, `alter` with `add`,
//! `modify ... from:` and `remove/3` (with the type), `rename`, `drop
//! index` and `execute/2` reverse; `remove/1` (no type), `modify` without
//! `from:`, `execute/1` and `drop table` raise `Ecto.MigrationError` on
//! rollback. `def up` needs a `def down`.

use super::super::analysis::cite;
use super::common::{
    Lang, Reverse, Scan, call_args, find_word, indented_defs, is_keyword_arg, is_noise, judge_down,
    numbered,
};
use super::rules::{WORDS, Word};
use fleet_corpus::Document;

/// The arguments after the command word at the start of `t` (`remove
/// :fax, :string` -> `[":fax", ":string"]`), with or without parentheses.
fn args_of(t: &str, word: &str) -> Option<Vec<String>> {
    let rest = t.strip_prefix(word)?;
    if !(rest.starts_with(' ') || rest.starts_with('(')) {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('(').unwrap_or(rest);
    Some(call_args(rest))
}

fn positional(args: &[String]) -> usize {
    args.iter().filter(|a| !is_keyword_arg(a)).count()
}

/// A command that destroys data, by the name the report shows.
fn destructive_call(t: &str) -> Option<String> {
    if args_of(t, "remove").is_some() || args_of(t, "remove_if_exists").is_some() {
        return Some("remove".into());
    }
    for drop in [
        "drop table(",
        "drop(table(",
        "drop_if_exists table(",
        "drop_if_exists(table(",
    ] {
        if t.starts_with(drop) {
            return Some("drop table".into());
        }
    }
    for call in ["delete_all", "truncate"] {
        if find_word(t, call).is_some() && !t.starts_with("execute") {
            return Some(call.into());
        }
    }
    None
}

/// The command in a `def change` line that Ecto cannot reverse.
fn blocker(t: &str) -> Option<&'static str> {
    if let Some(args) = args_of(t, "remove")
        && positional(&args) < 2
    {
        return Some("`remove` without the column's type");
    }
    if args_of(t, "remove_if_exists").is_some() {
        return Some("`remove_if_exists`");
    }
    if let Some(args) = args_of(t, "modify")
        && !args.iter().any(|a| a.starts_with("from:"))
    {
        return Some("`modify` without `from:`");
    }
    if let Some(args) = args_of(t, "execute")
        && args.len() < 2
    {
        return Some("`execute/1`");
    }
    if [
        "drop table(",
        "drop(table(",
        "drop_if_exists table(",
        "drop_if_exists(table(",
    ]
    .iter()
    .any(|drop| t.starts_with(drop))
    {
        return Some("`drop table`");
    }
    // Ecto does not re-create a dropped constraint (it could not vouch for the data).
    if t.starts_with("drop constraint(") || t.starts_with("drop(constraint(") {
        return Some("`drop constraint`");
    }
    None
}

pub(super) fn scan(doc: &Document) -> Scan {
    let path = doc.path.as_str();
    let lines = numbered(&doc.text);
    let defs = indented_defs(&lines);
    let find = |name: &str| defs.iter().find(|d| d.name == name);
    let mut scan = Scan::default();
    let change = find("change");
    let up = find("up");
    let down = find("down");
    let mut blocked = None;
    if let Some(forward) = up.or(change) {
        for &(n, line) in &forward.body {
            let t = crate::text::trim(line);
            if is_noise(Lang::Elixir, t) {
                scan.note_scale(path, n, line);
                continue;
            }
            if up.is_none() && blocked.is_none() {
                blocked = blocker(t).map(|what| (what, cite(path, n, line)));
            }
            let backfill = WORDS.scan(line.as_bytes()).has(Word::CodeBackfill);
            scan.forward(path, n, line, destructive_call(t), backfill);
        }
    }
    scan.reverse = match (up, change, down) {
        (None, Some(change), _) => match blocked {
            Some((what, at)) => Reverse::Broken {
                reason: format!("{what} inside `def change`, which Ecto cannot reverse"),
                at,
            },
            None => Reverse::Auto {
                reason:
                    "reversed automatically by Ecto (every command in `def change` reverses itself)"
                        .into(),
                at: cite(path, change.header.0, change.header.1),
            },
        },
        (_, _, Some(down)) => judge_down(
            Lang::Elixir,
            path,
            "`def down`",
            down.header,
            &down.body,
            &lines,
        ),
        _ => Reverse::Missing {
            reason: "no `def down`".into(),
            forward_only: false,
        },
    };
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_change_reverses() {
        for (line, blocked) in [
            ("remove :fax", true),
            ("remove :fax, :string", false),
            ("remove :score, :integer, default: 0", false),
            ("modify :nickname, :text", true),
            ("modify :email, :text, from: :string", false),
            ("execute \"UPDATE users SET a = 1\"", true),
            (
                "execute \"CREATE EXTENSION x\", \"DROP EXTENSION x\"",
                false,
            ),
            ("drop table(:carts)", true),
            ("drop index(:users, [:email])", false),
            ("drop_if_exists index(:users, [:email])", false),
            ("drop_if_exists table(:carts)", true),
            ("drop constraint(:users, :age_check)", true),
            ("add :bio, :text", false),
            ("create table(:posts) do", false),
        ] {
            assert_eq!(blocker(line).is_some(), blocked, "{line}");
        }
    }
}
