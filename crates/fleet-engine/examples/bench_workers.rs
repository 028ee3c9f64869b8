//! Throughput with `fleet worker`s: full release-gate runs (report, review,
//! gate, Go, announce) on the builtin model, executed by 1, 2 and 4
//! workers sharing one database, per backend, in one invocation.
//!
//!   cargo run --release -p fleet-engine --example bench_workers -- [RUNS] [BACKENDS] [WORKERS]
//!
//! RUNS (default 2000) runs are started by a client (as `fleet run --detach`
//! would), decided Go by it as soon as they wait at their gate (as `fleet
//! approve` would), and executed entirely by the workers, each an engine
//! with its own store handle (its own SQLite writer or PostgreSQL pool: what
//! a separate process has) running `run_worker` with concurrency 64. The client acts as 16 users
//! at once (see `drive_client`).
//! BACKENDS: `sqlite,postgres` (default; PostgreSQL at
//! `FLEET_TEST_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/postgres,
//! a scratch database per measurement, dropped afterwards). WORKERS: `1,2,4`.
//!
//! Prints runs/s and steps/s over the whole measurement, and the engine's
//! overhead per step: from the audit log, the time from a step becoming
//! Ready to its result being committed, minus the time the step itself
//! executed (its step-run record), p50 and p99 over every report, review
//! and notify step.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use fleet_core::run::{RunStatus, Verdict};
use fleet_engine::{DecisionRequest, Engine, Quiet, Settings, WorkerOptions};
use fleet_store::{Notice, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs unfinished at once during the throughput measurement.
const IN_FLIGHT: usize = 128;
/// Steps each worker executes at once (`fleet worker --concurrency`).
const WORKER_CONCURRENCY: usize = 64;
/// Starts, reads and decisions the client makes at once (see `drive_client`).
const CLIENT_TASKS: usize = 16;
/// Runs measured one at a time for the unloaded step overhead.
const UNLOADED_RUNS: usize = 100;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let backends: Vec<String> = args
        .next()
        .unwrap_or_else(|| "sqlite,postgres".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let workers: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "1,2,4".into())
        .split(',')
        .map(|w| w.parse())
        .collect::<Result<_, _>>()?;
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate");
    let text = std::fs::read_to_string(example.join(".fleet/config.yaml"))?;
    let config = Arc::new(
        fleet_core::config::check_str(&text)
            .config
            .ok_or("example config is invalid")?,
    );
    println!("{runs} full release-gate runs per line (builtin model), executed by fleet workers");
    println!(
        "backend   workers   runs/s   steps/s | step latency under load p50/p99 ms | engine overhead per step, one run at a time, p50/p99 ms"
    );
    for backend in &backends {
        for &n in &workers {
            let scratch = scratch::Scratch::new(backend).await?;
            let engine_for = |store: Arc<dyn Store>| {
                let mut settings = Settings::new(example.clone());
                settings.state_dir = scratch.dir().to_path_buf();
                // Never beside the example: `fleet init` embeds that directory.
                settings.signing_key_file = scratch.dir().join("signing.key");
                settings.write_files = false;
                settings.concurrency = WORKER_CONCURRENCY;
                settings.step_slots =
                    Some(Arc::new(tokio::sync::Semaphore::new(WORKER_CONCURRENCY)));
                Arc::new(Engine::new(store, config.clone(), settings))
            };
            let client = engine_for(scratch.store().await?);
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let mut pool = tokio::task::JoinSet::new();
            for _ in 0..n {
                let engine = engine_for(scratch.store().await?);
                let mut stop = stop_rx.clone();
                pool.spawn(async move {
                    fleet_engine::run_worker(
                        engine,
                        WorkerOptions {
                            concurrency: WORKER_CONCURRENCY,
                            poll: Duration::from_millis(500),
                        },
                        Arc::new(Quiet),
                        Arc::new(|c, e| eprintln!("worker: {} {}: {e}", c.run_id, c.step)),
                        async move {
                            let _ = stop.wait_for(|s| *s).await;
                        },
                    )
                    .await
                });
            }
            let t = Instant::now();
            let ids = drive_client(&client, runs, IN_FLIGHT).await?;
            let secs = t.elapsed().as_secs_f64();
            let unloaded = drive_client(&client, UNLOADED_RUNS, 1).await?;
            let _ = stop_tx.send(true);
            while let Some(r) = pool.join_next().await {
                r??;
            }
            let steps = ids.len() * 4;
            let (p50, p99) = step_overhead(client.store().as_ref(), &ids).await?;
            let (u50, u99) = step_overhead(client.store().as_ref(), &unloaded).await?;
            println!(
                "{backend:<9} {n:>7} {:>8.0} {:>9.0} | {p50:>8.2} / {p99:<8.2} | {u50:>6.2} / {u99:.2}",
                runs as f64 / secs,
                steps as f64 / secs
            );
            let report = client.store().verify_audit().await?;
            if !report.is_ok() {
                return Err(format!("audit broken: {:?}", report.first_problem).into());
            }
            drop(client);
            scratch.finish().await?;
        }
    }
    Ok(())
}

/// Starts `runs` runs (at most `in_flight` unfinished at once), decides Go
/// at each gate as soon as it opens, and returns when all succeeded. Runs
/// are started and decided by up to `CLIENT_TASKS` tasks at once, as many
/// `fleet run --detach` and `fleet approve` processes would: one client
/// doing one thing at a time would measure itself, not the workers.
async fn drive_client(
    client: &Arc<Engine>,
    runs: usize,
    in_flight: usize,
) -> Result<Vec<String>, Error> {
    enum Done {
        Started(String),
        Looked(String, RunStatus),
        Decided,
    }
    let store = client.store().clone();
    let mut notices = store.subscribe().await?;
    let mut open: HashSet<String> = HashSet::new();
    // Runs being read now, and those a notice named meanwhile.
    let mut looking: HashSet<String> = HashSet::new();
    let mut look_again: HashSet<String> = HashSet::new();
    let mut decided: HashSet<String> = HashSet::new();
    let mut done = Vec::with_capacity(runs);
    let (mut started, mut starting) = (0, 0);
    let mut tasks: tokio::task::JoinSet<Result<Done, Error>> = tokio::task::JoinSet::new();
    let look = |tasks: &mut tokio::task::JoinSet<Result<Done, Error>>, id: String| {
        let store = store.clone();
        tasks.spawn(async move {
            let run = store.get_run(&id).await?;
            Ok(Done::Looked(id, run.state.status))
        });
    };
    while done.len() < runs {
        while started < runs && open.len() + starting < in_flight && tasks.len() < CLIENT_TASKS {
            let client = client.clone();
            tasks.spawn(async move {
                let run = client
                    .start_run("release-gate", Some("bench@example.com".into()))
                    .await?;
                Ok(Done::Started(run.id))
            });
            started += 1;
            starting += 1;
        }
        tokio::select! {
            Some(finished) = tasks.join_next() => match finished?? {
                Done::Started(id) => {
                    starting -= 1;
                    open.insert(id);
                }
                Done::Decided => {}
                Done::Looked(id, status) => {
                    looking.remove(&id);
                    match status {
                        RunStatus::Waiting if decided.insert(id.clone()) => {
                            let client = client.clone();
                            tasks.spawn(async move {
                                client
                                    .decide(DecisionRequest {
                                        run: id,
                                        step: None,
                                        approver: "release-owner@example.com".into(),
                                        verdict: Verdict::Go,
                                        reason: None,
                                        channel: "cli".into(),
                                        shown: None,
                                    })
                                    .await?;
                                Ok(Done::Decided)
                            });
                        }
                        RunStatus::Succeeded => {
                            open.remove(&id);
                            look_again.remove(&id);
                            done.push(id);
                        }
                        s if s.is_terminal() => return Err(format!("run {id} ended {s}").into()),
                        _ => {
                            if look_again.remove(&id) && looking.insert(id.clone()) {
                                look(&mut tasks, id);
                            }
                        }
                    }
                }
            },
            notice = notices.next(Duration::from_millis(200)) => {
                // A notice that names the run's status is enough to act on
                // (`fleet approve` after the gate's email, as it were);
                // otherwise look at the runs it names (or all open ones
                // after a timeout or an anonymous notice).
                let ids: Vec<String> = match notice? {
                    Some(Notice::Run(id, Some(status))) if open.contains(&id) => {
                        tasks.spawn(async move { Ok(Done::Looked(id, status)) });
                        continue;
                    }
                    Some(Notice::Run(id, None)) if open.contains(&id) => vec![id],
                    Some(Notice::Run(..) | Notice::Work) => continue,
                    Some(Notice::Any) | None => open.iter().cloned().collect(),
                };
                for id in ids {
                    if looking.insert(id.clone()) {
                        look(&mut tasks, id);
                    } else {
                        look_again.insert(id);
                    }
                }
            }
        }
    }
    Ok(done)
}

/// p50 and p99, in milliseconds, of (Ready -> result committed) minus the
/// step's own execution time, over every non-approval step.
async fn step_overhead(store: &dyn Store, ids: &[String]) -> Result<(f64, f64), Error> {
    let mut overheads = Vec::new();
    for id in ids {
        let events = store.events(Some(id)).await?;
        let records = store.step_runs(id).await?;
        for step in ["readiness", "risk-review", "announce"] {
            let at = |status: &str| {
                events
                    .iter()
                    .find(|e| {
                        e.kind == "step.status"
                            && e.payload["step"] == step
                            && e.payload["status"] == status
                    })
                    .map(|e| e.at.as_microsecond())
            };
            let (Some(ready), Some(done)) = (at("ready"), at("succeeded")) else {
                return Err(format!("run {id}: no ready/succeeded events for {step}").into());
            };
            let exec = records
                .iter()
                .filter(|r| r.step == step)
                .filter_map(|r| {
                    Some(r.finished_at?.as_microsecond() - r.started_at.as_microsecond())
                })
                .sum::<i64>();
            overheads.push((done - ready - exec) as f64 / 1000.0);
        }
    }
    overheads.sort_by(f64::total_cmp);
    let pick = |q: f64| overheads[((overheads.len() - 1) as f64 * q) as usize];
    Ok((pick(0.5), pick(0.99)))
}

mod scratch {
    //! A scratch database per backend, removed afterwards.
    use super::Error;
    use fleet_store::Store;
    use fleet_store::testing::ScratchStore;
    use std::path::Path;
    use std::sync::Arc;

    pub struct Scratch {
        dir: tempfile::TempDir,
        store: ScratchStore,
    }

    impl Scratch {
        pub async fn new(backend: &str) -> Result<Scratch, Error> {
            let dir = tempfile::tempdir()?;
            let store = ScratchStore::new(backend, dir.path())?;
            Ok(Scratch { dir, store })
        }

        pub fn dir(&self) -> &Path {
            self.dir.path()
        }

        pub async fn store(&self) -> Result<Arc<dyn Store>, Error> {
            Ok(self.store.open().await?)
        }

        pub async fn finish(self) -> Result<(), Error> {
            Ok(())
        }
    }
}
