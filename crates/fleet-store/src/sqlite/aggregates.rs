//! The aggregates `stats()` reads (`run_counts`, `step_totals`), kept by
//! triggers (migration 0006) in the same transaction as every write, so
//! `/metrics` costs what it shows, not what was ever stored.

use super::Connection;
use crate::{StepStats, StoreError, StoreStats};

pub(crate) fn read(conn: &Connection) -> Result<StoreStats, StoreError> {
    let runs_by_status = conn
        .prepare_cached("SELECT status, runs FROM run_counts WHERE runs > 0 ORDER BY status")?
        .query_and_then([], |r| {
            let n: i64 = r.get(1)?;
            Ok::<_, StoreError>((r.get::<_, String>(0)?, u64::try_from(n).unwrap_or(0)))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let steps = conn
        .prepare_cached(
            "SELECT genflow, step, attempts, finished, duration_us, input_tokens, output_tokens, cost_nusd, cached
             FROM step_totals ORDER BY genflow, step",
        )?
        .query_and_then([], |row| {
            Ok::<_, StoreError>(StepStats {
                genflow: row.get(0)?,
                step: row.get(1)?,
                attempts: count(row.get(2)?),
                finished: count(row.get(3)?),
                seconds: row.get::<_, i64>(4)? as f64 / 1e6,
                input_tokens: count(row.get(5)?),
                output_tokens: count(row.get(6)?),
                cost_usd: row.get::<_, i64>(7)? as f64 / 1e9,
                cached: count(row.get(8)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StoreStats {
        runs_by_status,
        steps,
    })
}
