//! Liquibase changelogs (XML, YAML and formatted SQL), one changeset at a
//! time. A changeset rolls back through its `<rollback>` (`rollback:`,
//! `--rollback`) or, without one, automatically, but only if every change
//! in it is of a type Liquibase can invert (`createTable`, `addColumn`,
//! `renameColumn`, ...); `dropTable`, `delete`, `sql`, `modifyDataType`
//! and the like cannot be. Formatted SQL never rolls back automatically.

use super::super::analysis::cite;
use super::common::{Reverse, Scan, numbered};
use super::rules::{is_sql_statement, sql_rollback_line};
use fleet_core::flags::Citation;
use fleet_corpus::Document;

/// Change types Liquibase rolls back automatically (its documentation
/// marks them "auto rollback: yes").
const AUTO: &[&str] = &[
    "addCheckConstraint",
    "addColumn",
    "addDefaultValue",
    "addForeignKeyConstraint",
    "addLookupTable",
    "addNotNullConstraint",
    "addPrimaryKey",
    "addUniqueConstraint",
    "createIndex",
    "createSequence",
    "createTable",
    "createView",
    "disableCheckConstraint",
    "disableTrigger",
    "dropNotNullConstraint",
    "empty",
    "enableCheckConstraint",
    "enableTrigger",
    "output",
    "renameColumn",
    "renameSequence",
    "renameTable",
    "renameTrigger",
    "renameView",
    "setColumnRemarks",
    "setTableRemarks",
    "tagDatabase",
];

/// Change types with no automatic rollback.
const MANUAL: &[&str] = &[
    "addAutoIncrement",
    "alterSequence",
    "createFunction",
    "createPackage",
    "createPackageBody",
    "createProcedure",
    "createSynonym",
    "createTrigger",
    "customChange",
    "delete",
    "dropAllForeignKeyConstraints",
    "dropCheckConstraint",
    "dropColumn",
    "dropDefaultValue",
    "dropForeignKeyConstraint",
    "dropFunction",
    "dropIndex",
    "dropPackage",
    "dropPrimaryKey",
    "dropProcedure",
    "dropSequence",
    "dropSynonym",
    "dropTable",
    "dropTrigger",
    "dropUniqueConstraint",
    "dropView",
    "executeCommand",
    "insert",
    "loadData",
    "loadUpdateData",
    "mergeColumns",
    "modifyDataType",
    "sql",
    "sqlFile",
    "stop",
    "update",
];

/// Whether the document is a Liquibase changelog this module reads.
pub(super) fn is_changelog(doc: &Document) -> bool {
    let lower = crate::text::ascii_lowercase(&doc.path);
    let ext = lower.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "xml" => doc.text.contains("<databaseChangeLog"),
        "yaml" | "yml" => doc.text.contains("databaseChangeLog:"),
        "sql" => is_formatted_sql(&doc.text),
        _ => false,
    }
}

/// A formatted-SQL directive (`--changeset a:1`, `-- rollback DROP ...`,
/// `--liquibase formatted sql`): the keyword, lowercased, and the rest of
/// the line. Liquibase reads them with or without a space after `--`.
fn directive(line: &str) -> Option<(String, &str)> {
    let rest = line.trim_start().strip_prefix("--")?.trim_start();
    let word_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
    let keyword = rest[..word_len].to_ascii_lowercase();
    matches!(keyword.as_str(), "changeset" | "rollback" | "liquibase")
        .then(|| (keyword, rest[word_len..].trim()))
}

/// `--liquibase formatted sql`, or a `--changeset` line.
pub(super) fn is_formatted_sql(text: &str) -> bool {
    crate::text::lines(text).any(|l| {
        directive(l).is_some_and(|(keyword, rest)| {
            keyword == "changeset"
                || (keyword == "liquibase" && rest.to_ascii_lowercase().starts_with("formatted"))
        })
    })
}

/// What a changeset's change of `kind` does to data: destroys it (the
/// report's name for it) or rewrites it.
fn effect(kind: &str) -> (Option<String>, bool) {
    match kind {
        "dropTable" | "dropColumn" | "mergeColumns" => (Some(kind.to_string()), false),
        "delete" => (Some("delete (deletes rows)".into()), false),
        "update" | "loadUpdateData" => (None, true),
        _ => (None, false),
    }
}

/// One changeset being read.
struct ChangeSet {
    name: String,
    header: Citation,
    scan: Scan,
    /// The first change Liquibase cannot roll back automatically: its type and line.
    manual: Option<(String, Citation)>,
    first_auto: Option<(String, Citation)>,
    /// `Some(first statement)` once a rollback is seen; `Some(None)` if it is empty.
    rollback: Option<Option<Citation>>,
    rollback_at: Option<Citation>,
}

impl ChangeSet {
    fn new(name: String, header: Citation) -> Self {
        ChangeSet {
            name,
            header,
            scan: Scan::default(),
            manual: None,
            first_auto: None,
            rollback: None,
            rollback_at: None,
        }
    }

    fn change(&mut self, kind: &str, path: &str, n: u64, line: &str, sql_text: &str) {
        let (op, backfill) = effect(kind);
        self.scan.forward_as(path, n, line, sql_text, op, backfill);
        if AUTO.contains(&kind) {
            self.first_auto
                .get_or_insert_with(|| (kind.to_string(), cite(path, n, line)));
        } else {
            self.manual
                .get_or_insert_with(|| (kind.to_string(), cite(path, n, line)));
        }
    }

    fn finish(mut self, formatted_sql: bool) -> Option<(String, Scan)> {
        let statements = self.scan.first_statement.is_some();
        self.scan.reverse = match (self.rollback, self.manual, self.first_auto) {
            (Some(Some(at)), _, _) => Reverse::Written {
                reason: "a rollback block".into(),
                at,
            },
            (Some(None), _, _) => Reverse::Broken {
                reason: "an empty rollback block".into(),
                at: self.rollback_at.unwrap_or(self.header),
            },
            (None, _, _) if formatted_sql && statements => Reverse::Broken {
                reason:
                    "raw SQL without a `--rollback` (formatted SQL never rolls back automatically)"
                        .into(),
                at: self.header,
            },
            (None, Some((kind, at)), _) => Reverse::Broken {
                reason: format!(
                    "`{kind}` without a rollback block (Liquibase cannot roll it back automatically)"
                ),
                at,
            },
            (None, None, Some((kind, at))) => Reverse::Auto {
                reason: format!("rolled back automatically by Liquibase (`{kind}`)"),
                at,
            },
            (None, None, None) => return None,
        };
        Some((self.name, self.scan))
    }
}

/// An attribute's value on an XML line: `id="3"` -> `3`.
fn attr<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let key = format!("{name}=\"");
    let at = line.find(&key)? + key.len();
    let end = line[at..].find('"')?;
    Some(&line[at..at + end])
}

/// The element a line opens (`<dropTable tableName=...` -> `dropTable`).
fn opens(trimmed: &str) -> Option<&str> {
    let rest = trimmed.strip_prefix('<')?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(rest.len());
    let name = &rest[..end];
    // Namespaced changelogs (`<ext:createView>`) name the change after the colon.
    Some(name.rsplit(':').next().unwrap_or(name))
}

/// The text of a line without its XML tags (a CDATA section's text stays),
/// for the SQL rules.
fn without_tags(line: &str) -> String {
    let line = line.replace("<![CDATA[", " ").replace("]]>", " ");
    let mut out = String::with_capacity(line.len());
    let mut in_tag = false;
    for ch in line.chars() {
        match ch {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => out.push(ch),
            _ => {}
        }
    }
    out
}

fn changeset_name(stem: &str, id: &str, count: usize) -> String {
    if count <= 1 {
        stem.to_string()
    } else {
        format!("{stem} changeset {id}")
    }
}

fn stem(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split('.').next().unwrap_or(file)
}

fn read_xml(doc: &Document) -> Vec<(String, Scan)> {
    let path = doc.path.as_str();
    let count = doc.text.matches("<changeSet").count();
    let mut out = Vec::new();
    let mut current: Option<ChangeSet> = None;
    let mut in_rollback = false;
    let mut in_sql: Option<String> = None;
    for (n, line) in numbered(&doc.text) {
        let t = crate::text::trim(line);
        if t.starts_with("<changeSet") {
            let id = attr(t, "id").unwrap_or("?");
            current = Some(ChangeSet::new(
                changeset_name(stem(path), id, count),
                cite(path, n, line),
            ));
            continue;
        }
        let Some(cs) = current.as_mut() else {
            continue;
        };
        if t.starts_with("</changeSet") {
            out.extend(current.take().and_then(|cs| cs.finish(false)));
            in_rollback = false;
            continue;
        }
        if t.starts_with("<rollback") {
            cs.rollback_at = Some(cite(path, n, line));
            let referenced = attr(t, "changeSetId").is_some();
            let inline = without_tags(t);
            let self_closing = t.ends_with("/>");
            if referenced || !inline.trim().is_empty() {
                cs.rollback = Some(Some(cite(path, n, line)));
            } else {
                cs.rollback.get_or_insert(None);
            }
            in_rollback = !self_closing && !t.contains("</rollback>");
            continue;
        }
        if in_rollback {
            if t.starts_with("</rollback") {
                in_rollback = false;
            } else if !t.is_empty() && !t.starts_with("<!--") && cs.rollback == Some(None) {
                cs.rollback = Some(Some(cite(path, n, line)));
            }
            continue;
        }
        if let Some(kind) = in_sql.clone() {
            if t.contains("</sql") || t.contains("</sqlFile") {
                in_sql = None;
            }
            cs.change(&kind, path, n, line, &without_tags(line));
            continue;
        }
        let Some(kind) = opens(t) else {
            continue;
        };
        if kind == "comment" || !(AUTO.contains(&kind) || MANUAL.contains(&kind)) {
            continue;
        }
        if kind == "sql" && !t.contains("</sql") && !t.ends_with("/>") {
            in_sql = Some(kind.to_string());
        }
        cs.change(kind, path, n, line, &without_tags(line));
    }
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn read_yaml(doc: &Document) -> Vec<(String, Scan)> {
    let path = doc.path.as_str();
    let count = doc.text.matches("changeSet:").count();
    let mut out = Vec::new();
    let mut current: Option<ChangeSet> = None;
    let mut rollback_indent: Option<usize> = None;
    let lines = numbered(&doc.text);
    for (i, &(n, line)) in lines.iter().enumerate() {
        let t = crate::text::trim(line);
        if t.trim_start_matches("- ").starts_with("changeSet:") {
            out.extend(current.take().and_then(|cs| cs.finish(false)));
            let id = lines[i + 1..]
                .iter()
                .map(|(_, l)| l.trim())
                .take_while(|l| !l.contains("changeSet:"))
                .find_map(|l| l.strip_prefix("id:"))
                .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
                .unwrap_or_else(|| "?".into());
            current = Some(ChangeSet::new(
                changeset_name(stem(path), &id, count),
                cite(path, n, line),
            ));
            rollback_indent = None;
            continue;
        }
        let Some(cs) = current.as_mut() else {
            continue;
        };
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(at) = rollback_indent {
            if indent(line) > at {
                if cs.rollback == Some(None) {
                    cs.rollback = Some(Some(cite(path, n, line)));
                }
                continue;
            }
            rollback_indent = None;
        }
        if let Some(rest) = t.strip_prefix("rollback:") {
            cs.rollback_at = Some(cite(path, n, line));
            let rest = rest.trim();
            if rest.is_empty() || matches!(rest, "[]" | "\"\"" | "''" | "~" | "null") {
                cs.rollback.get_or_insert(None);
            } else {
                cs.rollback = Some(Some(cite(path, n, line)));
            }
            rollback_indent = Some(indent(line));
            continue;
        }
        let item = t.strip_prefix("- ").unwrap_or(t);
        let kind = item.strip_suffix(':').unwrap_or("");
        if AUTO.contains(&kind) || MANUAL.contains(&kind) {
            cs.change(kind, path, n, line, "");
        } else if let Some(sql) = t.strip_prefix("sql:") {
            cs.scan.forward_as(path, n, line, sql, None, false);
        }
    }
    out.extend(current.take().and_then(|cs| cs.finish(false)));
    out
}

fn read_formatted_sql(doc: &Document) -> Vec<(String, Scan)> {
    let path = doc.path.as_str();
    let count = crate::text::lines(&doc.text)
        .filter(|l| directive(l).is_some_and(|(keyword, _)| keyword == "changeset"))
        .count();
    let mut out = Vec::new();
    let mut current: Option<ChangeSet> = None;
    for (n, line) in numbered(&doc.text) {
        let t = crate::text::trim(line);
        let directive = directive(line);
        if let Some(("changeset", rest)) = directive.as_ref().map(|(k, r)| (k.as_str(), *r)) {
            out.extend(current.take().and_then(|cs| cs.finish(true)));
            let id = rest.split_whitespace().next().unwrap_or("?");
            let id = id.rsplit(':').next().unwrap_or(id).to_string();
            current = Some(ChangeSet::new(
                changeset_name(stem(path), &id, count),
                cite(path, n, line),
            ));
            continue;
        }
        let Some(cs) = current.as_mut() else {
            continue;
        };
        let rollback = sql_rollback_line(line).or(match &directive {
            Some((keyword, rest)) if keyword == "rollback" && !rest.is_empty() => Some(*rest),
            _ => None,
        });
        if let Some(rest) = rollback {
            cs.rollback_at = Some(cite(path, n, line));
            if is_sql_statement(rest) {
                if !matches!(cs.rollback, Some(Some(_))) {
                    cs.rollback = Some(Some(cite(path, n, line)));
                }
            } else if cs.rollback.is_none() {
                // `--rollback empty` / `--rollback not required`: nothing runs on rollback.
                cs.rollback = Some(None);
            }
            continue;
        }
        if t.is_empty() || t.starts_with("--") {
            continue;
        }
        cs.scan.forward(path, n, line, None, false);
    }
    out.extend(current.take().and_then(|cs| cs.finish(true)));
    out
}

/// Every changeset of a changelog, named after the file (and its id when
/// the file holds more than one), with what it does and how it rolls back.
pub(super) fn read(doc: &Document) -> Vec<(String, Scan)> {
    let lower = crate::text::ascii_lowercase(&doc.path);
    if lower.ends_with(".xml") {
        read_xml(doc)
    } else if lower.ends_with(".sql") {
        read_formatted_sql(doc)
    } else {
        read_yaml(doc)
    }
}
