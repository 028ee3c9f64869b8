//! The aggregates `stats()` reads (`run_counts`, `step_totals`), adjusted
//! by each commit in the same transaction, so `/metrics` costs what it
//! shows, not what was ever stored.

use super::{Connection, OptionalExtension, audit, params};
use crate::{StepRun, StepStats, StoreError, StoreStats};

/// A run moved from status `from` (`None`: it was just created) to `to`.
pub(crate) fn run_status(
    conn: &Connection,
    from: Option<&str>,
    to: &str,
) -> Result<(), StoreError> {
    if from == Some(to) {
        return Ok(());
    }
    if let Some(from) = from {
        conn.prepare_cached("UPDATE run_counts SET runs = runs - 1 WHERE status = ?1")?
            .execute([from])?;
    }
    conn.prepare_cached(
        "INSERT INTO run_counts (status, runs) VALUES (?1, 1)
         ON CONFLICT (status) DO UPDATE SET runs = runs + 1",
    )?
    .execute([to])?;
    Ok(())
}

/// One attempt's contribution to its step's totals.
#[derive(Default)]
struct Contribution {
    finished: i64,
    duration_us: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_nusd: i64,
    cached: i64,
}

impl Contribution {
    /// Computed the same way for a new record and a stored one, so
    /// replacing a record subtracts exactly what was added.
    fn new(
        started_us: i64,
        finished_us: Option<i64>,
        tokens: (u64, u64),
        cost_usd: Option<f64>,
        cached: bool,
    ) -> Contribution {
        Contribution {
            finished: i64::from(finished_us.is_some()),
            duration_us: finished_us.map_or(0, |f| (f - started_us).max(0)),
            input_tokens: i64::try_from(tokens.0).unwrap_or(i64::MAX),
            output_tokens: i64::try_from(tokens.1).unwrap_or(i64::MAX),
            // Saturating float-to-int conversion; cost is never negative.
            cost_nusd: (cost_usd.unwrap_or(0.0).max(0.0) * 1e9).round() as i64,
            cached: i64::from(cached),
        }
    }

    fn of(r: &StepRun) -> Contribution {
        Contribution::new(
            micros(r.started_at),
            r.finished_at.map(micros),
            (r.input_tokens, r.output_tokens),
            r.cost_usd,
            r.cached,
        )
    }
}

fn micros(t: jiff::Timestamp) -> i64 {
    i64::try_from(t.as_microsecond()).unwrap_or(i64::MAX)
}

/// The stored record of (run, step, attempt), if any, as a contribution.
fn stored(
    conn: &Connection,
    run_id: &str,
    step: &str,
    attempt: u32,
) -> Result<Option<Contribution>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT started_at, finished_at, input_tokens, output_tokens, cost_usd, cached
             FROM step_runs WHERE run_id = ?1 AND step = ?2 AND attempt = ?3",
        )?
        .query_row(params![run_id, step, i64::from(attempt)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<f64>>(4)?,
                r.get::<_, bool>(5)?,
            ))
        })
        .optional()?;
    let Some((started, finished, input, output, cost, cached)) = row else {
        return Ok(None);
    };
    let finished = finished
        .as_deref()
        .map(audit::parse_time)
        .transpose()?
        .map(micros);
    Ok(Some(Contribution::new(
        micros(audit::parse_time(&started)?),
        finished,
        (
            u64::try_from(input).unwrap_or(0),
            u64::try_from(output).unwrap_or(0),
        ),
        cost,
        cached,
    )))
}

/// Call before the record `r` of run `run_id` (of genflow `genflow`) is
/// written: replaces the stored attempt's contribution with `r`'s.
pub(crate) fn step_run(
    conn: &Connection,
    genflow: &str,
    run_id: &str,
    r: &StepRun,
) -> Result<(), StoreError> {
    let old = stored(conn, run_id, &r.step, r.attempt)?;
    let new = Contribution::of(r);
    let attempts = i64::from(old.is_none());
    let old = old.unwrap_or_default();
    conn.prepare_cached(
        "INSERT INTO step_totals (genflow, step, attempts, finished, duration_us, input_tokens, output_tokens, cost_nusd, cached)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (genflow, step) DO UPDATE SET
           attempts = attempts + excluded.attempts, finished = finished + excluded.finished,
           duration_us = duration_us + excluded.duration_us,
           input_tokens = input_tokens + excluded.input_tokens,
           output_tokens = output_tokens + excluded.output_tokens,
           cost_nusd = cost_nusd + excluded.cost_nusd, cached = cached + excluded.cached",
    )?
    .execute(params![
        genflow,
        r.step,
        attempts,
        new.finished - old.finished,
        new.duration_us - old.duration_us,
        new.input_tokens - old.input_tokens,
        new.output_tokens - old.output_tokens,
        new.cost_nusd - old.cost_nusd,
        new.cached - old.cached
    ])?;
    Ok(())
}

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
