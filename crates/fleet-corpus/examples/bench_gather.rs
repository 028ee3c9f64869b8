//! Gathers a large tree and compares with ripgrep reading the same tree.
//!
//!     cargo run --release -p fleet-corpus --example bench_gather -- [DIR] [ITERATIONS]
//!
//! DIR defaults to ~/.cargo/registry/src, ITERATIONS to 5. Both tools run
//! once first to warm the page cache, then alternate; medians are printed.

use fleet_corpus::{Limits, Tokenizer, gather_globs, pack};
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let dir = match args.next() {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME") {
            Some(home) => PathBuf::from(home).join(".cargo/registry/src"),
            None => {
                eprintln!("no DIR given and HOME is not set");
                return ExitCode::from(2);
            }
        },
    };
    let iterations: usize = match args.next().map(|n| n.parse()) {
        None => 5,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("ITERATIONS must be a positive number");
            return ExitCode::from(2);
        }
    };
    let globs = vec!["**/*".to_string()];
    // The total cap would stop the corpus early and make the comparison
    // unfair; the per-file cap stays (files past it are still read whole to hash).
    let limits = Limits {
        max_total_bytes: u64::MAX,
        ..Limits::default()
    };

    let rg = || -> Result<Duration, String> {
        let started = Instant::now();
        let status = Command::new("rg")
            .args(["-uuu", "-c", ""])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("could not run rg (apt-get install -y ripgrep): {e}"))?;
        // 0: matches, 1: no match; both mean it read the tree.
        if status.code().is_some_and(|c| c > 1) {
            return Err(format!("rg failed: {status}"));
        }
        Ok(started.elapsed())
    };
    let gather = || {
        let started = Instant::now();
        let corpus = gather_globs(&dir, &globs, true, &limits).map_err(|e| e.to_string())?;
        Ok::<_, String>((started.elapsed(), corpus))
    };

    // Warm-up, and the counts to report.
    let rg_files = match Command::new("rg")
        .args(["-uuu", "-c", ""])
        .arg(&dir)
        .output()
    {
        Ok(out) => out.stdout.iter().filter(|b| **b == b'\n').count(),
        Err(e) => {
            eprintln!("could not run rg (apt-get install -y ripgrep): {e}");
            return ExitCode::FAILURE;
        }
    };
    let corpus = match gather() {
        Ok((_, corpus)) => corpus,
        Err(e) => {
            eprintln!("gather failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let files = corpus.manifest.entries.len();
    let bytes: u64 = corpus.manifest.entries.iter().map(|e| e.size).sum();
    let text_files = corpus.documents.len();
    drop(corpus);

    let mut rg_times = Vec::new();
    let mut gather_times = Vec::new();
    for _ in 0..iterations {
        match rg() {
            Ok(t) => rg_times.push(t),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        }
        match gather() {
            Ok((t, _)) => gather_times.push(t),
            Err(e) => {
                eprintln!("gather failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let rg_time = median(&mut rg_times);
    let gather_time = median(&mut gather_times);

    println!("tree: {}", dir.display());
    println!(
        "{files} files, {:.1} MB ({text_files} text files included; rg lists {rg_files} non-empty files)",
        bytes as f64 / 1e6
    );
    println!(
        "limits: total cap off (u64::MAX) so nothing is cut by it; per-file cap {} MiB; glob **/*, include_ignored: true",
        limits.max_file_bytes / (1024 * 1024)
    );
    println!("{iterations} iterations after one warm-up each, medians:");
    for (name, time) in [("rg -uuu -c ''", rg_time), ("fleet gather", gather_time)] {
        let secs = time.as_secs_f64();
        println!(
            "  {name:<14} {:>8.1} ms  {:>9.0} files/s  {:>7.1} MB/s",
            secs * 1e3,
            files as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    }
    let ratio = gather_time.as_secs_f64() / rg_time.as_secs_f64();
    println!(
        "gather / rg time: {ratio:.2}x (target <= 1.20x): {}",
        if ratio <= 1.2 {
            "ok"
        } else {
            "SLOWER than target"
        }
    );

    // Packing, for scale: the default 32 MiB corpus into a 128k-token window.
    let corpus = match gather_globs(&dir, &globs, true, &Limits::default()) {
        Ok(corpus) => corpus,
        Err(e) => {
            eprintln!("gather failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let corpus_bytes: usize = corpus.documents.iter().map(|d| d.text.len()).sum();
    for tokenizer in [Tokenizer::Estimate, Tokenizer::OpenAi] {
        let started = Instant::now();
        let packed = pack(
            &corpus,
            "release readiness: migrations, rollback plan, open issues",
            128_000,
            tokenizer,
        );
        println!(
            "pack {:.1} MB (default caps) into 128k tokens with {tokenizer:?}: {:.0} ms, {} tokens, {} omitted ranges",
            corpus_bytes as f64 / 1e6,
            started.elapsed().as_secs_f64() * 1e3,
            packed.included_tokens,
            packed.omitted.len()
        );
    }
    ExitCode::SUCCESS
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
