//! The queue of runnable steps (`step_queue`), kept in step with every
//! commit, and the claims workers make from it.
//!
//! A row exists while its step is Ready or Running in the run's committed
//! state; `claimable_at` is when it may next be claimed (now, or when the
//! lease covering it lapses). A claim reads only rows already claimable, so
//! its cost follows what it claims, not how many runs are stored.

use super::{Connection, OptionalExtension, audit, lease_expiry, params};
use crate::{LeaseChange, StepClaim, StoreError, runnable, takes_lease};
use fleet_core::config::Genflow;
use fleet_core::run::RunState;
use std::time::Duration;

/// Brings run `run_id`'s queue rows from `before` to `after`, then applies
/// the transition's lease changes to them. True when a step became
/// claimable (a new runnable step, or a lease given back): workers should
/// look.
pub(crate) fn sync(
    conn: &Connection,
    genflow: &Genflow,
    run_id: &str,
    before: Option<&RunState>,
    after: &RunState,
    leases: &[LeaseChange],
    now: jiff::Timestamp,
) -> Result<bool, StoreError> {
    let now_text = audit::format_time(now);
    let old = before.map(|b| runnable(genflow, b)).unwrap_or_default();
    let new = runnable(genflow, after);
    let mut work = false;
    for step in old.iter().filter(|s| !new.contains(s)) {
        conn.prepare_cached("DELETE FROM step_queue WHERE run_id = ?1 AND step = ?2")?
            .execute(params![run_id, step])?;
    }
    for step in new.iter().filter(|s| !old.contains(s)) {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO step_queue (run_id, step, claimable_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (run_id, step) DO NOTHING",
            )?
            .execute(params![run_id, step, now_text])?
            == 1;
        // A step this transition makes runnable and leases at once (the
        // committing worker runs it next) is no work for anyone else.
        work |= inserted && !takes_lease(leases, step);
    }
    for change in leases {
        match change {
            // A lease taken here moves a row claimable now (new, or given
            // back) to when the lease lapses, and any later time earlier;
            // a row already held until before then is left to be re-timed
            // lazily (the next claimer finds the live lease), which saves
            // a write on nearly every step start after a claim.
            LeaseChange::Take { step, ttl, .. } => {
                let until = audit::format_time(lease_expiry(now, *ttl)?);
                conn.prepare_cached(
                    "UPDATE step_queue SET claimable_at = ?3
                     WHERE run_id = ?1 AND step = ?2 AND (claimable_at > ?3 OR claimable_at <= ?4)",
                )?
                .execute(params![run_id, step, until, now_text])?;
            }
            LeaseChange::Release { step, .. } => {
                work |= set_claimable(conn, run_id, step, &now_text)?;
            }
        }
    }
    Ok(work)
}

/// Moves a queued step's next claim time; false when it is not queued.
pub(crate) fn set_claimable(
    conn: &Connection,
    run_id: &str,
    step: &str,
    at: &str,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("UPDATE step_queue SET claimable_at = ?3 WHERE run_id = ?1 AND step = ?2")?
        .execute(params![run_id, step, at])?
        == 1)
}

/// Claims up to `limit` queued steps whose time has come, leasing each to
/// `owner`. Runs inside the writer's transaction, so claims never overlap.
pub(crate) fn claim(
    conn: &Connection,
    owner: &str,
    ttl: Duration,
    limit: u32,
    run_id: Option<&str>,
) -> Result<Vec<StepClaim>, StoreError> {
    let now = audit::now();
    let now_text = audit::format_time(now);
    let until = audit::format_time(lease_expiry(now, ttl)?);
    let due: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT run_id, step FROM step_queue
             WHERE claimable_at <= ?1 AND (?2 IS NULL OR run_id = ?2)
             ORDER BY claimable_at LIMIT ?3",
        )?
        .query_map(params![now_text, run_id, i64::from(limit)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut claims = Vec::with_capacity(due.len());
    for (run, step) in due {
        // A live lease of someone else (taken by a StepStarted commit or a
        // heartbeat the queue row did not hear of) wins: wait for it.
        let held: Option<String> = conn
            .prepare_cached(
                "SELECT expires_at FROM leases
                 WHERE run_id = ?1 AND step = ?2 AND owner <> ?3 AND expires_at > ?4",
            )?
            .query_row(params![run, step, owner, now_text], |r| r.get(0))
            .optional()?;
        if let Some(expires) = held {
            set_claimable(conn, &run, &step, &expires)?;
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO leases (run_id, step, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
        )?
        .execute(params![run, step, owner, until])?;
        set_claimable(conn, &run, &step, &until)?;
        claims.push(StepClaim { run_id: run, step });
    }
    Ok(claims)
}

/// Takes the lease of `step` for `owner` until `expires`: a new one, one
/// `owner` already holds, or one that expired before `now`.
pub(super) fn claim_lease(
    conn: &Connection,
    run_id: &str,
    step: &str,
    owner: &str,
    expires: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let taken = conn
        .prepare_cached(
            "INSERT INTO leases (run_id, step, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
             WHERE leases.owner = excluded.owner OR leases.expires_at <= ?5",
        )?
        .execute(params![run_id, step, owner, expires, now])?;
    if taken == 1 {
        set_claimable(conn, run_id, step, expires)?;
    }
    Ok(taken == 1)
}

/// Extends `owner`'s lease of `step` to `expires`; false when it is not theirs.
pub(super) fn renew_lease(
    conn: &Connection,
    run_id: &str,
    step: &str,
    owner: &str,
    expires: &str,
) -> Result<bool, StoreError> {
    let renewed = conn
        .prepare_cached(
            "UPDATE leases SET expires_at = ?1 WHERE run_id = ?2 AND step = ?3 AND owner = ?4",
        )?
        .execute(params![expires, run_id, step, owner])?;
    if renewed == 1 {
        set_claimable(conn, run_id, step, expires)?;
    }
    Ok(renewed == 1)
}
