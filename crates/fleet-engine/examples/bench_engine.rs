//! In-process throughput of the engine on SQLite: full release-gate runs
//! (report, review, gate, Go decision, notify) on the builtin model.
//!
//!     cargo run --release -p fleet-engine --example bench_engine -- [RUNS] [CONCURRENCY] [EXAMPLE_DIR]
//!
//! RUNS defaults to 1000, CONCURRENCY (runs in flight at once) to 64, as
//! a server or a CI fleet drives the engine (steps of different runs share
//! the store's group commits; `1` measures one run at a time); EXAMPLE_DIR
//! to the `fleet init` example in this repository.

// The same allocator as the `fleet` binary, so the numbers are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use fleet_core::run::Verdict;
use fleet_engine::{DecisionRequest, Engine, Quiet, Settings};
use fleet_store::{SqliteStore, Store};
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let concurrency: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(64)
        .max(1);
    let example = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fleet-cli/example/release-gate")
        });
    let text = std::fs::read_to_string(example.join(".fleet/config.yaml"))?;
    let config = fleet_core::config::check_str(&text)
        .config
        .ok_or("example config is invalid")?;
    let tmp = std::env::temp_dir().join(format!("fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&tmp.join("fleet.db")).await?);
    let mut settings = Settings::new(example.clone());
    settings.state_dir = tmp.clone();
    // Never beside the example: `fleet init` embeds that directory.
    settings.signing_key_file = tmp.join("signing.key");
    settings.write_files = std::env::var("BENCH_WRITE_FILES").is_ok();
    // The key goes with the scratch database, not into the example.
    settings.signing_key_file = tmp.join("signing.key");
    // `BENCH_CHECKPOINTS=off`: no checkpoints on the 1,000-event / 10-minute
    // cadence (those with each decision stay), to measure what they cost.
    if std::env::var("BENCH_CHECKPOINTS").is_ok_and(|v| v == "off") {
        settings.checkpoint_events = u64::MAX;
        settings.checkpoint_interval = std::time::Duration::from_secs(u64::MAX / 4);
    }
    let engine = Arc::new(Engine::new(store.clone(), Arc::new(config), settings));
    let approver: &'static str = "release-owner@example.com";

    // Warm up (page cache, SQLite statement cache).
    for _ in 0..10 {
        one_run(&engine, approver).await?;
    }
    let cpu_before = process_cpu_ms();
    let writer_before = thread_cpu_ms("fleet-store-wri");
    let t = Instant::now();
    let mut steps = 0;
    let mut started = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while started < runs || !tasks.is_empty() {
        while started < runs && tasks.len() < concurrency {
            let engine = engine.clone();
            tasks.spawn(async move { one_run(&engine, approver).await });
            started += 1;
        }
        if let Some(done) = tasks.join_next().await {
            steps += done??;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = process_cpu_ms()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let writer_cpu = thread_cpu_ms("fleet-store-wri")
        .zip(writer_before)
        .map(|(after, before)| after - before);
    println!(
        "engine: {runs} full release-gate runs on SQLite, {concurrency} at a time (builtin model, files {})",
        if std::env::var("BENCH_WRITE_FILES").is_ok() {
            "written"
        } else {
            "not written"
        }
    );
    println!("  total      {:.3} s", secs);
    println!("  runs/s     {:.0}", runs as f64 / secs);
    println!("  steps/s    {:.0}", steps as f64 / secs);
    println!("  per run    {:.3} ms", secs * 1000.0 / runs as f64);
    if let Some(cpu) = cpu {
        // Steadier than runs/s when other work shares the machine.
        println!(
            "  CPU/run    {:.3} ms (all threads of this process)",
            cpu / runs as f64
        );
    }
    if let Some(cpu) = writer_cpu {
        // The store's one writer thread: runs/s cannot exceed 1 / this.
        println!(
            "  writer/run {:.3} ms (the store's writer thread)",
            cpu / runs as f64
        );
    }
    let report = store.verify_audit().await?;
    println!(
        "  audit      {} events verified, ok = {}",
        report.events_checked,
        report.is_ok()
    );
    let checkpoints = store.events_of_kind("audit.checkpoint", None).await?.len();
    // One per decision (warm-up included); the rest came from the cadence.
    println!(
        "  checkpoints {checkpoints} ({} with decisions, {} on the cadence)",
        runs + 10,
        checkpoints.saturating_sub(runs + 10)
    );
    signing_cost(&engine, &store).await?;
    if std::env::var("BENCH_KEEP").is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        println!("  kept       {}", tmp.display());
    }
    Ok(())
}

/// What signing costs per decision: the attestation envelope (JSON and
/// ed25519 over the statement of a real decision) and the checkpoint note.
async fn signing_cost(
    engine: &Engine,
    store: &Arc<dyn Store>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let run = store.list_runs(&Default::default()).await?.remove(0);
    let refs = store.artifacts(&run.id).await?;
    let att = refs
        .iter()
        .find(|r| r.path.ends_with(".intoto.json"))
        .ok_or("no attestation")?;
    let bytes = store.artifact_bytes(&att.sha256).await?.ok_or("missing")?;
    let envelope: fleet_evidence::Envelope = serde_json::from_slice(&bytes)?;
    let key = engine.signing_key()?;
    let statement: serde_json::Value = serde_json::from_slice(&envelope.verify(&key.verifier())?)?;
    let head = store.chain_head().await?;
    let n = 2000;
    let t = Instant::now();
    for _ in 0..n {
        std::hint::black_box(fleet_engine::attest::envelope(&key, &statement));
        std::hint::black_box(fleet_engine::attest::checkpoint_event(&key, &head));
    }
    println!(
        "  signing    {:.1} µs per decision (envelope + checkpoint, {} byte statement)",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n),
        serde_json::to_vec(&statement)?.len()
    );
    // A cadence checkpoint: read the head, sign, append (one durable commit).
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        engine.write_checkpoint().await?;
    }
    println!(
        "  checkpoint {:.3} ms to write one (so per 1,000 events of the log)",
        t.elapsed().as_secs_f64() * 1e3 / f64::from(n)
    );
    Ok(())
}

/// CPU time (user + system) this process has used, in milliseconds, from
/// /proc (Linux; 10 ms ticks, fine over a run of seconds).
fn process_cpu_ms() -> Option<f64> {
    cpu_ms_of("/proc/self/stat")
}

/// CPU time of this process's threads named `name` (as /proc shows it,
/// truncated to 15 bytes), in milliseconds.
fn thread_cpu_ms(name: &str) -> Option<f64> {
    let mut total = None;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == name {
            let stat = task.path().join("stat");
            total = Some(total.unwrap_or(0.0) + cpu_ms_of(stat.to_str()?)?);
        }
    }
    total
}

fn cpu_ms_of(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

async fn one_run(
    engine: &Engine,
    approver: &str,
) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let t = Instant::now();
    let run = engine
        .start_run("release-gate", Some("dev@example.com".into()))
        .await?;
    let t1 = t.elapsed();
    let run = engine.drive(&run.id, &Quiet).await?;
    let t2 = t.elapsed();
    let run = engine
        .decide(DecisionRequest {
            run: run.id.clone(),
            step: None,
            approver: approver.into(),
            verdict: Verdict::Go,
            reason: None,
            channel: "cli".into(),
            shown: None,
        })
        .await?;
    let t3 = t.elapsed();
    let run = engine.drive(&run.id, &Quiet).await?;
    let t4 = t.elapsed();
    if std::env::var("BENCH_PHASES").is_ok() {
        eprintln!(
            "start {:?} drive {:?} decide {:?} drive {:?}",
            t1,
            t2 - t1,
            t3 - t2,
            t4 - t3
        );
    }
    if run.state.status != fleet_core::run::RunStatus::Succeeded {
        return Err(format!("run ended {}", run.state.status).into());
    }
    Ok(run.state.steps.len())
}
