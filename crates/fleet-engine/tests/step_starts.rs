//! How a step's start is committed (see `src/drive.rs`): a quick model
//! step commits its start with its result, one transition, and a slow one
//! commits its start on its own, so it shows as running; a worker's
//! result leases the steps it makes Ready, so the worker runs them without
//! claiming them from the queue.

use fleet_core::run::{RunStatus, Verdict};
use fleet_engine::{DecisionRequest, Engine, Quiet, Settings, WorkerOptions, run_worker};
use fleet_store::{AuditEvent, SqliteStore};
use std::sync::Arc;
use std::time::Duration;

const CONFIG: &str = r#"
genflows:
  - name: gate
    steps:
      - {name: readiness, prompt: "Assemble the report.", corpus: ["docs/*.md"], kind: report, out: readiness.md}
      - {name: risk-review, prompt: "Review it.", depends_on: [readiness], kind: review, out: risks.md}
      - name: go-no-go
        kind: approval
        depends_on: [readiness, risk-review]
        question: "Ship it?"
        approvers: [owner@example.com]
        out: decision.md
      - {name: announce, depends_on: [go-no-go], kind: notify, out: sent.md}
  - name: slow
    steps:
      - {name: readiness, prompt: "Assemble the report.", corpus: ["docs/*.md"], sources: [{name: ci, command: "sleep 1.6; echo CI green"}], kind: report, out: readiness.md}
      - name: go-no-go
        kind: approval
        depends_on: [readiness]
        question: "Ship it?"
        approvers: [owner@example.com]
        out: decision.md
"#;

struct Workspace {
    _dir: tempfile::TempDir,
    engine: Arc<Engine>,
}

async fn workspace() -> Workspace {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = dir.path();
    std::fs::create_dir_all(root.join(".fleet")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::create_dir_all(root.join("docs")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(root.join("docs/plan.md"), "# Plan\n\n- [ ] smoke test\n")
        .unwrap_or_else(|e| panic!("doc: {e}"));
    let checked = fleet_core::config::check_str(CONFIG);
    let Some(config) = checked.config else {
        panic!("config invalid: {:?}", checked.diagnostics);
    };
    let store = SqliteStore::open(&root.join(".fleet/fleet.db"))
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    let engine = Engine::new(
        Arc::new(store),
        Arc::new(config),
        Settings::new(root.to_path_buf()),
    );
    Workspace {
        _dir: dir,
        engine: Arc::new(engine),
    }
}

impl Workspace {
    /// The audit events of run `id`.
    async fn events(&self, id: &str) -> Vec<AuditEvent> {
        self.engine
            .store()
            .events(Some(id))
            .await
            .unwrap_or_else(|e| panic!("events: {e}"))
    }
}

/// The `step.status` events of `step`, as (status, time).
fn statuses(events: &[AuditEvent], step: &str) -> Vec<(String, jiff::Timestamp)> {
    events
        .iter()
        .filter(|e| e.kind == "step.status" && e.payload["step"] == step)
        .map(|e| (e.payload["status"].as_str().unwrap_or("").to_owned(), e.at))
        .collect()
}

fn started_event<'a>(events: &'a [AuditEvent], step: &str) -> &'a AuditEvent {
    events
        .iter()
        .find(|e| e.kind == "engine.step_started" && e.payload["step"] == step)
        .unwrap_or_else(|| panic!("no engine.step_started for {step}"))
}

#[tokio::test]
async fn a_quick_model_step_commits_its_start_with_its_result() {
    let ws = workspace().await;
    let run = ws
        .engine
        .start_run("gate", None)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let before = run.version;
    let run = ws
        .engine
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive: {e}"));
    assert_eq!(run.state.status, RunStatus::Waiting);
    // Two model steps, one transition each.
    assert_eq!(run.version, before + 2, "{:?}", run.state);
    let events = ws.events(&run.id).await;
    for step in ["readiness", "risk-review"] {
        let seen = statuses(&events, step);
        let names: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
        // Never stored as running: it went from ready to succeeded at once.
        assert_eq!(names, ["ready", "succeeded"], "{step}");
        // The start is still recorded, with its attempt, in the same commit.
        let started = started_event(&events, step);
        assert_eq!(started.payload["attempt"], 1, "{step}");
        assert_eq!(
            started.at, seen[1].1,
            "{step}: start and result committed apart"
        );
    }
    let records = ws
        .engine
        .store()
        .step_runs(&run.id)
        .await
        .unwrap_or_else(|e| panic!("step runs: {e}"));
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.attempt == 1), "{records:?}");

    // A notify step with nothing to deliver starts with its result too.
    let decided = ws
        .engine
        .decide(DecisionRequest {
            run: run.id.clone(),
            step: None,
            approver: "owner@example.com".into(),
            verdict: Verdict::Go,
            reason: None,
            channel: "cli".into(),
            shown: None,
        })
        .await
        .unwrap_or_else(|e| panic!("decide: {e}"));
    let done = ws
        .engine
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive: {e}"));
    assert_eq!(done.state.status, RunStatus::Succeeded);
    assert_eq!(done.version, decided.version + 1);
    let events = ws.events(&run.id).await;
    let names: Vec<String> = statuses(&events, "announce")
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(names, ["ready", "succeeded"]);
}

#[tokio::test]
async fn a_slow_model_step_shows_as_running_while_it_executes() {
    let ws = workspace().await;
    let run = ws
        .engine
        .start_run("slow", None)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let engine = ws.engine.clone();
    let id = run.id.clone();
    let driving = tokio::spawn(async move { engine.drive(&id, &Quiet).await });
    // Seen running in the store while it executes, as the dashboard sees it.
    let mut seen_running = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let now = ws
            .engine
            .store()
            .get_run(&run.id)
            .await
            .unwrap_or_else(|e| panic!("get: {e}"));
        if now.state.steps[0].status == fleet_core::run::StepStatus::Running {
            seen_running = true;
            break;
        }
    }
    assert!(seen_running, "the slow step was never stored as running");
    let run = driving
        .await
        .unwrap_or_else(|e| panic!("join: {e}"))
        .unwrap_or_else(|e| panic!("drive: {e}"));
    assert_eq!(run.state.status, RunStatus::Waiting);
    let events = ws.events(&run.id).await;
    let seen = statuses(&events, "readiness");
    let names: Vec<&str> = seen.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(names, ["ready", "running", "succeeded"]);
    // Exactly one start recorded.
    let starts = events
        .iter()
        .filter(|e| e.kind == "engine.step_started")
        .count();
    assert_eq!(starts, 1);
}

#[tokio::test]
async fn a_worker_runs_the_steps_its_results_make_ready_without_claiming_them() {
    let ws = workspace().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let run = ws
            .engine
            .start_run("gate", None)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        ids.push(run.id);
    }
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(run_worker(
        ws.engine.clone(),
        WorkerOptions {
            concurrency: 4,
            poll: Duration::from_millis(100),
        },
        Arc::new(Quiet),
        Arc::new(|c, e| panic!("{} {}: {e}", c.run_id, c.step)),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    let store = ws.engine.store().clone();
    let mut waiting = 0;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        waiting = 0;
        for id in &ids {
            let run = store
                .get_run(id)
                .await
                .unwrap_or_else(|e| panic!("get: {e}"));
            waiting += usize::from(run.state.status == RunStatus::Waiting);
        }
        if waiting == ids.len() {
            break;
        }
    }
    assert_eq!(waiting, ids.len(), "runs reached their gates");
    // Another notice-and-poll round: nothing is left to claim.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = stop_tx.send(true);
    let report = worker
        .await
        .unwrap_or_else(|e| panic!("join: {e}"))
        .unwrap_or_else(|e| panic!("worker: {e}"));
    // Each run's first step was claimed; its review was handed over by the
    // report's result, never claimed from the queue.
    assert_eq!(report.claimed, ids.len() as u64, "{report:?}");
    assert_eq!(report.errors, 0);
}
