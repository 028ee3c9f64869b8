//! Executes runs. The engine is the imperative shell around
//! `fleet_core::run::advance`: it asks the pure state machine what may happen,
//! does the work (gather a corpus, call a model, render a decision), and
//! commits the result through the `Store` as one transaction per transition.
//!
//! Every transition is a compare-and-swap on the run's version: when two
//! processes race (two approvers clicking at once, two workers on one run),
//! the loser reloads, asks the state machine again, and gets a clean refusal
//! such as "already decided" instead of a second record.

mod announced;
pub mod attest;
mod cadence;
mod decision;
mod drive;
mod exec;
mod fan_out;
mod files;
mod follow;
mod gaps;
mod kept;
pub mod keys;
pub mod metrics;
mod publish;
mod rounds;
mod worker;

pub use announced::AnnouncedGates;
pub use cadence::Clock;
pub use decision::{DecisionRequest, render_decision, shown_revisions};
pub use exec::corpus_spec;
pub use files::{materialize, run_dir};
pub use follow::{FOLLOW_POLL, Until};
pub use gaps::recorded_gaps;
pub use keys::Rotation;
pub use rounds::{ReviewRounds, RoundRevisions, review_rounds};
pub use worker::{OnStepError, WorkerOptions, WorkerReport, run_worker};

use fleet_core::config::Config;
use fleet_core::run::{Action, Event, Refusal, RunState, StepStatus, advance};
use fleet_store::{DeliveryScope, NewDelivery, RunFilter};
use fleet_store::{
    LeaseChange, NewArtifact, NewDecision, NewEvent, NewRun, RunRecord, StepRun, Store, StoreError,
    Transition,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no genflow named `{name}` in the config (genflows: {known})")]
    UnknownGenflow { name: String, known: String },
    /// The values given for the genflow's params do not fit (a usage error).
    #[error(transparent)]
    Params(#[from] fleet_core::config::ParamError),
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("run {run}: {message}")]
    Usage { run: String, message: String },
    #[error(
        "the page showed {path} with sha256 {shown}, but it has changed since (now {current}); reload and decide on the current revision"
    )]
    StaleRevision {
        path: String,
        shown: String,
        current: String,
    },
    #[error("run {run} kept changing under us; gave up after {attempts} attempts")]
    Contended { run: String, attempts: u32 },
    #[error("{0}")]
    Signing(String),
    #[error("step `{step}`: cannot list the files of its `for_each`: {message}")]
    FanOut { step: String, message: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// How the engine runs. `Default` suits the CLI.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The workspace root: corpus globs and source commands resolve here.
    pub root: PathBuf,
    /// Where readable copies of artifacts go (`<state_dir>/runs/<run-id>/<out>`).
    pub state_dir: PathBuf,
    /// Steps of one run executed at the same time.
    pub concurrency: usize,
    /// How long a claimed step stays ours without a heartbeat.
    pub lease_ttl: Duration,
    /// Identifies this process in leases.
    pub worker_id: String,
    /// Write `.fleet/runs/...` files (benchmarks turn this off to measure the engine alone).
    pub write_files: bool,
    /// Fault injection for crash tests (`FLEET_FAULT=pause-after:<event>`, an
    /// `Event::name()` such as `decision` or `step_succeeded`): after
    /// committing a transition caused by that event, the process
    /// announces it on stderr and freezes, so a test can SIGKILL it at exactly
    /// that point. Also named points: `step_executing` (a step about to be
    /// executed under this process's lease, its result not committed) and
    /// `published`. Only builds with the `fault-injection` feature (test
    /// builds) read the variable or ever freeze.
    pub pause_after: Option<String>,
    /// Do not read model responses from the cache (`fleet run --no-cache`);
    /// new answers are still written to `<state_dir>/cache/models/`.
    pub no_cache: bool,
    /// Builds each approver's signed link to the decision page for gate
    /// emails; `None` = the email explains how to decide with the CLI.
    pub approver_links: Option<Arc<dyn fleet_notify::ApproverLinks>>,
    /// Retries, backoff and leases of notification deliveries.
    pub delivery: fleet_notify::DeliveryPolicy,
    /// Bounds the steps executing at once across every run this engine
    /// drives (`fleet worker --concurrency`); `None` = only `concurrency`
    /// per run.
    pub step_slots: Option<Arc<tokio::sync::Semaphore>>,
    /// The installation's signing key (attestations, checkpoints), created
    /// on first need: `FLEET_SIGNING_KEY_FILE`, else `.fleet/signing.key`.
    pub signing_key_file: PathBuf,
    /// A signed checkpoint is appended once the log grew by this many
    /// events since the last one...
    pub checkpoint_events: u64,
    /// ...or this long after the last one, if events were appended since.
    pub checkpoint_interval: Duration,
    /// What checkpoints are timed by.
    pub clock: Clock,
}

/// `FLEET_FAULT=pause-after:<point>`, read only by test builds: a released
/// binary must not be freezable by an environment variable.
#[cfg(feature = "fault-injection")]
fn injected_fault() -> Option<String> {
    std::env::var("FLEET_FAULT")
        .ok()
        .and_then(|f| f.strip_prefix("pause-after:").map(str::to_owned))
}

#[cfg(not(feature = "fault-injection"))]
fn injected_fault() -> Option<String> {
    None
}

impl Settings {
    pub fn new(root: PathBuf) -> Self {
        let state_dir = root.join(".fleet");
        Settings {
            root,
            concurrency: 4,
            lease_ttl: Duration::from_secs(15),
            worker_id: format!(
                "pid{}-{}",
                std::process::id(),
                uuid::Uuid::now_v7().simple()
            ),
            write_files: true,
            pause_after: injected_fault(),
            no_cache: false,
            approver_links: None,
            delivery: fleet_notify::DeliveryPolicy::default(),
            step_slots: None,
            signing_key_file: std::env::var_os("FLEET_SIGNING_KEY_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|| state_dir.join("signing.key")),
            checkpoint_events: 1000,
            checkpoint_interval: Duration::from_secs(600),
            clock: Clock::default(),
            state_dir,
        }
    }
}

/// Progress callbacks, so the CLI can print lines or draw bars and the server can log.
pub trait Observer: Send + Sync {
    fn step_started(&self, _run: &RunRecord, _step: &str, _attempt: u32) {}
    fn step_finished(
        &self,
        _run: &RunRecord,
        _step: &str,
        _status: StepStatus,
        _elapsed: Duration,
        _info: &StepInfo,
    ) {
    }
    fn gate_opened(&self, _run: &RunRecord, _step: &str, _approvers: &[String]) {}
    fn run_finished(&self, _run: &RunRecord) {}
}

/// What a finished step reports to observers.
#[derive(Debug, Clone, Default)]
pub struct StepInfo {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached: bool,
    pub error: Option<String>,
    pub out: Option<String>,
}

/// An observer that does nothing.
pub struct Quiet;
impl Observer for Quiet {}

pub struct Engine {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    settings: Settings,
    models: exec::Models,
    notifier: fleet_notify::Notifier,
    /// Corpora gathered for runs being driven, by (run id, corpus spec);
    /// dropped when `drive` returns.
    corpus_cache:
        std::sync::Mutex<std::collections::HashMap<(String, String), Arc<fleet_corpus::Corpus>>>,
    /// The installation's signing key, once loaded.
    signing_key: std::sync::Mutex<Option<keys::KeySlot>>,
    /// The keys the log lists, as last read.
    key_ring: std::sync::Mutex<Option<Arc<fleet_evidence::KeyRing>>>,
    /// The last checkpoint as this process knows it.
    checkpoint_mark: std::sync::Mutex<cadence::Mark>,
    /// Held while reading the store to decide on a checkpoint.
    checkpoint_looking: tokio::sync::Mutex<()>,
    /// Set by [`Engine::drain`]: finish the steps executing, start no more.
    draining: std::sync::atomic::AtomicBool,
    /// Steps this process is executing, by (run id, step index): two tasks
    /// of one process share its lease owner, so the lease alone cannot keep
    /// them from executing the same step.
    executing: std::sync::Mutex<std::collections::HashSet<(String, usize)>>,
    /// What this process did, for `/metrics`.
    metrics: Arc<metrics::Metrics>,
}

/// Removes a step from `Engine::executing` when its execution ends.
struct Executing<'a> {
    engine: &'a Engine,
    key: (String, usize),
}

impl Drop for Executing<'_> {
    fn drop(&mut self) {
        if let Ok(mut set) = self.engine.executing.lock() {
            set.remove(&self.key);
        }
    }
}

/// What went into a transition besides the event.
#[derive(Default, Clone)]
struct Extras {
    artifacts: Vec<NewArtifact>,
    /// Audit events of the engine's own beyond the usual (a checkpoint).
    events: Vec<NewEvent>,
    step_run: Option<StepRun>,
    decision: Option<NewDecision>,
    payload: serde_json::Map<String, serde_json::Value>,
    durable: bool,
    /// Notifications queued with the transition (a notify step's announcements).
    outbox: Vec<NewDelivery>,
    /// The step's lease, taken with StepStarted and released with its result.
    leases: Vec<LeaseChange>,
    /// The step (by index) whose start is committed with this result
    /// (see `drive.rs`): StepStarted is applied first.
    start: Option<usize>,
    /// Take the leases of the steps this transition makes Ready: the task
    /// committing it runs them next (see `drive.rs`).
    hand_off: bool,
    /// The corpus files a model step kept (`evidence.keep_corpus`).
    blobs: Vec<fleet_store::Blob>,
}

/// The result of one committed transition.
struct Applied {
    run: RunRecord,
    /// The artifacts' bytes as committed, to write the readable copies
    /// without reading them back.
    files: Vec<NewArtifact>,
    /// The steps whose leases the transition took.
    taken: Vec<String>,
}

const MAX_CAS_ATTEMPTS: u32 = 100;

impl Engine {
    pub fn new(store: Arc<dyn Store>, config: Arc<Config>, settings: Settings) -> Self {
        let metrics = Arc::new(metrics::Metrics::default());
        let counted = metrics.clone();
        let notifier = fleet_notify::Notifier::new(
            store.clone(),
            config.clone(),
            settings.approver_links.clone(),
            settings.delivery.clone(),
            settings.worker_id.clone(),
        )
        .with_pause_after(settings.pause_after.clone())
        .with_outcome_hook(Arc::new(move |channel: &str, status: &str| {
            counted.delivery(channel, status);
        }));
        Engine {
            metrics,
            models: exec::Models::new(&config, &settings),
            notifier,
            corpus_cache: Default::default(),
            draining: Default::default(),
            executing: Default::default(),
            signing_key: Default::default(),
            key_ring: Default::default(),
            checkpoint_mark: std::sync::Mutex::new(cadence::Mark::new(settings.clock.now())),
            checkpoint_looking: Default::default(),
            store,
            config,
            settings,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// What this process did (runs, steps, decisions, deliveries).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The config runs are started from.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// From now on, `drive` finishes the steps it is executing and starts
    /// no others (a worker shutting down gracefully).
    pub fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Step indexes of run `run_id` that this process is executing.
    fn executing_steps(&self, run_id: &str) -> Vec<usize> {
        self.executing
            .lock()
            .map(|set| {
                set.iter()
                    .filter(|(r, _)| r == run_id)
                    .map(|(_, i)| *i)
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Creates a run of `flow` with the genflow as configured now (approvers
    /// resolved into each gate) and starts it. Does not execute steps; call
    /// [`Engine::drive`].
    pub async fn start_run(
        &self,
        flow: &str,
        triggered_by: Option<String>,
    ) -> Result<RunRecord, EngineError> {
        self.start_run_with_id(flow, triggered_by, uuid::Uuid::now_v7().to_string())
            .await
    }

    /// [`Engine::start_run`] with the run id chosen by the caller, so a
    /// caller that recorded the id first (the scheduler) can create the run
    /// idempotently: a second call with the same id fails with
    /// `StoreError::AlreadyExists` instead of starting a second run.
    pub async fn start_run_with_id(
        &self,
        flow: &str,
        triggered_by: Option<String>,
        id: String,
    ) -> Result<RunRecord, EngineError> {
        self.start_run_with_params(flow, triggered_by, &BTreeMap::new(), id)
            .await
    }

    /// [`Engine::start_run_with_id`] with values for the genflow's params
    /// (the others get their defaults). The values are checked and bound
    /// into the stored definition before anything is stored, so a bad
    /// value creates no run.
    pub async fn start_run_with_params(
        &self,
        flow: &str,
        triggered_by: Option<String>,
        params: &BTreeMap<String, String>,
        id: String,
    ) -> Result<RunRecord, EngineError> {
        let genflow = self
            .config
            .genflow(flow)
            .ok_or_else(|| EngineError::UnknownGenflow {
                name: flow.to_owned(),
                known: self
                    .config
                    .genflows
                    .iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let resolved = self.config.resolved_genflow(genflow);
        let items = fan_out::list_items(&self.settings.root, &resolved, params).await?;
        let definition = resolved.bind_run(params, &items)?;
        let state = RunState::new(&definition, triggered_by.clone());
        // Created and started in one transaction.
        let (started, actions) = advance(&definition, &state, &Event::Start)?;
        let (first, _) = self.transition(
            (&id, &definition, 1),
            &Event::Start,
            started,
            actions,
            Extras::default(),
        );
        let (run, _) = self
            .store
            .create_run_with(
                NewRun {
                    id,
                    genflow: definition,
                    triggered_by,
                    state,
                },
                first,
            )
            .await?;
        self.after_commit(4).await;
        self.metrics.run_started(&run.genflow_name);
        tracing::info!(run = %run.id, genflow = %run.genflow_name, "run started");
        self.pause_if_injected(&Event::Start);
        Ok(run)
    }

    /// Loads a run by id or unique prefix.
    pub async fn run(&self, id: &str) -> Result<RunRecord, EngineError> {
        Ok(self.store.get_run(id).await?)
    }

    /// Records a decision at a gate (CLI or web) and, when final, continues the run.
    pub async fn decide(&self, req: DecisionRequest) -> Result<RunRecord, EngineError> {
        decision::decide(self, req).await
    }

    pub async fn cancel(&self, run_id: &str) -> Result<RunRecord, EngineError> {
        let run = self.store.get_run(run_id).await?;
        Ok(self
            .apply(&run.id, &Event::Cancel, Extras::default())
            .await?
            .run)
    }

    /// Retries a failed or cancelled run, optionally from a named step.
    pub async fn retry(&self, run_id: &str, from: Option<&str>) -> Result<RunRecord, EngineError> {
        let run = self.store.get_run(run_id).await?;
        let from_idx = match from {
            None => None,
            Some(name) => {
                Some(
                    run.definition
                        .step_index(name)
                        .ok_or_else(|| EngineError::Usage {
                            run: run.id.clone(),
                            message: format!(
                                "no step `{name}` in genflow `{}` (steps: {})",
                                run.genflow_name,
                                run.definition
                                    .steps
                                    .iter()
                                    .map(|s| s.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        })?,
                )
            }
        };
        Ok(self
            .apply(&run.id, &Event::Retry { from: from_idx }, Extras::default())
            .await?
            .run)
    }

    /// Sends the notifications that are due (approver emails, reminders,
    /// retries) for one run, or for every run with `None`. One attempt
    /// each; what fails transiently stays queued with its backoff for the
    /// next call (or a server's worker). Notify steps deliver their own
    /// announcements while they run.
    pub async fn deliver_pending(
        &self,
        run_id: Option<&str>,
    ) -> Result<fleet_notify::PassReport, EngineError> {
        let scope = DeliveryScope {
            run_id: match run_id {
                Some(id) => Some(self.store.get_run(id).await?.id),
                None => None,
            },
            step: None,
        };
        self.notifier
            .deliver_due(&scope)
            .await
            .map_err(|e| notify_error(run_id.unwrap_or("(all)"), e))
    }

    /// Queues the reminders due now for every waiting gate with
    /// `remind_every`; deliver them with [`Engine::deliver_pending`].
    /// Reminders never change a run.
    pub async fn queue_reminders(&self) -> Result<u64, EngineError> {
        let waiting = self
            .store
            .list_runs(&RunFilter {
                status: Some(fleet_core::run::RunStatus::Waiting),
                ..RunFilter::default()
            })
            .await?;
        let mut queued = 0;
        for run in &waiting {
            queued += self
                .notifier
                .queue_reminders(run)
                .await
                .map_err(|e| notify_error(&run.id, e))?;
        }
        Ok(queued)
    }

    /// Emails `approver` a fresh decision link for `gate` of the run and
    /// sends it now. The link goes to the approver's inbox and nowhere else,
    /// so whoever asks (an agent through MCP) never holds it. Refused unless
    /// the gate is waiting and `approver` may decide it.
    pub async fn send_decision_link(
        &self,
        run_id: &str,
        gate: &str,
        approver: &str,
    ) -> Result<u32, EngineError> {
        let run = self.store.get_run(run_id).await?;
        let usage = |message: String| EngineError::Usage {
            run: run.id.clone(),
            message,
        };
        let idx = run
            .definition
            .step_index(gate)
            .filter(|&i| run.definition.steps[i].kind == fleet_core::config::StepKind::Approval)
            .ok_or_else(|| usage(format!("`{gate}` is not an approval gate of this run")))?;
        let status = run.state.steps[idx].status;
        if status != fleet_core::run::StepStatus::Waiting {
            return Err(usage(format!(
                "gate `{gate}` is {status}, not waiting for a decision"
            )));
        }
        let step = &run.definition.steps[idx];
        let approver = step
            .approvers
            .iter()
            .find(|a| fleet_core::run::same_person(a, approver))
            .ok_or_else(|| {
                usage(format!(
                    "{approver} is not an approver of gate `{gate}` (approvers: {})",
                    step.approvers.join(", ")
                ))
            })?
            .trim()
            .to_owned();
        let n = self
            .notifier
            .queue_requested_link(&run, idx, &approver)
            .await
            .map_err(|e| notify_error(&run.id, e))?;
        self.deliver_pending(Some(&run.id)).await?;
        Ok(n)
    }

    pub(crate) fn notifier(&self) -> &fleet_notify::Notifier {
        &self.notifier
    }

    /// Drives every run that was left running (a crash, a killed process).
    pub async fn resume_unfinished(
        &self,
        observer: &dyn Observer,
    ) -> Result<Vec<RunRecord>, EngineError> {
        let mut out = Vec::new();
        for id in self.store.unfinished_runs().await? {
            out.push(self.drive(&id, observer).await?);
        }
        Ok(out)
    }

    /// Loads, advances and commits, retrying on version conflicts.
    async fn apply(
        &self,
        run_id: &str,
        event: &Event,
        extras: Extras,
    ) -> Result<Applied, EngineError> {
        self.apply_with(run_id, None, event, extras).await
    }

    /// `apply`, starting from a record we already hold (saves a read when it
    /// is current; the version check catches it when it is not).
    async fn apply_from(
        &self,
        run: &RunRecord,
        event: &Event,
        extras: Extras,
    ) -> Result<Applied, EngineError> {
        self.apply_with(&run.id, Some(run), event, extras).await
    }

    /// The compare-and-swap loop: advance from the run as known (or loaded),
    /// commit, and on a version conflict reload and advance again.
    async fn apply_with(
        &self,
        run_id: &str,
        known: Option<&RunRecord>,
        event: &Event,
        extras: Extras,
    ) -> Result<Applied, EngineError> {
        let mut known = known.cloned();
        for _ in 0..MAX_CAS_ATTEMPTS {
            let run = match known.take() {
                Some(run) => run,
                None => self.store.get_run(run_id).await?,
            };
            let (state, actions) = advance_started(&run, extras.start, event)?;
            let mut extras = extras.clone();
            if extras.hand_off {
                extras.leases.extend(self.hand_offs(&run, &state));
            }
            match self
                .commit_once(&run, event, state, actions, extras)
                .await?
            {
                Some(applied) => return Ok(applied),
                None => tokio::task::yield_now().await,
            }
        }
        Err(EngineError::Contended {
            run: run_id.to_owned(),
            attempts: MAX_CAS_ATTEMPTS,
        })
    }

    /// The leases to take of the steps that are Ready in `after` and were
    /// not runnable in `run`: no one else can hold a live lease on them.
    /// None when draining (the task will not run them).
    fn hand_offs(&self, run: &RunRecord, after: &RunState) -> Vec<LeaseChange> {
        if self.is_draining() {
            return Vec::new();
        }
        after
            .steps
            .iter()
            .zip(&run.state.steps)
            .zip(&run.definition.steps)
            .filter(|((a, b), _)| {
                a.status == StepStatus::Ready
                    && !matches!(b.status, StepStatus::Ready | StepStatus::Running)
            })
            .map(|(_, step)| LeaseChange::Take {
                step: step.name.clone(),
                owner: self.settings.worker_id.clone(),
                ttl: self.settings.lease_ttl,
            })
            .collect()
    }

    /// Commits one transition computed from `run`; `None` when the run moved
    /// on meanwhile (the caller reloads and decides again).
    async fn commit_once(
        &self,
        run: &RunRecord,
        event: &Event,
        state: RunState,
        actions: Vec<Action>,
        extras: Extras,
    ) -> Result<Option<Applied>, EngineError> {
        let channel = extras.decision.as_ref().map(|d| d.channel.clone());
        let (t, files) = self.transition(
            (&run.id, &run.definition, run.version),
            event,
            state,
            actions,
            extras,
        );
        // The store adds an event per status change, artifact, step run
        // and decision; roughly, for the checkpoint cadence.
        let appended = (t.events.len() + t.artifacts.len() + 2) as u64;
        let taken = t
            .leases
            .iter()
            .filter_map(|c| match c {
                LeaseChange::Take { step, .. } => Some(step.clone()),
                LeaseChange::Release { .. } => None,
            })
            .collect();
        match self.store.commit(t).await {
            Ok((committed, _refs)) => {
                self.count(run, &committed, event, channel.as_deref());
                self.pause_if_injected(event);
                self.after_commit(appended).await;
                Ok(Some(Applied {
                    run: committed,
                    files,
                    taken,
                }))
            }
            Err(StoreError::Conflict { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Counts (and logs) what a committed transition decided or ended.
    fn count(&self, before: &RunRecord, after: &RunRecord, event: &Event, channel: Option<&str>) {
        if let (
            Event::Decision {
                step,
                approver,
                verdict,
                ..
            },
            Some(channel),
        ) = (event, channel)
        {
            self.metrics.decision(verdict.as_str(), channel);
            let gate = after.definition.steps.get(*step).map(|s| s.name.as_str());
            tracing::info!(
                run = %after.id, gate, verdict = verdict.as_str(), channel, approver = %approver,
                "decision recorded"
            );
        }
        if !before.state.is_terminal() && after.state.is_terminal() {
            self.metrics
                .run_finished(&after.genflow_name, after.state.status.as_str());
        }
    }

    /// Fault injection for crash tests (`Settings::pause_after`): freezes
    /// the process right after a commit caused by `event`.
    fn pause_if_injected(&self, event: &Event) {
        self.pause_at(event.name());
    }

    /// Fault injection at a named point (an event name, or `published`:
    /// a publish step's destinations written, nothing recorded yet).
    pub(crate) fn pause_at(&self, point: &str) {
        if cfg!(feature = "fault-injection") && self.settings.pause_after.as_deref() == Some(point)
        {
            eprintln!("fault injection: paused after {point}");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }

    /// The transition `event` makes of run (id, definition, version): the
    /// new state with the audit events and notifications that go with it.
    /// Also returns the artifacts, to write the readable copies after.
    fn transition(
        &self,
        (run_id, definition, version): (&str, &fleet_core::config::Genflow, i64),
        event: &Event,
        state: RunState,
        actions: Vec<Action>,
        extras: Extras,
    ) -> (Transition, Vec<NewArtifact>) {
        let mut events = audit_events(definition, event, &state, &actions, &extras);
        let mut outbox = extras.outbox;
        for a in &actions {
            if let Action::OpenGate(gate) = a {
                let plan =
                    fleet_notify::gate_deliveries(&self.config, run_id, definition, &state, *gate);
                outbox.extend(plan.deliveries);
                if let Some(note) = plan.note {
                    events.push(NewEvent {
                        kind: "gate.not_emailed".into(),
                        payload: serde_json::json!({
                            "step": definition.steps[*gate].name, "reason": note,
                        }),
                    });
                }
            }
        }
        events.extend(extras.events);
        let files = extras.artifacts.clone();
        let t = Transition {
            run_id: run_id.to_owned(),
            expected_version: version,
            state,
            artifacts: extras.artifacts,
            step_run: extras.step_run,
            decision: extras.decision,
            events,
            outbox,
            durable: extras.durable,
            leases: extras.leases,
            blobs: extras.blobs,
        };
        (t, files)
    }
}

/// `event` applied to `run`, after the step's start when it goes with it.
fn advance_started(
    run: &RunRecord,
    start: Option<usize>,
    event: &Event,
) -> Result<(RunState, Vec<Action>), Refusal> {
    let Some(step) = start else {
        return advance(&run.definition, &run.state, event);
    };
    let started = Event::StepStarted { step };
    let (state, mut actions) = advance(&run.definition, &run.state, &started)?;
    let (state, more) = advance(&run.definition, &state, event)?;
    actions.extend(more);
    Ok((state, actions))
}

/// Delivery problems surface per delivery; what reaches here is the store failing.
fn notify_error(run: &str, e: fleet_notify::NotifyError) -> EngineError {
    match e {
        fleet_notify::NotifyError::Store(e) => EngineError::Store(e),
        other => EngineError::Usage {
            run: run.to_owned(),
            message: other.to_string(),
        },
    }
}

/// The audit events the engine adds to a transition. The store already
/// records what it writes (status changes, artifacts, step runs, decisions);
/// the engine adds what only it knows: which event caused the transition,
/// with its context (attempt, timing, flags, errors), and who a gate asks.
fn audit_events(
    definition: &fleet_core::config::Genflow,
    event: &Event,
    state: &RunState,
    actions: &[Action],
    extras: &Extras,
) -> Vec<NewEvent> {
    let step_name = |i: usize| definition.steps.get(i).map(|s| s.name.clone());
    let mut payload = extras.payload.clone();
    payload.insert("event".into(), event.name().into());
    let step = match event {
        Event::StepStarted { step }
        | Event::StepSucceeded { step, .. }
        | Event::StepFailed { step, .. } => step_name(*step),
        Event::Decision { step, .. } => step_name(*step),
        Event::Retry { from } => from.and_then(step_name),
        Event::Start | Event::Cancel => None,
    };
    if let Some(step) = step {
        payload.insert("step".into(), step.into());
    }
    let mut events = Vec::new();
    if let Some(step) = extras.start {
        // The attempt it started, as committed.
        let attempt = state.steps.get(step).map_or(0, |s| s.attempt);
        let started = Event::StepStarted { step };
        events.push(NewEvent {
            kind: format!("engine.{}", started.name()),
            payload: serde_json::json!({
                "event": started.name(), "step": step_name(step), "attempt": attempt,
            }),
        });
    }
    events.push(NewEvent {
        kind: format!("engine.{}", event.name()),
        payload: payload.into(),
    });
    for a in actions {
        if let Action::OpenGate(i) = a {
            let s = &definition.steps[*i];
            events.push(NewEvent {
                kind: "gate.opened".into(),
                payload: serde_json::json!({ "step": s.name, "approvers": s.approvers, "required": s.required }),
            });
        }
    }
    events
}
