//! What every migration tool's reader shares: the findings of one
//! migration ([`Scan`]), how it rolls back ([`Reverse`]), the SQL rules
//! applied to a forward line, and the bodies of functions (`def ... end`
//! by indentation, `{ ... }` by braces) that the readers of Ruby, Python,
//! Elixir, JavaScript and C# migrations walk.

use super::super::analysis::cite;
use super::rules::{
    WORDS, Word, destructive_op, is_scale_figure, is_sql_backfill, sql_destructive,
};
use fleet_core::flags::Citation;

/// How a migration rolls back. Every `reason` is a noun phrase that reads
/// both on its own and after "has" ("has no down migration (...)").
#[derive(Debug, Clone)]
pub(super) enum Reverse {
    /// A written reverse with statements (down file or section, `def down`,
    /// `downgrade()`, `Down()`, `<rollback>`): its first statement.
    Written { reason: String, at: Citation },
    /// Reversed by the tool itself; `at` is the line that makes it so.
    Auto { reason: String, at: Citation },
    /// A reverse that runs and does nothing (Django's `RunPython.noop`):
    /// the rollback succeeds and restores no data.
    Noop { reason: String, at: Citation },
    /// A reverse that cannot work: it raises, is empty, or uses a command
    /// the tool cannot reverse; `at` is the line that shows it.
    Broken { reason: String, at: Citation },
    /// No reverse at all. `forward_only`: the tool (or the project) has no
    /// down migrations by design, so only data loss is worth a flag.
    Missing { reason: String, forward_only: bool },
}

/// What one migration does in its forward direction, and how it rolls back.
#[derive(Debug, Clone)]
pub(super) struct Scan {
    pub destructive: Vec<(String, Citation)>,
    pub backfill: Vec<Citation>,
    pub scale: Option<Citation>,
    /// Changes that can fail on existing rows (Prisma's warnings): what, where.
    pub hazards: Vec<(String, Citation)>,
    /// The first forward statement: where a missing reverse is cited when
    /// nothing destructive is.
    pub first_statement: Option<Citation>,
    pub reverse: Reverse,
}

impl Default for Scan {
    fn default() -> Self {
        Scan {
            destructive: Vec::new(),
            backfill: Vec::new(),
            scale: None,
            hazards: Vec::new(),
            first_statement: None,
            reverse: Reverse::Missing {
                reason: "no down/rollback counterpart".into(),
                forward_only: false,
            },
        }
    }
}

impl Scan {
    /// A forward statement line: the SQL rules (SQL is often quoted inside
    /// code), then what the tool's reader found in it (`code_op`: a
    /// destructive call; `code_backfill`: a call that rewrites rows). A
    /// line that destroys data is not also a backfill.
    pub(super) fn forward(
        &mut self,
        path: &str,
        n: u64,
        line: &str,
        code_op: Option<String>,
        code_backfill: bool,
    ) {
        self.forward_as(path, n, line, line, code_op, code_backfill);
    }

    /// [`Scan::forward`] with the SQL rules applied to `text` (a line with
    /// its markup removed) while the citation quotes `line`.
    pub(super) fn forward_as(
        &mut self,
        path: &str,
        n: u64,
        line: &str,
        text: &str,
        code_op: Option<String>,
        code_backfill: bool,
    ) {
        // SQL in a JavaScript template literal (`query(`UPDATE ...`)`) reads as if quoted.
        let unquoted;
        let text = if text.contains('`') {
            unquoted = text.replace('`', " ");
            unquoted.as_str()
        } else {
            text
        };
        let h = text.as_bytes();
        let words = WORDS.scan(h);
        let at = || cite(path, n, line);
        self.first_statement.get_or_insert_with(at);
        self.note_scale(path, n, line);
        let op = sql_destructive(text, words)
            .and_then(destructive_op)
            .or(code_op);
        if let Some(op) = op {
            self.destructive.push((op, at()));
        } else if (!words.has(Word::OnUpdate) && is_sql_backfill(h, words)) || code_backfill {
            self.backfill.push(at());
        }
    }

    /// A forward line that may state the size of a backfill (comments too).
    pub(super) fn note_scale(&mut self, path: &str, n: u64, line: &str) {
        let h = line.as_bytes();
        if self.scale.is_none() && (WORDS.scan(h).has(Word::Batch) || is_scale_figure(h)) {
            self.scale = Some(cite(path, n, line));
        }
    }

    /// Where a missing or forward-only reverse is cited: the first data
    /// loss, else the first statement.
    pub(super) fn first_risk(&self) -> Option<Citation> {
        self.destructive
            .first()
            .map(|(_, c)| c.clone())
            .or_else(|| self.first_statement.clone())
    }
}

/// The lines of `text`, numbered from 1.
pub(super) fn numbered(text: &str) -> Vec<(u64, &str)> {
    crate::text::lines(text)
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l))
        .collect()
}

/// Line `n` of [`numbered`] lines (they are numbered 1, 2, ... in order).
pub(super) fn line_at<'t>(lines: &[(u64, &'t str)], n: u64) -> Option<&'t str> {
    let index = usize::try_from(n).ok()?.checked_sub(1)?;
    lines.get(index).map(|&(_, l)| l)
}

/// How a language writes comments and no-op statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    Ruby,
    Python,
    Elixir,
    Js,
    CSharp,
}

/// A line that holds no statement: blank, a comment, or closing punctuation.
pub(super) fn is_noise(lang: Lang, trimmed: &str) -> bool {
    if trimmed.is_empty() || trimmed.bytes().all(|b| b"{}()[];,".contains(&b)) {
        return true;
    }
    match lang {
        Lang::Ruby | Lang::Elixir => trimmed.starts_with('#') || trimmed == "end",
        Lang::Python => trimmed.starts_with('#'),
        Lang::Js | Lang::CSharp => {
            trimmed.starts_with("//")
                || trimmed.starts_with("/*")
                || trimmed.starts_with('*')
                || trimmed.starts_with('#')
        }
    }
}

/// A statement that does nothing: `pass`, `:ok`, `return;`, a resolved promise.
fn is_no_op(lang: Lang, trimmed: &str) -> bool {
    let t = trimmed.trim_end_matches([';', ',']);
    match lang {
        Lang::Python => matches!(t, "pass" | "..." | "return" | "return None"),
        Lang::Elixir => matches!(t, ":ok" | "nil" | "do: :ok"),
        Lang::Ruby => matches!(t, "nil" | "return"),
        Lang::Js => {
            matches!(
                t,
                "return"
                    | "return null"
                    | "return undefined"
                    | "return Promise.resolve()"
                    | "Promise.resolve()"
            )
        }
        Lang::CSharp => t == "return",
    }
}

/// Whether a statement refuses to run: `raise` (Ruby, Python, Elixir) or
/// `throw` (JavaScript, C#).
fn raises(lang: Lang, trimmed: &str) -> bool {
    let word = match lang {
        Lang::Ruby | Lang::Python | Lang::Elixir => "raise",
        Lang::Js | Lang::CSharp => "throw",
    };
    trimmed
        .strip_prefix(word)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '(', ';']))
        // Doctrine: `$this->throwIrreversibleMigrationException();`.
        || trimmed.contains("throwIrreversibleMigrationException")
}

/// A comment that says the migration cannot be undone.
fn says_irreversible(trimmed: &str) -> bool {
    let lower = trimmed.to_ascii_lowercase();
    [
        "irreversible",
        "cannot be undone",
        "can't be undone",
        "cannot undo",
        "can't undo",
        "cannot be restored",
        "can't be restored",
        "cannot be reversed",
        "not reversible",
        "nothing to restore",
        "cannot be brought back",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

/// Judges a written reverse (`def down`, `downgrade()`, `down`, `Down()`)
/// from its header and body lines: it refuses (raises), does nothing
/// (empty, comments, `pass`), or has statements. `what` names it in the
/// reason, e.g. "`def down`". `body` may hold pieces of lines (the part
/// inside braces); citations quote the whole line from `lines`.
pub(super) fn judge_down(
    lang: Lang,
    path: &str,
    what: &str,
    header: (u64, &str),
    body: &[(u64, &str)],
    lines: &[(u64, &str)],
) -> Reverse {
    let whole =
        |n: u64, piece: &str| -> Citation { cite(path, n, line_at(lines, n).unwrap_or(piece)) };
    let mut in_docstring = false;
    let mut comment = None;
    let mut first = None;
    for &(n, line) in body {
        let t = crate::text::trim(line);
        if lang == Lang::Python {
            // Docstrings say things; they do not run.
            let quotes = t.matches("\"\"\"").count() + t.matches("'''").count();
            if in_docstring || quotes > 0 {
                if says_irreversible(t) {
                    comment = Some(whole(n, line));
                }
                if quotes % 2 == 1 {
                    in_docstring = !in_docstring;
                }
                continue;
            }
        }
        if is_noise(lang, t) || is_no_op(lang, t) {
            if comment.is_none() && says_irreversible(t) {
                comment = Some(whole(n, line));
            }
            continue;
        }
        if raises(lang, t) {
            return Reverse::Broken {
                reason: format!(
                    "a {what} that {} instead of rolling back",
                    if matches!(lang, Lang::Js | Lang::CSharp) {
                        "throws"
                    } else {
                        "raises"
                    }
                ),
                at: whole(n, line),
            };
        }
        first.get_or_insert_with(|| whole(n, line));
    }
    match first {
        Some(at) => Reverse::Written {
            reason: format!("a {what} to roll it back"),
            at,
        },
        None => Reverse::Broken {
            reason: format!("an empty {what}"),
            at: comment.unwrap_or_else(|| cite(path, header.0, header.1)),
        },
    }
}

/// A function found by indentation (Ruby, Elixir, Python): its name, its
/// `def` line and the lines of its body.
#[derive(Debug)]
pub(super) struct Def<'t> {
    pub name: &'t str,
    pub header: (u64, &'t str),
    pub body: Vec<(u64, &'t str)>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Every `def NAME` and its body: the lines indented deeper than the `def`
/// (Python ends a body there; Ruby and Elixir close it with an `end` at the
/// `def`'s indentation). An inline body (`def down, do: :ok`) is the rest of
/// the line.
pub(super) fn indented_defs<'t>(lines: &[(u64, &'t str)]) -> Vec<Def<'t>> {
    let mut defs = Vec::new();
    for (i, &(n, line)) in lines.iter().enumerate() {
        let Some((_, name)) = super::rules::def_line(line) else {
            continue;
        };
        // Ruby's old class-method style: `def self.up`.
        let name = match line.find("def self.") {
            Some(at) if name == "self" => {
                let rest = &line[at + "def self.".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            }
            _ => name,
        };
        let at = indent(line);
        let mut body = Vec::new();
        if let Some(inline) = line.find(", do:") {
            body.push((n, &line[inline + 2..]));
        } else {
            for &(m, next) in &lines[i + 1..] {
                let t = next.trim();
                if !t.is_empty() && indent(next) <= at {
                    break;
                }
                body.push((m, next));
            }
        }
        defs.push(Def {
            name,
            header: (n, line),
            body,
        });
    }
    defs
}

/// The byte offsets of `{` and `}` in `line` outside strings and `//`
/// comments, as (offset, +1 or -1).
fn braces(line: &str) -> Vec<(usize, i32)> {
    let h = line.as_bytes();
    let mut out = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < h.len() {
        let b = h[i];
        match quote {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' | b'`' => quote = Some(b),
                b'/' if h.get(i + 1) == Some(&b'/') => break,
                b'{' => out.push((i, 1)),
                b'}' => out.push((i, -1)),
                _ => {}
            },
        }
        i += 1;
    }
    out
}

/// The body of a brace-delimited function whose header is `lines[start]`:
/// from the first `{` at or after the header to its match, as numbered
/// pieces of lines (the header's and the closing line's parts inside the
/// braces included). An arrow function without braces (`down: (q) =>
/// q.dropTable('x')`) has the rest of its line as its body.
pub(super) fn brace_body<'t>(lines: &[(u64, &'t str)], start: usize) -> Vec<(u64, &'t str)> {
    let mut body = Vec::new();
    let Some(&(n0, header)) = lines.get(start) else {
        return body;
    };
    if let Some(arrow) = header.find("=>") {
        let rest = header[arrow + 2..].trim();
        if !rest.is_empty() && !rest.starts_with('{') {
            body.push((n0, &header[arrow + 2..]));
            return body;
        }
    }
    let mut depth = 0i32;
    // Only a few lines may pass before the body opens (C# puts `{` on its own line).
    for (i, &(n, line)) in lines.iter().enumerate().skip(start) {
        let mut from = if depth == 0 { None } else { Some(0) };
        for (at, delta) in braces(line) {
            if depth == 0 && delta == 1 {
                from = Some(at + 1);
            }
            depth += delta;
            if depth == 0 && from.is_some() {
                let begin = from.unwrap_or(0).min(at);
                body.push((n, &line[begin..at]));
                return body;
            }
            if depth < 0 {
                return body;
            }
        }
        match from {
            Some(begin) => body.push((n, &line[begin.min(line.len())..])),
            None if i > start + 3 => return body,
            None => {}
        }
    }
    body
}

/// The arguments of a call whose text starts right after its `(` (or after
/// the method name, for Ruby and Elixir calls without parentheses), split
/// at top-level commas and trimmed; stops at the call's closing `)`.
pub(super) fn call_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for ch in text.chars() {
        if let Some(q) = quote {
            current.push(ch);
            if escaped {
                escaped = false;
            } else if ch == '\\' {
                escaped = true;
            } else if ch == q {
                quote = None;
            }
            continue;
        }
        match ch {
            '"' | '\'' => {
                quote = Some(ch);
                current.push(ch);
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(ch);
            }
            ')' | ']' | '}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
                current.push(ch);
            }
            ',' if depth == 0 => args.push(std::mem::take(&mut current)),
            '#' if depth == 0 => break,
            _ => current.push(ch),
        }
    }
    args.push(current);
    args.into_iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect()
}

/// A keyword argument (`type: :string`, `from: nil`, `reverse_code=f`).
pub(super) fn is_keyword_arg(arg: &str) -> bool {
    let name_len = arg
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
        .count();
    name_len > 0
        && {
            let rest = &arg[name_len..];
            rest.starts_with(": ") || rest.starts_with(":\t") || rest.trim_start().starts_with('=')
        }
        && !arg.starts_with(':')
}

/// Where `word` starts in `line` as a whole word (not inside an identifier).
pub(super) fn find_word(line: &str, word: &str) -> Option<usize> {
    let h = line.as_bytes();
    let mut from = 0;
    while let Some(rel) = line.get(from..).and_then(|rest| rest.find(word)) {
        let at = from + rel;
        let end = at + word.len();
        let before_ok = at == 0 || !crate::text::is_word_byte(h[at - 1]);
        let after_ok = end >= h.len() || !crate::text::is_word_byte(h[end]);
        if before_ok && after_ok {
            return Some(at);
        }
        from = at + 1;
    }
    None
}
