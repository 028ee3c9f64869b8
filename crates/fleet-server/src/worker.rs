//! Drives runs in the background: the ones the server started or decided
//! (kicked through the [`WorkQueue`]), plus any run left `running` in the
//! database (another process's CLI run, a crash, an expired lease), found by
//! polling. One drive per run at a time in this process: the engine's leases
//! are per worker id, so two drives here would both believe they own a step.

use crate::WorkQueue;
use fleet_core::run::StepStatus;
use fleet_engine::{Engine, Observer, StepInfo};
use fleet_store::RunRecord;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

const POLL: Duration = Duration::from_secs(2);

/// Logs progress to stderr, one line per event.
pub struct LogObserver;

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

impl Observer for LogObserver {
    fn step_finished(
        &self,
        run: &RunRecord,
        step: &str,
        status: StepStatus,
        elapsed: Duration,
        info: &StepInfo,
    ) {
        match &info.error {
            Some(e) => eprintln!("run {} {step}: {status} ({e})", short(&run.id)),
            None => eprintln!(
                "run {} {step}: {status} in {} ms",
                short(&run.id),
                elapsed.as_millis()
            ),
        }
    }
    fn gate_opened(&self, run: &RunRecord, step: &str, approvers: &[String]) {
        eprintln!(
            "run {} {step}: waiting for {}",
            short(&run.id),
            approvers.join(", ")
        );
    }
    fn run_finished(&self, run: &RunRecord) {
        eprintln!("run {} {}", short(&run.id), run.state.status);
    }
}

/// Runs until `stop` turns true, then waits up to `drain` for in-flight
/// drives (a step left running past that keeps its lease until it expires,
/// and the next process resumes it).
pub async fn run(
    engine: Arc<Engine>,
    mut queue: WorkQueue,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    // run id -> kicked again while being driven (drive once more after).
    let mut in_flight: HashMap<String, bool> = HashMap::new();
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut queue_open = true;
    // Approver emails, reminders and other queued deliveries go out from a
    // task of their own, so a slow mail server never holds up runs.
    let deliverer = tokio::spawn(deliver_loop(engine.clone(), stop.clone()));
    let spawn = |tasks: &mut JoinSet<String>, id: String| {
        let engine = engine.clone();
        tasks.spawn(async move {
            if let Err(e) = engine.drive(&id, &LogObserver).await {
                eprintln!("run {}: {e}", short(&id));
            }
            id
        });
    };
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            kicked = queue.0.recv(), if queue_open => match kicked {
                Some(id) => match in_flight.get_mut(&id) {
                    Some(again) => *again = true,
                    None => {
                        in_flight.insert(id.clone(), false);
                        spawn(&mut tasks, id);
                    }
                },
                None => queue_open = false,
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(id) = done
                    && in_flight.remove(&id) == Some(true)
                {
                    in_flight.insert(id.clone(), false);
                    spawn(&mut tasks, id);
                }
            }
            _ = poll.tick() => {
                match engine.store().unfinished_runs().await {
                    Ok(ids) => {
                        for id in ids {
                            if !in_flight.contains_key(&id) {
                                in_flight.insert(id.clone(), false);
                                spawn(&mut tasks, id);
                            }
                        }
                    }
                    Err(e) => eprintln!("worker: cannot list unfinished runs: {e}"),
                }
            }
        }
    }
    let drained =
        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    deliverer.abort();
    if drained.is_err() {
        eprintln!(
            "worker: {} run(s) still executing after {:?}; their steps resume after the lease expires",
            tasks.len(),
            drain
        );
        tasks.abort_all();
    }
}

/// Every poll: queue due reminders for waiting gates, then deliver whatever
/// the outbox holds that is due (gate emails, reminders, retries).
async fn deliver_loop(engine: Arc<Engine>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
        if let Err(e) = engine.queue_reminders().await {
            eprintln!("worker: cannot queue reminders: {e}");
        }
        match engine.deliver_pending(None).await {
            Ok(report) if report.sent + report.failed > 0 => {
                eprintln!(
                    "worker: deliveries: {} sent, {} failed",
                    report.sent, report.failed
                );
            }
            Ok(_) => {}
            Err(e) => eprintln!("worker: delivery pass failed: {e}"),
        }
    }
}
