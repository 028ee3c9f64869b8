//! A database that drops out while a step reads from it is not the step's
//! failure: the step stays as it was, its lease is let go, and it is executed
//! again once the database answers, so the run still succeeds. Found by
//! bench/faults: with `pg_terminate_backend` under the workers, a run
//! behind a Go once ended `failed` because the announce step's one read of
//! the decisions met a dropped connection.
//!
//! The store here is real SQLite behind a wrapper that answers exactly one
//! read with `StoreError::Unavailable` (what the PostgreSQL store returns
//! for a lost connection; `fleet-store`'s own test terminates a backend to
//! show that), at the moment bench/faults hit: the announce step running.

use async_trait::async_trait;
use fleet_core::run::{RunStatus, StepStatus, Verdict};
use fleet_engine::{DecisionRequest, Engine, Quiet, Settings};
use fleet_store::*;
use jiff::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const CONFIG: &str = r#"
genflows:
  - name: release-gate
    steps:
      - {name: readiness, prompt: "Assemble the report.", corpus: ["docs/*.md"], kind: report, out: readiness.md}
      - name: go-no-go
        kind: approval
        depends_on: [readiness]
        question: "Ship it?"
        approvers: [owner@example.com]
        out: decision.md
      - {name: announce, depends_on: [go-no-go, readiness], kind: notify, out: sent.md}
"#;

/// Delegates to `inner`, except that `decisions` fails with `Unavailable`
/// the first time it is asked once the run's `announce` step may run (it
/// has nothing to deliver, so its start commits with its result: it is
/// executing while Ready).
struct DropsOut {
    inner: Arc<dyn Store>,
    dropped: AtomicU32,
}

impl DropsOut {
    async fn announcing(&self, run_id: &str) -> Result<bool, StoreError> {
        let run = self.inner.get_run(run_id).await?;
        let idx = run
            .definition
            .step_index("announce")
            .expect("announce step");
        Ok(matches!(
            run.state.steps[idx].status,
            StepStatus::Ready | StepStatus::Running
        ))
    }
}

#[async_trait]
impl Store for DropsOut {
    async fn decisions(&self, run_id: &str) -> Result<Vec<DecisionRecord>, StoreError> {
        if self.announcing(run_id).await? && self.dropped.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(StoreError::Unavailable(
                "loading decisions: connection closed".into(),
            ));
        }
        self.inner.decisions(run_id).await
    }

    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError> {
        self.inner.create_run(run).await
    }
    async fn create_run_with(
        &self,
        run: NewRun,
        first: Transition,
    ) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
        self.inner.create_run_with(run, first).await
    }
    async fn get_run(&self, id: &str) -> Result<RunRecord, StoreError> {
        self.inner.get_run(id).await
    }
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.list_runs(filter).await
    }
    async fn run_versions(&self, filter: &RunFilter) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.run_versions(filter).await
    }
    async fn run_version(&self, id: &str) -> Result<i64, StoreError> {
        self.inner.run_version(id).await
    }
    async fn change_stamp(&self) -> Result<Option<u64>, StoreError> {
        self.inner.change_stamp().await
    }
    async fn unfinished_runs(&self) -> Result<Vec<String>, StoreError> {
        self.inner.unfinished_runs().await
    }
    async fn claim_steps(
        &self,
        owner: &str,
        ttl: Duration,
        limit: u32,
        run_id: Option<&str>,
    ) -> Result<Vec<StepClaim>, StoreError> {
        self.inner.claim_steps(owner, ttl, limit, run_id).await
    }
    async fn subscribe(&self) -> Result<Box<dyn Subscription>, StoreError> {
        self.inner.subscribe().await
    }
    async fn subscribe_work(&self) -> Result<Box<dyn Subscription>, StoreError> {
        self.inner.subscribe_work().await
    }
    async fn commit(&self, t: Transition) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
        self.inner.commit(t).await
    }
    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRef>, StoreError> {
        self.inner.artifacts(run_id).await
    }
    async fn artifact_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.artifact_bytes(sha256).await
    }
    async fn content_totals(&self) -> Result<ContentTotals, StoreError> {
        self.inner.content_totals().await
    }
    async fn step_runs(&self, run_id: &str) -> Result<Vec<StepRun>, StoreError> {
        self.inner.step_runs(run_id).await
    }
    async fn events(&self, run_id: Option<&str>) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.events(run_id).await
    }
    async fn chain_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        self.inner.chain_head().await
    }
    async fn append_events(
        &self,
        events: Vec<NewEvent>,
    ) -> Result<Option<(i64, String)>, StoreError> {
        self.inner.append_events(events).await
    }
    async fn events_of_kind(
        &self,
        kind: &str,
        newest: Option<u32>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.events_of_kind(kind, newest).await
    }
    async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        self.inner.verify_audit().await
    }
    async fn claim_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.claim_lease(run_id, step, owner, ttl).await
    }
    async fn renew_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.renew_lease(run_id, step, owner, ttl).await
    }
    async fn release_lease(&self, run_id: &str, step: &str, owner: &str) -> Result<(), StoreError> {
        self.inner.release_lease(run_id, step, owner).await
    }
    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        self.inner.schedules().await
    }
    async fn ensure_schedule(
        &self,
        genflow: &str,
        cron: &str,
        next_due: Timestamp,
    ) -> Result<ScheduleRecord, StoreError> {
        self.inner.ensure_schedule(genflow, cron, next_due).await
    }
    async fn claim_schedule(
        &self,
        genflow: &str,
        due: Timestamp,
        next_due: Timestamp,
        run_id: &str,
    ) -> Result<bool, StoreError> {
        self.inner
            .claim_schedule(genflow, due, next_due, run_id)
            .await
    }
    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats().await
    }
    async fn enqueue_deliveries(&self, deliveries: Vec<NewDelivery>) -> Result<u64, StoreError> {
        self.inner.enqueue_deliveries(deliveries).await
    }
    async fn claim_deliveries(
        &self,
        scope: &DeliveryScope,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner
            .claim_deliveries(scope, owner, lease, limit)
            .await
    }
    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        self.inner.finish_delivery(id, owner, outcome).await
    }
    async fn deliveries(&self, run_id: &str) -> Result<Vec<Delivery>, StoreError> {
        self.inner.deliveries(run_id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_meets_an_unavailable_database_runs_again_instead_of_failing() {
    let ws = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = ws.path();
    std::fs::create_dir_all(root.join(".fleet")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::create_dir_all(root.join("docs")).unwrap_or_else(|e| panic!("mkdir: {e}"));
    std::fs::write(root.join("docs/plan.md"), "# Plan\n\n- [ ] smoke test\n")
        .unwrap_or_else(|e| panic!("doc: {e}"));
    let checked = fleet_core::config::check_str(CONFIG);
    let Some(config) = checked.config else {
        panic!("config invalid: {:?}", checked.diagnostics);
    };
    let sqlite = SqliteStore::open(&root.join(".fleet/fleet.db"))
        .await
        .unwrap_or_else(|e| panic!("store: {e}"));
    let store = Arc::new(DropsOut {
        inner: Arc::new(sqlite),
        dropped: AtomicU32::new(0),
    });
    let engine = Engine::new(
        store.clone(),
        Arc::new(config),
        Settings::new(root.to_path_buf()),
    );

    let run = engine
        .start_run("release-gate", Some("ci@example.com".into()))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let run = engine
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive: {e}"));
    assert_eq!(run.state.status, RunStatus::Waiting);
    engine
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
    // Carrying the run on meets the dropped connection: reported to the
    // caller (a worker releases its claim), not recorded as the step's.
    let driven = engine.drive(&run.id, &Quiet).await;
    assert_eq!(
        store.dropped.load(Ordering::SeqCst),
        1,
        "the read was not reached"
    );
    match driven {
        Err(e) => assert!(e.to_string().contains("unavailable"), "{e}"),
        Ok(run) => panic!("the drive went on past the failed read: {:?}", run.state),
    }
    let run = engine
        .store()
        .get_run(&run.id)
        .await
        .unwrap_or_else(|e| panic!("get: {e}"));
    assert_eq!(run.state.status, RunStatus::Running, "{:?}", run.state);
    let announce = run.definition.step_index("announce").expect("announce");
    // Not failed: it may run again (it never committed its start).
    assert_eq!(run.state.steps[announce].status, StepStatus::Ready);

    // Driven again (what a worker does once it claims the step), the step
    // is executed again, in the same attempt, and the run succeeds.
    let run = engine
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive again: {e}"));
    assert_eq!(run.state.status, RunStatus::Succeeded, "{:?}", run.state);
    assert_eq!(run.state.steps[announce].attempt, 1);
    let events = engine
        .store()
        .events(Some(&run.id))
        .await
        .unwrap_or_else(|e| panic!("events: {e}"));
    assert!(
        !events
            .iter()
            .any(|e| e.payload["status"] == "failed" || e.kind.contains("failed")),
        "a failure was recorded: {events:#?}"
    );
    let report = engine
        .store()
        .verify_audit()
        .await
        .unwrap_or_else(|e| panic!("verify: {e}"));
    assert!(report.is_ok(), "{report:?}");
}
