//! What a request costs as history grows: the dashboard, the run list
//! (`/api/v1/runs`, first page and a keyset page deep in history) and
//! `/metrics`, with 1,000 and then 100,000 full release-gate runs stored,
//! per backend.
//!
//!   cargo run --release -p fleet-server --example bench_history -- [SIZES] [BACKENDS]
//!
//! SIZES: comma-separated run counts (default `1000,100000`); BACKENDS:
//! `sqlite`, `postgres` or both (default `sqlite,postgres`; PostgreSQL at
//! `FLEET_TEST_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/postgres,
//! in a scratch database dropped afterwards). Runs are filled through the
//! engine (start, report, review, Go, announce), then the store is settled
//! as a minute of a server's running would (PostgreSQL: `VACUUM ANALYZE`,
//! what autovacuum does). Each request is served by
//! a fresh server state (caches empty), in process through the router, so
//! the numbers are the server's work, not a network's; p50 and p99 of 200
//! requests each.

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fleet_core::run::Verdict;
use fleet_engine::{DecisionRequest, Engine, Quiet, Settings};
use fleet_server::{AppState, OperatorAuth, Secret, Signer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const TOKEN: &str = "bench-operator-token";
const SAMPLES: usize = 200;
const FILL_AT_ONCE: usize = 64;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let sizes: Vec<usize> = args
        .next()
        .unwrap_or_else(|| "1000,100000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let backends: Vec<String> = args
        .next()
        .unwrap_or_else(|| "sqlite,postgres".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate");
    let text = std::fs::read_to_string(example.join(".fleet/config.yaml"))?;
    let config = Arc::new(
        fleet_core::config::check_str(&text)
            .config
            .ok_or("example config is invalid")?,
    );
    println!("backend   stored  target                 p50 ms   p99 ms");
    for backend in &backends {
        let scratch = bench_support::Scratch::new(backend).await?;
        let store = scratch.store().await?;
        let mut settings = Settings::new(example.clone());
        settings.state_dir = scratch.dir().to_path_buf();
        // Never beside the example: `fleet init` embeds that directory.
        settings.signing_key_file = scratch.dir().join("signing.key");
        settings.write_files = false;
        let engine = Arc::new(Engine::new(store.clone(), config.clone(), settings));
        let secret = Secret::load_or_create(scratch.dir(), Some(&"s".repeat(64)))?;
        let signer = Signer::new(&secret)?;
        let mut stored = 0;
        for &size in &sizes {
            let t = Instant::now();
            fill(&engine, size.saturating_sub(stored)).await?;
            stored = size.max(stored);
            // What autovacuum does within a minute (see `settle`).
            scratch.settle().await?;
            eprintln!(
                "{backend}: {stored} runs stored (filled in {:.1} s)",
                t.elapsed().as_secs_f64()
            );
            // A run deep in history, for a keyset page there.
            let deep = store
                .list_runs(&fleet_store::RunFilter {
                    limit: Some(1),
                    before: None,
                    ..Default::default()
                })
                .await?;
            let mut cursor = deep.first().map(|r| r.id.clone()).unwrap_or_default();
            let mid = store
                .list_runs(&fleet_store::RunFilter {
                    limit: Some(u32::try_from(stored / 2).unwrap_or(u32::MAX)),
                    ..Default::default()
                })
                .await?;
            if let Some(r) = mid.last() {
                cursor = r.id.clone();
            }
            let targets = [
                ("dashboard /", "/".to_owned()),
                ("/api/v1/runs", "/api/v1/runs".to_owned()),
                (
                    "/api/v1/runs?before=",
                    format!("/api/v1/runs?before={cursor}"),
                ),
                (
                    "/api/v1/runs?status=",
                    "/api/v1/runs?status=waiting".to_owned(),
                ),
                ("/metrics", "/metrics".to_owned()),
            ];
            for (name, uri) in targets {
                let (p50, p99) = measure(&engine, &signer, &uri).await?;
                println!("{backend:<9} {stored:>6}  {name:<22} {p50:>7.2}  {p99:>7.2}");
            }
        }
        drop(engine);
        drop(store);
        scratch.finish().await?;
    }
    Ok(())
}

/// `n` full release-gate runs, `FILL_AT_ONCE` at a time.
async fn fill(engine: &Arc<Engine>, n: usize) -> Result<(), Error> {
    let mut started = 0;
    let mut tasks = tokio::task::JoinSet::new();
    while started < n || !tasks.is_empty() {
        while started < n && tasks.len() < FILL_AT_ONCE {
            let engine = engine.clone();
            tasks.spawn(async move { one_run(&engine).await });
            started += 1;
        }
        if let Some(done) = tasks.join_next().await {
            done??;
        }
    }
    Ok(())
}

async fn one_run(engine: &Engine) -> Result<(), Error> {
    let run = engine
        .start_run("release-gate", Some("dev@example.com".into()))
        .await?;
    let run = engine.drive(&run.id, &Quiet).await?;
    let run = engine
        .decide(DecisionRequest {
            run: run.id.clone(),
            step: None,
            approver: "release-owner@example.com".into(),
            verdict: Verdict::Go,
            reason: None,
            channel: "cli".into(),
            shown: None,
        })
        .await?;
    engine.drive(&run.id, &Quiet).await?;
    Ok(())
}

/// p50 and p99 in milliseconds of `SAMPLES` requests, each on a fresh
/// server state (empty caches).
async fn measure(engine: &Arc<Engine>, signer: &Signer, uri: &str) -> Result<(f64, f64), Error> {
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let (state, _queue) = AppState::new(
            engine.clone(),
            signer.clone(),
            OperatorAuth {
                api_token: Some(TOKEN.into()),
                open: false,
            },
            "http://bench.test".into(),
            Duration::from_secs(3600),
        );
        let app = fleet_server::router(state);
        let request = Request::get(uri)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())?;
        let t = Instant::now();
        let response = app.oneshot(request).await?;
        let status = response.status();
        let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        if status != StatusCode::OK {
            return Err(format!("{uri}: {status}").into());
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[SAMPLES / 2], times[SAMPLES * 99 / 100]))
}

mod bench_support {
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

        pub async fn settle(&self) -> Result<(), Error> {
            Ok(self.store.settle().await?)
        }

        pub async fn store(&self) -> Result<Arc<dyn Store>, Error> {
            Ok(self.store.open().await?)
        }

        pub async fn finish(self) -> Result<(), Error> {
            Ok(())
        }
    }
}
