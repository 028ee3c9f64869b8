//! Repeated gathers of an unchanged workspace, as the engine does once per
//! run: the `readiness` step of the release-gate example, N times in a loop.
//!
//!     cargo run --release -p fleet-corpus --example bench_regather -- [N] [EXAMPLE_DIR]
//!
//! N defaults to 2000; EXAMPLE_DIR to the `fleet init` example in this
//! repository. Prints wall time and CPU time (user + system, all threads) per
//! gather, cached (the normal path) and uncached (a fresh walk every time).
//! For syscalls: `strace -c -f target/release/examples/bench_regather`.
//!
//! With BENCH_MISS=1, every cached gather first bumps the ctime of one
//! corpus file (sets its mtime to itself), so each is a cache miss: the cost
//! of a walk plus recording what it depends on. It touches EXAMPLE_DIR; point
//! it at a copy.

use fleet_corpus::{Corpus, Limits, gather, gather_globs_uncached};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let n: usize = match args.next().map(|a| a.parse()) {
        None => 2000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("N must be a positive number");
            return ExitCode::from(2);
        }
    };
    let example = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../fleet-cli/example/release-gate")
        });
    let text = match std::fs::read_to_string(example.join(".fleet/config.yaml")) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("cannot read {}: {e}", example.display());
            return ExitCode::FAILURE;
        }
    };
    let Some(config) = fleet_core::config::check_str(&text).config else {
        eprintln!("example config is invalid");
        return ExitCode::FAILURE;
    };
    let Some(step) = config
        .genflows
        .iter()
        .flat_map(|g| &g.steps)
        .find(|s| s.name == "readiness")
    else {
        eprintln!("no step named readiness");
        return ExitCode::FAILURE;
    };
    let limits = Limits::default();

    // Warm-up (page cache, compiled globs) and the size of what is gathered.
    let first = match gather(&example, step, &limits) {
        Ok(corpus) => corpus,
        Err(e) => {
            eprintln!("gather failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    for _ in 0..10 {
        let _ = gather(&example, step, &limits);
    }

    println!(
        "gather `readiness` of {}: {} files ({} documents), {n} times",
        example.display(),
        first.manifest.entries.len(),
        first.documents.len()
    );
    // A file to bump before each gather with BENCH_MISS.
    let miss = std::env::var_os("BENCH_MISS")
        .is_some()
        .then(|| example.join(&first.manifest.entries[0].path));
    let cached = measure(n, || {
        if let Some(path) = &miss {
            let file = std::fs::File::options().write(true).open(path).unwrap();
            let mtime = file.metadata().unwrap().modified().unwrap();
            file.set_modified(mtime).unwrap();
        }
        gather(&example, step, &limits).expect("gather")
    });
    let label = if miss.is_some() {
        "cached, every gather a miss"
    } else {
        "cached"
    };
    print_result(label, cached, n);
    let uncached = measure(n, || {
        gather_globs_uncached(
            &example,
            &step.corpus_globs(),
            step.include_ignored,
            &limits,
        )
        .expect("gather")
    });
    print_result("uncached", uncached, n);
    // The step has no sources, so both paths must give the same corpus.
    let fresh = gather_globs_uncached(
        &example,
        &step.corpus_globs(),
        step.include_ignored,
        &limits,
    );
    let same = gather(&example, step, &limits).ok() == fresh.ok();
    println!("  cached result equals uncached: {same}");
    if !same {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Wall and CPU time (ms) of `n` calls of `gather`.
fn measure(n: usize, mut gather: impl FnMut() -> Corpus) -> (f64, Option<f64>) {
    let cpu_before = process_cpu_ms();
    let started = Instant::now();
    for _ in 0..n {
        // Keep the result alive until here so the work is not optimized away.
        std::hint::black_box(gather());
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let cpu = process_cpu_ms()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    (ms, cpu)
}

fn print_result(label: &str, (ms, cpu): (f64, Option<f64>), n: usize) {
    print!("  {label:<28} wall {:7.1} µs/gather", ms * 1e3 / n as f64);
    match cpu {
        Some(cpu) => println!(
            "   CPU {:7.1} µs/gather (user + system)",
            cpu * 1e3 / n as f64
        ),
        None => println!(),
    }
}

/// CPU time (user + system) this process has used, in milliseconds, from
/// /proc (Linux; 10 ms ticks, fine over a loop of seconds).
fn process_cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}
