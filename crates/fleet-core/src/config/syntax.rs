//! Placing a YAML syntax error at its cause rather than where the scanner
//! noticed it.
//!
//! YAML lets flow collections, quoted strings and plain scalars continue
//! over lines, so the scanner reads on past the real mistake and fails on
//! the next line: `corpus: ["a", "b"` with no `]` fails at the `:` of the
//! following `prompt: p`; `description: "abc` with no closing quote fails
//! where the next `"` ends the string; `name:g` (no space) fails at the next
//! key. A tab used as indentation is reported at the end of the line before
//! it. For these cases the error moves to the line that caused it, with a
//! message that says what is missing; anything else is left where the
//! scanner put it.

use super::node::Pos;

/// Where a syntax error's cause is, and what to say about it.
pub(super) struct Cause {
    pub pos: Pos,
    /// Replaces the scanner's message; `None` keeps it.
    pub message: Option<String>,
    pub help: Option<String>,
}

/// The cause of the error `message` the scanner reported at `at`, or `None`
/// to leave the error as it is.
pub(super) fn cause(text: &str, at: Pos, message: &str) -> Option<Cause> {
    if at.line == 0 || at.col == 0 {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    if message.contains("tab") {
        return tab(&lines, at);
    }
    let scan = scan(&lines, at);
    if message.contains("trailing content after") && message.contains("quoted scalar") {
        return runaway_quote(at, &scan);
    }
    if let Some(open) = scan.open_flow.last()
        && open.line < at.line
    {
        return unclosed_flow(&lines, at, open);
    }
    if message.contains("mapping values are not allowed") {
        return missing_space_after_colon(&lines, at);
    }
    None
}

/// What the text holds up to the failure, as far as these causes need.
#[derive(Default)]
struct Scan {
    /// Flow collections opened and not yet closed, outermost first.
    open_flow: Vec<Open>,
    /// The last quoted string closed before the failure: where it opened
    /// and closed.
    last_quote: Option<(Pos, Pos)>,
}

struct Open {
    line: usize,
    col: usize,
    bracket: char,
}

/// Reads `lines` up to `stop` the way a YAML scanner tokenizes brackets,
/// quotes, comments and block scalars; everything else is plain text. (The
/// parser's own events cannot be used: its scanner reads ahead and fails
/// before it hands over the tokens that opened the collection.)
fn scan(lines: &[&str], stop: Pos) -> Scan {
    let mut out = Scan::default();
    let mut quote: Option<(char, Pos)> = None;
    // Inside a block scalar (`|`, `>`): lines indented deeper than this are its text.
    let mut block_scalar: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if n > stop.line {
            break;
        }
        if let Some(key_indent) = block_scalar {
            if line.trim().is_empty() || indent(line) > key_indent {
                continue;
            }
            block_scalar = None;
        }
        // The last significant character on this line, and whether space followed it.
        let mut prev: Option<char> = None;
        let mut gap = false;
        let mut chars = line.chars().enumerate().peekable();
        while let Some((c0, c)) = chars.next() {
            let here = Pos {
                line: n,
                col: c0 + 1,
            };
            if here >= stop {
                return out;
            }
            if let Some((q, start)) = quote {
                // `\"` in a double-quoted string, `''` in a single-quoted one.
                let escaped = (q == '"' && c == '\\')
                    || (c == q && q == '\'' && chars.peek().is_some_and(|(_, d)| *d == '\''));
                if escaped {
                    chars.next();
                } else if c == q {
                    out.last_quote = Some((start, here));
                    quote = None;
                    prev = Some(c);
                    gap = false;
                }
                continue;
            }
            if c.is_whitespace() {
                gap = true;
                continue;
            }
            if c == '#' && (prev.is_none() || gap) {
                break;
            }
            let in_flow = !out.open_flow.is_empty();
            let starts_value = match prev {
                None => true,
                Some(':' | '-' | '?') => gap,
                Some('[' | '{' | ',') => true,
                _ => false,
            };
            match c {
                '"' | '\'' if starts_value => quote = Some((c, here)),
                '[' | '{' if starts_value || in_flow => out.open_flow.push(Open {
                    line: n,
                    col: c0 + 1,
                    bracket: c,
                }),
                ']' | '}' if in_flow => {
                    out.open_flow.pop();
                }
                '|' | '>' if starts_value && !in_flow => {
                    block_scalar = Some(key_indent(line));
                    break;
                }
                _ => {}
            }
            prev = Some(c);
            gap = false;
        }
    }
    out
}

fn indent(line: &str) -> usize {
    line.chars().take_while(|c| *c == ' ').count()
}

/// Where the key of a `key: value` line starts, past any `- ` entries.
fn key_indent(line: &str) -> usize {
    let mut rest = line.trim_start_matches(' ');
    while let Some(r) = rest.strip_prefix("- ") {
        rest = r.trim_start_matches(' ');
    }
    line.chars().count() - rest.chars().count()
}

/// The line's text without a trailing comment and whitespace. A `#` starts a
/// comment only outside quotes and after a space (or at the start).
fn content(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev.is_whitespace() => return line[..i].trim_end(),
            None => {}
        }
        prev = c;
    }
    line.trim_end()
}

/// The last line before `line` (1-based) with content, and that content.
fn previous_content<'a>(lines: &[&'a str], line: usize) -> Option<(usize, &'a str)> {
    (1..line)
        .rev()
        .filter_map(|n| Some((n, content(lines.get(n - 1)?))))
        .find(|(_, c)| !c.is_empty())
}

fn end_of(line: usize, content: &str) -> Pos {
    Pos {
        line,
        col: content.chars().count() + 1,
    }
}

/// A flow collection opened on an earlier line is still open where the
/// scanner failed. If the last line with content before the failure does not
/// end in a way that continues the collection, its closing bracket (or a
/// comma) is missing there.
fn unclosed_flow(lines: &[&str], at: Pos, open: &Open) -> Option<Cause> {
    let close = if open.bracket == '[' { ']' } else { '}' };
    let opened = format!(
        "the `{}` at line {}, column {} is not closed",
        open.bracket, open.line, open.col
    );
    let (line, text) = previous_content(lines, at.line)?;
    if line < open.line || text.ends_with([',', '[', '{', ':']) {
        return Some(Cause {
            pos: at,
            message: None,
            help: Some(format!("{opened}; is a `{close}` missing?")),
        });
    }
    Some(Cause {
        pos: end_of(line, text),
        message: Some(format!(
            "invalid YAML: expected `,` or `{close}` at the end of this line: {opened}"
        )),
        help: None,
    })
}

/// A quoted string ran on past the end of its line to the next quote of the
/// same kind: its closing quote is missing where it started.
fn runaway_quote(at: Pos, scan: &Scan) -> Option<Cause> {
    let (start, end) = scan.last_quote?;
    if start.line >= at.line || end.line != at.line {
        return None;
    }
    Some(Cause {
        pos: start,
        message: Some(format!(
            "invalid YAML: this quoted string is not closed on its line; it runs on to line {}",
            at.line
        )),
        help: Some("add the closing quote".to_owned()),
    })
}

/// `name:g` is one plain scalar, not a key and a value; YAML reads on and
/// fails at the next line's `key: value`.
fn missing_space_after_colon(lines: &[&str], at: Pos) -> Option<Cause> {
    let (line, text) = previous_content(lines, at.line)?;
    let trimmed = text.trim_start().trim_start_matches("- ").trim_start();
    let key_len = trimmed
        .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .filter(|&i| i > 0)?;
    let after = &trimmed[key_len..];
    if !after.starts_with(':') || after[1..].starts_with(char::is_whitespace) || after.len() == 1 {
        return None;
    }
    let indent = text.chars().count() - trimmed.chars().count();
    Some(Cause {
        pos: Pos {
            line,
            col: indent + trimmed[..key_len].chars().count() + 2,
        },
        message: Some(format!(
            "invalid YAML: `{}` needs a space after the `:` to be a key and a value",
            &trimmed[..key_len]
        )),
        help: Some(format!(
            "write `{}: {}`",
            &trimmed[..key_len],
            after[1..].trim()
        )),
    })
}

/// A tab where YAML needs spaces: at the first tab in the failing line's
/// indentation, else the first tab at or after the failure on that line or
/// the next (where the scanner reports one that indents the next line).
fn tab(lines: &[&str], at: Pos) -> Option<Cause> {
    let help = Some("YAML indentation must be spaces, not tabs".to_owned());
    let line = lines.get(at.line - 1)?;
    let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
    if let Some(col) = indent.chars().position(|c| c == '\t') {
        return Some(Cause {
            pos: Pos {
                line: at.line,
                col: col + 1,
            },
            message: None,
            help,
        });
    }
    let same = line
        .chars()
        .skip(at.col - 1)
        .position(|c| c == '\t')
        .map(|i| Pos {
            line: at.line,
            col: at.col + i,
        });
    let next = || {
        let next = lines.get(at.line)?;
        next.chars().position(|c| c == '\t').map(|i| Pos {
            line: at.line + 1,
            col: i + 1,
        })
    };
    Some(Cause {
        pos: same.or_else(next)?,
        message: None,
        help,
    })
}
