//! Fleet's persistence: one [`Store`] trait, one implementation per database.
//!
//! Every state change of a run is one [`Transition`] committed atomically:
//! the new [`RunState`] (compare-and-swap on `version`), the artifacts it
//! produced, the step-run record, an optional decision, lease changes and
//! audit events. The store appends its own audit events for what it writes
//! (artifacts, the decision, the step run, every step/run status change) so
//! the hash-chained log is complete whatever the caller remembers to say.
//!
//! Backends: [`SqliteStore`] (embedded default): one writer thread that
//! commits queued requests together (group commit, each request in its own
//! savepoint so one failure stays its own), and reads served inline from a
//! small pool of read-only connections. A PostgreSQL backend plugs in behind
//! the same trait; nothing here assumes SQLite, and [`StoreError`] carries
//! database errors as text so no driver's types leak into the API.

pub mod audit;
mod blob;
mod copy;
mod postgres;
mod sqlite;
mod url;

pub use blob::{Blob, ContentTotals};
pub use copy::{CopyReport, copy_sqlite_to_postgres};
pub use postgres::{Migrate, PostgresStore, schema_version_known};
#[cfg(feature = "testing")]
pub mod testing;
pub use sqlite::SqliteStore;
pub use url::{DatabaseUrl, redact};

/// Opens the store `url` names: SQLite (migrated as needed, as always) or
/// PostgreSQL (checked, or migrated with `Migrate::Apply`).
pub async fn open(url: &DatabaseUrl, migrate: Migrate) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open(path).await?),
        DatabaseUrl::Postgres(text) => Arc::new(PostgresStore::connect(text, migrate).await?),
    })
}

use async_trait::async_trait;
use fleet_core::config::Genflow;
use fleet_core::run::{RunState, RunStatus, Verdict};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The latest revision of each artifact path.
pub fn latest_revisions(refs: &[ArtifactRef]) -> std::collections::BTreeMap<String, ArtifactRef> {
    let mut out: std::collections::BTreeMap<String, ArtifactRef> =
        std::collections::BTreeMap::new();
    for r in refs {
        if out
            .get(&r.path)
            .is_none_or(|prev| prev.revision < r.revision)
        {
            out.insert(r.path.clone(), r.clone());
        }
    }
    out
}

/// The latest revision of every document written by the steps upstream of
/// step `idx`, in dependency order: what an approver at a gate is shown, what
/// a decision is bound to, and what an announcement cites.
pub fn upstream_documents(run: &RunRecord, idx: usize, refs: &[ArtifactRef]) -> Vec<ArtifactRef> {
    let deps = run.definition.dependency_indices();
    let ups = fleet_core::dag::ancestors(&deps, idx);
    let order: Vec<&str> = fleet_core::dag::topo_order(&deps)
        .into_iter()
        .filter(|u| ups.contains(u))
        .map(|u| run.definition.steps[u].name.as_str())
        .collect();
    let mut out: Vec<ArtifactRef> = latest_revisions(refs)
        .into_values()
        .filter(|r| order.contains(&r.step.as_str()))
        .collect();
    out.sort_by_key(|r| {
        (
            order
                .iter()
                .position(|s| *s == r.step)
                .unwrap_or(usize::MAX),
            r.path.clone(),
        )
    });
    out
}

/// The record of decision `d` in transition `t`, on the gate round the
/// transition leaves the gate at; refused unless `d.step` is an approval
/// step. Both backends store exactly this.
pub(crate) fn decision_record(
    genflow: &Genflow,
    t: &Transition,
    d: &NewDecision,
    genflow_name: &str,
    definition_hash: &str,
    now: jiff::Timestamp,
) -> Result<DecisionRecord, StoreError> {
    let gate = genflow
        .step_index(&d.step)
        .filter(|&i| genflow.steps[i].kind == fleet_core::config::StepKind::Approval)
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "decision on `{}`, which is not an approval step of run {}",
                d.step, t.run_id
            ))
        })?;
    Ok(DecisionRecord {
        run_id: t.run_id.clone(),
        step: d.step.clone(),
        gate_round: t.state.steps[gate].attempt,
        approver: d.approver.clone(),
        verdict: d.verdict,
        reason: d.reason.clone(),
        channel: d.channel.clone(),
        decided_at: jiff::Timestamp::from_microsecond(d.decided_at.as_microsecond()).unwrap_or(now),
        genflow_name: genflow_name.to_owned(),
        definition_hash: definition_hash.to_owned(),
        shown: d.shown.clone(),
        is_final: d.is_final,
    })
}

/// Whether `leases` takes the lease of `step`: a step that a transition
/// makes runnable and leases at once is for the committing worker to run
/// next, and wakes no other worker.
pub(crate) fn takes_lease(leases: &[LeaseChange], step: &str) -> bool {
    leases
        .iter()
        .any(|c| matches!(c, LeaseChange::Take { step: s, .. } if s == step))
}

/// The steps of `state` a worker may run (or take over): Ready, or Running
/// (under a lease that may lapse), while the run has not ended. What the
/// store's queue of runnable steps holds, on every backend.
pub(crate) fn runnable<'g>(genflow: &'g Genflow, state: &RunState) -> Vec<&'g str> {
    if state.is_terminal() {
        return Vec::new();
    }
    state
        .steps
        .iter()
        .zip(&genflow.steps)
        .filter(|(s, _)| {
            matches!(
                s.status,
                fleet_core::run::StepStatus::Ready | fleet_core::run::StepStatus::Running
            )
        })
        .map(|(_, step)| step.name.as_str())
        .collect()
}

/// A state must have one entry per step of its genflow.
pub(crate) fn check_shape(genflow: &Genflow, state: &RunState) -> Result<(), StoreError> {
    if genflow.steps.len() == state.steps.len() {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "run state has {} steps but genflow `{}` has {}",
            state.steps.len(),
            genflow.name,
            genflow.steps.len()
        )))
    }
}

/// A new run id: a UUID v7 (time-ordered, so ids sort by creation).
pub fn new_run_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    pub id: String,
    pub genflow: Genflow,
    pub triggered_by: Option<String>,
    pub state: RunState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: String,
    pub genflow_name: String,
    /// The exact definition this run executes (stored when it was created);
    /// shared, as every read of a run would otherwise copy it.
    pub definition: Arc<Genflow>,
    /// `sha256:<hex>` of the definition's canonical JSON.
    pub definition_hash: String,
    pub state: RunState,
    /// Pass this as `Transition::expected_version` to commit the next change.
    pub version: i64,
    pub triggered_by: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewArtifact {
    pub step: String,
    /// The step's `out`, relative to the run directory.
    pub path: String,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub run_id: String,
    pub step: String,
    pub path: String,
    /// 1, 2, ... per (run, path).
    pub revision: u32,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
    pub size: u64,
    pub created_at: Timestamp,
}

/// One attempt of a step: what was asked, of which model, at what cost.
/// Committing the same (step, attempt) again replaces the record, so the
/// engine may record an attempt when it starts and again when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRun {
    pub step: String,
    pub attempt: u32,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub settings: serde_json::Value,
    pub manifest: Option<serde_json::Value>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
    pub cached: bool,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewDecision {
    pub step: String,
    pub approver: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
    /// `cli` or `web`.
    pub channel: String,
    /// The exact revisions the approver saw.
    pub shown: Vec<ArtifactRef>,
    /// This decision closed the gate (the last required Go, or a No-go).
    pub is_final: bool,
    /// When it was made. The caller supplies it so that documents written in
    /// the same transaction (decision.md) carry exactly the stored time; the
    /// store keeps microseconds.
    pub decided_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    pub run_id: String,
    pub step: String,
    /// Which opening of the gate this vote belongs to (the gate's
    /// `StepState::attempt` in the committed state); uniqueness is per round.
    pub gate_round: u32,
    pub approver: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub channel: String,
    pub decided_at: Timestamp,
    pub genflow_name: String,
    pub definition_hash: String,
    pub shown: Vec<ArtifactRef>,
    pub is_final: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// e.g. `step.feedback`, `delivery.sent`.
    pub kind: String,
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub seq: i64,
    pub run_id: Option<String>,
    pub at: Timestamp,
    pub kind: String,
    pub payload: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// One state change, committed atomically: the new state (compare-and-swap on
/// version), artifacts, the step run record, an optional decision, and audit
/// events. `durable` = this commit records a decision or a delivery, so it is
/// flushed to stable storage before `commit` returns (SQLite: synchronous=FULL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub run_id: String,
    pub expected_version: i64,
    pub state: RunState,
    pub artifacts: Vec<NewArtifact>,
    pub step_run: Option<StepRun>,
    pub decision: Option<NewDecision>,
    pub events: Vec<NewEvent>,
    pub durable: bool,
    /// Notifications this transition calls for (a gate opened, a notify
    /// step started), queued atomically with it. Each must belong to the
    /// transition's run.
    #[serde(default)]
    pub outbox: Vec<NewDelivery>,
    /// Lease changes committed with the transition (engine: release a step's lease with its
    /// result, and take the leases of the steps the result makes Ready, which it runs next).
    #[serde(default)]
    pub leases: Vec<LeaseChange>,
    /// Content kept with the transition but no document of the run (the
    /// corpus a step read): stored content-addressed, once per distinct
    /// bytes, referenced by sha256 from the step's corpus manifest.
    #[serde(default)]
    pub blobs: Vec<Blob>,
}

/// A change to a step's lease, committed as part of a [`Transition`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LeaseChange {
    /// The step's lease becomes `owner`'s for `ttl`, overwriting any stale lease: the
    /// transition starts or finishes the step under the lease its owner holds (the version
    /// CAS decides who commits), or makes the step runnable, so no live lease exists.
    Take {
        step: String,
        owner: String,
        ttl: std::time::Duration,
    },
    /// Deletes the lease if `owner` holds it.
    Release { step: String, owner: String },
}

impl Transition {
    /// A transition that only changes the state.
    pub fn new(run: &RunRecord, state: RunState) -> Transition {
        Transition {
            run_id: run.id.clone(),
            expected_version: run.version,
            state,
            artifacts: Vec::new(),
            step_run: None,
            decision: None,
            events: Vec::new(),
            durable: false,
            outbox: Vec::new(),
            leases: Vec::new(),
            blobs: Vec::new(),
        }
    }
}

/// What a delivery is for; part of its unique key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryPurpose {
    /// A gate opened: ask an approver to decide.
    Approval,
    /// The n-th reminder (1, 2, ...) while a gate waits.
    Reminder(u32),
    /// The n-th fresh link someone asked to be emailed to the approver
    /// (an agent through MCP: the link goes to the approver, never to them).
    Requested(u32),
    /// A notify step announcing the outcome.
    Announce,
}

impl DeliveryPurpose {
    /// The stored text: `approval`, `reminder-N`, `requested-N`, `announce`.
    pub fn as_key(&self) -> String {
        match self {
            DeliveryPurpose::Approval => "approval".into(),
            DeliveryPurpose::Reminder(n) => format!("reminder-{n}"),
            DeliveryPurpose::Requested(n) => format!("requested-{n}"),
            DeliveryPurpose::Announce => "announce".into(),
        }
    }

    pub fn from_key(text: &str) -> Option<DeliveryPurpose> {
        match text {
            "approval" => Some(DeliveryPurpose::Approval),
            "announce" => Some(DeliveryPurpose::Announce),
            other => {
                if let Some(n) = other.strip_prefix("reminder-") {
                    n.parse().ok().map(DeliveryPurpose::Reminder)
                } else {
                    other
                        .strip_prefix("requested-")
                        .and_then(|n| n.parse().ok())
                        .map(DeliveryPurpose::Requested)
                }
            }
        }
    }
}

/// A notification to send. Its key (run, step, round, purpose, channel,
/// recipient) is unique: queueing the same key again does nothing, except
/// that a delivery that gave up is queued afresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewDelivery {
    pub run_id: String,
    pub step: String,
    /// Approval and reminder: the gate's round (`StepState::attempt`);
    /// announce: the rounds of the gates upstream.
    pub round: u32,
    pub purpose: DeliveryPurpose,
    /// `email`, `webhook` or `slack`.
    pub channel: String,
    /// An email address or a URL.
    pub recipient: String,
    /// The recipient as logs and `sent.md` may show it (no URL secrets).
    pub label: String,
    /// Whatever the sender needs besides the key.
    pub payload: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt (`next_attempt_at`).
    Pending,
    /// Claimed by a sender; if its lease expires, the sender died and the
    /// delivery may be claimed again (and may then reach the recipient twice,
    /// with the same Message-ID).
    Sending,
    /// Accepted by the SMTP server / HTTP endpoint. Final.
    Sent,
    /// Gave up (permanent error or out of attempts). Queueing it again revives it.
    Failed,
    /// Not sent because it no longer applied (e.g. the gate was decided first).
    Skipped,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Skipped => "skipped",
        }
    }

    pub fn from_name(name: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Sending,
            DeliveryStatus::Sent,
            DeliveryStatus::Failed,
            DeliveryStatus::Skipped,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Nothing more will happen to it unless it is queued again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Sent | DeliveryStatus::Failed | DeliveryStatus::Skipped
        )
    }
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub run_id: String,
    pub step: String,
    pub round: u32,
    pub purpose: DeliveryPurpose,
    pub channel: String,
    pub recipient: String,
    pub label: String,
    pub payload: serde_json::Value,
    pub status: DeliveryStatus,
    /// Claims so far (a claim interrupted by a crash counts).
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    /// The SMTP reply or HTTP status that accepted it.
    pub response: Option<String>,
    /// What went out (e.g. the subject line).
    pub summary: Option<String>,
    pub created_at: Timestamp,
    /// When it was sent, given up or skipped.
    pub finished_at: Option<Timestamp>,
}

/// Which deliveries a sender claims.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryScope {
    pub run_id: Option<String>,
    pub step: Option<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryOutcome {
    /// Accepted downstream. Committed with a full sync.
    Sent {
        message_id: String,
        response: String,
        summary: String,
    },
    /// A transient failure: try again at `at`.
    Retry { error: String, at: Timestamp },
    /// A permanent failure, or out of attempts.
    GaveUp { error: String },
    /// No longer applies; not sent.
    Skipped { reason: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    pub genflow: Option<String>,
    pub status: Option<RunStatus>,
    pub limit: Option<u32>,
    /// Keyset pagination: only runs listed after this one (older in the
    /// listing's order, `created_at DESC, id DESC`). The next page's cursor is
    /// the last run of this page, so a page costs what it lists however many
    /// runs are stored.
    #[serde(default)]
    pub before: Option<RunCursor>,
}

/// A position in a run listing: the (created_at, id) of the last run seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCursor {
    pub created_at: Timestamp,
    pub id: String,
}

impl RunCursor {
    pub fn after(run: &RunRecord) -> RunCursor {
        RunCursor {
            created_at: run.created_at,
            id: run.id.clone(),
        }
    }
}

/// A step a worker claimed with [`Store::claim_steps`]: its lease is the
/// worker's until it lapses, and the worker now executes it (a Ready step is
/// started by the worker's StepStarted commit; a Running one was left by a
/// worker whose lease lapsed and is taken over).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepClaim {
    pub run_id: String,
    pub step: String,
}

/// Why a [`Subscription`] woke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notice {
    /// A transition of this run was committed, leaving it in this status
    /// (None: not told, e.g. by a writer of an older version), so a
    /// watcher that waits for a status need not read the run on each.
    Run(String, Option<fleet_core::run::RunStatus>),
    /// A step became claimable (it became Ready, or its lease was released).
    Work,
    /// Something was committed, by a process this backend cannot hear
    /// directly (SQLite: another process; seen by the change stamp).
    Any,
}

/// A feed of commits, by any process on the same database. Notices are a
/// hint to look again, never the state itself: they may be coalesced,
/// repeated or (after a lost connection) missed, so callers re-read what
/// they care about and also look again after a bounded timeout.
#[async_trait]
pub trait Subscription: Send {
    /// The next notice, or `None` when `timeout` passed without one.
    async fn next(&mut self, timeout: std::time::Duration) -> Result<Option<Notice>, StoreError>;
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub events_checked: u64,
    pub artifacts_checked: u64,
    /// The first broken event or artifact, named so a person can find it.
    pub first_problem: Option<String>,
}

impl AuditReport {
    pub fn is_ok(&self) -> bool {
        self.first_problem.is_none()
    }
}

/// A genflow's cron schedule as stored: when it is next due, and the run
/// created for the last due time it claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub genflow: String,
    pub cron: String,
    pub next_due: Timestamp,
    pub last_due: Option<Timestamp>,
    /// Chosen before the run is created, so a process that died in between
    /// can be finished by the next one (creating a run with a known id is
    /// idempotent: the second attempt gets `AlreadyExists`).
    pub last_run_id: Option<String>,
}

/// Aggregates for monitoring (`/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StoreStats {
    /// (status, number of runs), by status name.
    pub runs_by_status: Vec<(String, u64)>,
    /// Per genflow and step, over every recorded attempt.
    pub steps: Vec<StepStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub genflow: String,
    pub step: String,
    pub attempts: u64,
    /// Attempts with a finish time; `seconds` sums their durations.
    pub finished: u64,
    pub seconds: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub cached: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The run's version moved on since it was read: reload, re-advance, retry.
    #[error("run {run_id} was changed by someone else; reload it and try again")]
    Conflict { run_id: String },
    /// What was not found, e.g. "run `0190ab`".
    #[error("{0} not found")]
    NotFound(String),
    /// The prefix matches more than one run.
    #[error("`{0}` matches more than one run; give more characters of the id")]
    AmbiguousId(String),
    /// The approver already voted in this round of the gate, or the gate
    /// already has its final decision.
    #[error(
        "gate `{step}` of run {run_id} already has a decision from {approver} or a final decision"
    )]
    DuplicateDecision {
        run_id: String,
        step: String,
        approver: String,
    },
    #[error("run {0} already exists")]
    AlreadyExists(String),
    /// The caller passed something inconsistent with the run (unknown step,
    /// state of the wrong shape, too short an id prefix).
    #[error("{0}")]
    Invalid(String),
    /// The database failed: what was being done, then the driver's message.
    #[error("database error: {0}")]
    Database(String),
    /// The database could not be reached, or the connection was lost (a
    /// restart, a terminated backend, a network cut): what was being done,
    /// then the driver's message. Worth trying again later; a write that
    /// failed so may or may not have been committed, which the version
    /// check of the next commit sorts out.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database's schema is not one this build can use (made by a newer
    /// build, or by an old development build); nothing was changed.
    #[error("{0}")]
    Incompatible(String),
    /// Stored data does not decode; the database was edited or damaged.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the failure was the database being out of reach, not the
    /// request: a caller may try again later and expect another outcome.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Stores the run with its canonical definition and hash; event `run.created`.
    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError>;
    /// `create_run`, and `first` (a transition from version 1, e.g. the run
    /// starting) committed in the same transaction: one write instead of two,
    /// and no run is ever seen created but not started.
    async fn create_run_with(
        &self,
        run: NewRun,
        first: Transition,
    ) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError>;
    /// A full id or a unique prefix of at least 4 characters.
    async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError>;
    /// Newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError>;
    /// The id and version of each run `list_runs(filter)` lists, in the same
    /// order, without reading the runs: every commit bumps its run's version,
    /// so this tells a cache whether anything listed changed.
    async fn run_versions(&self, filter: &RunFilter) -> Result<Vec<(String, i64)>, StoreError>;
    /// The version of run `id` (the full id, not a prefix), or NotFound:
    /// whether the run changed since a version of it was read.
    async fn run_version(&self, id: &str) -> Result<i64, StoreError>;
    /// A number that changes whenever anything was committed, by any
    /// connection or process, cheaper to read than any listing: two equal
    /// stamps mean nothing was committed between the first read and the
    /// second. Read one before reading what a cache keeps, and the cache
    /// entry is current while the stamp is equal. `None`: this backend
    /// cannot tell cheaply (callers check what they cache some other way).
    async fn change_stamp(&self) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }
    /// Ids of runs whose status is `running` (not waiting, not terminal), oldest first.
    async fn unfinished_runs(&self) -> Result<Vec<String>, StoreError>;
    /// Claims up to `limit` claimable steps (of run `run_id` only, if
    /// given), oldest first, leasing each to `owner` for `ttl`. A step is
    /// claimable while it is Ready or Running in its run's committed state
    /// and no live lease of another owner covers it (a Ready step nobody
    /// started yet, or a Running one whose worker's lease lapsed). Work is
    /// proportional to what is claimed, not to what is stored: the store
    /// keeps a queue of runnable steps up to date with every commit.
    /// Concurrent claimers never get the same step while its lease is live.
    async fn claim_steps(
        &self,
        owner: &str,
        ttl: std::time::Duration,
        limit: u32,
        run_id: Option<&str>,
    ) -> Result<Vec<StepClaim>, StoreError>;
    /// Subscribes to commits by any process (see [`Subscription`]).
    async fn subscribe(&self) -> Result<Box<dyn Subscription>, StoreError>;
    /// Subscribes to what a worker needs: `Notice::Work` (and `Any`). A
    /// backend may also deliver `Run` notices; one that can leave them out
    /// spares every worker a wake-up per commit.
    async fn subscribe_work(&self) -> Result<Box<dyn Subscription>, StoreError> {
        self.subscribe().await
    }
    /// Commits `t` atomically, or returns `Conflict` having written nothing.
    /// Returns the new record and refs of the artifacts written.
    async fn commit(&self, t: Transition) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError>;
    /// Every revision, ordered by step order then revision.
    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRef>, StoreError>;
    async fn artifact_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// How many distinct contents (artifacts and kept corpus files) are
    /// stored, and their bytes: what deduplication saves shows here.
    async fn content_totals(&self) -> Result<ContentTotals, StoreError>;
    /// Ordered by start time.
    async fn step_runs(&self, run_id: &str) -> Result<Vec<StepRun>, StoreError>;
    /// In the order they were recorded.
    async fn decisions(&self, run_id: &str) -> Result<Vec<DecisionRecord>, StoreError>;
    /// One run's events, or the whole log, by `seq`.
    async fn events(&self, run_id: Option<&str>) -> Result<Vec<AuditEvent>, StoreError>;
    /// The newest event's `(seq, hash)`, `None` for an empty log: what a
    /// checkpoint or an attestation binds to.
    async fn chain_head(&self) -> Result<Option<(i64, String)>, StoreError>;
    /// Appends `events`, which belong to no run, to the chain in one
    /// durable transaction, serialized with every commit's append exactly
    /// as a commit's own events are. Evidence written between transitions
    /// uses it: a signing key recorded or retired, a checkpoint on the
    /// cadence. Returns the new head `(seq, hash)` (`None`: nothing given
    /// and the log is empty).
    async fn append_events(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Option<(i64, String)>, StoreError>;
    /// The events of one `kind` in `seq` order; only the newest `newest`
    /// of them when given (`audit.key` to list the signing keys,
    /// `audit.checkpoint` with `Some(1)` for the latest checkpoint).
    async fn events_of_kind(
        &self,
        kind: &str,
        newest: Option<u32>,
    ) -> Result<Vec<AuditEvent>, StoreError>;
    /// Recomputes the whole hash chain and every artifact's SHA-256.
    async fn verify_audit(&self) -> Result<AuditReport, StoreError>;
    /// True if the lease was free, expired or already ours (it is now ours for `ttl`).
    async fn claim_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// True if we still hold it (now extended by `ttl`).
    async fn renew_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StoreError>;
    async fn release_lease(&self, run_id: &str, step: &str, owner: &str) -> Result<(), StoreError>;
    /// Every stored schedule, by genflow name.
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError>;
    /// Stores `cron` for `genflow`, first due at `next_due`, unless that same
    /// expression is already stored (then the stored due time is kept). A
    /// changed expression restarts the schedule at `next_due`.
    async fn ensure_schedule(
        &self,
        genflow: &str,
        cron: &str,
        next_due: Timestamp,
    ) -> Result<ScheduleRecord, StoreError>;
    /// Compare-and-swap: when the stored due time is still `due`, moves it to
    /// `next_due` and records `run_id` as the run for `due`. False when
    /// another process claimed it first (it starts that run, not us).
    async fn claim_schedule(
        &self,
        genflow: &str,
        due: Timestamp,
        next_due: Timestamp,
        run_id: &str,
    ) -> Result<bool, StoreError>;
    /// Run counts by status and per-step totals, read from aggregates kept
    /// up to date by every commit (never recounted from all runs).
    async fn stats(&self) -> Result<StoreStats, StoreError>;
    /// Queues deliveries outside a run transition (reminders), with
    /// `delivery.queued` events; same idempotence as `Transition::outbox`.
    /// Returns how many were queued (new or revived).
    async fn enqueue_deliveries(&self, deliveries: Vec<NewDelivery>) -> Result<u64, StoreError>;
    /// Claims up to `limit` deliveries in `scope` that are due (pending and
    /// `next_attempt_at` passed, or sending with an expired lease): each
    /// becomes `sending`, leased to `owner` for `lease`, its attempt counted.
    async fn claim_deliveries(
        &self,
        scope: &DeliveryScope,
        owner: &str,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Records how an attempt ended, with a `delivery.sent`/`.failed`/
    /// `.skipped` event. `Sent` is recorded unless the row is already sent
    /// (even if our lease lapsed: the message did go out) and is flushed to
    /// stable storage; the others only apply while `owner` holds the claim.
    /// False when nothing changed.
    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError>;
    /// A run's deliveries in the order they were queued.
    async fn deliveries(&self, run_id: &str) -> Result<Vec<Delivery>, StoreError>;
}
