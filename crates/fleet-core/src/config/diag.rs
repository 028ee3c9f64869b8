//! Config diagnostics: located errors and warnings, rendered as
//! `PATH:LINE:COL: error: MESSAGE` followed by the offending line and a caret.

use super::node::Pos;
use std::borrow::Cow;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    pub message: String,
    /// A hint printed under the caret, e.g. "did you mean `prompt`?".
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            pos,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(pos: Pos, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            pos,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The one-line summary: `PATH:LINE:COL: error: MESSAGE`.
    pub fn headline(&self, path: &str) -> String {
        format!(
            "{path}:{}:{}: {}: {}",
            self.pos.line,
            self.pos.col,
            self.severity.as_str(),
            self.message
        )
    }

    /// The headline, the source line with a caret under the column, and the help.
    pub fn render(&self, path: &str, source: &str) -> String {
        let mut out = self.headline(path);
        out.push('\n');
        let source = normalize_line_breaks(source);
        let line_text = source_lines(&source)
            .nth(self.pos.line.saturating_sub(1))
            .unwrap_or("");
        let gutter = self.pos.line.to_string();
        let pad = " ".repeat(gutter.len());
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{gutter} | {}", line_text.replace('\t', " "));
        let caret_pad: String = " ".repeat(self.pos.col.saturating_sub(1));
        match &self.help {
            Some(h) => {
                let _ = writeln!(out, "{pad} | {caret_pad}^ {h}");
            }
            None => {
                let _ = writeln!(out, "{pad} | {caret_pad}^");
            }
        }
        out
    }
}

/// `text` with every line break (CRLF, a lone CR, LF) written as LF: the
/// form the config is parsed in, so positions count lines the way YAML does.
pub fn normalize_line_breaks(text: &str) -> Cow<'_, str> {
    if text.contains('\r') {
        Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The lines of normalized text as positions count them: the empty line
/// after a final line break is a line (the caret may point at it).
pub fn source_lines(normalized: &str) -> impl Iterator<Item = &str> {
    normalized.split('\n')
}

/// Renders all diagnostics and a closing count line.
pub fn render_all(diags: &[Diagnostic], path: &str, source: &str) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.render(path, source));
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    if errors > 0 {
        let _ = writeln!(
            out,
            "{path}: {}, {}",
            plural(errors, "error"),
            plural(warnings, "warning")
        );
    } else if warnings > 0 {
        let _ = writeln!(out, "{path}: valid, {}", plural(warnings, "warning"));
    }
    out
}
