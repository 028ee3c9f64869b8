//! Issue-tracker exports: a Markdown table or a CSV file whose header names
//! a status column (Jira, Linear, GitHub exports). A row's state and
//! priority are read from their columns, not guessed from words anywhere on
//! the line: `Done | High` is a closed issue, `Todo | Medium` an open one.

use fleet_core::flags::FlagSeverity;
use std::borrow::Cow;

/// Where a tracker table keeps what the rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Columns {
    status: usize,
    priority: Option<usize>,
    id: Option<usize>,
    resolution: Option<usize>,
    csv: bool,
}

impl Columns {
    /// A CSV file is a tracker from top to bottom; a Markdown table ends.
    pub(crate) fn is_csv(self) -> bool {
        self.csv
    }
}

/// One row of a tracker table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub open: bool,
    /// The priority as written (`Urgent`, `Critical`, `P1`), when there is one.
    pub priority: Option<String>,
    pub severity: Option<FlagSeverity>,
    pub id: Option<String>,
}

/// The columns of a tracker table whose header row is `line` (Markdown,
/// or CSV when `csv`): a status column and an id or priority column.
pub(crate) fn header(line: &str, csv: bool) -> Option<Columns> {
    let cells = cells(line, csv);
    let find = |names: &[&str]| {
        cells
            .iter()
            .position(|c| names.iter().any(|n| c.eq_ignore_ascii_case(n)))
    };
    let status = find(&["status", "state"])?;
    let priority = find(&["priority", "severity", "prio", "sev"]);
    let id = find(&["id", "key", "issue key", "issue", "#", "number", "ticket"]);
    (priority.is_some() || id.is_some()).then_some(Columns {
        status,
        priority,
        id,
        resolution: find(&["resolution"]),
        csv,
    })
}

/// A CSV header line: commas and no Markdown table bar.
pub(crate) fn looks_like_csv_header(line: &str) -> bool {
    !line.trim_start().starts_with('|') && line.bytes().filter(|&b| b == b',').count() >= 2
}

/// Statuses and resolutions that mean the issue is finished.
const CLOSED: &[&str] = &[
    "done",
    "closed",
    "resolved",
    "fixed",
    "canceled",
    "cancelled",
    "won't fix",
    "wontfix",
    "won’t fix",
    "duplicate",
    "released",
    "shipped",
    "completed",
    "complete",
    "merged",
    "verified",
    "not a bug",
    "obsolete",
    "rejected",
    "declined",
];

/// Reads a row of a table with `cols`; `None` for a separator or a row too short.
pub(crate) fn row(line: &str, cols: Columns) -> Option<Row> {
    let cells = cells(line, cols.csv);
    let status = cells.get(cols.status)?;
    if status.is_empty() || status.bytes().all(|b| b == b'-' || b == b':') {
        return None;
    }
    let closed_word = |s: &str| CLOSED.iter().any(|c| s.eq_ignore_ascii_case(c));
    let resolved = cols.resolution.and_then(|i| cells.get(i)).is_some_and(|r| {
        !r.is_empty() && !r.eq_ignore_ascii_case("unresolved") && !r.eq_ignore_ascii_case("none")
    });
    let priority = cols
        .priority
        .and_then(|i| cells.get(i))
        .filter(|p| !p.is_empty() && *p != "—" && *p != "-")
        .map(|p| p.to_string());
    let severity = priority.as_deref().and_then(priority_severity);
    let id = cols
        .id
        .and_then(|i| cells.get(i))
        .filter(|c| !c.is_empty())
        .map(|c| c.trim_matches(['*', '`']).to_string());
    Some(Row {
        open: !closed_word(status) && !resolved,
        priority,
        severity,
        id,
    })
}

/// Tracker priority names (Jira, Linear, GitHub labels) as severities.
fn priority_severity(p: &str) -> Option<FlagSeverity> {
    let is = |words: &[&str]| words.iter().any(|w| p.eq_ignore_ascii_case(w));
    if is(&[
        "urgent", "blocker", "critical", "highest", "high", "p0", "p1", "sev0", "sev1", "sev-0",
        "sev-1", "s0", "s1",
    ]) {
        Some(FlagSeverity::High)
    } else if is(&[
        "major", "medium", "moderate", "normal", "p2", "sev2", "sev-2", "s2",
    ]) {
        Some(FlagSeverity::Medium)
    } else if is(&[
        "minor",
        "low",
        "lowest",
        "trivial",
        "p3",
        "p4",
        "sev3",
        "sev-3",
        "s3",
        "no priority",
    ]) {
        Some(FlagSeverity::Low)
    } else {
        None
    }
}

/// The cells of a table row: `| a | b |` or a CSV line (quotes honoured).
fn cells(line: &str, csv: bool) -> Vec<Cow<'_, str>> {
    if !csv {
        let t = line.trim();
        let t = t.strip_prefix('|').unwrap_or(t);
        let t = t.strip_suffix('|').unwrap_or(t);
        return t.split('|').map(|c| Cow::Borrowed(c.trim())).collect();
    }
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(Cow::Owned(std::mem::take(&mut cell).trim().to_string())),
            _ => cell.push(ch),
        }
    }
    out.push(Cow::Owned(cell.trim().to_string()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tracker_rows() {
        let cols = header("| ID | Title | Status | Priority |", false).expect("tracker header");
        let r = row("| PAY-1 | x | In Progress | Urgent |", cols).expect("row");
        assert_eq!(
            (r.open, r.severity, r.id.as_deref()),
            (true, Some(FlagSeverity::High), Some("PAY-1"))
        );
        assert!(!row("| PAY-2 | y | Done | High |", cols).expect("row").open);
        assert_eq!(row("|----|---|---|---|", cols), None);
        assert_eq!(
            header("| area | owner | status |", false),
            None,
            "a sign-off table"
        );
    }

    #[test]
    fn csv_tracker_rows() {
        let h = "Summary,Issue key,Status,Priority,Resolution";
        assert!(looks_like_csv_header(h));
        let cols = header(h, true).expect("tracker header");
        let r = row("\"Fails, often\",OPS-1,Open,Critical,Unresolved", cols).expect("row");
        assert_eq!(
            (r.open, r.severity, r.id.as_deref()),
            (true, Some(FlagSeverity::High), Some("OPS-1"))
        );
        assert!(!row("\"x\",OPS-2,Open,Minor,Fixed", cols).expect("row").open);
        assert!(!row("x,OPS-3,Closed,Major,", cols).expect("row").open);
    }
}
