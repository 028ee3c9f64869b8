//! Commit throughput on a file database: `synchronous=NORMAL` (step
//! transitions) versus FULL (decisions, deliveries).
//!
//! cargo run -p fleet-store --release --example bench_commit [-- COMMITS]

use fleet_core::run::RunState;
use fleet_store::{NewArtifact, NewEvent, NewRun, SqliteStore, Store, Transition};
use std::time::Instant;

const GENFLOW: &str = r#"
genflows:
  - name: bench
    steps:
      - {name: report, prompt: "p", corpus: ["*.md"], kind: report}
"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
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
    let store = SqliteStore::open(&dir.path().join("bench.db")).await?;
    let mut run = store
        .create_run(NewRun {
            id: fleet_store::new_run_id(),
            state: RunState::new(&genflow, None),
            genflow,
            triggered_by: None,
        })
        .await?;
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
            let mut t = Transition::new(&run, run.state.clone());
            t.durable = durable;
            t.events.push(NewEvent {
                kind: "bench.tick".into(),
                payload: serde_json::json!({ "i": i }),
            });
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
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{label:<42} {:>9.0} commits/s ({:.1} µs each)",
            commits as f64 / secs,
            secs * 1e6 / commits as f64
        );
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
