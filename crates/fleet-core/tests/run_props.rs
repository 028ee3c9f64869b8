//! Property tests of the run state machine over random DAGs and random event
//! sequences: every event `advance` accepts is applied, and after each one the
//! guardrail invariants are checked against the previous state.

use fleet_core::config::{Genflow, StepKind};
use fleet_core::dag;
use fleet_core::flags::FlagCounts;
use fleet_core::run::{Action, Event, RunState, RunStatus, StepStatus, Verdict, advance};
use proptest::prelude::*;
use serde_json::json;
use std::collections::BTreeSet;

const APPROVERS: [&str; 3] = ["ann@x.io", "bob@x.io", "cat@x.io"];
/// Who tries to vote: the approvers, one in other case, and an outsider.
const VOICES: [&str; 5] = ["ann@x.io", "bob@x.io", "cat@x.io", "ANN@X.IO", "eve@x.io"];

#[derive(Debug, Clone)]
struct StepSpec {
    kind: StepKind,
    deps_mask: u8,
    required: u32,
    approvers_mask: u8,
    allow_self: bool,
    retries: u32,
    redraft_pick: Option<(u8, u32)>,
}

fn step_spec() -> impl Strategy<Value = StepSpec> {
    (
        prop::sample::select(StepKind::ALL.to_vec()),
        any::<u8>(),
        1u32..=3,
        any::<u8>(),
        any::<bool>(),
        0u32..=2,
        prop::option::of((any::<u8>(), 1u32..=2)),
    )
        .prop_map(
            |(kind, deps_mask, required, approvers_mask, allow_self, retries, redraft_pick)| {
                StepSpec {
                    kind,
                    deps_mask,
                    required,
                    approvers_mask,
                    allow_self,
                    retries,
                    redraft_pick,
                }
            },
        )
}

/// A random acyclic genflow: deps only point to earlier steps.
fn build_genflow(specs: &[StepSpec]) -> Genflow {
    let names: Vec<String> = (0..specs.len()).map(|i| format!("s{i}")).collect();
    let mut steps = Vec::new();
    let mut all_deps: Vec<Vec<usize>> = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let deps: Vec<usize> = (0..i.min(8))
            .map(|k| i - 1 - k)
            .filter(|&d| spec.deps_mask & (1 << (i - 1 - d)) != 0)
            .collect();
        all_deps.push(deps.clone());
        let mut step = json!({
            "name": names[i],
            "kind": spec.kind.as_str(),
            "depends_on": deps.iter().map(|&d| names[d].clone()).collect::<Vec<_>>(),
            "retries": spec.retries,
        });
        if spec.kind == StepKind::Approval {
            let approvers: Vec<&str> = APPROVERS
                .iter()
                .enumerate()
                .filter(|(k, _)| spec.approvers_mask & (1 << k) != 0)
                .map(|(_, a)| *a)
                .collect();
            step["approvers"] = json!(approvers);
            step["required"] = json!(spec.required);
            step["allow_self_approval"] = json!(spec.allow_self);
        }
        if spec.kind == StepKind::Review
            && let Some((pick, max)) = spec.redraft_pick
        {
            let ancestors: Vec<usize> = dag::ancestors(&all_deps, i)
                .into_iter()
                .filter(|&a| specs[a].kind == StepKind::Report)
                .collect();
            if !ancestors.is_empty() {
                let r = ancestors[pick as usize % ancestors.len()];
                step["on_flag"] = json!({"redraft": names[r], "max": max});
                // Unset (high), or each bar in turn.
                if let Some(bar) =
                    [None, Some("high"), Some("medium"), Some("low")][pick as usize / 8 % 4]
                {
                    step["on_flag"]["severity"] = json!(bar);
                }
            }
        }
        if spec.kind == StepKind::Publish {
            step["destinations"] = json!([{"path": format!("published/{}.md", names[i])}]);
            let documents: Vec<usize> = dag::ancestors(&all_deps, i)
                .into_iter()
                .filter(|&a| specs[a].kind != StepKind::Approval)
                .collect();
            if !documents.is_empty() {
                let pick = spec.redraft_pick.map_or(0, |(p, _)| p as usize);
                step["from"] = json!(names[documents[pick % documents.len()]]);
            }
        }
        steps.push(step);
    }
    let genflow = json!({"name": "prop", "steps": steps});
    match serde_json::from_value(genflow) {
        Ok(g) => g,
        Err(e) => panic!("generated genflow does not deserialize: {e}"),
    }
}

fn deps_of(g: &Genflow) -> Vec<Vec<usize>> {
    g.steps
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|d| g.step_index(d))
                .collect()
        })
        .collect()
}

/// One scripted event: interpreted against the current state so most
/// events are plausible (a Ready step is started, an open gate decided...).
#[derive(Debug, Clone, Copy)]
struct Script {
    kind: u8,
    pick: u8,
    extra: u8,
}

fn script() -> impl Strategy<Value = Vec<Script>> {
    prop::collection::vec(
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(kind, pick, extra)| Script {
            kind,
            pick,
            extra,
        }),
        0..80,
    )
}

fn pick_among(state: &RunState, statuses: &[StepStatus], pick: u8) -> usize {
    let candidates: Vec<usize> = (0..state.steps.len())
        .filter(|&i| statuses.contains(&state.steps[i].status))
        .collect();
    if candidates.is_empty() {
        pick as usize % state.steps.len().max(1)
    } else {
        candidates[pick as usize % candidates.len()]
    }
}

fn event_for(state: &RunState, s: Script) -> Event {
    let n = state.steps.len().max(1);
    match s.kind % 20 {
        0 => Event::Start,
        1..=4 => Event::StepStarted {
            step: pick_among(state, &[StepStatus::Ready], s.pick),
        },
        5..=8 => Event::StepSucceeded {
            step: pick_among(state, &[StepStatus::Running], s.pick),
            flags: counts(s.extra),
        },
        9..=10 => Event::StepFailed {
            step: pick_among(state, &[StepStatus::Running], s.pick),
            error: "boom".into(),
        },
        11..=15 => Event::Decision {
            step: pick_among(state, &[StepStatus::Waiting], s.pick),
            approver: VOICES[s.extra as usize % VOICES.len()].into(),
            verdict: Verdict::Go,
            reason: None,
        },
        16 => Event::Decision {
            step: pick_among(state, &[StepStatus::Waiting], s.pick),
            approver: VOICES[s.extra as usize % VOICES.len()].into(),
            verdict: Verdict::NoGo,
            reason: (!s.extra.is_multiple_of(4)).then(|| "not ready".to_string()),
        },
        17 => {
            if s.extra.is_multiple_of(4) {
                Event::Cancel
            } else {
                Event::Start
            }
        }
        _ => Event::Retry {
            from: s.extra.is_multiple_of(2).then_some(s.pick as usize % n),
        },
    }
}

/// Flags of every severity mix, none a third of the time.
fn counts(extra: u8) -> FlagCounts {
    FlagCounts {
        high: u32::from(extra % 3 == 1),
        medium: u32::from(extra % 5 == 2),
        low: u32::from(extra % 7 >= 3),
    }
}

fn same_person(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Every invariant that must hold across one accepted transition.
fn check_transition(
    g: &Genflow,
    prev: &RunState,
    event: &Event,
    next: &RunState,
    actions: &[Action],
) -> Result<(), TestCaseError> {
    let deps = deps_of(g);
    prop_assert!(
        !matches!(prev.status, RunStatus::Succeeded | RunStatus::Rejected),
        "a {} run accepted {:?}",
        prev.status,
        event
    );
    if prev.is_terminal() {
        prop_assert!(
            matches!(event, Event::Retry { .. }),
            "terminal run accepted {event:?}"
        );
    }
    prop_assert_eq!(next.steps.len(), g.steps.len());
    prop_assert_eq!(&next.triggered_by, &prev.triggered_by);

    for (i, s) in next.steps.iter().enumerate() {
        let kind = g.steps[i].kind;
        // A step leaves Pending only when all its dependencies are satisfied.
        let started = !matches!(
            s.status,
            StepStatus::Pending | StepStatus::Skipped | StepStatus::Cancelled
        );
        if started {
            for &d in &deps[i] {
                prop_assert!(
                    next.steps[d].status.satisfies_dependents(),
                    "step {i} is {} but its dependency {d} is {}",
                    s.status,
                    next.steps[d].status
                );
            }
        }
        // Outbound steps never move before every upstream gate is Approved.
        if kind.is_outbound() && started {
            for a in dag::ancestors(&deps, i) {
                if g.steps[a].kind == StepKind::Approval {
                    prop_assert_eq!(next.steps[a].status, StepStatus::Approved);
                }
            }
        }
        // Only gates wait or get decided; gates never run.
        if kind == StepKind::Approval {
            prop_assert!(!matches!(
                s.status,
                StepStatus::Ready
                    | StepStatus::Running
                    | StepStatus::Succeeded
                    | StepStatus::Failed
            ));
        } else {
            prop_assert!(!matches!(
                s.status,
                StepStatus::Waiting | StepStatus::Approved | StepStatus::Rejected
            ));
        }
        // Approved only with `required` distinct allowed Go votes, and only
        // through a Decision on that very gate.
        if s.status == StepStatus::Approved {
            let def = &g.steps[i];
            let distinct: BTreeSet<String> = s.go_votes.iter().map(|v| v.to_lowercase()).collect();
            prop_assert_eq!(
                distinct.len(),
                s.go_votes.len(),
                "duplicate voter on step {}",
                i
            );
            prop_assert!(distinct.len() >= def.required.max(1) as usize);
            for v in &s.go_votes {
                prop_assert!(
                    def.approvers.is_empty() || def.approvers.iter().any(|a| same_person(a, v)),
                    "{v} is not an approver of step {i}"
                );
                if !def.allow_self_approval
                    && let Some(t) = &prev.triggered_by
                {
                    prop_assert!(!same_person(t, v), "self-approval by {v}");
                }
            }
            if prev.steps[i].status != StepStatus::Approved {
                prop_assert!(
                    matches!(event, Event::Decision { step, verdict: Verdict::Go, .. } if *step == i),
                    "gate {i} became Approved through {event:?}"
                );
            }
        }
        if s.status == StepStatus::Rejected && prev.steps[i].status != StepStatus::Rejected {
            prop_assert!(
                matches!(event, Event::Decision { step, verdict: Verdict::NoGo, .. } if *step == i),
                "gate {i} became Rejected through {event:?}"
            );
        }
    }

    // A review sends its report back exactly when it raised a flag at or
    // above its `on_flag.severity` and has redrafts left; never past `max`.
    for (i, s) in next.steps.iter().enumerate() {
        let Some(of) = &g.steps[i].on_flag else {
            continue;
        };
        prop_assert!(s.redrafts <= of.max, "step {i} redrafted past max");
        let expected = match event {
            Event::StepSucceeded { step, flags } if *step == i => {
                u32::from(flags.at_least(of.bar()) > 0 && prev.steps[i].redrafts < of.max)
            }
            _ => 0,
        };
        prop_assert_eq!(
            s.redrafts,
            prev.steps[i].redrafts + expected,
            "step {} after {:?}",
            i,
            event
        );
        if expected == 1 {
            let r = g.step_index(&of.redraft).unwrap_or(usize::MAX);
            prop_assert_eq!(next.steps.get(r).map(|s| s.status), Some(StepStatus::Ready));
        }
    }

    // A No-go ends the run Rejected and skips everything downstream.
    if let Event::Decision {
        step,
        verdict: Verdict::NoGo,
        ..
    } = event
    {
        prop_assert_eq!(next.status, RunStatus::Rejected);
        prop_assert_eq!(next.steps[*step].status, StepStatus::Rejected);
        for (j, s) in next.steps.iter().enumerate() {
            if dag::ancestors(&deps, j).contains(step) {
                prop_assert_eq!(s.status, StepStatus::Skipped);
            }
            prop_assert!(s.status.is_terminal());
        }
        prop_assert!(actions.contains(&Action::Finish(RunStatus::Rejected)));
    }

    // Finish is announced exactly when the run becomes terminal.
    let finishes: Vec<RunStatus> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Finish(s) => Some(*s),
            _ => None,
        })
        .collect();
    // (A Retry of a run with nothing left to redo finishes it again at once.)
    let became_terminal =
        next.is_terminal() && (!prev.is_terminal() || matches!(event, Event::Retry { .. }));
    if became_terminal {
        prop_assert_eq!(finishes, vec![next.status]);
    } else {
        prop_assert!(finishes.is_empty(), "Finish without a terminal transition");
    }
    for a in actions {
        match *a {
            Action::Run(i) => {
                prop_assert!(g.steps[i].kind != StepKind::Approval);
                prop_assert_eq!(next.steps[i].status, StepStatus::Ready);
                // Notify and publish are only ever ordered behind a Go on
                // every gate upstream of them.
                if g.steps[i].kind.is_outbound() {
                    for a in dag::ancestors(&deps, i) {
                        if g.steps[a].kind == StepKind::Approval {
                            prop_assert_eq!(next.steps[a].status, StepStatus::Approved);
                        }
                    }
                }
            }
            Action::OpenGate(i) => {
                prop_assert_eq!(g.steps[i].kind, StepKind::Approval);
                prop_assert_eq!(next.steps[i].status, StepStatus::Waiting);
            }
            Action::Finish(_) => {}
        }
    }

    // Derived run status.
    if !next.is_terminal() {
        let busy = next
            .steps
            .iter()
            .any(|s| matches!(s.status, StepStatus::Ready | StepStatus::Running));
        let open = next.steps.iter().any(|s| s.status == StepStatus::Waiting);
        let expected = if open && !busy {
            RunStatus::Waiting
        } else {
            RunStatus::Running
        };
        prop_assert_eq!(next.status, expected);
        // A live run always has something to do or someone to wait for, unless
        // it has not started yet.
        let unstarted = next.steps.iter().all(|s| s.status == StepStatus::Pending);
        prop_assert!(busy || open || unstarted, "stuck run: {next:?}");
    }
    if next.status == RunStatus::Succeeded {
        prop_assert!(
            next.steps
                .iter()
                .all(|s| matches!(s.status, StepStatus::Succeeded | StepStatus::Approved))
        );
    }
    Ok(())
}

fn genflow_and_trigger() -> impl Strategy<Value = (Genflow, Option<String>)> {
    (
        prop::collection::vec(step_spec(), 0..=7),
        prop::option::of(prop::sample::select(APPROVERS.to_vec())),
    )
        .prop_map(|(specs, by)| (build_genflow(&specs), by.map(String::from)))
}

/// Drive `script` from a fresh run, checking every accepted transition.
fn drive(g: &Genflow, by: Option<String>, steps: &[Script]) -> Result<RunState, TestCaseError> {
    let mut state = RunState::new(g, by);
    for s in steps {
        let event = event_for(&state, *s);
        // A refused event changes nothing, so only accepted ones are checked.
        if let Ok((next, actions)) = advance(g, &state, &event) {
            check_transition(g, &state, &event, &next, &actions)?;
            state = next;
        }
    }
    Ok(state)
}

fn normalized(mut s: RunState) -> RunState {
    for step in &mut s.steps {
        step.go_votes = step.go_votes.iter().map(|v| v.to_lowercase()).collect();
        step.go_votes.sort();
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_runs((g, by) in genflow_and_trigger(), steps in script()) {
        let end = drive(&g, by, &steps)?;
        // A Succeeded or Rejected run refuses every event, Retry included.
        if matches!(end.status, RunStatus::Succeeded | RunStatus::Rejected) {
            let n = g.steps.len();
            let mut events = vec![Event::Start, Event::Cancel, Event::Retry { from: None }];
            for i in 0..n {
                events.push(Event::StepStarted { step: i });
                events.push(Event::StepSucceeded { step: i, flags: FlagCounts::NONE });
                events.push(Event::StepFailed { step: i, error: "x".into() });
                events.push(Event::Retry { from: Some(i) });
                for v in VOICES {
                    events.push(Event::Decision { step: i, approver: v.into(), verdict: Verdict::Go, reason: None });
                }
            }
            for e in events {
                prop_assert!(advance(&g, &end, &e).is_err(), "{} run accepted {:?}", end.status, e);
            }
        }
    }

    #[test]
    fn completing_runs_reach_a_verdict((g, by) in genflow_and_trigger(), seed in any::<u64>()) {
        // A cooperative driver: start, run every Ready step to success, vote Go
        // with every voice. Unless a gate cannot collect enough allowed votes,
        // the run must end Succeeded; a gate that can only wait keeps it Waiting.
        let mut state = RunState::new(&g, by);
        let (s, a) = advance(&g, &state, &Event::Start).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_transition(&g, &state, &Event::Start, &s, &a)?;
        state = s;
        let mut rng = seed;
        for _ in 0..200 {
            if state.is_terminal() { break; }
            let mut progressed = false;
            for i in 0..g.steps.len() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let candidates: Vec<Event> = match state.steps[i].status {
                    StepStatus::Ready => vec![Event::StepStarted { step: i }],
                    StepStatus::Running => vec![Event::StepSucceeded { step: i, flags: counts((rng >> 56) as u8) }],
                    StepStatus::Waiting => VOICES.iter().map(|v| Event::Decision { step: i, approver: (*v).into(), verdict: Verdict::Go, reason: None }).collect(),
                    _ => vec![],
                };
                for e in candidates {
                    if let Ok((next, actions)) = advance(&g, &state, &e) {
                        check_transition(&g, &state, &e, &next, &actions)?;
                        state = next;
                        progressed = true;
                    }
                }
            }
            if !progressed { break; }
        }
        prop_assert!(matches!(state.status, RunStatus::Succeeded | RunStatus::Waiting), "ended {:?}", state);
        if state.status == RunStatus::Waiting {
            // Only gates that cannot get enough votes may hold the run.
            for (i, s) in state.steps.iter().enumerate() {
                if s.status == StepStatus::Waiting {
                    let def = &g.steps[i];
                    let pool: Vec<&str> = if def.approvers.is_empty() { APPROVERS.to_vec() } else { def.approvers.iter().map(String::as_str).collect() };
                    let eligible = pool.iter().filter(|p| def.allow_self_approval || state.triggered_by.as_deref().is_none_or(|t| !same_person(t, p))).count();
                    let eligible = if def.approvers.is_empty() { eligible + 1 /* eve */ } else { eligible };
                    prop_assert!(eligible < def.required as usize, "gate {i} could be approved: {:?}", state);
                }
            }
        }
    }

    /// The release gate with a publish step at the end, under random event
    /// scripts: publish runs only after Go, and a No-go skips it for good.
    #[test]
    fn publish_runs_only_after_go(by in prop::option::of(prop::sample::select(APPROVERS.to_vec())), steps in script()) {
        let g: Genflow = serde_json::from_value(json!({"name": "gate", "steps": [
            {"name": "notes", "kind": "report", "prompt": "p", "corpus": ["*.md"]},
            {"name": "go", "kind": "approval", "depends_on": ["notes"], "approvers": APPROVERS},
            {"name": "ship", "kind": "publish", "depends_on": ["go"], "from": "notes",
             "destinations": [{"path": "dist/NOTES.md"}, {"command": ["cat"]}]},
        ]})).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut state = RunState::new(&g, by.map(String::from));
        for s in &steps {
            let event = event_for(&state, *s);
            if let Ok((next, actions)) = advance(&g, &state, &event) {
                check_transition(&g, &state, &event, &next, &actions)?;
                if actions.contains(&Action::Run(2)) || next.steps[2].status != StepStatus::Pending {
                    prop_assert!(
                        next.steps[1].status == StepStatus::Approved
                            || matches!(next.steps[2].status, StepStatus::Skipped | StepStatus::Cancelled),
                        "publish moved without a Go: {next:?}"
                    );
                }
                if next.steps[1].status == StepStatus::Rejected {
                    prop_assert_eq!(next.steps[2].status, StepStatus::Skipped);
                }
                state = next;
            }
        }
    }

    #[test]
    fn independent_events_commute((g, by) in genflow_and_trigger(), steps in script()) {
        let s = drive(&g, by, &steps)?;
        let mut candidates = Vec::new();
        for (i, st) in s.steps.iter().enumerate() {
            match st.status {
                StepStatus::Ready => candidates.push(Event::StepStarted { step: i }),
                StepStatus::Running => candidates.push(Event::StepSucceeded { step: i, flags: FlagCounts::NONE }),
                StepStatus::Waiting => {
                    for v in VOICES {
                        candidates.push(Event::Decision { step: i, approver: v.into(), verdict: Verdict::Go, reason: None });
                    }
                }
                _ => {}
            }
        }
        let both = |a: &Event, b: &Event| -> Option<(RunState, Vec<Action>)> {
            let (s1, mut a1) = advance(&g, &s, a).ok()?;
            let (s2, a2) = advance(&g, &s1, b).ok()?;
            a1.extend(a2);
            a1.sort();
            Some((normalized(s2), a1))
        };
        for (x, e1) in candidates.iter().enumerate() {
            for e2 in &candidates[x + 1..] {
                let ab = both(e1, e2);
                let ba = both(e2, e1);
                prop_assert_eq!(ab, ba, "{:?} and {:?} do not commute from {:?}", e1, e2, s);
            }
        }
    }
}
