//! `fleet worker`'s loop: claim runnable steps from the store's queue,
//! drive their runs, repeat; wake on commit notices, fall back to a
//! bounded poll; drain on request.
//!
//! A claim leases one step to this worker; the task that holds it drives
//! the step's run (`Engine::drive`), so the steps that become Ready after it
//! are started right away by the same task (the version check still lets
//! exactly one process start each) instead of waiting for another claim.
//! `Settings::step_slots` bounds the steps executing at once across all
//! tasks.

use crate::drive::Leases;
use crate::{Engine, EngineError, Observer};
use fleet_store::{Notice, StepClaim};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Steps executing at once (also the number of runs driven at once).
    pub concurrency: usize,
    /// The fallback look for work when no notice came: a lapsed lease of a
    /// worker that died, a notice lost with a connection.
    pub poll: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 4,
            poll: Duration::from_secs(2),
        }
    }
}

/// What a worker did before it stopped.
#[derive(Debug, Default)]
pub struct WorkerReport {
    pub claimed: u64,
    pub errors: u64,
}

#[derive(Default)]
struct Counters {
    claimed: AtomicU64,
    errors: AtomicU64,
}

/// Told about an error of one claimed step (the worker carries on).
pub type OnStepError = Arc<dyn Fn(&StepClaim, &EngineError) + Send + Sync>;

/// Runs until `shutdown` resolves, then stops claiming and finishes what it
/// holds (each task ends after its current step: see [`Engine::drain`]).
/// Errors of single runs are reported through `on_error` and do not stop
/// the worker; a store that keeps failing is retried with backoff.
pub async fn run_worker(
    engine: Arc<Engine>,
    options: WorkerOptions,
    observer: Arc<dyn Observer>,
    on_error: OnStepError,
    shutdown: impl Future<Output = ()>,
) -> Result<WorkerReport, EngineError> {
    let concurrency = options.concurrency.max(1);
    let counters = Arc::new(Counters::default());
    let mut notices = engine.store().subscribe_work().await?;
    let mut tasks: JoinSet<()> = JoinSet::new();
    let driving = Arc::new(Driving::default());
    let mut look = true;
    let mut failures = 0u32;
    tokio::pin!(shutdown);
    let ticks = tokio::spawn(engine.clone().checkpoint_ticks());
    loop {
        if look && tasks.len() < concurrency {
            let free = u32::try_from(concurrency - tasks.len()).unwrap_or(u32::MAX);
            match engine
                .store()
                .claim_steps(
                    &engine.settings().worker_id,
                    engine.settings().lease_ttl,
                    free,
                    None,
                )
                .await
            {
                Ok(claims) => {
                    failures = 0;
                    // A full batch may mean more is waiting: look again
                    // as soon as a slot frees up.
                    look = claims.len() as u32 == free;
                    for claim in claims {
                        counters.claimed.fetch_add(1, Ordering::Relaxed);
                        if !driving.start(&claim.run_id, &claim.step) {
                            // A task of ours drives that run already; it
                            // drives it again before it lets go.
                            continue;
                        }
                        let (engine, observer, on_error, counters, driving) = (
                            engine.clone(),
                            observer.clone(),
                            on_error.clone(),
                            counters.clone(),
                            driving.clone(),
                        );
                        tasks.spawn(async move {
                            let mut steps = vec![claim.step.clone()];
                            let mut settled = HashSet::new();
                            loop {
                                if let Err(e) = engine
                                    .execute_claims(
                                        &claim.run_id,
                                        &steps,
                                        &mut settled,
                                        observer.as_ref(),
                                    )
                                    .await
                                {
                                    counters.errors.fetch_add(1, Ordering::Relaxed);
                                    on_error(&claim, &e);
                                }
                                match driving.finish(&claim.run_id) {
                                    Some(more) => steps = more,
                                    None => break,
                                }
                            }
                        });
                    }
                }
                Err(e) => {
                    failures += 1;
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    on_error(
                        &StepClaim {
                            run_id: "(claim)".into(),
                            step: "(claim)".into(),
                        },
                        &e.into(),
                    );
                    let backoff = Duration::from_millis(200 << failures.min(5));
                    tokio::time::sleep(backoff.min(options.poll)).await;
                    look = true;
                    continue;
                }
            }
        }
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                // A slot freed: there may be work we left for later.
                look = true;
            }
            notice = notices.next(options.poll) => match notice {
                Ok(Some(Notice::Work | Notice::Any) | None) => look = true,
                // A run changed without making a step claimable.
                Ok(Some(Notice::Run(..))) => {}
                Err(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    on_error(&StepClaim { run_id: "(notices)".into(), step: "(notices)".into() }, &e.into());
                    tokio::time::sleep(options.poll).await;
                    notices = engine.store().subscribe_work().await?;
                    look = true;
                }
            },
        }
    }
    engine.drain();
    ticks.abort();
    while tasks.join_next().await.is_some() {}
    Ok(WorkerReport {
        claimed: counters.claimed.load(Ordering::Relaxed),
        errors: counters.errors.load(Ordering::Relaxed),
    })
}

/// The runs this worker's tasks drive, and the steps claimed for one while
/// it was being driven (the task then drives it once more: the claim may
/// be for a step that became runnable after the task last looked).
#[derive(Default)]
struct Driving(std::sync::Mutex<HashMap<String, Vec<String>>>);

impl Driving {
    /// True: the caller drives `run`. False: a task drives it and will
    /// look again (and settle the claim of `step`).
    fn start(&self, run: &str, step: &str) -> bool {
        let Ok(mut map) = self.0.lock() else {
            return true;
        };
        match map.get_mut(run) {
            Some(again) => {
                again.push(step.to_owned());
                false
            }
            None => {
                map.insert(run.to_owned(), Vec::new());
                true
            }
        }
    }

    /// None: done with `run`. Some(steps): drive it again, settling the
    /// claims of `steps` (they came meanwhile).
    fn finish(&self, run: &str) -> Option<Vec<String>> {
        let Ok(mut map) = self.0.lock() else {
            return None;
        };
        match map.get_mut(run) {
            Some(again) if !again.is_empty() => Some(std::mem::take(again)),
            _ => {
                map.remove(run);
                None
            }
        }
    }
}

impl Engine {
    /// Executes a claimed step and whatever of its run becomes runnable after
    /// it (until the run waits, ends, or only steps leased elsewhere remain).
    /// A claim this worker will not execute (draining, the run moved on) is
    /// released so another worker can take it at once.
    pub async fn execute_claim(
        &self,
        claim: &StepClaim,
        observer: &dyn Observer,
    ) -> Result<(), EngineError> {
        if !self.is_draining() {
            let result = self
                .drive_steps(
                    &claim.run_id,
                    Leases::other(std::slice::from_ref(&claim.step)),
                    observer,
                )
                .await;
            // The step's own commits released the lease if it ran; when
            // drive returned without running it, give it back.
            let settled = match &result {
                Ok((run, executed)) => executed
                    .iter()
                    .any(|&i| run.definition.steps[i].name == claim.step),
                Err(_) => false,
            };
            if !settled {
                let _ = self
                    .store()
                    .release_lease(&claim.run_id, &claim.step, &self.settings().worker_id)
                    .await;
            }
            return result.map(|_| ());
        }
        self.store()
            .release_lease(&claim.run_id, &claim.step, &self.settings().worker_id)
            .await?;
        Ok(())
    }

    /// [`Engine::execute_claim`] for the claims of `steps` of one run, by a
    /// task that may have driven it before: `settled` holds the steps its
    /// drives executed (their own commits released the leases), and gains
    /// this drive's. Only a claimed step no drive of the task executed is
    /// released; a re-drive after a claim that the task's own drive
    /// already served costs no release.
    pub(crate) async fn execute_claims(
        &self,
        run_id: &str,
        steps: &[String],
        settled: &mut HashSet<String>,
        observer: &dyn Observer,
    ) -> Result<(), EngineError> {
        let result = if self.is_draining() {
            // Released below, whatever was executed before.
            settled.clear();
            Ok(())
        } else {
            match self
                .drive_steps(run_id, Leases::worker(steps), observer)
                .await
            {
                Ok((run, executed)) => {
                    settled.extend(
                        executed
                            .iter()
                            .map(|&i| run.definition.steps[i].name.clone()),
                    );
                    Ok(())
                }
                Err(e) => {
                    settled.clear();
                    Err(e)
                }
            }
        };
        for step in steps.iter().filter(|s| !settled.contains(*s)) {
            let released = self
                .store()
                .release_lease(run_id, step, &self.settings().worker_id)
                .await;
            if result.is_ok() && self.is_draining() {
                released?;
            }
        }
        result
    }
}
