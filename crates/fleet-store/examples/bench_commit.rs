//! Commit throughput on a file database: `synchronous=NORMAL` (step
//! transitions) versus FULL (decisions, deliveries), one commit at a time,
//! then 1 and 16 tasks committing concurrently (each to its own run, on a
//! multi-thread runtime), which is where group commit shows.
//!
//! cargo run -p fleet-store --release --example bench_commit [-- COMMITS]

use fleet_core::config::Genflow;
use fleet_core::run::RunState;
use fleet_store::{NewArtifact, NewEvent, NewRun, RunRecord, SqliteStore, Store, Transition};
use std::sync::Arc;
use std::time::Instant;

const GENFLOW: &str = r#"
genflows:
  - name: bench
    steps:
      - {name: report, prompt: "p", corpus: ["*.md"], kind: report}
"#;

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn new_run(store: &dyn Store, genflow: &Genflow) -> Result<RunRecord, Error> {
    Ok(store
        .create_run(NewRun {
            id: fleet_store::new_run_id(),
            state: RunState::new(genflow, None),
            genflow: genflow.clone(),
            triggered_by: None,
        })
        .await?)
}

fn tick(run: &RunRecord, i: usize, durable: bool) -> Transition {
    let mut t = Transition::new(run, run.state.clone());
    t.durable = durable;
    t.events.push(NewEvent {
        kind: "bench.tick".into(),
        payload: serde_json::json!({ "i": i }),
    });
    t
}

fn print_rate(label: &str, commits: usize, secs: f64) {
    println!(
        "{label:<42} {:>9.0} commits/s ({:.1} µs each)",
        commits as f64 / secs,
        secs * 1e6 / commits as f64
    );
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let commits: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 2000,
    };
    let checked = fleet_core::config::check_str(GENFLOW);
    let genflow = checked
        .config
        .and_then(|c| c.genflows.into_iter().next())
        .ok_or("bench genflow is invalid")?;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).await?);
    let mut run = new_run(&*store, &genflow).await?;
    println!(
        "{commits} commits each, file database in {}",
        dir.path().display()
    );
    for (label, durable, artifact) in [
        ("NORMAL, state + 1 event", false, false),
        ("NORMAL, state + 1 event + 4 KiB artifact", false, true),
        ("FULL,   state + 1 event", true, false),
    ] {
        let started = Instant::now();
        for i in 0..commits {
            let mut t = tick(&run, i, durable);
            if artifact {
                let mut bytes = vec![b'x'; 4096];
                bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
                t.artifacts.push(NewArtifact {
                    step: "report".into(),
                    path: "report.md".into(),
                    bytes,
                });
            }
            run = store.commit(t).await?.0;
        }
        print_rate(label, commits, started.elapsed().as_secs_f64());
    }

    // N committers at once, each to its own run: commits from different
    // tasks can share a transaction (and, for FULL, one fsync).
    for (sync, durable) in [("NORMAL", false), ("FULL", true)] {
        for committers in [1usize, 16] {
            let per_task = (commits / committers).max(1);
            let mut runs = Vec::with_capacity(committers);
            for _ in 0..committers {
                runs.push(new_run(&*store, &genflow).await?);
            }
            let started = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for mut run in runs {
                let store = Arc::clone(&store);
                tasks.spawn(async move {
                    for i in 0..per_task {
                        run = store.commit(tick(&run, i, durable)).await?.0;
                    }
                    Ok::<(), fleet_store::StoreError>(())
                });
            }
            while let Some(done) = tasks.join_next().await {
                done??;
            }
            let label = format!("{sync:<6}, {committers:>2} concurrent committers");
            print_rate(
                &label,
                per_task * committers,
                started.elapsed().as_secs_f64(),
            );
        }
    }

    let started = Instant::now();
    let report = store.verify_audit().await?;
    println!(
        "verify_audit: {} events, {} artifacts in {:.1} ms ({})",
        report.events_checked,
        report.artifacts_checked,
        started.elapsed().as_secs_f64() * 1e3,
        report.first_problem.as_deref().unwrap_or("ok")
    );
    Ok(())
}
