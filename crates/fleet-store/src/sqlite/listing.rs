//! Run listings: one SQL shape per set of filters, each served by its index.

use crate::{RunFilter, StoreError, audit};
use rusqlite::{Connection, Row};

/// A run listing: `select` (columns, ending in `FROM runs `) with the WHERE,
/// ORDER BY and LIMIT for `filter`. `list_runs` and `run_versions` share it,
/// so both list exactly the same runs. Only the filters that are set appear
/// in the SQL (an `?1 IS NULL OR` condition keeps SQLite from using an
/// index), so each shape is served by its index in `created_at DESC, id
/// DESC` order (`runs_created`, `runs_status_created`,
/// `runs_genflow_created`, `runs_genflow_status_created`) and a page reads
/// the rows it lists, however many runs are stored.
pub(super) fn listing_sql(select: &str, filter: &RunFilter) -> String {
    let mut conditions = Vec::new();
    if filter.genflow.is_some() {
        conditions.push("genflow_name = ?1");
    }
    if filter.status.is_some() {
        conditions.push("status = ?2");
    }
    if filter.before.is_some() {
        conditions.push("(created_at, id) < (?4, ?5)");
    }
    let mut sql = select.to_owned();
    if !conditions.is_empty() {
        sql.push_str("WHERE ");
        sql.push_str(&conditions.join(" AND "));
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ?3");
    sql
}

/// Runs the listing of `filter` with columns `select`, each row mapped by `map`.
pub(super) fn query_listing<T>(
    conn: &Connection,
    select: &str,
    filter: &RunFilter,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    // SQLite treats a negative LIMIT as "no limit".
    let limit = filter.limit.map_or(-1, i64::from);
    let (after_time, after_id) = match &filter.before {
        Some(c) => (Some(audit::format_time(c.created_at)), Some(c.id.as_str())),
        None => (None, None),
    };
    let sql = listing_sql(select, filter);
    let mut statement = conn.prepare_cached(&sql)?;
    // Parameters are numbered as in `listing_sql`; bind each up to the
    // highest one this shape uses (SQLite counts parameters up to it).
    let status = filter.status.map(|s| s.as_str());
    for i in 1..=statement.parameter_count() {
        match i {
            1 => statement.raw_bind_parameter(i, &filter.genflow)?,
            2 => statement.raw_bind_parameter(i, status)?,
            3 => statement.raw_bind_parameter(i, limit)?,
            4 => statement.raw_bind_parameter(i, &after_time)?,
            _ => statement.raw_bind_parameter(i, after_id)?,
        }
    }
    let mut rows = statement.raw_query();
    let mut map = map;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}
