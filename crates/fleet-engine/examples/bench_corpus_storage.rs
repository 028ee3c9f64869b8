//! Storage growth of the kept corpus: N full release-gate runs (builtin
//! model, Go decision) over an unchanged corpus on SQLite, once with
//! `evidence.keep_corpus: none` and once with `read` (the default); prints
//! the database's bytes before and after and per run, and what the
//! content-addressed table holds. Deduplication shows as `read` costing
//! about the same per run as `none` after the first run.
//!
//!     cargo run --release -p fleet-engine --example bench_corpus_storage -- [RUNS]

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use fleet_core::config::KeepCorpus;
use fleet_core::run::Verdict;
use fleet_engine::{DecisionRequest, Engine, Quiet, Settings};
use fleet_store::{SqliteStore, Store};
use std::path::Path;
use std::sync::Arc;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate");
    let text = std::fs::read_to_string(example.join(".fleet/config.yaml"))?;
    println!("{runs} release-gate runs over the unchanged example corpus, SQLite, builtin model");
    for mode in [KeepCorpus::None, KeepCorpus::Read, KeepCorpus::Cited] {
        let mut config = fleet_core::config::check_str(&text)
            .config
            .ok_or("example config is invalid")?;
        for g in &mut config.genflows {
            g.evidence.keep_corpus = mode;
        }
        let tmp = std::env::temp_dir().join(format!(
            "fleet-bench-corpus-{}-{}",
            std::process::id(),
            mode.as_str()
        ));
        std::fs::create_dir_all(&tmp)?;
        let db = tmp.join("fleet.db");
        let store = Arc::new(SqliteStore::open(&db).await?);
        let mut settings = Settings::new(example.clone());
        settings.state_dir = tmp.clone();
        settings.write_files = false;
        let engine = Engine::new(store.clone(), Arc::new(config), settings);
        // One run first: what a first run stores (the corpus once, if kept).
        one_run(&engine).await?;
        let before = db_bytes(&store, &db).await?;
        for _ in 1..runs {
            one_run(&engine).await?;
        }
        let after = db_bytes(&store, &db).await?;
        let totals = store.content_totals().await?;
        println!(
            "keep_corpus {:<5}  after 1 run {:>10} B  after {runs} runs {:>11} B  per further run {:>8.0} B  contents {:>5} ({} B)",
            mode.as_str(),
            before,
            after,
            (after - before) as f64 / (runs.max(2) - 1) as f64,
            totals.contents,
            totals.bytes,
        );
        drop(engine);
        drop(store);
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

/// The database's size in bytes (pages in use, the WAL's included), read
/// by a connection of its own.
async fn db_bytes(_store: &SqliteStore, db: &Path) -> Result<u64, Error> {
    let conn = rusqlite::Connection::open(db)?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(u64::try_from((pages - free) * size)?)
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
    let run = engine.drive(&run.id, &Quiet).await?;
    if run.state.status != fleet_core::run::RunStatus::Succeeded {
        return Err(format!("run ended {}", run.state.status).into());
    }
    Ok(())
}
