//! `fleet worker`: a long-running process that only executes steps. It
//! claims runnable steps from the database (any run, started by any
//! process), drives their runs, sends the notifications that are due, and
//! on SIGTERM or Ctrl-C finishes the steps it is executing and exits (a
//! second signal exits at once; what it held is taken over by another
//! worker once the leases lapse).

use crate::context::App;
use crate::workspace::{Locator, UsageError};
use anyhow::{Result, bail};
use fleet_core::run::StepStatus;
use fleet_engine::{AnnouncedGates, EngineError, Observer, StepInfo, WorkerOptions};
use fleet_store::{RunRecord, StepClaim};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub struct WorkerArgs {
    pub concurrency: usize,
    pub poll: String,
}

/// One log event per step event, naming the run (a worker serves many);
/// each gate round once, however often its run is driven again.
#[derive(Default)]
struct WorkerLines {
    gates: AnnouncedGates,
}

impl Observer for WorkerLines {
    fn step_started(&self, run: &RunRecord, step: &str, attempt: u32) {
        tracing::info!(run = %run.id, step, attempt, "step started");
    }

    fn step_finished(
        &self,
        run: &RunRecord,
        step: &str,
        status: StepStatus,
        elapsed: Duration,
        info: &StepInfo,
    ) {
        fleet_server::worker::log_step_finished(run, step, status, elapsed, info);
    }

    fn gate_opened(&self, run: &RunRecord, step: &str, approvers: &[String]) {
        if !self.gates.first(run, step) {
            return;
        }
        fleet_server::worker::log_gate_opened(run, step, approvers);
    }

    fn run_finished(&self, run: &RunRecord) {
        if self.gates.first_end(run) {
            fleet_server::worker::log_run_finished(run);
        }
    }
}

pub fn run(locator: &Locator, args: WorkerArgs) -> Result<ExitCode> {
    if args.concurrency == 0 {
        bail!(UsageError("--concurrency must be at least 1".into()));
    }
    let poll = match fleet_core::config::Duration::parse(&args.poll) {
        Ok(d) if !d.as_std().is_zero() => d.as_std(),
        _ => bail!(UsageError(format!(
            "--poll `{}` is not a duration like 2s or 500ms",
            args.poll
        ))),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let slots = Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let app = App::open_with(locator, |s| {
            s.step_slots = Some(slots.clone());
            // A run's parallel branches may use every slot.
            s.concurrency = s.concurrency.max(args.concurrency);
        })
        .await?;
        crate::logging::warnings(&app.ws, &locator.cwd);
        let signals = Signals::register();
        let engine = app.engine.clone();
        tracing::info!(
            worker = %engine.settings().worker_id,
            database = %app.database,
            concurrency = args.concurrency,
            "fleet worker executing steps"
        );
        let deliveries = tokio::spawn(deliver_loop(engine.clone(), poll));
        let on_error: fleet_engine::OnStepError = Arc::new(|claim: &StepClaim, e: &EngineError| {
            tracing::error!(run = %claim.run_id, step = %claim.step, error = %e, "step error");
        });
        let report = fleet_engine::run_worker(
            engine.clone(),
            WorkerOptions {
                concurrency: args.concurrency,
                poll,
            },
            Arc::new(WorkerLines::default()),
            on_error,
            shutdown_signal(signals),
        )
        .await?;
        deliveries.abort();
        tracing::info!(
            claims = report.claimed,
            errors = report.errors,
            "fleet worker stopped"
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Sends the notifications that are due (gate emails of runs this worker or
/// anyone else advanced; retries), like `fleet serve` does.
async fn deliver_loop(engine: Arc<fleet_engine::Engine>, every: Duration) {
    loop {
        if let Err(e) = engine.deliver_pending(None).await {
            tracing::error!(error = %e, "delivering notifications failed");
        }
        tokio::time::sleep(every).await;
    }
}

/// SIGTERM (and Ctrl-C), registered when made: a signal that arrives
/// once the worker has said it started drains it instead of killing it.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn register() -> Signals {
        Signals {
            #[cfg(unix)]
            term: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok(),
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(term) = &mut self.term {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves on the first SIGTERM or Ctrl-C; a second one exits at once.
async fn shutdown_signal(mut signals: Signals) {
    signals.next().await;
    tracing::info!(
        "fleet worker draining (finishing the steps in progress; signal again to stop now)"
    );
    tokio::spawn(async move {
        signals.next().await;
        tracing::warn!(
            "fleet worker stopped at once; leases of unfinished steps lapse and other workers take over"
        );
        std::process::exit(130);
    });
}
