//! The backend-independent store test suite. Every function takes a store
//! through the trait (plus, for tamper tests, a backend-specific way to edit
//! rows behind the store's back), so each backend runs the same checks.

use async_trait::async_trait;
use fleet_core::config::Genflow;
use fleet_core::run::{Event, RunState, RunStatus, StepStatus, Verdict, advance};
use fleet_store::{
    LeaseChange, NewArtifact, NewDecision, NewEvent, NewRun, RunFilter, RunRecord, StepRun, Store,
    StoreError, Transition,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Edits stored rows directly, as an attacker or a bad disk would.
#[async_trait]
pub trait Backdoor: Send + Sync {
    async fn set_event_payload(&self, seq: i64, payload_json: &str);
    async fn set_artifact_bytes(&self, sha256: &str, bytes: &[u8]);
}

/// Makes the backend hold its writes back for a moment, so that a burst of
/// requests queues up behind the first and is committed together (group
/// commit). Returns once writes are held; a backend without such a lever
/// does nothing.
pub trait HoldWrites: Send + Sync {
    fn hold_writes(&self);
}

/// For backends (or runs) that do not hold writes back.
pub struct NoHold;

impl HoldWrites for NoHold {
    fn hold_writes(&self) {}
}

pub const RELEASE_GATE: &str = r#"
genflows:
  - name: release-gate
    steps:
      - {name: readiness, prompt: "Assemble the report.", corpus: ["docs/*.md"], kind: report, out: readiness.md}
      - {name: risk-review, prompt: "Review it.", depends_on: [readiness], kind: review, out: risks.md}
      - {name: go-no-go, depends_on: [readiness, risk-review], kind: approval, out: decision.md, approvers: [owner@example.com, second@example.com]}
      - {name: announce, depends_on: [go-no-go, readiness], kind: notify, out: sent.md, to: [team@example.com]}
  - name: nightly
    steps:
      - {name: digest, prompt: "Summarize.", corpus: ["docs/*.md"], kind: report}
"#;

pub fn genflow(name: &str) -> Genflow {
    let checked = fleet_core::config::check_str(RELEASE_GATE);
    let Some(config) = checked.config else {
        panic!("suite config is invalid: {:?}", checked.diagnostics);
    };
    match config.genflow(name) {
        Some(g) => g.clone(),
        None => panic!("no genflow {name}"),
    }
}

fn ok<T>(r: Result<T, StoreError>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

pub async fn new_run(store: &dyn Store, id: &str, flow: &str, by: Option<&str>) -> RunRecord {
    let g = genflow(flow);
    let state = RunState::new(&g, by.map(String::from));
    ok(
        store
            .create_run(NewRun {
                id: id.to_string(),
                genflow: g,
                triggered_by: by.map(String::from),
                state,
            })
            .await,
        "create_run",
    )
}

/// Advance the stored run by `event` and commit just the state change.
pub async fn step(store: &dyn Store, run: &RunRecord, event: Event) -> RunRecord {
    let (state, _) = advance(&run.definition, &run.state, &event)
        .unwrap_or_else(|r| panic!("{event:?} refused: {r}"));
    ok(store.commit(Transition::new(run, state)).await, "commit").0
}

/// readiness (with its artifact) and risk-review done; the gate is open.
pub async fn run_to_gate(store: &dyn Store, id: &str, by: Option<&str>) -> RunRecord {
    let run = new_run(store, id, "release-gate", by).await;
    let run = step(store, &run, Event::Start).await;
    let run = step(store, &run, Event::StepStarted { step: 0 }).await;
    let (state, _) = advance(
        &run.definition,
        &run.state,
        &Event::StepSucceeded {
            step: 0,
            flags: fleet_core::flags::FlagCounts::NONE,
        },
    )
    .unwrap_or_else(|r| panic!("{r}"));
    let mut t = Transition::new(&run, state);
    t.artifacts.push(NewArtifact {
        step: "readiness".into(),
        path: "readiness.md".into(),
        bytes: b"# Readiness\n\nAll migrations reversible.\n".to_vec(),
    });
    let run = ok(store.commit(t).await, "commit readiness").0;
    let run = step(store, &run, Event::StepStarted { step: 1 }).await;
    let run = step(
        store,
        &run,
        Event::StepSucceeded {
            step: 1,
            flags: fleet_core::flags::FlagCounts::NONE,
        },
    )
    .await;
    assert_eq!(run.state.status, RunStatus::Waiting);
    run
}

fn decision(approver: &str, verdict: Verdict, is_final: bool) -> NewDecision {
    NewDecision {
        step: "go-no-go".into(),
        approver: approver.into(),
        verdict,
        reason: (verdict == Verdict::NoGo).then(|| "rollback untested".to_string()),
        channel: "cli".into(),
        shown: Vec::new(),
        is_final,
        decided_at: fleet_store::audit::now(),
    }
}

pub async fn create_get_and_prefix(store: &dyn Store) {
    let a = new_run(
        store,
        "abcd1111-0000-7000-8000-000000000001",
        "release-gate",
        Some("dev@example.com"),
    )
    .await;
    new_run(
        store,
        "abcd2222-0000-7000-8000-000000000002",
        "release-gate",
        None,
    )
    .await;
    let g = genflow("release-gate");
    assert_eq!(a.version, 1);
    assert_eq!(*a.definition, g);
    assert_eq!(a.definition_hash, g.definition_hash());
    assert_eq!(a.genflow_name, "release-gate");

    let full = ok(store.get_run(&a.id).await, "get by id");
    assert_eq!(full, a);
    let by_prefix = ok(store.get_run("abcd1").await, "get by prefix");
    assert_eq!(by_prefix.id, a.id);
    assert_eq!(by_prefix.triggered_by.as_deref(), Some("dev@example.com"));
    assert!(matches!(
        store.get_run("abcd").await,
        Err(StoreError::AmbiguousId(_))
    ));
    assert!(matches!(
        store.get_run("abc").await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.get_run("ffff9").await,
        Err(StoreError::NotFound(_))
    ));
    // LIKE wildcards in a prefix match literally.
    assert!(matches!(
        store.get_run("abc%").await,
        Err(StoreError::NotFound(_))
    ));

    let dup = store
        .create_run(NewRun {
            id: a.id.clone(),
            genflow: g.clone(),
            triggered_by: None,
            state: RunState::new(&g, None),
        })
        .await;
    assert!(matches!(dup, Err(StoreError::AlreadyExists(_))), "{dup:?}");

    let mut wrong_shape = RunState::new(&g, None);
    wrong_shape.steps.pop();
    let bad = store
        .create_run(NewRun {
            id: "bad-shape-run".into(),
            genflow: g,
            triggered_by: None,
            state: wrong_shape,
        })
        .await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");

    let events = ok(store.events(Some(&a.id)).await, "events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "run.created");
    assert_eq!(
        events[0].payload["definition_hash"],
        json!(a.definition_hash)
    );
}

pub async fn list_filters_and_unfinished(store: &dyn Store) {
    let r1 = new_run(store, "run-0001", "release-gate", None).await;
    let r2 = new_run(store, "run-0002", "nightly", None).await;
    let r3 = run_to_gate(store, "run-0003", None).await;
    let r4 = new_run(store, "run-0004", "nightly", None).await;
    let r4 = step(store, &r4, Event::Start).await;
    let r2 = step(store, &r2, Event::Cancel).await;

    let all = ok(store.list_runs(&RunFilter::default()).await, "list all");
    let ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["run-0004", "run-0003", "run-0002", "run-0001"]);

    let nightly = ok(
        store
            .list_runs(&RunFilter {
                genflow: Some("nightly".into()),
                ..RunFilter::default()
            })
            .await,
        "list nightly",
    );
    let ids: Vec<&str> = nightly.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, [r4.id.as_str(), r2.id.as_str()]);

    let waiting = ok(
        store
            .list_runs(&RunFilter {
                status: Some(RunStatus::Waiting),
                ..RunFilter::default()
            })
            .await,
        "list waiting",
    );
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].id, r3.id);
    assert_eq!(waiting[0].state.status, RunStatus::Waiting);

    let limited = ok(
        store
            .list_runs(&RunFilter {
                genflow: Some("release-gate".into()),
                status: Some(RunStatus::Running),
                limit: Some(1),
                before: None,
            })
            .await,
        "list limited",
    );
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].id, r1.id);

    let unfinished = ok(store.unfinished_runs().await, "unfinished");
    assert_eq!(unfinished, [r1.id.clone(), r4.id.clone()]);
}

/// `run_versions` names the runs `list_runs` lists, in its order, under
/// every filter, with their current versions; `run_version` is one run's.
pub async fn run_versions_match_list_runs(store: &dyn Store) {
    let r1 = new_run(store, "ver-0001", "release-gate", None).await;
    let r2 = new_run(store, "ver-0002", "nightly", None).await;
    run_to_gate(store, "ver-0003", None).await;
    let r4 = new_run(store, "ver-0004", "nightly", None).await;
    step(store, &r4, Event::Start).await;
    step(store, &r2, Event::Cancel).await;
    let r1 = step(store, &r1, Event::Start).await;

    let filters = [
        RunFilter::default(),
        RunFilter {
            genflow: Some("nightly".into()),
            ..RunFilter::default()
        },
        RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        },
        RunFilter {
            status: Some(RunStatus::Waiting),
            limit: Some(5),
            ..RunFilter::default()
        },
        RunFilter {
            genflow: Some("release-gate".into()),
            status: Some(RunStatus::Running),
            limit: Some(1),
            before: None,
        },
        RunFilter {
            limit: Some(2),
            ..RunFilter::default()
        },
        RunFilter {
            genflow: Some("no-such-genflow".into()),
            ..RunFilter::default()
        },
    ];
    let filters = &filters;
    let check = |label: &'static str| async move {
        for filter in filters {
            let listed: Vec<(String, i64)> = ok(store.list_runs(filter).await, "list")
                .into_iter()
                .map(|r| (r.id, r.version))
                .collect();
            let versions = ok(store.run_versions(filter).await, "run_versions");
            assert_eq!(versions, listed, "{label}: {filter:?}");
        }
    };
    check("before").await;
    assert_eq!(
        ok(store.run_version(&r1.id).await, "run_version"),
        r1.version
    );

    // A commit bumps the version both report.
    let r1 = step(store, &r1, Event::StepStarted { step: 0 }).await;
    check("after a commit").await;
    assert_eq!(
        ok(store.run_version(&r1.id).await, "run_version"),
        r1.version
    );
    let versions = ok(store.run_versions(&RunFilter::default()).await, "all");
    assert!(
        versions.contains(&(r1.id.clone(), r1.version)),
        "{versions:?}"
    );
    assert_eq!(versions.len(), 4);

    // Exact ids only: a prefix or an unknown id is not found.
    for id in ["ver-", "ver-0009"] {
        assert!(
            matches!(store.run_version(id).await, Err(StoreError::NotFound(_))),
            "{id}"
        );
    }
}

pub async fn commit_conflict_writes_nothing(store: &dyn Store) {
    let run = run_to_gate(store, "conflict-run", Some("dev@example.com")).await;
    let before_events = ok(store.events(None).await, "events").len();
    let before_artifacts = ok(store.artifacts(&run.id).await, "artifacts");

    let (state, _) = advance(
        &run.definition,
        &run.state,
        &Event::Decision {
            step: 2,
            approver: "owner@example.com".into(),
            verdict: Verdict::Go,
            reason: None,
        },
    )
    .unwrap_or_else(|r| panic!("{r}"));
    let mut stale = Transition::new(&run, state.clone());
    stale.expected_version = run.version - 1;
    stale.artifacts.push(NewArtifact {
        step: "go-no-go".into(),
        path: "decision.md".into(),
        bytes: b"GO".to_vec(),
    });
    stale.decision = Some(decision("owner@example.com", Verdict::Go, true));
    stale.step_run = Some(step_run("go-no-go", 1, None));
    stale.events.push(NewEvent {
        kind: "test.note".into(),
        payload: json!({"n": 1}),
    });
    stale.durable = true;
    let err = store.commit(stale.clone()).await;
    assert!(
        matches!(&err, Err(StoreError::Conflict { run_id }) if *run_id == run.id),
        "{err:?}"
    );

    let after = ok(store.get_run(&run.id).await, "get");
    assert_eq!(after, run);
    assert_eq!(ok(store.events(None).await, "events").len(), before_events);
    assert_eq!(
        ok(store.artifacts(&run.id).await, "artifacts"),
        before_artifacts
    );
    assert!(ok(store.decisions(&run.id).await, "decisions").is_empty());
    assert!(ok(store.step_runs(&run.id).await, "step runs").is_empty());
    assert_eq!(
        ok(
            store
                .artifact_bytes(&fleet_store::audit::sha256_hex(b"GO"))
                .await,
            "bytes"
        ),
        None
    );

    // The same transition at the right version goes through.
    stale.expected_version = run.version;
    let (next, written) = ok(store.commit(stale).await, "commit");
    assert_eq!(next.version, run.version + 1);
    assert_eq!(next.state, state);
    assert_eq!(written.len(), 1);
    assert_eq!(ok(store.decisions(&run.id).await, "decisions").len(), 1);

    let missing = store
        .commit(Transition {
            run_id: "no-such-run".into(),
            ..Transition::new(&next, next.state.clone())
        })
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "{missing:?}"
    );
}

pub fn step_run(step: &str, attempt: u32, finished: Option<jiff::Timestamp>) -> StepRun {
    StepRun {
        step: step.into(),
        attempt,
        model: Some("builtin".into()),
        prompt: Some("Assemble the report.".into()),
        settings: json!({"temperature": 0}),
        manifest: Some(json!({"files": ["docs/a.md"]})),
        input_tokens: 1200,
        output_tokens: 300,
        cost_usd: Some(0.0125),
        cached: false,
        started_at: fleet_store::audit::now(),
        finished_at: finished,
        error: None,
    }
}

pub async fn artifacts_are_content_addressed(store: &dyn Store) {
    let run = new_run(store, "artifact-run", "release-gate", None).await;
    let same = b"identical bytes".to_vec();
    let mut t = Transition::new(&run, run.state.clone());
    // Written out of step order on purpose: listing is by step order.
    t.artifacts.push(NewArtifact {
        step: "risk-review".into(),
        path: "risks.md".into(),
        bytes: same.clone(),
    });
    t.artifacts.push(NewArtifact {
        step: "readiness".into(),
        path: "readiness.md".into(),
        bytes: same.clone(),
    });
    let (run, written) = ok(store.commit(t).await, "commit");
    assert_eq!(written.len(), 2);
    assert_eq!(written[0].sha256, written[1].sha256);
    assert_eq!(written[0].sha256, fleet_store::audit::sha256_hex(&same));
    assert!(
        written
            .iter()
            .all(|a| a.revision == 1 && a.size == same.len() as u64)
    );

    let mut t = Transition::new(&run, run.state.clone());
    t.artifacts.push(NewArtifact {
        step: "readiness".into(),
        path: "readiness.md".into(),
        bytes: b"second draft".to_vec(),
    });
    let (run, written) = ok(store.commit(t).await, "commit rev 2");
    assert_eq!(written[0].revision, 2);

    let listed = ok(store.artifacts(&run.id).await, "artifacts");
    let summary: Vec<(&str, u32)> = listed
        .iter()
        .map(|a| (a.path.as_str(), a.revision))
        .collect();
    assert_eq!(
        summary,
        [("readiness.md", 1), ("readiness.md", 2), ("risks.md", 1)]
    );
    assert_eq!(
        ok(store.artifact_bytes(&listed[1].sha256).await, "bytes"),
        Some(b"second draft".to_vec())
    );
    assert_eq!(
        ok(store.artifact_bytes(&"0".repeat(64)).await, "missing bytes"),
        None
    );

    // Two distinct contents stored, whatever the number of revisions.
    let report = ok(store.verify_audit().await, "verify");
    assert_eq!(report.artifacts_checked, 2);
    assert!(report.is_ok(), "{report:?}");
    let stored: Vec<_> = ok(store.events(Some(&run.id)).await, "events")
        .into_iter()
        .filter(|e| e.kind == "artifact.stored")
        .collect();
    assert_eq!(stored.len(), 3);
    assert_eq!(
        stored[2].payload["sha256"],
        json!(fleet_store::audit::sha256_hex(b"second draft"))
    );

    let mut t = Transition::new(&run, run.state.clone());
    t.artifacts.push(NewArtifact {
        step: "no-such-step".into(),
        path: "x.md".into(),
        bytes: vec![1],
    });
    let bad = store.commit(t).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    assert_eq!(ok(store.get_run(&run.id).await, "get").version, run.version);
}

/// Kept corpus files (`Transition::blobs`): the same bytes read by two
/// runs, and twice in one commit, are stored once; readable by sha256 and
/// covered by `verify_audit`; a commit that loses its compare-and-swap
/// stores none.
pub async fn kept_corpus_is_stored_once(store: &dyn Store) {
    let before = ok(store.content_totals().await, "totals");
    let runbook = fleet_store::Blob::new(b"# Deploy\n\n## Rollback\nredeploy v1\n".to_vec());
    let other = fleet_store::Blob::new(b"only in the first run\n".to_vec());
    let first = new_run(store, "corpus-run-1", "release-gate", None).await;
    let mut t = Transition::new(&first, first.state.clone());
    t.blobs = vec![runbook.clone(), other.clone(), runbook.clone()];
    let (first, written) = ok(store.commit(t).await, "commit");
    assert!(
        written.is_empty(),
        "kept files are not documents of the run"
    );
    assert!(
        ok(store.artifacts(&first.id).await, "artifacts").is_empty(),
        "kept files are not listed as artifacts"
    );
    let after_one = ok(store.content_totals().await, "totals");
    assert_eq!(after_one.contents, before.contents + 2);

    let second = new_run(store, "corpus-run-2", "release-gate", None).await;
    let mut t = Transition::new(&second, second.state.clone());
    t.blobs = vec![runbook.clone()];
    ok(store.commit(t).await, "commit");
    let after_two = ok(store.content_totals().await, "totals");
    assert_eq!(
        after_two, after_one,
        "the same file in a second run is stored once"
    );
    assert_eq!(
        ok(store.artifact_bytes(runbook.sha256()).await, "bytes").as_deref(),
        Some(runbook.bytes())
    );

    // A stale commit writes no content.
    let stale_blob = fleet_store::Blob::new(b"never stored\n".to_vec());
    let mut stale = Transition::new(&first, first.state.clone());
    stale.expected_version = first.version - 1;
    stale.blobs = vec![stale_blob.clone()];
    assert!(matches!(
        store.commit(stale).await,
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        ok(store.artifact_bytes(stale_blob.sha256()).await, "bytes"),
        None
    );
    let report = ok(store.verify_audit().await, "verify");
    assert!(report.is_ok(), "{report:?}");
    assert!(report.artifacts_checked >= after_two.contents);
}

pub async fn step_runs_upsert_per_attempt(store: &dyn Store) {
    let run = new_run(store, "step-run-run", "release-gate", None).await;
    let run = step(store, &run, Event::Start).await;
    let (state, _) = advance(&run.definition, &run.state, &Event::StepStarted { step: 0 })
        .unwrap_or_else(|r| panic!("{r}"));
    let mut t = Transition::new(&run, state);
    t.step_run = Some(step_run("readiness", 1, None));
    let (run, _) = ok(store.commit(t).await, "start");
    let finished = fleet_store::audit::now();
    let mut t = Transition::new(&run, run.state.clone());
    let mut done = step_run("readiness", 1, Some(finished));
    done.output_tokens = 999;
    t.step_run = Some(done.clone());
    ok(store.commit(t).await, "finish");

    let runs = ok(store.step_runs(&run.id).await, "step runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].finished_at, Some(finished));
    assert_eq!(runs[0].output_tokens, 999);
    assert_eq!(runs[0].settings, done.settings);
    assert_eq!(runs[0].manifest, done.manifest);
    assert_eq!(runs[0].cost_usd, Some(0.0125));
}

pub async fn decisions_are_unique_per_gate_round(store: &dyn Store) {
    let mut run = run_to_gate(store, "decision-run", Some("dev@example.com")).await;
    // `required: 2` would need config; here the engine records a non-final vote first.
    let mut t = Transition::new(&run, run.state.clone());
    t.decision = Some(decision("owner@example.com", Verdict::Go, false));
    t.durable = true;
    run = ok(store.commit(t).await, "first vote").0;

    let mut again = Transition::new(&run, run.state.clone());
    again.decision = Some(decision("OWNER@example.com", Verdict::NoGo, true));
    let dup = store.commit(again).await;
    assert!(
        matches!(dup, Err(StoreError::DuplicateDecision { .. })),
        "{dup:?}"
    );
    assert_eq!(ok(store.get_run(&run.id).await, "get").version, run.version);

    let mut t = Transition::new(&run, run.state.clone());
    t.decision = Some(decision("second@example.com", Verdict::Go, true));
    run = ok(store.commit(t).await, "final vote").0;
    let mut t = Transition::new(&run, run.state.clone());
    t.decision = Some(decision("third@example.com", Verdict::Go, true));
    let second_final = store.commit(t).await;
    assert!(
        matches!(second_final, Err(StoreError::DuplicateDecision { .. })),
        "{second_final:?}"
    );

    let recorded = ok(store.decisions(&run.id).await, "decisions");
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].approver, "owner@example.com");
    assert!(!recorded[0].is_final);
    assert!(recorded[1].is_final);
    assert_eq!(recorded[1].gate_round, 1);
    assert_eq!(recorded[1].definition_hash, run.definition_hash);
    assert_eq!(recorded[1].genflow_name, "release-gate");

    // A re-opened gate (new round) takes votes from the same people again.
    let mut reopened = run.state.clone();
    reopened.steps[2].attempt = 2;
    reopened.steps[2].status = StepStatus::Waiting;
    let mut t = Transition::new(&run, reopened);
    t.decision = Some(decision("owner@example.com", Verdict::Go, true));
    ok(store.commit(t).await, "new round");
    let recorded = ok(store.decisions(&run.id).await, "decisions");
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[2].gate_round, 2);

    let current = ok(store.get_run(&run.id).await, "get");
    let mut t = Transition::new(&current, current.state.clone());
    t.decision = Some(NewDecision {
        step: "readiness".into(),
        ..decision("owner@example.com", Verdict::Go, false)
    });
    let not_gate = store.commit(t).await;
    assert!(
        matches!(not_gate, Err(StoreError::Invalid(_))),
        "{not_gate:?}"
    );
}

/// A full run: every commit is chained, every fact the audit must show is there.
pub async fn events_are_chained_and_verified(store: &dyn Store) {
    let run = run_to_gate(store, "audit-run", Some("dev@example.com")).await;
    let (state, _) = advance(
        &run.definition,
        &run.state,
        &Event::Decision {
            step: 2,
            approver: "owner@example.com".into(),
            verdict: Verdict::Go,
            reason: None,
        },
    )
    .unwrap_or_else(|r| panic!("{r}"));
    let shown = ok(store.artifacts(&run.id).await, "artifacts");
    let mut t = Transition::new(&run, state);
    t.decision = Some(NewDecision {
        shown: shown.clone(),
        ..decision("owner@example.com", Verdict::Go, true)
    });
    t.durable = true;
    let (run, _) = ok(store.commit(t).await, "decide");
    let run = step(store, &run, Event::StepStarted { step: 3 }).await;
    let run = step(
        store,
        &run,
        Event::StepSucceeded {
            step: 3,
            flags: fleet_core::flags::FlagCounts::NONE,
        },
    )
    .await;
    assert_eq!(run.state.status, RunStatus::Succeeded);

    let events = ok(store.events(None).await, "events");
    let mut prev = fleet_store::audit::GENESIS_HASH.to_string();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
        assert_eq!(e.prev_hash, prev);
        assert_eq!(e.hash.len(), 64);
        prev = e.hash.clone();
    }
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"run.created"));
    let decided = events
        .iter()
        .find(|e| e.kind == "decision.recorded")
        .unwrap_or_else(|| panic!("no decision event in {kinds:?}"));
    assert_eq!(decided.payload["approver"], json!("owner@example.com"));
    assert_eq!(decided.payload["verdict"], json!("go"));
    assert_eq!(
        decided.payload["shown"][0]["sha256"],
        json!(shown[0].sha256)
    );
    let gate_approved = events.iter().any(|e| {
        e.kind == "step.status"
            && e.payload["step"] == json!("go-no-go")
            && e.payload["status"] == json!("approved")
    });
    assert!(gate_approved, "{kinds:?}");
    let finished = events
        .iter()
        .any(|e| e.kind == "run.status" && e.payload["status"] == json!("succeeded"));
    assert!(finished);

    let report = ok(store.verify_audit().await, "verify");
    assert_eq!(report.first_problem, None);
    assert_eq!(report.events_checked, events.len() as u64);
    assert_eq!(report.artifacts_checked, 1);
}

pub async fn tampered_event_is_named(store: &dyn Store, backdoor: &dyn Backdoor) {
    let run = run_to_gate(store, "tamper-event-run", None).await;
    let events = ok(store.events(Some(&run.id)).await, "events");
    let victim = &events[3];
    backdoor
        .set_event_payload(
            victim.seq,
            // Canonical (keys sorted), so only the hash can tell.
            r#"{"forged":true,"status":"succeeded","step":"readiness"}"#,
        )
        .await;
    let report = ok(store.verify_audit().await, "verify");
    assert_eq!(
        report.first_problem,
        Some(format!(
            "event {} ({}): hash mismatch",
            victim.seq, victim.kind
        ))
    );
    assert_eq!(report.events_checked, events.len() as u64);
}

/// Every stored byte counts: a space appended to a stored payload (the
/// same JSON to a parser) is named, though re-serializing it would hash alike.
pub async fn whitespace_in_a_stored_event_is_named(store: &dyn Store, backdoor: &dyn Backdoor) {
    let run = run_to_gate(store, "whitespace-event-run", None).await;
    let events = ok(store.events(Some(&run.id)).await, "events");
    let victim = &events[2];
    let text = fleet_store::audit::canonical_payload(victim.seq, &victim.payload)
        .unwrap_or_else(|e| panic!("{e}"));
    backdoor
        .set_event_payload(victim.seq, &format!("{text} "))
        .await;
    let report = ok(store.verify_audit().await, "verify");
    assert_eq!(
        report.first_problem,
        Some(format!(
            "event {} ({}): stored payload is not in canonical form: its bytes were changed after it was written",
            victim.seq, victim.kind
        ))
    );
}

/// The chain head is the newest event, on every backend.
pub async fn chain_head_is_the_newest_event(store: &dyn Store) {
    assert_eq!(ok(store.chain_head().await, "empty head"), None);
    run_to_gate(store, "head-run", None).await;
    let events = ok(store.events(None).await, "events");
    let last = events.last().unwrap_or_else(|| panic!("no events"));
    assert_eq!(
        ok(store.chain_head().await, "head"),
        Some((last.seq, last.hash.clone()))
    );
}

/// Events of no run appended on their own: chained after every commit's
/// events exactly like them, verified, and found by kind (newest last).
pub async fn appended_events_join_the_chain(store: &dyn Store) {
    assert_eq!(
        ok(
            store.append_events(Vec::new()).await,
            "nothing on an empty log"
        ),
        None
    );
    let run = run_to_gate(store, "alone-run", None).await;
    let before = ok(store.chain_head().await, "head").unwrap_or_else(|| panic!("no head"));
    let head = ok(
        store
            .append_events(vec![
                NewEvent {
                    kind: "audit.key".into(),
                    payload: json!({"key": "k1", "status": "current"}),
                },
                NewEvent {
                    kind: "audit.checkpoint".into(),
                    payload: json!({"size": before.0, "note": "first \u{2014} é \"quoted\"\n"}),
                },
            ])
            .await,
        "append",
    )
    .unwrap_or_else(|| panic!("no head after an append"));
    assert_eq!(head.0, before.0 + 2);
    assert_eq!(ok(store.chain_head().await, "head"), Some(head.clone()));
    // A commit after them chains onto them.
    step(store, &run, Event::Cancel).await;
    ok(
        store
            .append_events(vec![NewEvent {
                kind: "audit.checkpoint".into(),
                payload: json!({"size": head.0}),
            }])
            .await,
        "append again",
    );
    let all = ok(store.events(None).await, "events");
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "event {}", pair[1].seq);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    let alone = all
        .iter()
        .find(|e| e.seq == before.0 + 1)
        .unwrap_or_else(|| panic!("appended event"));
    assert_eq!(
        (alone.kind.as_str(), alone.run_id.as_deref()),
        ("audit.key", None)
    );
    assert!(ok(store.verify_audit().await, "verify").is_ok());

    let cps = ok(
        store.events_of_kind("audit.checkpoint", None).await,
        "by kind",
    );
    assert_eq!(cps.len(), 2);
    assert!(cps[0].seq < cps[1].seq, "oldest first");
    assert_eq!(cps[0].payload["note"], "first \u{2014} é \"quoted\"\n");
    let newest = ok(
        store.events_of_kind("audit.checkpoint", Some(1)).await,
        "newest",
    );
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].seq, cps[1].seq);
    assert!(ok(store.events_of_kind("no.such.kind", None).await, "none").is_empty());
}

pub async fn tampered_artifact_is_named(store: &dyn Store, backdoor: &dyn Backdoor) {
    let run = run_to_gate(store, "tamper-artifact-run", None).await;
    let artifacts = ok(store.artifacts(&run.id).await, "artifacts");
    let sha = artifacts[0].sha256.clone();
    backdoor
        .set_artifact_bytes(&sha, b"# Readiness\n\nNothing to see.\n")
        .await;
    let report = ok(store.verify_audit().await, "verify");
    assert_eq!(
        report.first_problem,
        Some(format!(
            "artifact {sha} (run {}, readiness.md rev 1): content does not match its sha256",
            run.id
        ))
    );
}

pub async fn leases_expire_and_move(store: &dyn Store) {
    let long = Duration::from_secs(60);
    assert!(ok(
        store.claim_lease("r1", "readiness", "worker-a", long).await,
        "claim a"
    ));
    assert!(ok(
        store.claim_lease("r1", "readiness", "worker-a", long).await,
        "reclaim own"
    ));
    assert!(!ok(
        store.claim_lease("r1", "readiness", "worker-b", long).await,
        "claim b"
    ));
    assert!(ok(
        store
            .claim_lease("r1", "risk-review", "worker-b", long)
            .await,
        "other step"
    ));
    assert!(ok(
        store.renew_lease("r1", "readiness", "worker-a", long).await,
        "renew a"
    ));
    assert!(!ok(
        store.renew_lease("r1", "readiness", "worker-b", long).await,
        "renew b"
    ));

    // worker-a goes quiet: its short lease lapses and worker-b takes over.
    let short = Duration::from_millis(50);
    assert!(ok(
        store
            .claim_lease("r1", "readiness", "worker-a", short)
            .await,
        "shorten"
    ));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(ok(
        store.claim_lease("r1", "readiness", "worker-b", long).await,
        "take over"
    ));
    assert!(!ok(
        store.renew_lease("r1", "readiness", "worker-a", long).await,
        "stale renew"
    ));

    // Releasing someone else's lease does nothing; releasing one's own frees it.
    ok(
        store.release_lease("r1", "readiness", "worker-a").await,
        "release other",
    );
    assert!(!ok(
        store.claim_lease("r1", "readiness", "worker-a", long).await,
        "still b's"
    ));
    ok(
        store.release_lease("r1", "readiness", "worker-b").await,
        "release own",
    );
    assert!(ok(
        store.claim_lease("r1", "readiness", "worker-a", long).await,
        "free again"
    ));
}

/// Many approvers click Go at once on a gate that needs one: each task loads,
/// advances and commits, retrying on Conflict. Exactly one decision wins.
pub async fn concurrent_clicks_one_winner(store: Arc<dyn Store>) {
    let mut g = genflow("release-gate");
    g.steps[2].approvers.clear();
    let run = ok(
        store
            .create_run(NewRun {
                id: "click-run".into(),
                state: RunState::new(&g, None),
                genflow: g,
                triggered_by: None,
            })
            .await,
        "create",
    );
    let run = step(&*store, &run, Event::Start).await;
    let run = step(&*store, &run, Event::StepStarted { step: 0 }).await;
    let run = step(
        &*store,
        &run,
        Event::StepSucceeded {
            step: 0,
            flags: fleet_core::flags::FlagCounts::NONE,
        },
    )
    .await;
    let run = step(&*store, &run, Event::StepStarted { step: 1 }).await;
    step(
        &*store,
        &run,
        Event::StepSucceeded {
            step: 1,
            flags: fleet_core::flags::FlagCounts::NONE,
        },
    )
    .await;

    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let approver = format!("approver{i}@example.com");
            loop {
                let run = store.get_run("click-run").await?;
                let event = Event::Decision {
                    step: 2,
                    approver: approver.clone(),
                    verdict: Verdict::Go,
                    reason: None,
                };
                let Ok((state, _)) = advance(&run.definition, &run.state, &event) else {
                    return Ok::<bool, StoreError>(false);
                };
                let mut t = Transition::new(&run, state);
                t.decision = Some(decision(&approver, Verdict::Go, true));
                t.durable = true;
                match store.commit(t).await {
                    Ok(_) => return Ok(true),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }));
    }
    let mut winners = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(won)) => winners += usize::from(won),
            Ok(Err(e)) => panic!("task failed: {e}"),
            Err(e) => panic!("task panicked: {e}"),
        }
    }
    assert_eq!(winners, 1);
    let decisions = ok(store.decisions("click-run").await, "decisions");
    assert_eq!(decisions.len(), 1);
    let run = ok(store.get_run("click-run").await, "get");
    assert_eq!(run.state.steps[2].status, StepStatus::Approved);
    assert_eq!(run.state.steps[2].go_votes, [decisions[0].approver.clone()]);
    let report = ok(store.verify_audit().await, "verify");
    assert!(report.is_ok(), "{report:?}");
}

fn at(text: &str) -> jiff::Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("timestamp {text}: {e}"))
}

/// A schedule keeps its due time across `ensure_schedule` calls with the same
/// expression (a restart catches up instead of skipping), restarts on a new
/// expression, and a due time is claimed by exactly one caller.
pub async fn schedules_claim_each_due_time_once(store: Arc<dyn Store>) {
    let first = at("2030-01-01T09:00:00Z");
    let rec = ok(
        store.ensure_schedule("nightly", "0 9 * * *", first).await,
        "ensure",
    );
    assert_eq!(rec.next_due, first);
    assert_eq!(rec.last_run_id, None);
    // Same expression again (a restart): the stored due time wins.
    let again = ok(
        store
            .ensure_schedule("nightly", "0 9 * * *", at("2030-06-01T09:00:00Z"))
            .await,
        "ensure again",
    );
    assert_eq!(again.next_due, first);

    // Ten concurrent claims of the same due time: one wins.
    let second = at("2030-01-02T09:00:00Z");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_schedule("nightly", first, second, &format!("run-{i}"))
                .await
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let won = t
            .await
            .unwrap_or_else(|e| panic!("join: {e}"))
            .unwrap_or_else(|e| panic!("claim: {e}"));
        if won {
            winners.push(format!("run-{i}"));
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim wins: {winners:?}");
    let stored = ok(store.schedules().await, "schedules");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].next_due, second);
    assert_eq!(stored[0].last_due, Some(first));
    assert_eq!(stored[0].last_run_id.as_deref(), Some(winners[0].as_str()));
    // A stale claim (the old due time) fails.
    assert!(!ok(
        store.claim_schedule("nightly", first, second, "late").await,
        "stale claim"
    ));

    // A new expression restarts the schedule.
    let changed = ok(
        store
            .ensure_schedule("nightly", "30 6 * * 1-5", at("2030-03-04T06:30:00Z"))
            .await,
        "change",
    );
    assert_eq!(changed.cron, "30 6 * * 1-5");
    assert_eq!(changed.next_due, at("2030-03-04T06:30:00Z"));
}

/// Run counts by status and per-step totals (tokens, cost, durations).
pub async fn stats_aggregate_runs_and_steps(store: &dyn Store) {
    let empty = ok(store.stats().await, "stats");
    assert!(empty.runs_by_status.is_empty());
    let run = new_run(store, "stats-run-a", "release-gate", None).await;
    new_run(store, "stats-run-b", "nightly", None).await;
    let run = step(store, &run, Event::Start).await;
    let (state, _) = advance(&run.definition, &run.state, &Event::StepStarted { step: 0 })
        .unwrap_or_else(|r| panic!("{r}"));
    let mut t = Transition::new(&run, state);
    let mut sr = step_run("readiness", 1, None);
    sr.started_at = at("2030-01-01T09:00:00Z");
    sr.finished_at = Some(at("2030-01-01T09:00:02.500Z"));
    t.step_run = Some(sr);
    ok(store.commit(t).await, "commit");

    let stats = ok(store.stats().await, "stats");
    assert_eq!(
        stats.runs_by_status,
        vec![("running".to_string(), 2)],
        "both runs are running"
    );
    assert_eq!(stats.steps.len(), 1);
    let s = &stats.steps[0];
    assert_eq!(
        (s.genflow.as_str(), s.step.as_str()),
        ("release-gate", "readiness")
    );
    assert_eq!((s.attempts, s.finished), (1, 1));
    assert!((s.seconds - 2.5).abs() < 0.01, "duration {}", s.seconds);
    assert_eq!((s.input_tokens, s.output_tokens), (1200, 300));
    assert!((s.cost_usd - 0.0125).abs() < 1e-9);

    // The same attempt recorded again replaces its contribution (the
    // engine records an attempt when it starts and when it ends), and a
    // status change moves the run between counts.
    let run = ok(store.get_run("stats-run-a").await, "get");
    let (state, _) = advance(
        &run.definition,
        &run.state,
        &Event::StepFailed {
            step: 0,
            error: "boom".into(),
        },
    )
    .unwrap_or_else(|r| panic!("{r}"));
    let mut t = Transition::new(&run, state);
    let mut sr = step_run("readiness", 1, None);
    sr.started_at = at("2030-01-01T09:00:00Z");
    sr.finished_at = Some(at("2030-01-01T09:00:04Z"));
    sr.input_tokens = 100;
    sr.cost_usd = Some(0.5);
    t.step_run = Some(sr);
    let run = ok(store.commit(t).await, "commit").0;
    let stats = ok(store.stats().await, "stats");
    let s = &stats.steps[0];
    assert_eq!((s.attempts, s.finished), (1, 1), "replaced, not added");
    assert!((s.seconds - 4.0).abs() < 1e-3, "duration {}", s.seconds);
    assert_eq!(s.input_tokens, 100);
    assert!((s.cost_usd - 0.5).abs() < 1e-9);
    assert_eq!(run.state.status, RunStatus::Failed, "no retries configured");
    assert_eq!(
        stats.runs_by_status,
        vec![("failed".to_string(), 1), ("running".to_string(), 1)]
    );
}

fn approval_email(run_id: &str, to: &str, round: u32) -> fleet_store::NewDelivery {
    fleet_store::NewDelivery {
        run_id: run_id.into(),
        step: "go-no-go".into(),
        round,
        purpose: fleet_store::DeliveryPurpose::Approval,
        channel: "email".into(),
        recipient: to.into(),
        label: to.into(),
        payload: json!({}),
    }
}

fn sent(id: &str) -> fleet_store::DeliveryOutcome {
    fleet_store::DeliveryOutcome::Sent {
        message_id: format!("<{id}@fleet>"),
        response: "250 OK".into(),
        summary: "subject".into(),
    }
}

/// The outbox: rows queued with a transition, claimed with a lease, retried,
/// sent once and never again; a delivery that gave up can be queued afresh.
pub async fn outbox_delivers_each_key_once(store: &dyn Store) {
    use fleet_store::{DeliveryOutcome, DeliveryPurpose, DeliveryScope, DeliveryStatus};
    let run = new_run(store, "outbox-run", "release-gate", None).await;
    let (state, _) =
        advance(&run.definition, &run.state, &Event::Start).unwrap_or_else(|r| panic!("{r}"));
    let mut t = Transition::new(&run, state);
    t.outbox = vec![
        approval_email(&run.id, "owner@example.com", 1),
        approval_email(&run.id, "second@example.com", 1),
    ];
    let run = ok(store.commit(t).await, "commit with outbox").0;
    let queued = ok(store.deliveries(&run.id).await, "deliveries");
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|d| d.status == DeliveryStatus::Pending
        && d.attempts == 0
        && d.purpose == DeliveryPurpose::Approval));
    let events = ok(store.events(Some(&run.id)).await, "events");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "delivery.queued")
            .count(),
        2
    );

    // The same keys again: nothing new.
    let again = ok(
        store
            .enqueue_deliveries(vec![approval_email(&run.id, "owner@example.com", 1)])
            .await,
        "enqueue again",
    );
    assert_eq!(again, 0);
    assert_eq!(ok(store.deliveries(&run.id).await, "deliveries").len(), 2);

    // A delivery for another run inside this run's transition is refused.
    let mut bad = Transition::new(&run, run.state.clone());
    bad.outbox = vec![approval_email("another-run", "x@example.com", 1)];
    assert!(matches!(
        store.commit(bad).await,
        Err(StoreError::Invalid(_))
    ));

    let scope = DeliveryScope {
        run_id: Some(run.id.clone()),
        step: None,
    };
    let lease = Duration::from_secs(60);
    let claimed = ok(
        store.claim_deliveries(&scope, "w1", lease, 10).await,
        "claim",
    );
    assert_eq!(claimed.len(), 2);
    assert!(
        claimed
            .iter()
            .all(|d| d.status == DeliveryStatus::Sending && d.attempts == 1)
    );
    // Claimed rows are not claimed twice while the lease holds.
    assert!(
        ok(
            store.claim_deliveries(&scope, "w2", lease, 10).await,
            "claim 2"
        )
        .is_empty()
    );

    let (a, b) = (&claimed[0], &claimed[1]);
    // A transient failure: pending again, due in the past so claimable now.
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    assert!(ok(
        store
            .finish_delivery(
                a.id,
                "w1",
                DeliveryOutcome::Retry {
                    error: "421 busy".into(),
                    at: past
                }
            )
            .await,
        "retry"
    ));
    // Only the owner of a claim may record a failure.
    assert!(!ok(
        store
            .finish_delivery(b.id, "w2", DeliveryOutcome::GaveUp { error: "x".into() })
            .await,
        "foreign give-up"
    ));
    assert!(ok(
        store.finish_delivery(b.id, "w1", sent("b")).await,
        "sent b"
    ));
    let reclaimed = ok(
        store.claim_deliveries(&scope, "w1", lease, 10).await,
        "reclaim",
    );
    assert_eq!(reclaimed.len(), 1);
    assert_eq!(reclaimed[0].id, a.id);
    assert_eq!(reclaimed[0].attempts, 2);
    assert_eq!(reclaimed[0].last_error.as_deref(), Some("421 busy"));
    assert!(ok(
        store
            .finish_delivery(
                a.id,
                "w1",
                DeliveryOutcome::GaveUp {
                    error: "550 no such user".into()
                }
            )
            .await,
        "give up"
    ));

    // Sent is final: not claimable, not re-sent by queueing again, not re-marked.
    assert!(!ok(
        store.finish_delivery(b.id, "w1", sent("b2")).await,
        "sent twice"
    ));
    let after = ok(store.deliveries(&run.id).await, "deliveries");
    let b_row = after
        .iter()
        .find(|d| d.id == b.id)
        .unwrap_or_else(|| panic!("b"));
    assert_eq!(b_row.status, DeliveryStatus::Sent);
    assert_eq!(b_row.message_id.as_deref(), Some("<b@fleet>"));
    assert_eq!(b_row.response.as_deref(), Some("250 OK"));
    assert!(b_row.finished_at.is_some());
    let a_row = after
        .iter()
        .find(|d| d.id == a.id)
        .unwrap_or_else(|| panic!("a"));
    assert_eq!(a_row.status, DeliveryStatus::Failed);

    // Queueing both again revives only the one that gave up.
    let revived = ok(
        store
            .enqueue_deliveries(vec![
                approval_email(&run.id, "owner@example.com", 1),
                approval_email(&run.id, "second@example.com", 1),
            ])
            .await,
        "revive",
    );
    assert_eq!(revived, 1);
    let claimed = ok(
        store.claim_deliveries(&scope, "w1", lease, 10).await,
        "claim revived",
    );
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, a.id);
    assert_eq!(claimed[0].attempts, 1);

    // A sender that died: its lease expires and another claims the row. The
    // first sender's late failure is ignored; a late success still counts.
    assert!(ok(
        store
            .finish_delivery(
                a.id,
                "w1",
                DeliveryOutcome::Retry {
                    error: "timeout".into(),
                    at: past
                }
            )
            .await,
        "retry"
    ));
    let short = Duration::from_millis(50);
    assert_eq!(
        ok(
            store.claim_deliveries(&scope, "dead", short, 10).await,
            "claim"
        )
        .len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    let taken = ok(
        store.claim_deliveries(&scope, "alive", lease, 10).await,
        "take over",
    );
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 3);
    assert!(!ok(
        store
            .finish_delivery(
                a.id,
                "dead",
                DeliveryOutcome::Retry {
                    error: "late".into(),
                    at: past
                }
            )
            .await,
        "late failure"
    ));
    assert!(ok(
        store.finish_delivery(a.id, "dead", sent("a")).await,
        "late success"
    ));
    assert!(!ok(
        store.finish_delivery(a.id, "alive", sent("a")).await,
        "second success"
    ));

    let events = ok(store.events(Some(&run.id)).await, "events");
    let sent_events: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "delivery.sent")
        .collect();
    assert_eq!(sent_events.len(), 2);
    assert!(
        sent_events
            .iter()
            .any(|e| e.payload["message_id"] == "<a@fleet>"
                && e.payload["recipient"] == "owner@example.com")
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "delivery.failed" && e.payload["final"] == true)
            .count(),
        1
    );
    assert!(ok(store.verify_audit().await, "verify").is_ok());
}

/// Lease changes committed with a transition: a taken lease blocks another
/// owner until released, a release by a non-owner does nothing, a take
/// overwrites whoever held the lease, and a transition that fails its CAS
/// changes no lease.
pub async fn transition_leases(store: &dyn Store) {
    let long = Duration::from_secs(60);
    let take = |step: &str, owner: &str| LeaseChange::Take {
        step: step.into(),
        owner: owner.into(),
        ttl: long,
    };
    let release = |step: &str, owner: &str| LeaseChange::Release {
        step: step.into(),
        owner: owner.into(),
    };
    let run = new_run(store, "lease-run", "release-gate", None).await;
    let id = run.id.clone();

    let mut t = Transition::new(&run, run.state.clone());
    t.leases.push(take("readiness", "worker-a"));
    let run = ok(store.commit(t).await, "take").0;
    assert!(!ok(
        store.claim_lease(&id, "readiness", "worker-b", long).await,
        "claim taken lease"
    ));
    assert!(ok(
        store.renew_lease(&id, "readiness", "worker-a", long).await,
        "renew own lease"
    ));

    // Released by someone who does not hold it: nothing changes.
    let mut t = Transition::new(&run, run.state.clone());
    t.leases.push(release("readiness", "worker-b"));
    let run = ok(store.commit(t).await, "foreign release").0;
    assert!(!ok(
        store.claim_lease(&id, "readiness", "worker-b", long).await,
        "still a's"
    ));

    // A transition that loses its compare-and-swap changes no lease.
    let mut stale = Transition::new(&run, run.state.clone());
    stale.expected_version = run.version - 1;
    stale.leases = vec![
        release("readiness", "worker-a"),
        take("risk-review", "worker-c"),
    ];
    let lost = store.commit(stale).await;
    assert!(matches!(lost, Err(StoreError::Conflict { .. })), "{lost:?}");
    assert!(!ok(
        store.claim_lease(&id, "readiness", "worker-b", long).await,
        "still a's after the lost CAS"
    ));
    assert!(!ok(
        store
            .renew_lease(&id, "risk-review", "worker-c", long)
            .await,
        "c never got risk-review"
    ));

    // Released by its owner: free for another.
    let mut t = Transition::new(&run, run.state.clone());
    t.leases.push(release("readiness", "worker-a"));
    let run = ok(store.commit(t).await, "own release").0;
    assert!(ok(
        store.claim_lease(&id, "readiness", "worker-b", long).await,
        "claim after release"
    ));

    // A take overwrites whoever holds the lease.
    let mut t = Transition::new(&run, run.state.clone());
    t.leases.push(take("readiness", "worker-a"));
    let run = ok(store.commit(t).await, "take over").0;
    assert!(!ok(
        store.renew_lease(&id, "readiness", "worker-b", long).await,
        "b lost it"
    ));
    assert!(ok(
        store.renew_lease(&id, "readiness", "worker-a", long).await,
        "a holds it"
    ));

    // A lease on a step the run does not have is refused, and nothing is written.
    let mut t = Transition::new(&run, run.state.clone());
    t.leases.push(take("no-such-step", "worker-a"));
    let bad = store.commit(t).await;
    assert!(matches!(bad, Err(StoreError::Invalid(_))), "{bad:?}");
    assert_eq!(ok(store.get_run(&id).await, "get").version, run.version);
}

/// 32 tasks each commit 50 transitions to their own run at once: every
/// commit lands, in order, and the audit chain verifies.
pub async fn concurrent_commits_all_land(store: Arc<dyn Store>) {
    const TASKS: usize = 32;
    const COMMITS: usize = 50;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let g = genflow("nightly");
            let mut run = store
                .create_run(NewRun {
                    id: format!("many-{task:02}"),
                    state: RunState::new(&g, None),
                    genflow: g,
                    triggered_by: None,
                })
                .await?;
            for n in 0..COMMITS {
                let mut t = Transition::new(&run, run.state.clone());
                t.events.push(NewEvent {
                    kind: "test.tick".into(),
                    payload: json!({"task": task, "n": n}),
                });
                t.durable = n % 10 == 0;
                run = store.commit(t).await?.0;
            }
            Ok::<RunRecord, StoreError>(run)
        }));
    }
    for task in tasks {
        let run = match task.await {
            Ok(Ok(run)) => run,
            Ok(Err(e)) => panic!("task failed: {e}"),
            Err(e) => panic!("task panicked: {e}"),
        };
        assert_eq!(run.version, 1 + COMMITS as i64);
        let stored = ok(store.get_run(&run.id).await, "get");
        assert_eq!(stored.version, 1 + COMMITS as i64);
        let ticks: Vec<i64> = ok(store.events(Some(&run.id)).await, "events")
            .iter()
            .filter(|e| e.kind == "test.tick")
            .filter_map(|e| e.payload["n"].as_i64())
            .collect();
        assert_eq!(ticks, (0..COMMITS as i64).collect::<Vec<_>>());
    }
    let report = ok(store.verify_audit().await, "verify");
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.events_checked, (TASKS * (1 + COMMITS)) as u64);
}

/// Several transitions to the same run with the same expected version, sent
/// in one burst: exactly one lands, the others get `Conflict`, and the audit
/// chain verifies.
pub async fn same_version_burst_one_wins(store: Arc<dyn Store>, hold: &dyn HoldWrites) {
    const TASKS: usize = 8;
    let run = new_run(&*store, "burst-run", "nightly", None).await;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    hold.hold_writes();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (store, barrier, run) = (Arc::clone(&store), Arc::clone(&barrier), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut t = Transition::new(&run, run.state.clone());
            t.events.push(NewEvent {
                kind: "test.burst".into(),
                payload: json!({"task": task}),
            });
            t.durable = task == 0;
            barrier.wait().await;
            store.commit(t).await.map(|(r, _)| r.version)
        }));
    }
    let mut winners = Vec::new();
    for (task, handle) in tasks.into_iter().enumerate() {
        match handle.await.unwrap_or_else(|e| panic!("join: {e}")) {
            Ok(version) => {
                assert_eq!(version, run.version + 1);
                winners.push(task);
            }
            Err(StoreError::Conflict { run_id }) => assert_eq!(run_id, run.id),
            Err(e) => panic!("task {task}: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        ok(store.get_run(&run.id).await, "get").version,
        run.version + 1
    );
    let burst: Vec<_> = ok(store.events(Some(&run.id)).await, "events")
        .into_iter()
        .filter(|e| e.kind == "test.burst")
        .collect();
    assert_eq!(burst.len(), 1);
    assert_eq!(burst[0].payload["task"], json!(winners[0]));
    let report = ok(store.verify_audit().await, "verify");
    assert!(report.is_ok(), "{report:?}");
}

/// Failing requests sent in the same burst as good ones (a duplicate vote, a
/// stale version, an artifact for an unknown step) each get their own error
/// and roll back alone: their neighbours' commits all land.
pub async fn failing_requests_keep_neighbours(store: Arc<dyn Store>, hold: &dyn HoldWrites) {
    const GOOD: usize = 6;
    let gate = run_to_gate(&*store, "neighbour-gate", None).await;
    let mut t = Transition::new(&gate, gate.state.clone());
    t.decision = Some(decision("owner@example.com", Verdict::Go, false));
    t.durable = true;
    let gate = ok(store.commit(t).await, "first vote").0;
    let gate_events = ok(store.events(Some(&gate.id)).await, "events").len();
    let mut good = Vec::new();
    for i in 0..GOOD {
        good.push(new_run(&*store, &format!("neighbour-{i}"), "nightly", None).await);
    }

    let mut duplicate = Transition::new(&gate, gate.state.clone());
    duplicate.decision = Some(decision("OWNER@example.com", Verdict::Go, true));
    duplicate.durable = true;
    let mut stale = Transition::new(&gate, gate.state.clone());
    stale.expected_version = gate.version - 1;
    let mut unknown = Transition::new(&gate, gate.state.clone());
    unknown.artifacts.push(NewArtifact {
        step: "no-such-step".into(),
        path: "x.md".into(),
        bytes: b"x".to_vec(),
    });
    let mut failing: Vec<(String, Transition)> = vec![
        ("duplicate".into(), duplicate),
        ("stale".into(), stale),
        ("unknown".into(), unknown),
    ];
    // Good and failing requests interleaved: good, failing, good, failing, ...
    let mut burst = Vec::new();
    for (i, run) in good.iter().enumerate() {
        let mut t = Transition::new(run, run.state.clone());
        t.artifacts.push(NewArtifact {
            step: "digest".into(),
            path: "digest.md".into(),
            bytes: format!("digest {i}").into_bytes(),
        });
        t.events.push(NewEvent {
            kind: "test.neighbour".into(),
            payload: json!({"i": i}),
        });
        burst.push((format!("good-{i}"), t));
        if !failing.is_empty() {
            burst.push(failing.remove(0));
        }
    }

    let barrier = Arc::new(tokio::sync::Barrier::new(burst.len()));
    hold.hold_writes();
    let mut tasks = Vec::new();
    for (name, t) in burst {
        let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (name, store.commit(t).await)
        }));
    }
    for handle in tasks {
        let (name, result) = handle.await.unwrap_or_else(|e| panic!("join: {e}"));
        match name.as_str() {
            "duplicate" => assert!(
                matches!(result, Err(StoreError::DuplicateDecision { .. })),
                "{name}: {result:?}"
            ),
            "stale" => assert!(
                matches!(result, Err(StoreError::Conflict { .. })),
                "{name}: {result:?}"
            ),
            "unknown" => assert!(
                matches!(result, Err(StoreError::Invalid(_))),
                "{name}: {result:?}"
            ),
            _ => {
                let (run, written) = result.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(run.version, 2, "{name}");
                assert_eq!(written.len(), 1, "{name}");
            }
        }
    }

    // The failures wrote nothing...
    assert_eq!(
        ok(store.get_run(&gate.id).await, "get").version,
        gate.version
    );
    assert_eq!(ok(store.decisions(&gate.id).await, "decisions").len(), 1);
    assert_eq!(
        ok(store.events(Some(&gate.id)).await, "events").len(),
        gate_events
    );
    // ...and every neighbour's commit is there in full.
    for (i, run) in good.iter().enumerate() {
        assert_eq!(ok(store.get_run(&run.id).await, "get").version, 2);
        let artifacts = ok(store.artifacts(&run.id).await, "artifacts");
        assert_eq!(artifacts.len(), 1);
        assert_eq!(
            ok(store.artifact_bytes(&artifacts[0].sha256).await, "bytes"),
            Some(format!("digest {i}").into_bytes())
        );
        let events = ok(store.events(Some(&run.id)).await, "events");
        assert!(events.iter().any(|e| e.kind == "test.neighbour"));
    }
    let report = ok(store.verify_audit().await, "verify");
    assert!(report.is_ok(), "{report:?}");
}

/// `create_run_with`: the run and its first transition land together, in
/// the audit log in order; a bad first transition or a taken id writes nothing.
pub async fn create_with_first_transition_is_atomic(store: &dyn Store) {
    let g = genflow("release-gate");
    let state = RunState::new(&g, Some("dev@example.com".into()));
    let new = |id: &str| NewRun {
        id: id.into(),
        genflow: g.clone(),
        triggered_by: Some("dev@example.com".into()),
        state: state.clone(),
    };
    let (started, _) = advance(&g, &state, &Event::Start).unwrap_or_else(|r| panic!("{r}"));
    let first = |id: &str, version: i64| Transition {
        run_id: id.into(),
        expected_version: version,
        state: started.clone(),
        artifacts: Vec::new(),
        step_run: None,
        decision: None,
        events: vec![fleet_store::NewEvent {
            kind: "engine.start".into(),
            payload: json!({"event": "start"}),
        }],
        durable: false,
        outbox: Vec::new(),
        leases: Vec::new(),
        blobs: Vec::new(),
    };

    let (run, _) = ok(
        store.create_run_with(new("cw-1"), first("cw-1", 1)).await,
        "create_run_with",
    );
    assert_eq!(run.version, 2);
    assert_eq!(run.state, started);
    assert_eq!(ok(store.get_run("cw-1").await, "get").state, started);
    let kinds: Vec<String> = ok(store.events(Some("cw-1")).await, "events")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("run.created"));
    assert_eq!(kinds.last().map(String::as_str), Some("engine.start"));
    assert!(kinds.iter().any(|k| k == "step.status"), "{kinds:?}");

    // A first transition for another version or run is refused; no run appears.
    for bad in [first("cw-2", 2), first("other", 1)] {
        let err = store.create_run_with(new("cw-2"), bad).await;
        assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    }
    assert!(matches!(
        store.get_run("cw-2").await,
        Err(StoreError::NotFound(_))
    ));

    // A taken id: AlreadyExists, and the existing run is untouched.
    let events_before = ok(store.events(None).await, "events").len();
    let err = store.create_run_with(new("cw-1"), first("cw-1", 1)).await;
    assert!(matches!(err, Err(StoreError::AlreadyExists(_))), "{err:?}");
    assert_eq!(ok(store.get_run("cw-1").await, "get").version, 2);
    assert_eq!(ok(store.events(None).await, "events").len(), events_before);
    assert!(ok(store.verify_audit().await, "verify").is_ok());
}

/// The queue of runnable steps: a Ready step is claimed once; a live lease
/// (taken by the step's start) blocks claims until it lapses; claims can be
/// limited to one run; a run that ended leaves the queue.
pub async fn claims_take_each_runnable_step_once(store: &dyn Store) {
    let ttl = Duration::from_secs(60);
    assert!(ok(store.claim_steps("w1", ttl, 10, None).await, "claim").is_empty());
    let a = new_run(store, "queue-a", "release-gate", None).await;
    let a = step(store, &a, Event::Start).await;
    let b = new_run(store, "queue-b", "release-gate", None).await;
    let b = step(store, &b, Event::Start).await;

    let only_b = ok(
        store.claim_steps("w1", ttl, 10, Some("queue-b")).await,
        "claim b",
    );
    assert_eq!(
        only_b,
        vec![fleet_store::StepClaim {
            run_id: "queue-b".into(),
            step: "readiness".into()
        }]
    );
    let rest = ok(store.claim_steps("w2", ttl, 10, None).await, "claim rest");
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0].run_id, "queue-a");
    assert!(
        ok(store.claim_steps("w3", ttl, 10, None).await, "claim again").is_empty(),
        "claimed steps are not claimed twice while their leases live"
    );

    // A step started under a short lease by a worker that then died.
    let (state, _) = advance(&a.definition, &a.state, &Event::StepStarted { step: 0 })
        .unwrap_or_else(|r| panic!("{r}"));
    let mut t = Transition::new(&a, state);
    t.leases = vec![LeaseChange::Take {
        step: "readiness".into(),
        owner: "w2".into(),
        ttl: Duration::from_millis(50),
    }];
    let a = ok(store.commit(t).await, "start a").0;
    tokio::time::sleep(Duration::from_millis(120)).await;
    let taken_over = ok(store.claim_steps("w4", ttl, 10, None).await, "take over");
    assert_eq!(taken_over.len(), 1, "{taken_over:?}");
    assert_eq!(
        (taken_over[0].run_id.as_str(), taken_over[0].step.as_str()),
        ("queue-a", "readiness")
    );

    // Ended runs leave the queue: nothing of them is ever claimed again.
    step(store, &a, Event::Cancel).await;
    step(store, &b, Event::Cancel).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let short = Duration::from_millis(1);
    assert!(ok(store.claim_steps("w5", short, 10, None).await, "claim").is_empty());
}

/// A result that makes a step Ready and takes its lease in the same commit
/// hands the step to the committing worker: no claim takes it from the
/// queue while the lease lives, not even the worker's own (it runs the step
/// without one), and a claim takes it once the lease is given back.
pub async fn a_result_hands_the_next_step_to_its_worker(store: &dyn Store) {
    let ttl = Duration::from_secs(60);
    let run = new_run(store, "hand-off", "release-gate", None).await;
    let run = step(store, &run, Event::Start).await;
    let claimed = ok(
        store.claim_steps("w1", ttl, 10, Some("hand-off")).await,
        "claim",
    );
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let run = step(store, &run, Event::StepStarted { step: 0 }).await;
    let flags = fleet_core::flags::FlagCounts::NONE;
    let (state, _) = advance(
        &run.definition,
        &run.state,
        &Event::StepSucceeded { step: 0, flags },
    )
    .unwrap_or_else(|r| panic!("{r}"));
    let mut t = Transition::new(&run, state);
    t.leases = vec![
        LeaseChange::Release {
            step: "readiness".into(),
            owner: "w1".into(),
        },
        LeaseChange::Take {
            step: "risk-review".into(),
            owner: "w1".into(),
            ttl,
        },
    ];
    let run = ok(store.commit(t).await, "result with hand-off").0;
    assert_eq!(run.state.steps[1].status, StepStatus::Ready);
    for owner in ["w1", "w2"] {
        let claimed = ok(store.claim_steps(owner, ttl, 10, None).await, "claim");
        assert!(
            claimed.is_empty(),
            "{owner} claimed a handed-off step: {claimed:?}"
        );
    }
    assert!(!ok(
        store
            .claim_lease("hand-off", "risk-review", "w2", ttl)
            .await,
        "another worker's claim of the lease"
    ));
    ok(
        store.release_lease("hand-off", "risk-review", "w1").await,
        "give it back",
    );
    let claimed = ok(
        store.claim_steps("w2", ttl, 10, None).await,
        "claim after release",
    );
    assert_eq!(
        claimed,
        vec![fleet_store::StepClaim {
            run_id: "hand-off".into(),
            step: "risk-review".into()
        }]
    );
}

/// Keyset pages: each run once, in listing order, with and without a filter.
pub async fn keyset_pages_list_each_run_once(store: &dyn Store) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = format!("page-{i}");
        let run = new_run(store, &id, "release-gate", None).await;
        if i % 2 == 0 {
            step(store, &run, Event::Start).await;
        } else {
            step(store, &run, Event::Cancel).await;
        }
        ids.push(id);
        // Distinct creation times, so the order is the creation order.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for status in [None, Some(RunStatus::Cancelled)] {
        let all = ok(
            store
                .list_runs(&RunFilter {
                    status,
                    ..RunFilter::default()
                })
                .await,
            "list",
        );
        let mut paged = Vec::new();
        let mut before = None;
        loop {
            let page = ok(
                store
                    .list_runs(&RunFilter {
                        status,
                        limit: Some(2),
                        before: before.clone(),
                        ..RunFilter::default()
                    })
                    .await,
                "page",
            );
            let versions = ok(
                store
                    .run_versions(&RunFilter {
                        status,
                        limit: Some(2),
                        before: before.clone(),
                        ..RunFilter::default()
                    })
                    .await,
                "versions",
            );
            assert_eq!(
                versions.iter().map(|v| v.0.clone()).collect::<Vec<_>>(),
                page.iter().map(|r| r.id.clone()).collect::<Vec<_>>()
            );
            let Some(last) = page.last() else { break };
            before = Some(fleet_store::RunCursor::after(last));
            paged.extend(page.iter().map(|r| r.id.clone()));
        }
        let all: Vec<String> = all.iter().map(|r| r.id.clone()).collect();
        assert_eq!(paged, all, "status {status:?}");
        let expected = if status.is_some() { 2 } else { 5 };
        assert_eq!(all.len(), expected, "{all:?}");
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let listed: Vec<String> = ok(store.list_runs(&RunFilter::default()).await, "list")
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(listed, newest_first);
}

/// A commit is announced to subscribers; with nothing committed, `next`
/// returns None after its timeout.
pub async fn subscribers_hear_commits(store: &dyn Store) {
    let mut sub = ok(store.subscribe().await, "subscribe");
    let quiet = std::time::Instant::now();
    loop {
        match ok(sub.next(Duration::from_millis(300)).await, "next") {
            None => break,
            // Notices of earlier commits may still arrive; then silence.
            Some(_) => assert!(quiet.elapsed() < Duration::from_secs(5)),
        }
    }
    let run = new_run(store, "heard-here", "release-gate", None).await;
    step(store, &run, Event::Start).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut heard = false;
    while std::time::Instant::now() < deadline && !heard {
        if let Some(fleet_store::Notice::Run(id, status)) =
            ok(sub.next(Duration::from_secs(1)).await, "next")
            && id == "heard-here"
        {
            // The notice names the status the commit left the run in.
            assert_eq!(status, Some(fleet_core::run::RunStatus::Running));
            heard = true;
        }
    }
    assert!(heard, "the commit of run heard-here was announced");
}

/// Ids, names, kinds and payload strings with the characters JSON escapes
/// (and some it does not): every stored hash is the one verification
/// computes. On PostgreSQL the database computes them (`fleet_append`), so
/// this holds its escaping equal to serde_json's.
pub async fn awkward_strings_chain_alike(store: &dyn Store) {
    let awkward = "q\"uote \\ back/slash\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é 日本 🚀";
    let id = format!("run {awkward}");
    let run = new_run(store, &id, "release-gate", Some(awkward)).await;
    let (state, _) =
        advance(&run.definition, &run.state, &Event::Start).unwrap_or_else(|r| panic!("{r}"));
    let mut t = Transition::new(&run, state);
    t.events.push(NewEvent {
        kind: format!("note.{awkward}"),
        payload: json!({ awkward: awkward, "n": [1, 2.5, -0.0, 1e21], "nested": { "z": null, "a": true } }),
    });
    ok(store.commit(t).await, "commit");
    let events = ok(store.events(Some(&id)).await, "events");
    assert!(
        events.iter().any(|e| e.kind == format!("note.{awkward}")),
        "the awkward event is stored as given"
    );
    let report = ok(store.verify_audit().await, "verify");
    assert!(report.is_ok(), "{report:?}");
}
