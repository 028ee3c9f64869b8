//! Rails (ActiveRecord) migrations, judged by the command recorder's
//! documented rules: in `def change` a command reverses itself only if the
//! recorder can invert it (`add_*`, `create_table`, `rename_*`,
//! `remove_column` given its type, `drop_table` given its block,
//! `change_column_default` given `from:`/`to:`, ...), `reversible` and
//! `up_only` blocks say what happens on rollback, and anything else raises
//! `ActiveRecord::IrreversibleMigration`. `def up` needs a `def down`.

use super::super::analysis::cite;
use super::common::{
    Def, Lang, Reverse, Scan, call_args, find_word, indented_defs, is_keyword_arg, is_noise,
    judge_down, numbered,
};
use super::rules::{WORDS, Word, rails_irreversible_call};
use fleet_corpus::Document;

/// A call that destroys data, by the name the report shows.
fn destructive_call(line: &str) -> Option<String> {
    if let Some(span) = WORDS.find(line.as_bytes(), Word::CodeDestructive) {
        return Some(line[span].to_string());
    }
    for call in [
        "remove_timestamps",
        "delete_all",
        "destroy_all",
        "delete_by",
        "destroy_by",
    ] {
        if find_word(line, call).is_some() {
            return Some(call.to_string());
        }
    }
    let t = line.trim_start();
    (t.starts_with("t.remove ") || t.starts_with("t.remove(")).then(|| "remove".to_string())
}

/// The arguments after `name` on `line` (`remove_column :users, :fax` ->
/// `[":users", ":fax"]`), with or without parentheses.
fn args_after(line: &str, name: &str) -> Option<Vec<String>> {
    let at = find_word(line, name)?;
    let rest = line[at + name.len()..].trim_start();
    let rest = rest.strip_prefix('(').unwrap_or(rest);
    // A block (`do |t|`, `{ |t| ... }`) is not an argument.
    let rest = rest.split(" do").next().unwrap_or(rest);
    Some(call_args(rest))
}

fn positional(args: &[String]) -> usize {
    args.iter().filter(|a| !is_keyword_arg(a)).count()
}

fn has_keyword(args: &[String], key: &str) -> bool {
    args.iter().any(|a| {
        a.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(':') || rest.trim_start().starts_with("=>"))
    })
}

/// The command in a `def change` line that the recorder cannot invert.
fn blocker(line: &str) -> Option<&'static str> {
    let t = line.trim_start();
    if let Some(call) = rails_irreversible_call(t) {
        return Some(if call == "execute" {
            "`execute`"
        } else {
            "`change_column`"
        });
    }
    if find_word(t, "change_column").is_some() {
        return Some("`change_column`");
    }
    if let Some(at) = find_word(t, "execute") {
        let after = t[at + "execute".len()..].chars().next();
        if after.is_none_or(|c| c == ' ' || c == '(' || c == '<') {
            return Some("`execute`");
        }
    }
    if let Some(args) = args_after(t, "change_column_default")
        && !(has_keyword(&args, "from") && has_keyword(&args, "to"))
    {
        return Some("`change_column_default` without `from:`/`to:`");
    }
    for call in ["change_column_comment", "change_table_comment"] {
        if let Some(args) = args_after(t, call)
            && !(has_keyword(&args, "from") && has_keyword(&args, "to"))
        {
            return Some(if call == "change_column_comment" {
                "`change_column_comment` without `from:`/`to:`"
            } else {
                "`change_table_comment` without `from:`/`to:`"
            });
        }
    }
    // remove_column(table, column, type = nil, **options): the type is what rollback re-adds.
    if let Some(args) = args_after(t, "remove_column")
        && positional(&args) < 3
    {
        return Some("`remove_column` without the column's type");
    }
    if let Some(args) = args_after(t, "remove_columns")
        && !has_keyword(&args, "type")
    {
        return Some("`remove_columns` without `type:`");
    }
    if find_word(t, "drop_table").is_some() && !(t.contains(" do") || t.contains('{')) {
        return Some("`drop_table` without a block defining the table");
    }
    if let Some(args) = args_after(t, "remove_index")
        && positional(&args) < 2
        && !has_keyword(&args, "column")
    {
        return Some("`remove_index` without its columns");
    }
    // remove_foreign_key needs the other table (or `to_table:`) to re-add the key.
    if let Some(args) = args_after(t, "remove_foreign_key")
        && positional(&args) < 2
        && !has_keyword(&args, "to_table")
    {
        return Some("`remove_foreign_key` without the referenced table");
    }
    if let Some(args) = args_after(t, "remove_check_constraint")
        && positional(&args) < 2
    {
        return Some("`remove_check_constraint` without its expression");
    }
    if t.starts_with("t.change ") || t.starts_with("t.change(") {
        return Some("`t.change` inside `change_table`");
    }
    if (t.starts_with("t.remove ") || t.starts_with("t.remove("))
        && let Some(args) = args_after(t, "t.remove").or_else(|| args_after(t, "remove"))
        && !has_keyword(&args, "type")
    {
        return Some("`t.remove` without `type:`");
    }
    None
}

/// A block opener: `reversible do |dir|`, `up_only do`, `dir.down do`, `dir.up {`.
fn opens_block(t: &str, name: &str) -> bool {
    t.strip_prefix(name).is_some_and(|rest| {
        rest.starts_with(" do") || rest.starts_with(" {") || rest.starts_with('{')
    })
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Walks a forward body; returns the first command `def change` cannot invert.
fn walk_forward(
    scan: &mut Scan,
    path: &str,
    body: &[(u64, &str)],
    change: bool,
) -> Option<(&'static str, (u64, String))> {
    let mut blocked = None;
    // (indent of the block's opener, whether it runs forward, whether it is reversible/up_only)
    let mut blocks: Vec<(usize, bool, bool)> = Vec::new();
    for &(n, line) in body {
        let t = crate::text::trim(line);
        // A line at or left of a block's opener is past that block (its `end`, or what follows).
        if !t.is_empty() {
            while blocks.last().is_some_and(|&(at, _, _)| indent(line) <= at) {
                blocks.pop();
            }
        }
        // The class line and its `end` frame the migration; they run nothing.
        if is_noise(Lang::Ruby, t) || t.starts_with("class ") || t.starts_with("module ") {
            scan.note_scale(path, n, line);
            continue;
        }
        let runs_forward = blocks.iter().all(|&(_, forward, _)| forward);
        let guarded = blocks.iter().any(|&(_, _, guarded)| guarded);
        let one_line = t.contains('}') && t.contains('{');
        if opens_block(t, "reversible") || opens_block(t, "up_only") {
            if !one_line {
                blocks.push((indent(line), runs_forward, true));
                continue;
            }
        } else if opens_block(t, "dir.down") {
            if !one_line {
                blocks.push((indent(line), false, true));
            }
            continue;
        } else if opens_block(t, "dir.up") && !one_line {
            blocks.push((indent(line), runs_forward, true));
            continue;
        }
        if !runs_forward {
            continue;
        }
        let is_up_only_line = opens_block(t, "up_only") || opens_block(t, "dir.up");
        if change
            && !guarded
            && !is_up_only_line
            && blocked.is_none()
            && let Some(what) = blocker(t)
        {
            blocked = Some((what, (n, line.to_string())));
        }
        let backfill = WORDS.scan(line.as_bytes()).has(Word::CodeBackfill);
        scan.forward(path, n, line, destructive_call(t), backfill);
    }
    blocked
}

pub(super) fn scan(doc: &Document) -> Scan {
    let path = doc.path.as_str();
    let lines = numbered(&doc.text);
    let defs = indented_defs(&lines);
    let find = |name: &str| defs.iter().find(|d| d.name == name);
    let mut scan = Scan::default();
    let change: Option<&Def<'_>> = find("change");
    let up = find("up");
    let down = find("down");
    let forward = change.or(up);
    let Some(forward) = forward else {
        // No `def change`/`def up` (a helper, a concern): it migrates nothing.
        return scan;
    };
    let is_change = change.is_some() && up.is_none();
    let blocked = walk_forward(&mut scan, path, &forward.body, is_change);
    scan.reverse = if is_change {
        match blocked {
            Some((what, (n, line))) => Reverse::Broken {
                reason: format!("{what} inside `def change`, which Rails cannot reverse"),
                at: cite(path, n, &line),
            },
            None => Reverse::Auto {
                reason: "reversed automatically by Rails (every command in `def change` reverses itself)"
                    .into(),
                at: cite(path, forward.header.0, forward.header.1),
            },
        }
    } else if let Some(down) = down {
        judge_down(
            Lang::Ruby,
            path,
            "`def down`",
            down.header,
            &down.body,
            &lines,
        )
    } else {
        Reverse::Missing {
            reason: "no `def down`".into(),
            forward_only: false,
        }
    };
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorders_rules() {
        for (line, blocked) in [
            ("remove_column :users, :fax", true),
            ("remove_column :users, :fax, :string", false),
            ("remove_column :users, :fax, :string, null: true", false),
            ("remove_columns :users, :a, :b", true),
            ("remove_columns :users, :a, :b, type: :string", false),
            ("drop_table :carts", true),
            ("drop_table :carts do |t|", false),
            ("change_column :p, :price, :decimal", true),
            ("change_column_default :o, :c, \"USD\"", true),
            (
                "change_column_default :o, :c, from: nil, to: \"USD\"",
                false,
            ),
            ("change_column_null :o, :c, false", false),
            ("execute \"SELECT 1\"", true),
            ("remove_index :users, name: :idx", true),
            ("remove_index :users, :email", false),
            ("remove_index :users, column: :email", false),
            ("add_column :users, :x, :string", false),
            ("rename_column :o, :a, :b", false),
            ("remove_foreign_key :accounts, column: :owner_id", true),
            ("remove_foreign_key :accounts, :branches", false),
            ("remove_foreign_key :accounts, to_table: :branches", false),
            (
                "remove_check_constraint :products, name: \"price_check\"",
                true,
            ),
            (
                "remove_check_constraint :products, \"price > 0\", name: \"price_check\"",
                false,
            ),
            ("remove_column(:suppliers, :qualification)", true),
        ] {
            assert_eq!(blocker(line).is_some(), blocked, "{line}");
        }
    }
}
