//! Driving a run: executing its runnable steps until it waits at a gate,
//! ends, or only steps leased elsewhere remain.
//!
//! Leases. A step is executed only under this process's lease on it: one
//! a worker's claim took (`held`), one the previous step's result took
//! with it, or one `claim_lease` takes here. A result that makes steps
//! Ready leases them in the same commit (a hand-off): the task that
//! committed it runs them next, so no other worker is woken to claim them
//! for nothing. A drive gives back, when it returns, the handed-off
//! leases it did not use.
//!
//! Starts. A model step (report, review), or a notify step with nothing to
//! deliver, is executed before its start is committed, and its result
//! commits StepStarted with StepSucceeded (or StepFailed): one transition
//! instead of two. The lease keeps other
//! workers off the step meanwhile, and the version check decides should
//! two ever execute it (a lease that lapsed): once the step has moved on,
//! StepStarted is refused, so exactly one result lands. A step still
//! executing after `SHOW_RUNNING_AFTER` commits its start on its own, so
//! a slow step shows as running. A notify step with deliveries and a
//! publish step commit their start first: it queues the deliveries, and a
//! destination written is found again through it after a crash.

use crate::{Engine, EngineError, Executing, Extras, Observer, StepInfo, exec, files};
use fleet_core::config::StepKind;
use fleet_core::flags::FlagCounts;
use fleet_core::run::{Event, StepStatus, advance};
use fleet_store::{LeaseChange, RunRecord};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// How long a model step executes before its start is committed on its
/// own, to show it running (most finish sooner, and commit once).
const SHOW_RUNNING_AFTER: Duration = Duration::from_secs(1);

/// A step's result, committed.
pub(crate) struct Settled {
    pub run: RunRecord,
    /// The steps the result made Ready and leased to this process.
    pub taken: Vec<String>,
}

/// The leases a drive holds for steps it has not executed yet.
pub(crate) struct Leases<'a> {
    /// A worker's claims (given back by the worker if not executed).
    claimed: &'a [String],
    /// Taken by this drive's results (given back by the drive).
    handed: HashSet<String>,
    /// Steps executed: their leases were settled by the execution.
    executed: Vec<usize>,
    /// Whether results take the leases of the steps they make Ready. A
    /// worker's drives do; a CLI process's do not, so after it dies the
    /// next process (`fleet resume`) goes on at once instead of waiting for
    /// the dead one's leases to lapse.
    hand_off: bool,
}

impl<'a> Leases<'a> {
    /// A worker's drive holding the leases of its `claimed` steps.
    pub(crate) fn worker(claimed: &'a [String]) -> Leases<'a> {
        Leases {
            claimed,
            handed: HashSet::new(),
            executed: Vec::new(),
            hand_off: true,
        }
    }

    /// A drive by a process that is not a worker, holding `claimed`.
    pub(crate) fn other(claimed: &'a [String]) -> Leases<'a> {
        Leases {
            hand_off: false,
            ..Leases::worker(claimed)
        }
    }
}

impl Engine {
    /// Whether step `idx` of `run` commits its start with its result: a
    /// model step (report, review), and a notify step with nothing to
    /// queue (its start is what queues its deliveries; a plan error fails
    /// the step either way).
    fn starts_with_result(&self, run: &RunRecord, idx: usize) -> bool {
        match run.definition.steps[idx].kind {
            StepKind::Report | StepKind::Review => true,
            StepKind::Notify => fleet_notify::announce_deliveries(
                &self.config,
                &run.id,
                &run.definition,
                &run.state,
                idx,
            )
            .is_ok_and(|planned| planned.is_empty()),
            StepKind::Approval | StepKind::Publish => false,
        }
    }

    /// Executes every runnable step of the run until it finishes or waits at
    /// a gate (or only steps leased by other live workers remain).
    pub async fn drive(
        &self,
        run_id: &str,
        observer: &dyn Observer,
    ) -> Result<RunRecord, EngineError> {
        Ok(self
            .drive_steps(run_id, Leases::other(&[]), observer)
            .await?
            .0)
    }

    /// [`Engine::drive`] holding `leases`, also saying which steps this
    /// call executed (or tried to): their leases are settled, each released
    /// by the step's last commit or by `run_step` when it stopped early.
    pub(crate) async fn drive_steps(
        &self,
        run_id: &str,
        mut leases: Leases<'_>,
        observer: &dyn Observer,
    ) -> Result<(RunRecord, Vec<usize>), EngineError> {
        let result = self.drive_leased(run_id, &mut leases, observer).await;
        // Another worker need not wait for these to lapse.
        for step in &leases.handed {
            let _ = self
                .store
                .release_lease(run_id, step, &self.settings.worker_id)
                .await;
        }
        result.map(|run| (run, leases.executed))
    }

    async fn drive_leased(
        &self,
        run_id: &str,
        leases: &mut Leases<'_>,
        observer: &dyn Observer,
    ) -> Result<RunRecord, EngineError> {
        let mut run = self.store.get_run(run_id).await?;
        if self.settings.write_files {
            files::materialize(self.store.as_ref(), &run, &self.settings.state_dir).await?;
        }
        let mut announced_gates = Vec::new();
        loop {
            for (i, s) in run.state.steps.iter().enumerate() {
                if s.status == StepStatus::Waiting && !announced_gates.contains(&i) {
                    announced_gates.push(i);
                    let step = &run.definition.steps[i];
                    observer.gate_opened(&run, &step.name, &step.approvers);
                }
            }
            if run.state.is_terminal() {
                observer.run_finished(&run);
                return Ok(run);
            }
            if self.is_draining() {
                return Ok(run);
            }
            // Ready steps, plus Running ones whose worker died (lease free or expired).
            // Not those another task of this process is executing.
            let busy = self.executing_steps(&run.id);
            let candidates: Vec<usize> = run
                .state
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s.status, StepStatus::Ready | StepStatus::Running))
                .map(|(i, _)| i)
                .filter(|i| !busy.contains(i))
                .collect();
            let mut chosen = Vec::new();
            for i in candidates {
                if chosen.len() >= self.settings.concurrency.max(1) {
                    break;
                }
                // Executed only under our lease: one held for this drive
                // (used once: the execution settles it), or one free or
                // lapsed, taken now (a Running step's worker died).
                let name = &run.definition.steps[i].name;
                let first = !leases.executed.contains(&i);
                let held = leases.handed.remove(name) || (first && leases.claimed.contains(name));
                if held
                    || self
                        .store
                        .claim_lease(
                            &run.id,
                            name,
                            &self.settings.worker_id,
                            self.settings.lease_ttl,
                        )
                        .await?
                {
                    chosen.push(i);
                }
            }
            if chosen.is_empty() {
                // Waiting at a gate, or the remaining steps run elsewhere.
                return Ok(run);
            }
            let single = chosen.len() == 1;
            leases.executed.extend(&chosen);
            let results = futures_util::future::join_all(
                chosen
                    .iter()
                    .map(|&i| self.run_step(&run, i, leases.hand_off, observer)),
            )
            .await;
            let mut latest = None;
            let mut failed = None;
            for r in results {
                match r {
                    Ok(Some(settled)) => {
                        leases.handed.extend(settled.taken);
                        latest = Some(settled.run);
                    }
                    Ok(None) => latest = None,
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
            // A lone step's result commit is the newest state this worker
            // knows; if another process moved the run since, the next
            // commit's version check says so and reloads.
            run = match latest {
                Some(run) if single => run,
                _ => self.store.get_run(run_id).await?,
            };
        }
    }

    /// One step, under this process's lease: execute it with a heartbeat,
    /// record its start and its success or failure.
    async fn run_step(
        &self,
        snapshot: &RunRecord,
        idx: usize,
        hand_off: bool,
        observer: &dyn Observer,
    ) -> Result<Option<Settled>, EngineError> {
        let key = (snapshot.id.clone(), idx);
        let fresh = self
            .executing
            .lock()
            .map(|mut set| set.insert(key.clone()))
            .unwrap_or(false);
        if !fresh {
            // Another task of this process executes it (under our lease).
            return Ok(None);
        }
        let _executing = Executing { engine: self, key };
        let _slot = match &self.settings.step_slots {
            Some(slots) => {
                Some(
                    slots
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| EngineError::Usage {
                            run: snapshot.id.clone(),
                            message: "the engine is shutting down".into(),
                        })?,
                )
            }
            None => None,
        };
        let result = self.run_step_inner(snapshot, idx, hand_off, observer).await;
        // The step's final commit releases the lease; when there was none
        // (an error, a cancelled run, another worker won), release it here.
        if !matches!(result, Ok(Some(_))) {
            let name = &snapshot.definition.steps[idx].name;
            let _ = self
                .store
                .release_lease(&snapshot.id, name, &self.settings.worker_id)
                .await;
        }
        result
    }

    fn lease_release(&self, step: &str) -> Vec<LeaseChange> {
        vec![LeaseChange::Release {
            step: step.to_owned(),
            owner: self.settings.worker_id.clone(),
        }]
    }

    /// Commits the start of Ready step `idx` of `run` (with its lease, and
    /// a notify step's deliveries); `None` when someone else moved the
    /// step (cancelled, or another worker won).
    async fn commit_start(
        &self,
        run: &RunRecord,
        idx: usize,
    ) -> Result<Option<RunRecord>, EngineError> {
        let step = &run.definition.steps[idx];
        let mut extras = Extras {
            leases: vec![LeaseChange::Take {
                step: step.name.clone(),
                owner: self.settings.worker_id.clone(),
                ttl: self.settings.lease_ttl,
            }],
            ..Extras::default()
        };
        extras
            .payload
            .insert("attempt".into(), (run.state.steps[idx].attempt + 1).into());
        if step.kind == StepKind::Notify {
            // Queued atomically with the start; a plan error fails
            // the step in `exec::notify_step` with the same message.
            extras.outbox = fleet_notify::announce_deliveries(
                &self.config,
                &run.id,
                &run.definition,
                &run.state,
                idx,
            )
            .unwrap_or_default();
        }
        match self
            .apply_from(run, &Event::StepStarted { step: idx }, extras)
            .await
        {
            Ok(applied) => Ok(Some(applied.run)),
            Err(EngineError::Refused(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `snapshot` is the run as `drive` last saw it; transitions start from it
    /// and reload only if it turns out stale (the version check says so).
    /// `Ok(Some(..))` when the step's result was committed with its lease
    /// released.
    async fn run_step_inner(
        &self,
        snapshot: &RunRecord,
        idx: usize,
        hand_off: bool,
        observer: &dyn Observer,
    ) -> Result<Option<Settled>, EngineError> {
        let step = snapshot.definition.steps[idx].clone();
        // `base`: the run the result is committed on; `start`: the start,
        // when it goes with the result; `running`: the run as the step sees it.
        let (base, start, running) = match snapshot.state.steps[idx].status {
            StepStatus::Ready if self.starts_with_result(snapshot, idx) => {
                let Ok((state, _)) = advance(
                    &snapshot.definition,
                    &snapshot.state,
                    &Event::StepStarted { step: idx },
                ) else {
                    return Ok(None);
                };
                let running = RunRecord {
                    state,
                    ..snapshot.clone()
                };
                (snapshot.clone(), Some(idx), running)
            }
            StepStatus::Ready => match self.commit_start(snapshot, idx).await? {
                Some(run) => (run.clone(), None, run),
                None => return Ok(None),
            },
            StepStatus::Running => (snapshot.clone(), None, snapshot.clone()), // reclaimed from a worker that died
            _ => return Ok(None),
        };
        let attempt = running.state.steps[idx].attempt;
        observer.step_started(&running, &step.name, attempt);
        self.pause_at("step_executing");

        // Backoff before a retry (attempt 2 and later).
        if attempt > 1 {
            let backoff = Duration::from_millis(250u64.saturating_mul(1 << (attempt - 2).min(7)));
            tokio::time::sleep(backoff.min(Duration::from_secs(30))).await;
        }

        let started = Instant::now();
        let mut execution = std::pin::pin!(self.execute_with_heartbeat(&running, idx, attempt));
        let (outcome, base, start) = match start {
            None => ((&mut execution).await, base, None),
            Some(start) => tokio::select! {
                outcome = &mut execution => (outcome, base, Some(start)),
                () = tokio::time::sleep(SHOW_RUNNING_AFTER) => {
                    // Slow: show it running while it goes on.
                    let (outcome, committed) =
                        tokio::join!(&mut execution, self.commit_start(snapshot, idx));
                    match committed? {
                        Some(run) => (outcome, run, None),
                        // Cancelled or taken over meanwhile: the result is dropped.
                        None => return Ok(None),
                    }
                }
            },
        };
        let elapsed = started.elapsed();
        let committed = match outcome {
            Ok(done) => {
                let info = StepInfo {
                    input_tokens: done.step_run.as_ref().map(|s| s.input_tokens).unwrap_or(0),
                    output_tokens: done.step_run.as_ref().map(|s| s.output_tokens).unwrap_or(0),
                    cached: done.step_run.as_ref().is_some_and(|s| s.cached),
                    error: None,
                    out: Some(step.out_path()),
                };
                let mut extras = Extras {
                    artifacts: done.artifacts,
                    step_run: done.step_run,
                    blobs: done.blobs,
                    leases: self.lease_release(&step.name),
                    start,
                    hand_off,
                    ..Extras::default()
                };
                extras
                    .payload
                    .insert("high_flags".into(), done.flags.high.into());
                if done.flags != FlagCounts::NONE {
                    extras.payload.insert(
                        "flags".into(),
                        serde_json::to_value(done.flags).unwrap_or_default(),
                    );
                }
                extras
                    .payload
                    .insert("elapsed_ms".into(), (elapsed.as_millis() as u64).into());
                let event = Event::StepSucceeded {
                    step: idx,
                    flags: done.flags,
                };
                match self.apply_from(&base, &event, extras).await {
                    Ok(applied) => {
                        if self.settings.write_files {
                            files::write_artifacts(
                                &applied.run,
                                &applied.files,
                                &self.settings.state_dir,
                            )?;
                        }
                        self.metrics
                            .step_finished(step.kind.as_str(), "succeeded", elapsed);
                        let status = applied.run.state.steps[idx].status;
                        observer.step_finished(&applied.run, &step.name, status, elapsed, &info);
                        Some(Settled {
                            run: applied.run,
                            taken: applied.taken,
                        })
                    }
                    Err(EngineError::Refused(_)) => None, // run was cancelled meanwhile; result dropped
                    Err(e) => return Err(e),
                }
            }
            Err(exec::StepFailure {
                store_unavailable: Some(e),
                ..
            }) => {
                // Not the step's failure: the step stays as it was under
                // this process's lease, which the caller releases (a worker)
                // or lets lapse, so it is executed again once the database
                // answers, by whichever process claims it.
                tracing::warn!(run = %base.id, step = %step.name, error = %e,
                    "the database was unavailable during the step; it will run again");
                return Err(e.into());
            }
            Err(failure) => {
                let mut extras = Extras {
                    step_run: failure.step_run.map(|b| *b),
                    leases: self.lease_release(&step.name),
                    start,
                    hand_off,
                    ..Extras::default()
                };
                extras
                    .payload
                    .insert("error".into(), failure.message.clone().into());
                let event = Event::StepFailed {
                    step: idx,
                    error: failure.message.clone(),
                };
                match self.apply_from(&base, &event, extras).await {
                    Ok(applied) => {
                        self.metrics
                            .step_finished(step.kind.as_str(), "failed", elapsed);
                        let status = applied.run.state.steps[idx].status;
                        let info = StepInfo {
                            error: Some(failure.message),
                            ..StepInfo::default()
                        };
                        observer.step_finished(&applied.run, &step.name, status, elapsed, &info);
                        Some(Settled {
                            run: applied.run,
                            taken: applied.taken,
                        })
                    }
                    Err(EngineError::Refused(_)) => None,
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(committed)
    }

    /// Executes the step, renewing its lease meanwhile, within its timeout.
    async fn execute_with_heartbeat(
        &self,
        run: &RunRecord,
        idx: usize,
        attempt: u32,
    ) -> Result<exec::StepDone, exec::StepFailure> {
        let step = &run.definition.steps[idx];
        let work = exec::execute(self, run, idx, attempt);
        let heartbeat = self.heartbeat(&run.id, &step.name);
        match step.timeout {
            Some(t) => {
                tokio::select! {
                    r = tokio::time::timeout(t.as_std(), work) => r.unwrap_or_else(|_| Err(
                        exec::StepFailure::from(format!("timed out after {t}"))
                    )),
                    never = heartbeat => match never {},
                }
            }
            None => {
                tokio::select! {
                    r = work => r,
                    never = heartbeat => match never {},
                }
            }
        }
    }

    /// Renews the lease until dropped (the select above drops it when the work ends).
    async fn heartbeat(&self, run_id: &str, step: &str) -> std::convert::Infallible {
        let every = (self.settings.lease_ttl / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            // A failed renewal means another worker took over after our lease
            // lapsed; the CAS on commit will sort out who wins.
            let _ = self
                .store
                .renew_lease(
                    run_id,
                    step,
                    &self.settings.worker_id,
                    self.settings.lease_ttl,
                )
                .await;
        }
    }
}
