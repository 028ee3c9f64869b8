//! Plain SQL migrations: up files and their down files (golang-migrate,
//! `up.sql`/`down.sql` directories, Flyway `V`/`U` scripts), single files
//! with down sections (dbmate `-- migrate:down`, goose `-- +goose Down`),
//! and Prisma's `migration.sql` with the warnings it generates.

use super::super::analysis::cite;
use super::common::{Reverse, Scan};
use super::rules::{is_sql_down_marker, is_sql_up_marker};
use fleet_core::flags::Citation;
use fleet_corpus::Document;

/// A line inside a `/* ... */` comment, or a `--` comment.
struct Comments {
    in_block: bool,
}

impl Comments {
    /// Whether `trimmed` is (part of) a comment, tracking block comments.
    fn is_comment(&mut self, trimmed: &str) -> bool {
        if self.in_block {
            if trimmed.contains("*/") {
                self.in_block = false;
            }
            return true;
        }
        if trimmed.starts_with("/*") {
            self.in_block = !trimmed.contains("*/");
            return true;
        }
        trimmed.starts_with("--") || trimmed.starts_with('#')
    }
}

/// `BEGIN;`, `COMMIT;` and the like.
fn is_transaction_control(trimmed: &str) -> bool {
    let upper = trimmed.to_ascii_uppercase();
    matches!(
        upper.trim_end_matches(';').trim(),
        "BEGIN" | "BEGIN TRANSACTION" | "COMMIT" | "START TRANSACTION" | "END"
    )
}

/// A statement that changes nothing: goose's template `SELECT 'down SQL
/// query';`, `SELECT 1;`, or transaction control around nothing.
fn is_placeholder(trimmed: &str) -> bool {
    if is_transaction_control(trimmed) {
        return true;
    }
    let upper = trimmed.to_ascii_uppercase();
    let t = upper.trim_end_matches(';').trim();
    t.strip_prefix("SELECT ")
        .map(str::trim_start)
        .is_some_and(|rest| {
            rest.starts_with('\'') || rest.starts_with(|c: char| c.is_ascii_digit())
        })
}

/// A statement that refuses to run: PostgreSQL `RAISE EXCEPTION`, MySQL
/// `SIGNAL SQLSTATE`, SQL Server `THROW` / `RAISERROR`.
fn raises(trimmed: &str) -> bool {
    let upper = trimmed.to_ascii_uppercase();
    upper.contains("RAISE EXCEPTION")
        || upper.contains("SIGNAL SQLSTATE")
        || upper.starts_with("THROW ")
        || upper.starts_with("RAISERROR")
}

/// What the statements of a down part (a file or a section) amount to.
#[derive(Default)]
struct DownPart {
    first: Option<Citation>,
    placeholder: Option<Citation>,
    refuses: Option<Citation>,
    comment: Option<Citation>,
}

impl DownPart {
    fn take(&mut self, path: &str, n: u64, line: &str, comment: bool) {
        let t = crate::text::trim(line);
        if t.is_empty() {
            return;
        }
        if comment {
            self.comment.get_or_insert_with(|| cite(path, n, line));
            return;
        }
        if raises(t) {
            self.refuses.get_or_insert_with(|| cite(path, n, line));
        } else if is_placeholder(t) {
            self.placeholder.get_or_insert_with(|| cite(path, n, line));
        } else {
            self.first.get_or_insert_with(|| cite(path, n, line));
        }
    }

    /// `what` names the part ("down migration (`x`)", "down section");
    /// `header` is cited when the part is empty and has no comment.
    fn judge(self, what: &str, header: Citation) -> Reverse {
        if let Some(at) = self.refuses {
            return Reverse::Broken {
                reason: format!("a {what} that raises an error instead of rolling back"),
                at,
            };
        }
        if let Some(at) = self.first {
            return Reverse::Written {
                reason: what.to_string(),
                at,
            };
        }
        if let Some(at) = self.placeholder {
            return Reverse::Broken {
                reason: format!("a {what} that only runs a placeholder"),
                at,
            };
        }
        Reverse::Broken {
            reason: format!("a {what} with no statements"),
            at: self.comment.unwrap_or(header),
        }
    }
}

/// The forward file of a migration (an up file, a Flyway `V` script, a
/// Prisma `migration.sql`, or a single file with sections). Down sections
/// in the file set its reverse; otherwise the reverse is left `Missing`
/// for the caller to name.
pub(super) fn scan_forward(doc: &Document) -> Scan {
    let path = doc.path.as_str();
    let mut scan = Scan::default();
    let mut comments = Comments { in_block: false };
    let mut forward = true;
    let mut down: Option<(DownPart, Citation)> = None;
    let mut prisma_warnings = false;
    for (n, line) in super::common::numbered(&doc.text) {
        let t = crate::text::trim(line);
        let h = line.as_bytes();
        if is_sql_down_marker(h) {
            forward = false;
            down = Some((DownPart::default(), cite(path, n, line)));
            continue;
        }
        if is_sql_up_marker(h) {
            forward = true;
            continue;
        }
        let comment = comments.is_comment(t);
        if forward {
            if comment {
                // Prisma writes "Warnings:" and a list of what can fail into a block comment.
                if t.eq_ignore_ascii_case("warnings:") {
                    prisma_warnings = true;
                } else if prisma_warnings && t.starts_with("- ") {
                    let lower = t.to_ascii_lowercase();
                    if lower.contains("fail") || lower.contains("not possible") {
                        let what = t.trim_start_matches("- ").to_string();
                        scan.hazards.push((what, cite(path, n, line)));
                    }
                }
                if !comments.in_block {
                    prisma_warnings = false;
                }
                scan.note_scale(path, n, line);
                continue;
            }
            // Transaction control runs nothing of its own.
            if t.is_empty() || is_transaction_control(t) {
                continue;
            }
            scan.forward(path, n, line, None, false);
        } else if let Some((part, _)) = down.as_mut() {
            part.take(path, n, line, comment);
        }
    }
    if let Some((part, header)) = down {
        scan.reverse = part.judge("down section", header);
    }
    scan
}

/// The reverse a down file (or a Flyway `U` script) gives its migration.
/// An empty file has no line to cite: `fallback` (the forward file's
/// first risk) is cited then.
pub(super) fn reverse_of_file(doc: &Document, fallback: Citation) -> Reverse {
    let path = doc.path.as_str();
    let mut comments = Comments { in_block: false };
    let mut part = DownPart::default();
    for (n, line) in super::common::numbered(&doc.text) {
        let comment = comments.is_comment(crate::text::trim(line));
        part.take(path, n, line, comment);
    }
    let what = format!("down migration `{path}`");
    match part.judge(&what, fallback) {
        Reverse::Written { at, .. } => Reverse::Written {
            // As the report has always put it.
            reason: format!("down migration `{path}`"),
            at,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_raises() {
        assert!(is_placeholder("SELECT 'down SQL query';"));
        assert!(is_placeholder("select 1;"));
        assert!(!is_placeholder("SELECT setval('x', 1);"));
        assert!(raises("DO $$ BEGIN RAISE EXCEPTION 'no'; END $$;"));
        assert!(!raises("DROP TABLE x;"));
    }
}
