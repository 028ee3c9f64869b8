//! JavaScript and TypeScript migrations (Knex, Sequelize, TypeORM, ...): an
//! `up` and a `down` function, in any of the shapes they are exported
//! (`exports.up = function`, `module.exports = { async up() {} }`,
//! `export async function down`, `public async down(queryRunner)`). PHP's
//! Laravel and Doctrine migrations have the same shape (`public function
//! down(): void { ... }`). Nothing reverses itself: `down` is the whole
//! rollback.

use super::common::{
    Lang, Reverse, Scan, brace_body, find_word, is_noise, judge_down, line_at, numbered,
};
use super::rules::{WORDS, Word, is_js_down};
use fleet_corpus::Document;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
}

/// Whether `line` starts the `up` or the `down` function.
fn header(line: &str) -> Option<Dir> {
    let t = line.trim_start();
    if t.starts_with("//") || t.starts_with('*') {
        return None;
    }
    for (word, dir) in [("up", Dir::Up), ("down", Dir::Down)] {
        let Some(at) = find_word(line, word) else {
            continue;
        };
        let before = line[..at].trim_end();
        // `exports.up`, or a name not reached through another object (`knex.migrate.up(`).
        let named = before.ends_with("exports.") || !before.ends_with('.');
        let after = line[at + word.len()..].trim_start();
        let defines = after.starts_with('(')
            || after.starts_with(':')
            || (after.starts_with('=') && !after.starts_with("=="));
        // `is_js_down` is the shape a `down` has always been known by.
        let known = dir == Dir::Up || is_js_down(line.as_bytes());
        if named && defines && known {
            return Some(dir);
        }
    }
    None
}

/// A call that destroys data, by the name the report shows.
fn destructive_call(line: &str) -> Option<String> {
    if let Some(span) = WORDS.find(line.as_bytes(), Word::CodeDestructive) {
        return Some(line[span].to_string());
    }
    for (call, name) in [
        ("bulkDelete(", "bulkDelete"),
        ("dropColumns(", "dropColumns"),
        (".del(", "del() (deletes rows)"),
        (".delete(", "delete() (deletes rows)"),
        (".truncate(", "truncate()"),
        (".destroy(", "destroy() (deletes rows)"),
        // Laravel: Schema::drop('t'), Schema::dropIfExists('t'), DB::table('t')->delete().
        ("::drop(", "Schema::drop"),
        ("::dropIfExists(", "Schema::dropIfExists"),
        ("->delete(", "delete() (deletes rows)"),
        ("->truncate(", "truncate()"),
    ] {
        if line.contains(call) {
            return Some(name.to_string());
        }
    }
    None
}

fn rewrites_rows(line: &str) -> bool {
    [
        ".update(",
        "bulkUpdate(",
        ".increment(",
        ".decrement(",
        "->update(",
    ]
    .iter()
    .any(|call| line.contains(call))
}

pub(super) fn scan(doc: &Document) -> Scan {
    let path = doc.path.as_str();
    let lines = numbered(&doc.text);
    let mut scan = Scan::default();
    let find = |dir: Dir| lines.iter().position(|&(_, l)| header(l) == Some(dir));
    if let Some(up) = find(Dir::Up) {
        for (n, piece) in brace_body(&lines, up) {
            let t = piece.trim();
            if is_noise(Lang::Js, t) {
                scan.note_scale(path, n, piece);
                continue;
            }
            // The citation quotes the whole line, not the piece inside the braces.
            let line = line_at(&lines, n).unwrap_or(piece);
            scan.forward(path, n, line, destructive_call(t), rewrites_rows(t));
        }
    }
    scan.reverse = match find(Dir::Down) {
        Some(down) => {
            let (n, line) = lines[down];
            let body = brace_body(&lines, down);
            judge_down(Lang::Js, path, "`down`", (n, line), &body, &lines)
        }
        None => Reverse::Missing {
            reason: "no `down` function".into(),
            forward_only: false,
        },
    };
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_and_down_headers() {
        for (line, dir) in [
            ("exports.up = function (knex) {", Some(Dir::Up)),
            ("exports.down = function (knex) {};", Some(Dir::Down)),
            ("  async up(queryInterface, Sequelize) {", Some(Dir::Up)),
            ("  down: async (queryInterface) => {", Some(Dir::Down)),
            (
                "export async function down(knex: Knex): Promise<void> {",
                Some(Dir::Down),
            ),
            ("export const up = async (knex) => {", Some(Dir::Up)),
            ("  await knex.migrate.up();", None),
            ("// run down() first", None),
        ] {
            assert_eq!(header(line), dir, "{line}");
        }
    }
}
