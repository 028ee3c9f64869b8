//! Python migrations. Alembic: `upgrade()` runs forward and `downgrade()`
//! is the whole rollback (nothing reverses itself). Django: every schema
//! operation reverses itself (removing a field or model loses its data
//! though); `RunPython`/`RunSQL` reverse only with `reverse_code` /
//! `reverse_sql` (a `noop` reverse runs and restores nothing); operations
//! under `SeparateDatabaseAndState(state_operations=...)` touch no table.

use super::super::analysis::cite;
use super::common::{
    Lang, Reverse, Scan, call_args, indented_defs, is_keyword_arg, judge_down, line_at, numbered,
};
use super::rules::{WORDS, Word};
use fleet_core::flags::Citation;
use fleet_corpus::Document;

pub(super) fn is_django(text: &str) -> bool {
    text.contains("migrations.Migration") || text.contains("class Migration(")
}

/// A SQLAlchemy/Alembic call that destroys data: `op.drop_column`,
/// `batch_op.drop_table`, ...
fn alembic_destructive(line: &str) -> Option<String> {
    if let Some(span) = WORDS.find(line.as_bytes(), Word::CodeDestructive) {
        return Some(line[span].to_string());
    }
    // SQLAlchemy Core: `op.execute(accounts.delete().where(...))`, `sa.delete(accounts)`.
    if line.contains(".delete()") || line.contains("sa.delete(") {
        return Some("delete() (deletes rows)".into());
    }
    for call in [".drop_column(", ".drop_table("] {
        if let Some(at) = line.find(call) {
            let start = line[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            return Some(line[start..at + call.len() - 1].to_string());
        }
    }
    None
}

/// Whether a line is inside a docstring, tracking triple quotes.
struct Docstrings {
    open: bool,
}

impl Docstrings {
    fn skip(&mut self, trimmed: &str) -> bool {
        let quotes = trimmed.matches("\"\"\"").count() + trimmed.matches("'''").count();
        let inside = self.open || quotes > 0;
        if quotes % 2 == 1 {
            self.open = !self.open;
        }
        inside
    }
}

pub(super) fn scan_alembic(doc: &Document) -> Scan {
    let path = doc.path.as_str();
    let lines = numbered(&doc.text);
    let defs = indented_defs(&lines);
    let mut scan = Scan::default();
    let top = |name: &str| {
        defs.iter()
            .find(|d| d.name == name && !d.header.1.starts_with([' ', '\t']))
    };
    if let Some(up) = top("upgrade") {
        let mut docs = Docstrings { open: false };
        for &(n, line) in &up.body {
            let t = crate::text::trim(line);
            if docs.skip(t) || t.is_empty() || t.starts_with('#') {
                scan.note_scale(path, n, line);
                continue;
            }
            if t == "pass" {
                continue;
            }
            let core_update = t.contains(".update()") || t.contains("sa.update(");
            scan.forward(path, n, line, alembic_destructive(t), core_update);
        }
    }
    scan.reverse = match top("downgrade") {
        Some(down) => judge_down(
            Lang::Python,
            path,
            "`downgrade()`",
            down.header,
            &down.body,
            &lines,
        ),
        None => Reverse::Missing {
            reason: "no `downgrade()`".into(),
            forward_only: false,
        },
    };
    scan
}

/// One `RunPython(...)` / `RunSQL(...)` call and what its arguments say.
struct RunCall {
    kind: &'static str,
    line: (u64, String),
    /// The forward function's name (`RunPython(fill, ...)`), if a name.
    code: Option<String>,
    /// Whether a reverse is given, and whether it is a `noop`, with the line naming it.
    reverse: Option<(bool, (u64, String))>,
    /// Lines of the call holding the forward SQL (up to the reverse argument).
    forward_lines: Vec<(u64, String)>,
}

/// The text of a call from `lines[start]` (at `open`, just past its `(`)
/// to its closing parenthesis, with the line each piece came from.
fn call_text(lines: &[(u64, &str)], start: usize, open: usize) -> Vec<(u64, String)> {
    let mut pieces = Vec::new();
    let mut depth = 1i32;
    let mut quote: Option<char> = None;
    for (i, &(n, line)) in lines.iter().enumerate().skip(start) {
        let text = if i == start { &line[open..] } else { line };
        let mut piece = String::new();
        for ch in text.chars() {
            if let Some(q) = quote {
                if ch == q {
                    quote = None;
                }
                piece.push(ch);
                continue;
            }
            match ch {
                '"' | '\'' => quote = Some(ch),
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                pieces.push((n, piece));
                return pieces;
            }
            piece.push(ch);
        }
        // Triple-quoted strings span lines; a quote left open at a line end is one of them.
        quote = None;
        pieces.push((n, piece));
    }
    pieces
}

fn run_call(lines: &[(u64, &str)], i: usize, kind: &'static str, at: usize) -> RunCall {
    let (n, line) = lines[i];
    let open = at + kind.len() + 1;
    let pieces = call_text(lines, i, open.min(line.len()));
    let joined: String = pieces
        .iter()
        .map(|(_, p)| p.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let args = call_args(&joined);
    let reverse_key = if kind == "RunPython" {
        "reverse_code"
    } else {
        "reverse_sql"
    };
    let code_key = if kind == "RunPython" { "code" } else { "sql" };
    let positional: Vec<&String> = args.iter().filter(|a| !is_keyword_arg(a)).collect();
    let keyword = |key: &str| {
        args.iter().find_map(|a| {
            a.strip_prefix(key)
                .and_then(|rest| rest.trim_start().strip_prefix('='))
                .map(|v| v.trim().to_string())
        })
    };
    let code = keyword(code_key)
        .or_else(|| positional.first().map(|s| s.to_string()))
        .filter(|c| {
            c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        });
    let reverse_value = keyword(reverse_key).or_else(|| positional.get(1).map(|s| s.to_string()));
    let reverse_line = pieces
        .iter()
        .find(|(_, p)| p.contains(reverse_key) || p.contains("noop"))
        .or_else(|| pieces.get(1).filter(|_| positional.len() > 1))
        .map_or(n, |(m, _)| *m);
    let reverse = reverse_value.filter(|v| v != "None").map(|v| {
        let text = line_at(lines, reverse_line).unwrap_or(line);
        // An empty reverse (`reverse_sql=""`) runs nothing, as `noop` does.
        let noop = v.contains("noop") || matches!(v.as_str(), "\"\"" | "''" | "[]");
        (noop, (reverse_line, text.to_string()))
    });
    // Whole lines, for citations; the reverse argument's lines are not forward.
    let forward_lines = pieces
        .iter()
        .take_while(|(_, p)| !p.contains(reverse_key))
        .filter_map(|&(m, _)| line_at(lines, m).map(|l| (m, l.to_string())))
        .collect();
    RunCall {
        kind,
        line: (n, line.to_string()),
        code,
        reverse,
        forward_lines,
    }
}

/// What a forward `RunPython` function does to rows: deletes them (the
/// line), or writes them (a backfill).
fn function_effects<'t>(body: &[(u64, &'t str)]) -> (Vec<(u64, &'t str)>, bool) {
    let mut deletes = Vec::new();
    let mut writes = false;
    for &(n, line) in body {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        if t.contains(".delete()") || t.contains("._raw_delete(") {
            deletes.push((n, line));
        }
        if [
            ".save(",
            ".update(",
            "bulk_update(",
            "update_or_create(",
            "schema_editor.execute(",
        ]
        .iter()
        .any(|w| t.contains(w))
        {
            writes = true;
        }
    }
    (deletes, writes)
}

pub(super) fn scan_django(doc: &Document) -> Scan {
    let path = doc.path.as_str();
    let lines = numbered(&doc.text);
    let defs = indented_defs(&lines);
    let mut scan = Scan::default();
    let Some(ops_start) = lines
        .iter()
        .position(|(_, l)| l.trim_start().starts_with("operations"))
    else {
        // No `operations`: not a migration (nothing runs).
        return scan;
    };
    // A squashed migration (`replaces = [...]`) only runs where none of the
    // migrations it replaces has: on a deployed database it is history.
    if let Some(&(n, line)) = lines
        .iter()
        .find(|(_, l)| l.trim_start().starts_with("replaces"))
    {
        scan.first_statement = Some(cite(path, n, line));
        scan.reverse = Reverse::Auto {
            reason: "a squashed migration: a deployed database has already run what it replaces"
                .into(),
            at: cite(path, n, line),
        };
        return scan;
    }
    let mut first_op: Option<Citation> = None;
    let mut blocked: Option<(String, Citation)> = None;
    let mut noop: Option<(String, Citation)> = None;
    // Depth of brackets inside `state_operations=[...]`, while inside it.
    let mut state_only: Option<i32> = None;
    let mut i = ops_start;
    while i < lines.len() {
        let (n, line) = lines[i];
        let t = crate::text::trim(line);
        if let Some(depth) = state_only.as_mut() {
            *depth += t.matches(['[', '(']).count() as i32 - t.matches([']', ')']).count() as i32;
            if *depth <= 0 {
                state_only = None;
            }
            i += 1;
            continue;
        }
        if t.starts_with("state_operations") {
            let depth = t.matches(['[', '(']).count() as i32 - t.matches([']', ')']).count() as i32;
            if depth > 0 {
                state_only = Some(depth);
            }
            i += 1;
            continue;
        }
        if t.starts_with('#') || t.is_empty() {
            i += 1;
            continue;
        }
        let is_op = t.starts_with("migrations.") || t.contains("migrations.Run");
        if is_op && first_op.is_none() && !t.contains("SeparateDatabaseAndState") {
            first_op = Some(cite(path, n, line));
        }
        let run = ["RunPython", "RunSQL"]
            .into_iter()
            .find_map(|kind| line.find(&format!("{kind}(")).map(|at| (kind, at)));
        if let Some((kind, at)) = run {
            let call = run_call(&lines, i, kind, at);
            let (cn, cl) = &call.line;
            match &call.reverse {
                None => {
                    blocked.get_or_insert_with(|| {
                        let key = if kind == "RunPython" {
                            "reverse_code"
                        } else {
                            "reverse_sql"
                        };
                        (
                            format!("`{}` without `{key}`", call.kind),
                            cite(path, *cn, cl),
                        )
                    });
                }
                Some((true, (rn, rl))) => {
                    noop.get_or_insert_with(|| {
                        (
                            format!("`{}` with a no-op reverse", call.kind),
                            cite(path, *rn, rl),
                        )
                    });
                }
                Some((false, _)) => {}
            }
            if kind == "RunSQL" {
                for (fn_, fl) in &call.forward_lines {
                    scan.forward(path, *fn_, fl, None, false);
                }
            } else {
                let function = call
                    .code
                    .as_deref()
                    .and_then(|name| defs.iter().find(|d| d.name == name));
                // A function defined elsewhere may write anything: counted as a backfill.
                let noop_forward = call.code.as_deref().is_some_and(|c| c.ends_with("noop"));
                let (deletes, writes) = match function {
                    Some(f) => function_effects(&f.body),
                    None => (Vec::new(), !noop_forward),
                };
                scan.first_statement
                    .get_or_insert_with(|| cite(path, *cn, cl));
                for (dn, dl) in &deletes {
                    scan.destructive
                        .push(("delete()".into(), cite(path, *dn, dl)));
                }
                if deletes.is_empty() && writes {
                    scan.backfill.push(cite(path, *cn, cl));
                }
                if let Some(f) = function {
                    for &(fnn, fl) in &f.body {
                        scan.note_scale(path, fnn, fl);
                    }
                }
            }
            // Skip the call's other lines.
            let last = call
                .forward_lines
                .last()
                .map_or(*cn, |(m, _)| *m)
                .max(call.reverse.as_ref().map_or(*cn, |(_, (m, _))| *m));
            while i + 1 < lines.len() && lines[i + 1].0 <= last {
                i += 1;
            }
            i += 1;
            continue;
        }
        let op = WORDS
            .find(line.as_bytes(), Word::CodeDestructive)
            .map(|span| line[span].to_string());
        if let Some(op) = op {
            scan.first_statement
                .get_or_insert_with(|| cite(path, n, line));
            scan.destructive.push((op, cite(path, n, line)));
        } else if is_op {
            scan.first_statement
                .get_or_insert_with(|| cite(path, n, line));
        }
        i += 1;
    }
    scan.reverse = if let Some((reason, at)) = blocked {
        Reverse::Broken { reason, at }
    } else if let Some((reason, at)) = noop {
        Reverse::Noop { reason, at }
    } else {
        let at = first_op
            .or_else(|| scan.first_statement.clone())
            .unwrap_or_else(|| cite(path, lines[ops_start].0, lines[ops_start].1));
        Reverse::Auto {
            reason: "reversed automatically by Django (every operation has a reverse)".into(),
            at,
        }
    };
    scan
}
