//! Reading the flags out of an LLM review, and holding every LLM document
//! to the citation check. A review whose flags cannot be read becomes a
//! high flag saying so: never a silent pass.

use crate::citations::CitationIndex;
use crate::{ModelRequest, check_citations};
use fleet_core::flags::{Citation, Flag, FlagSet, FlagSeverity};
use serde_json::Value;
use std::fmt::Write as _;

/// Id of the flag raised when the review's JSON cannot be read.
pub(crate) const UNREADABLE_ID: &str = "REVIEW-OUTPUT";

/// The review's own flags, then one per problem with its evidence, then the
/// citation check's flags for the whole document.
pub(crate) fn review_flags(text: &str, req: &ModelRequest) -> FlagSet {
    let index = CitationIndex::new(&req.corpus, &req.upstream);
    let mut flags = match parse_flags(text) {
        Ok((flags, problems)) => {
            let mut flags = flags;
            if !problems.is_empty() {
                flags.push(unreadable(format!(
                    "Part of the review's flags could not be read, so the review may say more \
                     than these flags show: {}",
                    problems.join("; ")
                )));
            }
            flags
        }
        Err(why) => vec![unreadable(format!(
            "The review output could not be parsed ({why}); its findings are not in these flags. \
             Read the review document itself before deciding."
        ))],
    };
    let mut evidence_problems = Vec::new();
    for flag in &mut flags {
        for cite in &mut flag.evidence {
            match index.line(&cite.path, cite.line) {
                Some(line) if cite.quote.trim().is_empty() => cite.quote = line.trim().to_owned(),
                Some(_) => {}
                None => evidence_problems.push((flag.id.clone(), cite.clone())),
            }
        }
    }
    for (i, (id, cite)) in evidence_problems.into_iter().enumerate() {
        let why = if index.knows(&cite.path) {
            "that line does not exist in it"
        } else {
            "that document is not in what the step read"
        };
        flags.push(Flag {
            id: format!("E{}", i + 1),
            severity: FlagSeverity::Medium,
            claim: format!(
                "Flag {id} cites {}:{} as evidence, but {why}",
                cite.path, cite.line
            ),
            evidence: Vec::new(),
        });
    }
    flags.extend(citation_flags(text, req, &flags));
    FlagSet {
        step: req.step.clone(),
        flags,
    }
}

/// `check_citations` on an LLM document, with ids that do not clash with
/// flags already raised.
pub(crate) fn citation_flags(text: &str, req: &ModelRequest, taken: &[Flag]) -> Vec<Flag> {
    let mut flags = check_citations(text, &req.corpus, &req.upstream);
    for f in &mut flags {
        while taken.iter().any(|t| t.id == f.id) {
            f.id.push('\'');
        }
    }
    flags
}

/// A section listing the report's bad citations, appended to the report so
/// whoever reads it (and the reviewer) sees which references do not hold.
pub(crate) fn citation_section(flags: &[Flag]) -> String {
    if flags.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n\n## Citation check (added by Fleet)\n\nThese references in this report do not point \
         at a line of what the step read:\n\n",
    );
    for f in flags {
        let _ = writeln!(out, "- {}", f.claim);
    }
    out
}

fn unreadable(claim: String) -> Flag {
    Flag {
        id: UNREADABLE_ID.to_owned(),
        severity: FlagSeverity::High,
        claim,
        evidence: Vec::new(),
    }
}

/// The flags of the last fenced JSON block that holds a flag list, and a
/// note for each entry that could not be read. `Err` when there is no such block.
pub(crate) fn parse_flags(text: &str) -> Result<(Vec<Flag>, Vec<String>), String> {
    let blocks = fenced_blocks(text);
    if blocks.is_empty() {
        return Err("no fenced JSON block with the flags was found".into());
    }
    let mut last_error = String::new();
    for block in blocks.iter().rev() {
        let value: Value = match serde_json::from_str(block) {
            Ok(v) => v,
            Err(e) => {
                last_error = format!("the JSON block is not valid JSON: {e}");
                continue;
            }
        };
        let list = match &value {
            Value::Array(items) => items,
            Value::Object(map) => match map.get("flags") {
                Some(Value::Array(items)) => items,
                _ => {
                    last_error = "the JSON block has no `flags` list".into();
                    continue;
                }
            },
            _ => {
                last_error = "the JSON block is neither a list nor an object with `flags`".into();
                continue;
            }
        };
        let mut flags = Vec::new();
        let mut problems = Vec::new();
        for (i, item) in list.iter().enumerate() {
            match flag_of(item, i) {
                Ok(f) => flags.push(f),
                Err(why) => problems.push(format!("flag {} {why}", i + 1)),
            }
        }
        return Ok((flags, problems));
    }
    Err(last_error)
}

/// Bodies of ```json (or bare ```) fenced blocks, in order.
fn fenced_blocks(text: &str) -> Vec<&str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let Some(line_end) = after.find('\n') else {
            break;
        };
        let info = after[..line_end].trim().to_ascii_lowercase();
        let body_start = line_end + 1;
        let Some(close) = after[body_start..].find("```") else {
            break;
        };
        let body = &after[body_start..body_start + close];
        if info == "json" || (info.is_empty() && body.trim_start().starts_with(['{', '['])) {
            blocks.push(body);
        }
        rest = &after[body_start + close + 3..];
    }
    blocks
}

fn flag_of(item: &Value, index: usize) -> Result<Flag, String> {
    let obj = item.as_object().ok_or("is not an object")?;
    let severity = match obj
        .get("severity")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("high" | "critical" | "blocker") => FlagSeverity::High,
        Some("medium" | "moderate") => FlagSeverity::Medium,
        Some("low" | "minor" | "info") => FlagSeverity::Low,
        Some(other) => return Err(format!("has an unknown severity `{other}`")),
        None => return Err("has no `severity`".into()),
    };
    let claim = obj
        .get("claim")
        .or_else(|| obj.get("title"))
        .or_else(|| obj.get("summary"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .ok_or("has no `claim`")?
        .to_owned();
    let id = match obj.get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::Number(n)) => format!("F{n}"),
        _ => format!("F{}", index + 1),
    };
    let evidence = match obj.get("evidence") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(citation_of)
            .collect::<Result<Vec<_>, _>>()?,
        Some(single) => vec![citation_of(single)?],
    };
    Ok(Flag {
        id,
        severity,
        claim,
        evidence,
    })
}

/// `{"path": "x.md", "line": 3, "quote": "..."}` or `"x.md:3"`.
fn citation_of(v: &Value) -> Result<Citation, String> {
    match v {
        Value::String(s) => {
            let (path, line) = s
                .trim()
                .rsplit_once(':')
                .ok_or_else(|| format!("has evidence `{s}` that is not `path:line`"))?;
            // `x.md:3-5` cites its first line.
            let first = line.split('-').next().unwrap_or(line);
            let line = first
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("has evidence `{s}` that is not `path:line`"))?;
            Ok(Citation {
                path: path.trim().to_owned(),
                line,
                quote: String::new(),
            })
        }
        Value::Object(o) => {
            let path = o
                .get("path")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .ok_or("has evidence without a `path`")?;
            let line = match o.get("line") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or("has evidence without a numeric `line`")?;
            let quote = o
                .get("quote")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            Ok(Citation {
                path: path.to_owned(),
                line,
                quote,
            })
        }
        _ => Err("has evidence that is neither `path:line` nor an object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_json_block_in_both_shapes() {
        let text = "Findings...\n```json\n{\"flags\": []}\n```\nmore\n```json\n\
            {\"flags\": [{\"id\": \"F1\", \"severity\": \"HIGH\", \"claim\": \"No rollback\", \
            \"evidence\": [{\"path\": \"a.md\", \"line\": 3}, \"b.sql:4-6\"]}]}\n```\n";
        let (flags, problems) = parse_flags(text).expect("parses");
        assert!(problems.is_empty());
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].severity, FlagSeverity::High);
        assert_eq!(flags[0].evidence[1].path, "b.sql");
        assert_eq!(flags[0].evidence[1].line, 4);

        let bare = "```\n[{\"severity\": \"low\", \"claim\": \"x\"}]\n```";
        let (flags, _) = parse_flags(bare).expect("bare list parses");
        assert_eq!(flags[0].id, "F1");
    }

    #[test]
    fn missing_or_broken_json_is_an_error_and_bad_entries_are_reported() {
        assert!(parse_flags("no block here").is_err());
        assert!(parse_flags("```json\n{\"flags\": [\n```").is_err());
        assert!(parse_flags("```json\n{\"other\": 1}\n```").is_err());
        let (flags, problems) = parse_flags(
            "```json\n{\"flags\": [{\"severity\": \"urgent\", \"claim\": \"x\"}, \
             {\"severity\": \"low\", \"claim\": \"ok\"}]}\n```",
        )
        .expect("list parses");
        assert_eq!(flags.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("urgent"), "{problems:?}");
    }
}
