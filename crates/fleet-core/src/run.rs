//! The run state machine: `advance(genflow, state, event) -> (state, actions)`.
//!
//! Pure on purpose: no I/O, no clock, no randomness. The engine persists the
//! returned state and executes the returned actions; every ordering and
//! guardrail rule (who may decide, what may run before a gate is approved,
//! retries, redrafts) lives here so it can be tested exhaustively.
//!
//! Invariants `advance` maintains (see `tests/run_props.rs`):
//! - a step leaves Pending only when every dependency is Succeeded or Approved;
//!   so a notify/publish step never runs downstream of a gate that is not Approved;
//! - a gate reaches Approved only through `required` distinct Go decisions from
//!   allowed approvers; a No-go rejects the run and skips everything left;
//! - nothing but a Decision moves a Waiting gate (there is no timeout path);
//! - a Succeeded or Rejected run never changes again.

use crate::config::{Genflow, StepKind};
use crate::dag;
use crate::flags::FlagCounts;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Some dependency is not Succeeded/Approved yet.
    #[default]
    Pending,
    /// May be executed (an `Action::Run` was emitted).
    Ready,
    /// An attempt is executing.
    Running,
    /// An approval gate is open and waits for decisions.
    Waiting,
    Succeeded,
    /// A gate received its required Go votes.
    Approved,
    /// A gate received a No-go.
    Rejected,
    /// Failed after its last allowed attempt.
    Failed,
    /// Not run because the run failed or was rejected first.
    Skipped,
    Cancelled,
}

impl StepStatus {
    pub const ALL: [StepStatus; 10] = [
        StepStatus::Pending,
        StepStatus::Ready,
        StepStatus::Running,
        StepStatus::Waiting,
        StepStatus::Succeeded,
        StepStatus::Approved,
        StepStatus::Rejected,
        StepStatus::Failed,
        StepStatus::Skipped,
        StepStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Ready => "ready",
            StepStatus::Running => "running",
            StepStatus::Waiting => "waiting",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Approved => "approved",
            StepStatus::Rejected => "rejected",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// No further event moves the step (short of a Retry or a redraft).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Approved
                | StepStatus::Rejected
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Cancelled
        )
    }

    /// Satisfies the steps that depend on it.
    pub fn satisfies_dependents(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Approved)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Some step is ready or running (or nothing has started yet).
    Running,
    /// Nothing can progress until someone decides at an open gate.
    Waiting,
    Succeeded,
    Rejected,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Succeeded,
        RunStatus::Rejected,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Rejected => "rejected",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The inverse of [`RunStatus::as_str`].
    pub fn from_name(name: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub fn is_terminal(self) -> bool {
        !matches!(self, RunStatus::Running | RunStatus::Waiting)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Go,
    NoGo,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Go => "go",
            Verdict::NoGo => "no_go",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StepState {
    pub status: StepStatus,
    /// Attempts started over the whole run (never reset, so step-run records
    /// stay uniquely numbered). For an approval: how many times the gate opened;
    /// each opening is a fresh round of votes.
    pub attempt: u32,
    /// Distinct approvers who said Go in the current round (N of `required`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub go_votes: Vec<String>,
    /// Review steps: how many redrafts this review has sent back.
    #[serde(default)]
    pub redrafts: u32,
    /// The last failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Failed attempts since the step was last reset (start, Retry, redraft);
    /// the `retries` budget counts these rather than `attempt`, so a redraft or
    /// a manual Retry does not eat the automatic retries.
    #[serde(default)]
    pub failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub status: RunStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_by: Option<String>,
    /// Index = the genflow's step index.
    pub steps: Vec<StepState>,
}

impl RunState {
    /// A run that has not started: every step Pending. Feed it `Event::Start`.
    pub fn new(genflow: &Genflow, triggered_by: Option<String>) -> Self {
        RunState {
            status: RunStatus::Running,
            triggered_by,
            steps: vec![StepState::default(); genflow.steps.len()],
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// Steps without dependencies become Ready (gates: Waiting).
    Start,
    /// The engine began an attempt of a Ready step.
    StepStarted {
        step: usize,
    },
    /// The attempt finished; `flags` = what a review raised, by severity
    /// (none for other kinds).
    StepSucceeded {
        step: usize,
        #[serde(default)]
        flags: FlagCounts,
    },
    StepFailed {
        step: usize,
        error: String,
    },
    Decision {
        step: usize,
        approver: String,
        verdict: Verdict,
        reason: Option<String>,
    },
    Cancel,
    /// Resume a failed or cancelled run; `from` also re-runs that step and
    /// everything downstream of it (re-opening gates there).
    Retry {
        from: Option<usize>,
    },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::StepStarted { .. } => "step_started",
            Event::StepSucceeded { .. } => "step_succeeded",
            Event::StepFailed { .. } => "step_failed",
            Event::Decision { .. } => "decision",
            Event::Cancel => "cancel",
            Event::Retry { .. } => "retry",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Execute a report/review/notify/publish step (then send StepStarted).
    Run(usize),
    /// A gate opened: notify its approvers.
    OpenGate(usize),
    /// The run reached a terminal status.
    Finish(RunStatus),
}

/// Why `advance` did not accept an event. The state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{approver}` is not an approver of this gate (approvers: {})", allowed.join(", "))]
    NotAnApprover {
        approver: String,
        allowed: Vec<String>,
    },
    #[error(
        "`{approver}` started this run and may not approve it (the gate would need `allow_self_approval: true`)"
    )]
    SelfApproval { approver: String },
    #[error("`{approver}` has already voted on this gate")]
    AlreadyVoted { approver: String },
    #[error("gate `{step}` is already decided ({status})")]
    AlreadyDecided { step: String, status: StepStatus },
    #[error("step `{step}` is not an approval gate")]
    NotAGate { step: String },
    #[error("gate `{step}` is not open for decisions (it is {status})")]
    GateNotOpen { step: String, status: StepStatus },
    #[error("a no-go decision needs a reason")]
    ReasonRequired,
    #[error("the run has finished ({status})")]
    RunFinished { status: RunStatus },
    #[error("step `{step}` is {from}, so `{event}` does not apply")]
    InvalidTransition {
        step: String,
        from: StepStatus,
        event: &'static str,
    },
    #[error("the genflow has no step #{step} (it has {steps})")]
    UnknownStep { step: usize, steps: usize },
    #[error("the run has already started")]
    AlreadyStarted,
    #[error("only a failed or cancelled run can be retried; this one is {status}")]
    NotRetryable { status: RunStatus },
    #[error("the run state has {found} steps but its genflow has {expected}")]
    StateMismatch { expected: usize, found: usize },
    #[error("the genflow cannot be run: {reason}")]
    InvalidDefinition { reason: String },
}

/// Apply one event. On success returns the new state and what the engine must
/// do next (in step order, `Finish` last); on refusal nothing changed.
pub fn advance(
    genflow: &Genflow,
    state: &RunState,
    event: &Event,
) -> Result<(RunState, Vec<Action>), Refusal> {
    let graph = Graph::new(genflow)?;
    if state.steps.len() != genflow.steps.len() {
        return Err(Refusal::StateMismatch {
            expected: genflow.steps.len(),
            found: state.steps.len(),
        });
    }
    let mut m = Machine {
        genflow,
        graph: &graph,
        next: state.clone(),
        actions: Vec::new(),
    };
    if let Event::Retry { from } = event {
        m.retry(*from)?;
    } else {
        if state.is_terminal() {
            return Err(Refusal::RunFinished {
                status: state.status,
            });
        }
        match event {
            Event::Start => m.start()?,
            Event::StepStarted { step } => m.started(*step)?,
            Event::StepSucceeded { step, flags } => m.succeeded(*step, flags)?,
            Event::StepFailed { step, error } => m.failed(*step, error)?,
            Event::Decision {
                step,
                approver,
                verdict,
                reason,
            } => m.decide(*step, approver, *verdict, reason.as_deref())?,
            Event::Cancel => m.cancel(),
            Event::Retry { .. } => {}
        }
    }
    m.settle();
    Ok((m.next, m.actions))
}

/// The genflow's dependency graph by index, checked to be runnable.
struct Graph {
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    redraft: Vec<Option<usize>>,
}

impl Graph {
    fn new(genflow: &Genflow) -> Result<Graph, Refusal> {
        let invalid = |reason: String| Refusal::InvalidDefinition { reason };
        let mut index = HashMap::with_capacity(genflow.steps.len());
        for (i, step) in genflow.steps.iter().enumerate() {
            if index.insert(step.name.as_str(), i).is_some() {
                return Err(invalid(format!("two steps are named `{}`", step.name)));
            }
        }
        let resolve = |step: &str, name: &str| {
            index
                .get(name)
                .copied()
                .ok_or_else(|| invalid(format!("step `{step}` refers to unknown step `{name}`")))
        };
        let mut deps = Vec::with_capacity(genflow.steps.len());
        let mut redraft = Vec::with_capacity(genflow.steps.len());
        for step in &genflow.steps {
            let mut ds = step
                .depends_on
                .iter()
                .map(|d| resolve(&step.name, d))
                .collect::<Result<Vec<_>, _>>()?;
            ds.sort_unstable();
            ds.dedup();
            deps.push(ds);
            redraft.push(match &step.on_flag {
                Some(of) => Some(resolve(&step.name, &of.redraft)?),
                None => None,
            });
        }
        if let Some(cycle) = dag::find_cycles(&deps).first() {
            let names: Vec<&str> = cycle
                .iter()
                .map(|&i| genflow.steps[i].name.as_str())
                .collect();
            return Err(invalid(format!("dependency cycle {}", names.join(" -> "))));
        }
        let mut dependents = vec![Vec::new(); deps.len()];
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                dependents[d].push(i);
            }
        }
        Ok(Graph {
            deps,
            dependents,
            redraft,
        })
    }

    /// `i` and every step that transitively depends on it.
    fn downstream(&self, i: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::from([i]);
        let mut todo = vec![i];
        while let Some(n) = todo.pop() {
            for &d in &self.dependents[n] {
                if seen.insert(d) {
                    todo.push(d);
                }
            }
        }
        seen
    }
}

struct Machine<'a> {
    genflow: &'a Genflow,
    graph: &'a Graph,
    next: RunState,
    actions: Vec<Action>,
}

impl Machine<'_> {
    fn name(&self, i: usize) -> String {
        self.genflow.steps[i].name.clone()
    }

    fn check_index(&self, step: usize) -> Result<usize, Refusal> {
        if step < self.next.steps.len() {
            Ok(step)
        } else {
            Err(Refusal::UnknownStep {
                step,
                steps: self.next.steps.len(),
            })
        }
    }

    /// The step must be in `from`, else the event does not apply to it.
    fn expect_status(
        &self,
        step: usize,
        from: StepStatus,
        event: &'static str,
    ) -> Result<usize, Refusal> {
        let i = self.check_index(step)?;
        let status = self.next.steps[i].status;
        if status == from {
            Ok(i)
        } else {
            Err(Refusal::InvalidTransition {
                step: self.name(i),
                from: status,
                event,
            })
        }
    }

    fn start(&mut self) -> Result<(), Refusal> {
        if self
            .next
            .steps
            .iter()
            .any(|s| s.status != StepStatus::Pending)
        {
            return Err(Refusal::AlreadyStarted);
        }
        // `settle` makes every step without dependencies Ready/Waiting.
        Ok(())
    }

    fn started(&mut self, step: usize) -> Result<(), Refusal> {
        let i = self.expect_status(step, StepStatus::Ready, "step_started")?;
        let s = &mut self.next.steps[i];
        s.status = StepStatus::Running;
        s.attempt = s.attempt.saturating_add(1);
        Ok(())
    }

    fn succeeded(&mut self, step: usize, flags: &FlagCounts) -> Result<(), Refusal> {
        let i = self.expect_status(step, StepStatus::Running, "step_succeeded")?;
        let s = &mut self.next.steps[i];
        s.status = StepStatus::Succeeded;
        s.error = None;
        let step_def = &self.genflow.steps[i];
        if let (Some(of), Some(redraft)) = (&step_def.on_flag, self.graph.redraft[i])
            && step_def.kind == StepKind::Review
            && flags.at_least(of.bar()) > 0
            && self.next.steps[i].redrafts < of.max
        {
            self.next.steps[i].redrafts += 1;
            // The report and everything built on it (this review included)
            // must be redone; `settle` makes the report Ready again.
            for j in self.graph.downstream(redraft) {
                reset(&mut self.next.steps[j]);
            }
        }
        Ok(())
    }

    fn failed(&mut self, step: usize, error: &str) -> Result<(), Refusal> {
        let i = self.expect_status(step, StepStatus::Running, "step_failed")?;
        let retries = self.genflow.steps[i].retries;
        let s = &mut self.next.steps[i];
        s.error = Some(error.to_string());
        s.failures = s.failures.saturating_add(1);
        if s.failures <= retries {
            s.status = StepStatus::Ready;
            self.actions.push(Action::Run(i));
        } else {
            s.status = StepStatus::Failed;
            self.finish(RunStatus::Failed, StepStatus::Skipped);
        }
        Ok(())
    }

    fn decide(
        &mut self,
        step: usize,
        approver: &str,
        verdict: Verdict,
        reason: Option<&str>,
    ) -> Result<(), Refusal> {
        let i = self.check_index(step)?;
        let def = &self.genflow.steps[i];
        if def.kind != StepKind::Approval {
            return Err(Refusal::NotAGate { step: self.name(i) });
        }
        let status = self.next.steps[i].status;
        match status {
            StepStatus::Waiting => {}
            StepStatus::Approved | StepStatus::Rejected => {
                return Err(Refusal::AlreadyDecided {
                    step: self.name(i),
                    status,
                });
            }
            _ => {
                return Err(Refusal::GateNotOpen {
                    step: self.name(i),
                    status,
                });
            }
        }
        let approver = approver.trim();
        let listed = def.approvers.iter().any(|a| same_person(a, approver));
        if approver.is_empty() || (!def.approvers.is_empty() && !listed) {
            return Err(Refusal::NotAnApprover {
                approver: approver.to_string(),
                allowed: def.approvers.clone(),
            });
        }
        if self.next.steps[i]
            .go_votes
            .iter()
            .any(|v| same_person(v, approver))
        {
            return Err(Refusal::AlreadyVoted {
                approver: approver.to_string(),
            });
        }
        match verdict {
            Verdict::Go => {
                let is_self = self
                    .next
                    .triggered_by
                    .as_deref()
                    .is_some_and(|t| same_person(t, approver));
                if is_self && !def.allow_self_approval {
                    return Err(Refusal::SelfApproval {
                        approver: approver.to_string(),
                    });
                }
                let required = def.required.max(1) as usize;
                let s = &mut self.next.steps[i];
                s.go_votes.push(approver.to_string());
                if s.go_votes.len() >= required {
                    s.status = StepStatus::Approved;
                }
            }
            Verdict::NoGo => {
                if reason.is_none_or(|r| r.trim().is_empty()) {
                    return Err(Refusal::ReasonRequired);
                }
                self.next.steps[i].status = StepStatus::Rejected;
                self.finish(RunStatus::Rejected, StepStatus::Skipped);
            }
        }
        Ok(())
    }

    fn cancel(&mut self) {
        self.finish(RunStatus::Cancelled, StepStatus::Cancelled);
    }

    fn retry(&mut self, from: Option<usize>) -> Result<(), Refusal> {
        match self.next.status {
            RunStatus::Failed | RunStatus::Cancelled => {}
            status @ (RunStatus::Succeeded | RunStatus::Rejected) => {
                return Err(Refusal::RunFinished { status });
            }
            status @ (RunStatus::Running | RunStatus::Waiting) => {
                return Err(Refusal::NotRetryable { status });
            }
        }
        // Everything that did not finish is always redone, otherwise the run
        // could never complete; `from` adds a step and its downstream, which
        // is the only way an Approved gate re-opens.
        let mut redo: BTreeSet<usize> = (0..self.next.steps.len())
            .filter(|&i| {
                matches!(
                    self.next.steps[i].status,
                    StepStatus::Failed | StepStatus::Cancelled | StepStatus::Skipped
                )
            })
            .collect();
        if let Some(from) = from {
            let f = self.check_index(from)?;
            redo.extend(self.graph.downstream(f));
        }
        for i in redo {
            reset(&mut self.next.steps[i]);
        }
        self.next.status = RunStatus::Running;
        Ok(())
    }

    /// End the run: every step still in flight gets `leftover`.
    fn finish(&mut self, status: RunStatus, leftover: StepStatus) {
        for s in &mut self.next.steps {
            if !s.status.is_terminal() {
                s.status = leftover;
            }
        }
        self.next.status = status;
        self.actions.push(Action::Finish(status));
    }

    /// Promote Pending steps whose dependencies are all satisfied and derive
    /// the run status. One pass suffices: a newly Ready/Waiting step satisfies
    /// nobody.
    fn settle(&mut self) {
        if self.next.is_terminal() {
            return;
        }
        for i in 0..self.next.steps.len() {
            if self.next.steps[i].status != StepStatus::Pending {
                continue;
            }
            let ready = self.graph.deps[i]
                .iter()
                .all(|&d| self.next.steps[d].status.satisfies_dependents());
            if !ready {
                continue;
            }
            let s = &mut self.next.steps[i];
            if self.genflow.steps[i].kind == StepKind::Approval {
                // Each opening is a new round: votes on older documents do not count.
                s.status = StepStatus::Waiting;
                s.attempt = s.attempt.saturating_add(1);
                s.go_votes.clear();
                self.actions.push(Action::OpenGate(i));
            } else {
                s.status = StepStatus::Ready;
                self.actions.push(Action::Run(i));
            }
        }
        let all_done = self
            .next
            .steps
            .iter()
            .all(|s| s.status.satisfies_dependents() || s.status == StepStatus::Skipped);
        if all_done {
            self.next.status = RunStatus::Succeeded;
            self.actions.push(Action::Finish(RunStatus::Succeeded));
            return;
        }
        let busy = self
            .next
            .steps
            .iter()
            .any(|s| matches!(s.status, StepStatus::Ready | StepStatus::Running));
        let gate_open = self
            .next
            .steps
            .iter()
            .any(|s| s.status == StepStatus::Waiting);
        self.next.status = if gate_open && !busy {
            RunStatus::Waiting
        } else {
            RunStatus::Running
        };
    }
}

/// Back to Pending for another go; history counters (attempt, redrafts) stay.
fn reset(s: &mut StepState) {
    s.status = StepStatus::Pending;
    s.go_votes.clear();
    s.error = None;
    s.failures = 0;
}

/// Approver identities are email addresses: whether two name the same
/// person (case and surrounding spaces ignored). The one rule for who an
/// approver is, for deciding and for being sent a decision link.
pub fn same_person(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE_GATE: &str = r#"
genflows:
  - name: release-gate
    steps:
      - {name: readiness, prompt: "Assemble the report.", corpus: ["docs/*.md"], kind: report, out: readiness.md}
      - {name: risk-review, prompt: "Review it.", depends_on: [readiness], kind: review, out: risks.md, on_flag: {redraft: readiness, max: 1}, retries: 1}
      - {name: go-no-go, depends_on: [readiness, risk-review], kind: approval, out: decision.md, approvers: [Owner@Example.com, second@example.com], required: 1}
      - {name: announce, depends_on: [go-no-go, readiness], kind: notify, out: sent.md, to: [team@example.com]}
"#;

    fn flow() -> Genflow {
        flow_with("", "")
    }

    /// The release gate with one edit of its text.
    fn flow_with(from: &str, to: &str) -> Genflow {
        let text = if from.is_empty() {
            RELEASE_GATE.to_owned()
        } else {
            assert!(RELEASE_GATE.contains(from), "{from}");
            RELEASE_GATE.replace(from, to)
        };
        let checked = crate::config::check_str(&text);
        let config = checked
            .config
            .unwrap_or_else(|| panic!("release gate config is valid: {:?}", checked.diagnostics));
        config.genflows[0].clone()
    }

    fn high(n: u32) -> FlagCounts {
        FlagCounts {
            high: n,
            ..FlagCounts::NONE
        }
    }

    fn apply(g: &Genflow, s: &RunState, e: Event) -> (RunState, Vec<Action>) {
        advance(g, s, &e).unwrap_or_else(|r| panic!("{e:?} refused: {r}"))
    }

    fn statuses(s: &RunState) -> Vec<StepStatus> {
        s.steps.iter().map(|s| s.status).collect()
    }

    fn go(step: usize, who: &str) -> Event {
        Event::Decision {
            step,
            approver: who.into(),
            verdict: Verdict::Go,
            reason: None,
        }
    }

    /// readiness and risk-review done, gate open.
    fn at_gate(g: &Genflow, by: Option<&str>) -> RunState {
        let s = RunState::new(g, by.map(String::from));
        let (s, a) = apply(g, &s, Event::Start);
        assert_eq!(a, vec![Action::Run(0)]);
        let (s, _) = apply(g, &s, Event::StepStarted { step: 0 });
        let (s, a) = apply(
            g,
            &s,
            Event::StepSucceeded {
                step: 0,
                flags: FlagCounts::NONE,
            },
        );
        assert_eq!(a, vec![Action::Run(1)]);
        let (s, _) = apply(g, &s, Event::StepStarted { step: 1 });
        let (s, a) = apply(
            g,
            &s,
            Event::StepSucceeded {
                step: 1,
                flags: FlagCounts::NONE,
            },
        );
        assert_eq!(a, vec![Action::OpenGate(2)]);
        assert_eq!(s.status, RunStatus::Waiting);
        s
    }

    #[test]
    fn happy_path_pauses_at_gate_then_announces() {
        let g = flow();
        let s = at_gate(&g, Some("dev@example.com"));
        assert_eq!(s.steps[3].status, StepStatus::Pending);
        let (s, a) = apply(&g, &s, go(2, "owner@example.com"));
        assert_eq!(a, vec![Action::Run(3)]);
        assert_eq!(s.steps[2].status, StepStatus::Approved);
        assert_eq!(s.status, RunStatus::Running);
        let (s, _) = apply(&g, &s, Event::StepStarted { step: 3 });
        let (s, a) = apply(
            &g,
            &s,
            Event::StepSucceeded {
                step: 3,
                flags: FlagCounts::NONE,
            },
        );
        assert_eq!(a, vec![Action::Finish(RunStatus::Succeeded)]);
        assert_eq!(s.status, RunStatus::Succeeded);
        assert_eq!(
            advance(&g, &s, &Event::Cancel),
            Err(Refusal::RunFinished {
                status: RunStatus::Succeeded
            })
        );
    }

    #[test]
    fn no_go_needs_reason_and_rejects_run() {
        let g = flow();
        let s = at_gate(&g, None);
        let no_go = |reason: Option<&str>| Event::Decision {
            step: 2,
            approver: "second@example.com".into(),
            verdict: Verdict::NoGo,
            reason: reason.map(String::from),
        };
        assert_eq!(advance(&g, &s, &no_go(None)), Err(Refusal::ReasonRequired));
        assert_eq!(
            advance(&g, &s, &no_go(Some("  "))),
            Err(Refusal::ReasonRequired)
        );
        let (s, a) = apply(&g, &s, no_go(Some("rollback plan missing")));
        assert_eq!(a, vec![Action::Finish(RunStatus::Rejected)]);
        assert_eq!(s.status, RunStatus::Rejected);
        assert_eq!(s.steps[2].status, StepStatus::Rejected);
        assert_eq!(s.steps[3].status, StepStatus::Skipped);
        assert_eq!(
            advance(&g, &s, &Event::Retry { from: None }),
            Err(Refusal::RunFinished {
                status: RunStatus::Rejected
            })
        );
    }

    #[test]
    fn decision_guards() {
        let g = flow();
        let s = at_gate(&g, Some("OWNER@example.com "));
        assert!(matches!(
            advance(&g, &s, &go(2, "mallory@example.com")),
            Err(Refusal::NotAnApprover { .. })
        ));
        assert!(matches!(
            advance(&g, &s, &go(2, "owner@example.com")),
            Err(Refusal::SelfApproval { .. })
        ));
        assert!(matches!(
            advance(&g, &s, &go(0, "owner@example.com")),
            Err(Refusal::NotAGate { .. })
        ));
        assert!(matches!(
            advance(&g, &s, &go(9, "owner@example.com")),
            Err(Refusal::UnknownStep { step: 9, steps: 4 })
        ));
        let (approved, _) = apply(&g, &s, go(2, "Second@Example.com"));
        assert!(matches!(
            advance(&g, &approved, &go(2, "owner@example.com")),
            Err(Refusal::AlreadyDecided {
                status: StepStatus::Approved,
                ..
            })
        ));
        // The gate cannot be decided before it opens.
        let fresh = RunState::new(&g, None);
        assert!(matches!(
            advance(&g, &fresh, &go(2, "owner@example.com")),
            Err(Refusal::GateNotOpen {
                status: StepStatus::Pending,
                ..
            })
        ));
    }

    #[test]
    fn required_votes_accumulate_once_per_person() {
        let mut g = flow();
        g.steps[2].required = 2;
        let s = at_gate(&g, None);
        let (s, a) = apply(&g, &s, go(2, "owner@example.com"));
        assert!(a.is_empty());
        assert_eq!(s.steps[2].status, StepStatus::Waiting);
        assert_eq!(s.status, RunStatus::Waiting);
        assert!(matches!(
            advance(&g, &s, &go(2, "OWNER@example.com")),
            Err(Refusal::AlreadyVoted { .. })
        ));
        let (s, a) = apply(&g, &s, go(2, "second@example.com"));
        assert_eq!(a, vec![Action::Run(3)]);
        assert_eq!(s.steps[2].status, StepStatus::Approved);
    }

    #[test]
    fn retries_then_fails_run_and_retry_resumes() {
        let g = flow();
        let s = RunState::new(&g, None);
        let (s, _) = apply(&g, &s, Event::Start);
        let (s, _) = apply(&g, &s, Event::StepStarted { step: 0 });
        let (s, _) = apply(
            &g,
            &s,
            Event::StepSucceeded {
                step: 0,
                flags: FlagCounts::NONE,
            },
        );
        let (s, _) = apply(&g, &s, Event::StepStarted { step: 1 });
        let fail = Event::StepFailed {
            step: 1,
            error: "model timed out".into(),
        };
        // risk-review has retries: 1.
        let (s, a) = apply(&g, &s, fail.clone());
        assert_eq!(a, vec![Action::Run(1)]);
        assert_eq!(s.steps[1].status, StepStatus::Ready);
        let (s, _) = apply(&g, &s, Event::StepStarted { step: 1 });
        assert_eq!(s.steps[1].attempt, 2);
        let (s, a) = apply(&g, &s, fail);
        assert_eq!(a, vec![Action::Finish(RunStatus::Failed)]);
        assert_eq!(
            statuses(&s),
            vec![
                StepStatus::Succeeded,
                StepStatus::Failed,
                StepStatus::Skipped,
                StepStatus::Skipped
            ]
        );
        assert!(matches!(
            advance(&g, &s, &Event::StepStarted { step: 1 }),
            Err(Refusal::RunFinished { .. })
        ));
        let (s, a) = apply(&g, &s, Event::Retry { from: None });
        assert_eq!(a, vec![Action::Run(1)]);
        assert_eq!(s.status, RunStatus::Running);
        assert_eq!(s.steps[0].status, StepStatus::Succeeded);
        assert_eq!(s.steps[1].failures, 0);
        assert_eq!(s.steps[1].attempt, 2);
    }

    #[test]
    fn high_flags_send_report_back_once() {
        let g = flow();
        let s = RunState::new(&g, None);
        let (s, _) = apply(&g, &s, Event::Start);
        let (s, _) = apply(&g, &s, Event::StepStarted { step: 0 });
        let (s, _) = apply(
            &g,
            &s,
            Event::StepSucceeded {
                step: 0,
                flags: FlagCounts::NONE,
            },
        );
        let (s, _) = apply(&g, &s, Event::StepStarted { step: 1 });
        let (s, a) = apply(
            &g,
            &s,
            Event::StepSucceeded {
                step: 1,
                flags: high(2),
            },
        );
        assert_eq!(a, vec![Action::Run(0)]);
        assert_eq!(s.steps[0].status, StepStatus::Ready);
        assert_eq!(s.steps[1].status, StepStatus::Pending);
        assert_eq!(s.steps[1].redrafts, 1);
        let (s, _) = apply(&g, &s, Event::StepStarted { step: 0 });
        let (s, _) = apply(
            &g,
            &s,
            Event::StepSucceeded {
                step: 0,
                flags: FlagCounts::NONE,
            },
        );
        let (s, _) = apply(&g, &s, Event::StepStarted { step: 1 });
        // max: 1 reached: flags now go to the approver instead.
        let (s, a) = apply(
            &g,
            &s,
            Event::StepSucceeded {
                step: 1,
                flags: high(2),
            },
        );
        assert_eq!(a, vec![Action::OpenGate(2)]);
        assert_eq!(s.steps[0].attempt, 2);
    }

    /// The review's first round succeeds with `flags`: where does the run go?
    fn after_first_review(g: &Genflow, flags: FlagCounts) -> (RunState, Vec<Action>) {
        let s = RunState::new(g, None);
        let (s, _) = apply(g, &s, Event::Start);
        let (s, _) = apply(g, &s, Event::StepStarted { step: 0 });
        let (s, _) = apply(
            g,
            &s,
            Event::StepSucceeded {
                step: 0,
                flags: FlagCounts::NONE,
            },
        );
        let (s, _) = apply(g, &s, Event::StepStarted { step: 1 });
        apply(g, &s, Event::StepSucceeded { step: 1, flags })
    }

    #[test]
    fn the_severity_bar_decides_which_flags_send_the_report_back() {
        let medium = FlagCounts {
            medium: 1,
            low: 3,
            ..FlagCounts::NONE
        };
        let low = FlagCounts {
            low: 1,
            ..FlagCounts::NONE
        };
        // Default bar (high): medium and low flags go to the approver.
        let g = flow();
        assert_eq!(after_first_review(&g, medium).1, vec![Action::OpenGate(2)]);
        // `severity: medium`: a medium flag sends it back, a low one does not.
        let g = flow_with("max: 1}", "max: 1, severity: medium}");
        let (s, a) = after_first_review(&g, medium);
        assert_eq!((a, s.steps[1].redrafts), (vec![Action::Run(0)], 1));
        assert_eq!(after_first_review(&g, low).1, vec![Action::OpenGate(2)]);
        // `severity: low`: any flag does.
        let g = flow_with("max: 1}", "max: 1, severity: low}");
        assert_eq!(after_first_review(&g, low).1, vec![Action::Run(0)]);
        assert_eq!(
            after_first_review(&g, FlagCounts::NONE).1,
            vec![Action::OpenGate(2)]
        );
    }

    #[test]
    fn cancel_then_retry_from_reopens_gate_with_fresh_round() {
        let g = flow();
        let s = at_gate(&g, None);
        let (s, _) = apply(&g, &s, go(2, "owner@example.com"));
        let (s, a) = apply(&g, &s, Event::Cancel);
        assert_eq!(a, vec![Action::Finish(RunStatus::Cancelled)]);
        assert_eq!(s.steps[3].status, StepStatus::Cancelled);
        assert_eq!(s.steps[2].status, StepStatus::Approved);
        // Retry without `from` keeps the decided gate.
        let (kept, a) = apply(&g, &s, Event::Retry { from: None });
        assert_eq!(a, vec![Action::Run(3)]);
        assert_eq!(kept.steps[2].status, StepStatus::Approved);
        // Retry from the report re-opens it after the report and review rerun.
        let (s, a) = apply(&g, &s, Event::Retry { from: Some(0) });
        assert_eq!(a, vec![Action::Run(0)]);
        assert_eq!(s.steps[2].status, StepStatus::Pending);
        assert!(s.steps[2].go_votes.is_empty());
        assert_eq!(s.steps[2].attempt, 1);
        assert!(matches!(
            advance(&g, &s, &Event::Retry { from: None }),
            Err(Refusal::NotRetryable {
                status: RunStatus::Running
            })
        ));
    }

    #[test]
    fn bad_inputs_are_refused_not_panics() {
        let g = flow();
        let short = RunState {
            status: RunStatus::Running,
            triggered_by: None,
            steps: vec![],
        };
        assert!(matches!(
            advance(&g, &short, &Event::Start),
            Err(Refusal::StateMismatch {
                expected: 4,
                found: 0
            })
        ));
        let mut cyclic = g.clone();
        cyclic.steps[0].depends_on = vec!["announce".into()];
        let s = RunState::new(&cyclic, None);
        assert!(matches!(
            advance(&cyclic, &s, &Event::Start),
            Err(Refusal::InvalidDefinition { .. })
        ));
        let s = RunState::new(&g, None);
        let (s, _) = apply(&g, &s, Event::Start);
        assert_eq!(advance(&g, &s, &Event::Start), Err(Refusal::AlreadyStarted));
        assert!(matches!(
            advance(
                &g,
                &s,
                &Event::StepSucceeded {
                    step: 0,
                    flags: FlagCounts::NONE
                }
            ),
            Err(Refusal::InvalidTransition {
                from: StepStatus::Ready,
                event: "step_succeeded",
                ..
            })
        ));
    }

    #[test]
    fn serde_names_are_stable() {
        let json =
            serde_json::to_string(&(StepStatus::Waiting, RunStatus::Cancelled, Verdict::NoGo))
                .unwrap_or_default();
        assert_eq!(json, r#"["waiting","cancelled","no_go"]"#);
        let e: Event =
            serde_json::from_str(r#"{"type":"retry","from":2}"#).unwrap_or(Event::Cancel);
        assert_eq!(e, Event::Retry { from: Some(2) });
    }
}
