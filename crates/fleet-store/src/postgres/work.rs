//! Who does what on PostgreSQL: the step queue and its claims, leases, and
//! schedules.

use super::cached::Cached;
use super::pipeline::{Tx, params};
use super::{PostgresStore, pg};
use crate::audit;
use crate::{ScheduleRecord, StepClaim, StoreError};
use jiff::Timestamp;
use std::time::Duration;

pub(super) fn lease_expiry(now: Timestamp, ttl: Duration) -> Result<Timestamp, StoreError> {
    let ttl = jiff::SignedDuration::try_from(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))?;
    now.checked_add(ttl)
        .map_err(|e| StoreError::Invalid(format!("lease ttl: {e}")))
}

/// `FOR UPDATE SKIP LOCKED`: concurrent claimers each get different rows
/// and never wait for one another; a row whose step another owner holds a
/// live lease on is re-timed to that lease's expiry and skipped. One
/// statement, `fleet_claim` (migration 0008), in its own transaction,
/// committed without waiting for the WAL flush: a claim lost in a crash of
/// the database host only makes the step claimable again, and the step is
/// still executed under a lease and committed by the run's version check.
/// The queue rows are locked before the leases, the lock order of every
/// transaction here; the lease upsert still refuses a lease another owner
/// took meanwhile.
pub(super) async fn claim_steps(
    store: &PostgresStore,
    owner: &str,
    ttl: Duration,
    limit: u32,
    run_id: Option<&str>,
) -> Result<Vec<StepClaim>, StoreError> {
    let now = audit::now();
    let now_text = audit::format_time(now);
    let until = audit::format_time(lease_expiry(now, ttl)?);
    let rows = store
        .client()
        .await?
        .rows(
            "SELECT claimed_run, claimed_step FROM fleet_claim($1, $2, $3, $4, $5)",
            &[&now_text, &run_id, &i64::from(limit), &owner, &until],
        )
        .await
        .map_err(pg("claiming steps"))?;
    Ok(rows
        .iter()
        .map(|row| StepClaim {
            run_id: row.get(0),
            step: row.get(1),
        })
        .collect())
}

/// Every transaction that touches both a step's queue row and its lease
/// locks the queue row first, as `claim_steps` does; the other order
/// deadlocks against a concurrent claim.
async fn lock_queue_row(
    tx: &deadpool_postgres::Transaction<'_>,
    run_id: &str,
    step: &str,
) -> Result<(), StoreError> {
    tx.rows(
        "SELECT 1 FROM step_queue WHERE run_id = $1 AND step = $2 FOR UPDATE",
        &[&run_id, &step],
    )
    .await
    .map_err(pg("locking a queued step"))?;
    Ok(())
}

pub(super) async fn claim_lease(
    store: &PostgresStore,
    run_id: &str,
    step: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let now = audit::now();
    let expires = audit::format_time(lease_expiry(now, ttl)?);
    let now = audit::format_time(now);
    let mut client = store.client().await?;
    let tx = client.transaction().await.map_err(pg("claiming a lease"))?;
    lock_queue_row(&tx, run_id, step).await?;
    let taken = tx
        .exec(
            "WITH taken AS (
               INSERT INTO leases (run_id, step, owner, expires_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
               WHERE leases.owner = excluded.owner OR leases.expires_at <= $5
               RETURNING run_id, step)
             UPDATE step_queue q SET claimable_at = $4 FROM taken
             WHERE q.run_id = taken.run_id AND q.step = taken.step",
            &[&run_id, &step, &owner, &expires, &now],
        )
        .await
        .map_err(pg("claiming a lease"))?;
    let ours = taken == 1
        // Taken, but the step is not queued (the UPDATE counted nothing).
        || tx
            .row_opt(
                "SELECT 1 FROM leases WHERE run_id = $1 AND step = $2 AND owner = $3 AND expires_at = $4",
                &[&run_id, &step, &owner, &expires],
            )
            .await
            .map_err(pg("claiming a lease"))?
            .is_some();
    tx.commit().await.map_err(pg("claiming a lease"))?;
    Ok(ours)
}

pub(super) async fn renew_lease(
    store: &PostgresStore,
    run_id: &str,
    step: &str,
    owner: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let expires = audit::format_time(lease_expiry(audit::now(), ttl)?);
    let client = store.client().await?;
    let renewed = client
        .exec(
            "UPDATE leases SET expires_at = $1 WHERE run_id = $2 AND step = $3 AND owner = $4",
            &[&expires, &run_id, &step, &owner],
        )
        .await
        .map_err(pg("renewing a lease"))?;
    if renewed == 1 {
        client
            .exec(
                "UPDATE step_queue SET claimable_at = $3 WHERE run_id = $1 AND step = $2",
                &[&run_id, &step, &expires],
            )
            .await
            .map_err(pg("renewing a lease"))?;
    }
    Ok(renewed == 1)
}

pub(super) async fn release_lease(
    store: &PostgresStore,
    run_id: &str,
    step: &str,
    owner: &str,
) -> Result<(), StoreError> {
    let now = audit::format_time(audit::now());
    // One round trip: BEGIN, the queue row's lock (first, as everywhere),
    // the release with its re-timing and notice, COMMIT. The step is
    // re-timed and announced only when a lease of `owner` was deleted.
    let tx = Tx::new(store.client().await?, false);
    let mut p = tx.pipeline();
    p.query(
        "SELECT 1 FROM step_queue WHERE run_id = $1 AND step = $2 FOR UPDATE",
        params![run_id.to_owned(), step.to_owned()],
        "locking a queued step",
    )
    .await?;
    p.query(
        "WITH released AS (
           DELETE FROM leases WHERE run_id = $1 AND step = $2 AND owner = $3 RETURNING 1
         ), queued AS (
           UPDATE step_queue SET claimable_at = $4
           WHERE run_id = $1 AND step = $2 AND EXISTS (SELECT 1 FROM released)
           RETURNING 1
         )
         SELECT pg_notify('fleet_work', '') FROM queued",
        params![run_id.to_owned(), step.to_owned(), owner.to_owned(), now],
        "releasing a lease",
    )
    .await?;
    tx.commit_with(p).await.check()
}

fn schedule_from_row(row: &tokio_postgres::Row) -> Result<ScheduleRecord, StoreError> {
    let last_due: Option<String> = row.get(3);
    Ok(ScheduleRecord {
        genflow: row.get(0),
        cron: row.get(1),
        next_due: audit::parse_time(row.get(2))?,
        last_due: last_due.as_deref().map(audit::parse_time).transpose()?,
        last_run_id: row.get(4),
    })
}

pub(super) async fn schedules(store: &PostgresStore) -> Result<Vec<ScheduleRecord>, StoreError> {
    let client = store.client().await?;
    client
        .rows(
            "SELECT genflow, cron, next_due, last_due, last_run_id FROM schedules ORDER BY genflow",
            &[],
        )
        .await
        .map_err(pg("listing schedules"))?
        .iter()
        .map(schedule_from_row)
        .collect()
}

pub(super) async fn ensure_schedule(
    store: &PostgresStore,
    genflow: &str,
    cron: &str,
    next_due: Timestamp,
) -> Result<ScheduleRecord, StoreError> {
    let next_due = audit::format_time(next_due);
    let client = store.client().await?;
    // A changed expression restarts the schedule; the same one keeps its
    // stored due time, which is what lets a restart catch up.
    client
        .exec(
            "INSERT INTO schedules (genflow, cron, next_due) VALUES ($1, $2, $3)
             ON CONFLICT (genflow) DO UPDATE SET cron = excluded.cron, next_due = excluded.next_due
             WHERE schedules.cron <> excluded.cron",
            &[&genflow, &cron, &next_due],
        )
        .await
        .map_err(pg("storing a schedule"))?;
    let row = client
        .row(
            "SELECT genflow, cron, next_due, last_due, last_run_id FROM schedules WHERE genflow = $1",
            &[&genflow],
        )
        .await
        .map_err(pg("storing a schedule"))?;
    schedule_from_row(&row)
}

/// A compare-and-swap on the stored due time: of several servers, the one
/// whose UPDATE matches claims the occurrence.
pub(super) async fn claim_schedule(
    store: &PostgresStore,
    genflow: &str,
    due: Timestamp,
    next_due: Timestamp,
    run_id: &str,
) -> Result<bool, StoreError> {
    let (due, next_due) = (audit::format_time(due), audit::format_time(next_due));
    let client = store.client().await?;
    let claimed = client
        .exec(
            "UPDATE schedules SET next_due = $1, last_due = $2, last_run_id = $3
             WHERE genflow = $4 AND next_due = $2",
            &[&next_due, &due, &run_id, &genflow],
        )
        .await
        .map_err(pg("claiming a schedule"))?;
    Ok(claimed == 1)
}
