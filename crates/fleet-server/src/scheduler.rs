//! Starts genflows that have a `schedule:` on time.
//!
//! The next due time lives in the database (`Store::ensure_schedule`). A due
//! time is claimed with a compare-and-swap that also records the id of the
//! run about to be created; the run is then created with that id. So:
//! - a restart after downtime finds the old due time and starts one
//!   catch-up run (it does not skip; it does not replay every missed tick);
//! - two servers on one database cannot both claim a due time;
//! - a process that died between the claim and the creation leaves the id
//!   behind, and the next tick creates that run (creation is idempotent).

use crate::{AppState, ServerError};
use chrono::{DateTime, Utc};
use fleet_core::config::Genflow;
use fleet_engine::{Engine, EngineError};
use fleet_store::StoreError;
use jiff::Timestamp;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const TICK: Duration = Duration::from_secs(1);
pub const TRIGGERED_BY: &str = "schedule";

/// Who started a scheduled run: the schedule and the occurrence it is for
/// (`schedule 2030-01-01T09:05:00Z`), so every run names the due time it
/// fired for, and two runs for one occurrence would be visible.
pub fn triggered_by(due: Timestamp) -> String {
    format!("{TRIGGERED_BY} {due}")
}

/// The first occurrence of `cron` strictly after `after`.
pub fn next_after(cron: &str, after: Timestamp) -> Result<Timestamp, ServerError> {
    let pattern = croner::Cron::from_str(cron)
        .map_err(|e| ServerError::Config(format!("schedule `{cron}`: {e}")))?;
    let start: DateTime<Utc> = DateTime::from_timestamp(after.as_second(), 0)
        .ok_or_else(|| ServerError::Config(format!("time {after} is out of range")))?;
    let next = pattern
        .find_next_occurrence(&start, false)
        .map_err(|e| ServerError::Config(format!("schedule `{cron}`: {e}")))?;
    Timestamp::from_second(next.timestamp())
        .map_err(|e| ServerError::Config(format!("schedule `{cron}`: {e}")))
}

/// One pass at time `now`: returns the ids of runs it started.
pub async fn tick(engine: &Engine, now: Timestamp) -> Result<Vec<String>, ServerError> {
    let mut started = Vec::new();
    let store = engine.store();
    for flow in &engine.config().genflows {
        let Some(cron) = flow.schedule.as_deref() else {
            continue;
        };
        let first_due = next_after(cron, now)?;
        let rec = store.ensure_schedule(&flow.name, cron, first_due).await?;
        // Finish a claim whose run was never created (the claimer died).
        if let (Some(id), Some(due)) = (&rec.last_run_id, rec.last_due)
            && let Some(id) = create_if_missing(engine, flow, id, due).await?
        {
            started.push(id);
        }
        if rec.next_due > now {
            continue;
        }
        let next = next_after(cron, now)?;
        let id = fleet_store::new_run_id();
        if store
            .claim_schedule(&flow.name, rec.next_due, next, &id)
            .await?
            && let Some(id) = create_if_missing(engine, flow, &id, rec.next_due).await?
        {
            started.push(id);
        }
    }
    Ok(started)
}

async fn create_if_missing(
    engine: &Engine,
    flow: &Genflow,
    id: &str,
    due: Timestamp,
) -> Result<Option<String>, ServerError> {
    match engine.store().get_run(id).await {
        Ok(_) => return Ok(None),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    match engine
        .start_run_with_params(
            &flow.name,
            Some(triggered_by(due)),
            &flow.schedule_params,
            id.to_owned(),
        )
        .await
    {
        Ok(run) => Ok(Some(run.id)),
        Err(EngineError::Store(StoreError::AlreadyExists(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Ticks every second until `stop`.
pub async fn run(engine: Arc<Engine>, state: AppState, mut stop: watch::Receiver<bool>) {
    if engine
        .config()
        .genflows
        .iter()
        .all(|g| g.schedule.is_none())
    {
        return;
    }
    loop {
        match tick(&engine, Timestamp::now()).await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(run = %id, "scheduler started a run");
                    state.kick(&id);
                }
            }
            Err(e) => tracing::error!(error = %e, "scheduler"),
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}
