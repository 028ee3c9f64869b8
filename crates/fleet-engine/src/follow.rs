//! Following one run until it waits at a gate or ends, whichever process
//! executes its steps (this one, a `fleet worker`, another CLI).
//!
//! The follower subscribes to commits before it first reads the run, so a
//! commit between the read and the wait is never missed; it wakes on its
//! run's notices and, as a fallback, every [`FOLLOW_POLL`]. When it does not
//! execute, it reports the steps other processes finished by comparing the
//! states it saw, so the same progress lines appear either way.

use crate::{Engine, EngineError, Observer, StepInfo};
use fleet_core::run::{RunStatus, StepStatus};
use fleet_store::{Notice, RunRecord};
use std::time::Duration;

/// The fallback look at the run when no notice came (a lapsed lease to take
/// over, a notice lost with a connection).
pub const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// Where following stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// The run waits at a gate, or ends.
    GateOrEnd,
    /// The run ends (someone decides in between).
    End,
}

impl Engine {
    /// Follows run `run_id` until `until`. With `execute`, this process also
    /// executes the run's steps (racing any worker for them: the version
    /// check lets exactly one start each); without, it only watches.
    pub async fn follow(
        &self,
        run_id: &str,
        observer: &dyn Observer,
        execute: bool,
        until: Until,
    ) -> Result<RunRecord, EngineError> {
        let mut notices = self.store().subscribe().await?;
        let mut seen: Option<RunRecord> = None;
        loop {
            let run = if execute {
                self.drive(run_id, observer).await?
            } else {
                let run = self.store().get_run(run_id).await?;
                self.report_progress(seen.as_ref(), &run, observer).await?;
                run
            };
            let done = run.state.is_terminal()
                || (until == Until::GateOrEnd && run.state.status == RunStatus::Waiting);
            if done {
                return Ok(run);
            }
            // Wait for this run to change (or, executing, for work to appear).
            loop {
                match notices.next(FOLLOW_POLL).await? {
                    Some(Notice::Run(id, _)) if id == run.id => break,
                    Some(Notice::Work) if execute => break,
                    Some(Notice::Run(..) | Notice::Work) => {}
                    Some(Notice::Any) => {
                        if self.store().run_version(&run.id).await? != run.version {
                            break;
                        }
                    }
                    // Executing: a lease may have lapsed; look again.
                    None if execute => break,
                    None => {
                        if self.store().run_version(&run.id).await? != run.version {
                            break;
                        }
                    }
                }
            }
            seen = Some(run);
        }
    }

    /// Tells `observer` what changed between two states of a run that
    /// another process executed: steps started, finished, gates opened.
    async fn report_progress(
        &self,
        before: Option<&RunRecord>,
        now: &RunRecord,
        observer: &dyn Observer,
    ) -> Result<(), EngineError> {
        let changed = |i: usize| {
            before.is_none_or(|b| {
                b.state.steps.get(i).map(|s| (s.status, s.attempt))
                    != Some((now.state.steps[i].status, now.state.steps[i].attempt))
            })
        };
        let mut records = None;
        for (i, s) in now.state.steps.iter().enumerate() {
            if !changed(i) {
                continue;
            }
            let name = &now.definition.steps[i].name;
            match s.status {
                StepStatus::Running => observer.step_started(now, name, s.attempt),
                StepStatus::Waiting => {
                    observer.gate_opened(now, name, &now.definition.steps[i].approvers)
                }
                StepStatus::Succeeded | StepStatus::Failed if before.is_some() => {
                    if records.is_none() {
                        records = Some(self.store().step_runs(&now.id).await?);
                    }
                    let record = records
                        .as_deref()
                        .unwrap_or_default()
                        .iter()
                        .rev()
                        .find(|r| &r.step == name);
                    let elapsed = record
                        .and_then(|r| {
                            let end = r.finished_at?;
                            let ms = end.as_millisecond() - r.started_at.as_millisecond();
                            u64::try_from(ms).ok().map(Duration::from_millis)
                        })
                        .unwrap_or_default();
                    let info = StepInfo {
                        input_tokens: record.map_or(0, |r| r.input_tokens),
                        output_tokens: record.map_or(0, |r| r.output_tokens),
                        cached: record.is_some_and(|r| r.cached),
                        error: s.error.clone(),
                        out: (s.status == StepStatus::Succeeded)
                            .then(|| now.definition.steps[i].out_path()),
                    };
                    observer.step_finished(now, name, s.status, elapsed, &info);
                }
                _ => {}
            }
        }
        if now.state.is_terminal() && before.is_some_and(|b| !b.state.is_terminal()) {
            observer.run_finished(now);
        }
        Ok(())
    }
}
