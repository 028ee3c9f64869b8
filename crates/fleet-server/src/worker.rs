//! Drives runs in the background: the ones the server started or decided
//! (kicked through the [`WorkQueue`]), plus steps any process left
//! runnable (a run started with `--detach`, a crash, an expired lease),
//! claimed from the store's queue when a commit notice says work appeared
//! or every poll. A claim is bounded and costs what it claims, however many
//! runs are stored. One drive per run at a time in this process.

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
/// Runs this process drives at once; claims stop while it is full.
const MAX_DRIVES: usize = 16;

/// Logs progress, one event per step event; each gate round once, however
/// often its run is driven again.
#[derive(Default)]
pub struct LogObserver {
    gates: fleet_engine::AnnouncedGates,
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
        log_step_finished(run, step, status, elapsed, info);
    }
    fn gate_opened(&self, run: &RunRecord, step: &str, approvers: &[String]) {
        if self.gates.first(run, step) {
            log_gate_opened(run, step, approvers);
        }
    }
    fn run_finished(&self, run: &RunRecord) {
        if self.gates.first_end(run) {
            log_run_finished(run);
        }
    }
}

fn step_kind(run: &RunRecord, step: &str) -> &'static str {
    run.definition
        .steps
        .iter()
        .find(|s| s.name == step)
        .map_or("unknown", |s| s.kind.as_str())
}

/// The log event of a finished step attempt (`fleet serve` and `fleet worker`).
pub fn log_step_finished(
    run: &RunRecord,
    step: &str,
    status: StepStatus,
    elapsed: Duration,
    info: &StepInfo,
) {
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let kind = step_kind(run, step);
    match &info.error {
        Some(error) => tracing::warn!(
            run = %run.id, genflow = %run.genflow_name, step, kind, status = %status,
            duration_ms, error = %error, "step failed"
        ),
        None => tracing::info!(
            run = %run.id, genflow = %run.genflow_name, step, kind, status = %status,
            duration_ms, input_tokens = info.input_tokens, output_tokens = info.output_tokens,
            cached = info.cached, "step finished"
        ),
    }
}

/// The log event of a gate that opened (names who is asked, never their links).
pub fn log_gate_opened(run: &RunRecord, gate: &str, approvers: &[String]) {
    tracing::info!(
        run = %run.id, genflow = %run.genflow_name, gate, approvers = %approvers.join(", "),
        "gate waiting for a decision"
    );
}

pub fn log_run_finished(run: &RunRecord) {
    tracing::info!(
        run = %run.id, genflow = %run.genflow_name, status = %run.state.status, "run finished"
    );
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
    let mut notices = match engine.store().subscribe().await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, poll_ms = POLL.as_millis() as u64, "cannot subscribe to commits; polling");
            None
        }
    };
    // Approver emails, reminders and other queued deliveries go out from a
    // task of their own, so a slow mail server never holds up runs.
    let deliverer = tokio::spawn(deliver_loop(engine.clone(), stop.clone()));
    // Signed checkpoints of the audit log while it grows (every 10 minutes).
    let ticks = tokio::spawn(engine.clone().checkpoint_ticks());
    let observer = Arc::new(LogObserver::default());
    let spawn = |tasks: &mut JoinSet<String>, id: String| {
        let engine = engine.clone();
        let observer = observer.clone();
        tasks.spawn(async move {
            if let Err(e) = engine.drive(&id, observer.as_ref()).await {
                tracing::error!(run = %id, error = %e, "driving the run failed");
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
            _ = poll.tick() => claim(&engine, &mut in_flight, &mut tasks, &spawn).await,
            notice = next_notice(&mut notices) => {
                if !matches!(notice, Some(fleet_store::Notice::Run(..))) {
                    claim(&engine, &mut in_flight, &mut tasks, &spawn).await;
                }
            }
        }
    }
    let drained =
        tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    deliverer.abort();
    ticks.abort();
    if drained.is_err() {
        tracing::warn!(
            runs = tasks.len(),
            drain_ms = drain.as_millis() as u64,
            "runs still executing at shutdown; their steps resume after the lease expires"
        );
        tasks.abort_all();
    }
}

/// The next commit notice; never resolves without a subscription (the
/// poll then does the looking).
async fn next_notice(
    notices: &mut Option<Box<dyn fleet_store::Subscription>>,
) -> Option<fleet_store::Notice> {
    match notices {
        Some(sub) => match sub.next(POLL).await {
            Ok(notice) => notice,
            Err(e) => {
                tracing::warn!(error = %e, poll_ms = POLL.as_millis() as u64, "commit notices failed; polling");
                *notices = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

/// Claims runnable steps (of any run) while there is room, and drives
/// their runs; a run already being driven is driven once more after.
async fn claim(
    engine: &Arc<Engine>,
    in_flight: &mut HashMap<String, bool>,
    tasks: &mut JoinSet<String>,
    spawn: &impl Fn(&mut JoinSet<String>, String),
) {
    let room = MAX_DRIVES.saturating_sub(in_flight.len());
    if room == 0 {
        return;
    }
    let settings = engine.settings();
    let claims = match engine
        .store()
        .claim_steps(
            &settings.worker_id,
            settings.lease_ttl,
            u32::try_from(room).unwrap_or(u32::MAX),
            None,
        )
        .await
    {
        Ok(claims) => claims,
        Err(e) => {
            tracing::error!(error = %e, "cannot claim steps");
            return;
        }
    };
    for c in claims {
        match in_flight.get_mut(&c.run_id) {
            Some(again) => *again = true,
            None => {
                in_flight.insert(c.run_id.clone(), false);
                spawn(tasks, c.run_id);
            }
        }
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
            tracing::error!(error = %e, "cannot queue reminders");
        }
        match engine.deliver_pending(None).await {
            Ok(report) if report.sent + report.failed > 0 => {
                tracing::info!(
                    sent = report.sent,
                    failed = report.failed,
                    retrying = report.retrying,
                    "deliveries"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "delivery pass failed"),
        }
    }
}
