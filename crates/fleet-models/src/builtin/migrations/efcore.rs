//! EF Core migrations: `Up(MigrationBuilder)` runs forward and
//! `Down(MigrationBuilder)` is the rollback (generated, but it can be
//! emptied or made to throw). Designer files and the model snapshot are
//! not migrations (see `is_migration`).

use super::common::{Lang, Reverse, Scan, brace_body, is_noise, judge_down, line_at, numbered};
use fleet_corpus::Document;

/// `void Up(` / `void Down(`: the method a line declares.
fn declares(line: &str, name: &str) -> bool {
    let t = line.trim_start();
    !t.starts_with("//") && t.contains(&format!("void {name}(MigrationBuilder"))
}

/// A builder call that destroys data, by the name the report shows.
fn destructive_call(t: &str) -> Option<String> {
    for call in ["DropColumn", "DropTable", "DeleteData"] {
        if t.contains(&format!(".{call}(")) || t.contains(&format!(".{call}<")) {
            return Some(call.into());
        }
    }
    None
}

pub(super) fn scan(doc: &Document) -> Scan {
    let path = doc.path.as_str();
    let lines = numbered(&doc.text);
    let mut scan = Scan::default();
    let find = |name: &str| lines.iter().position(|&(_, l)| declares(l, name));
    if let Some(up) = find("Up") {
        for (n, piece) in brace_body(&lines, up) {
            let t = piece.trim();
            if is_noise(Lang::CSharp, t) {
                continue;
            }
            let line = line_at(&lines, n).unwrap_or(piece);
            scan.forward(
                path,
                n,
                line,
                destructive_call(t),
                t.contains(".UpdateData("),
            );
        }
    }
    scan.reverse = match find("Down") {
        Some(down) => {
            let body = brace_body(&lines, down);
            judge_down(Lang::CSharp, path, "`Down()`", lines[down], &body, &lines)
        }
        None => Reverse::Missing {
            reason: "no `Down()`".into(),
            forward_only: false,
        },
    };
    scan
}
