//! Packs a large corpus into a model's context, as every run that uses a
//! model does: the tree is gathered once (default caps, so at most 32 MiB of
//! text), then `pack` into a 128k-token budget runs N times per tokenizer.
//!
//!     cargo run --release -p fleet-corpus --example bench_pack -- [DIR] [ITERATIONS] [BUDGET]
//!
//! DIR defaults to ~/.cargo/registry/src, ITERATIONS to 5, BUDGET to 128000.
//! Prints median, min and max wall time per tokenizer, and the median CPU
//! time (all threads, from /proc; steadier than wall time on a shared
//! machine), what was packed, and checks the packed text against the budget
//! with the real tokenizer (outside the timing). The digest of the packed
//! text is there to compare two builds' choices.

use fleet_corpus::{Limits, Tokenizer, count_tokens, gather_globs, pack};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const QUERY: &str = "release readiness: migrations, rollback plan, open issues";

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
    let positive = |arg: Option<String>, default: usize, name: &str| match arg.map(|n| n.parse()) {
        None => Ok(default),
        Some(Ok(n)) if n > 0 => Ok(n),
        Some(_) => Err(format!("{name} must be a positive number")),
    };
    let (iterations, budget) = match (
        positive(args.next(), 5, "ITERATIONS"),
        positive(args.next(), 128_000, "BUDGET"),
    ) {
        (Ok(i), Ok(b)) => (i, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };

    let started = Instant::now();
    let corpus = match gather_globs(&dir, &["**/*".to_string()], true, &Limits::default()) {
        Ok(corpus) => corpus,
        Err(e) => {
            eprintln!("gather failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gathered = started.elapsed();
    let bytes: usize = corpus.documents.iter().map(|d| d.text.len()).sum();
    println!("tree: {}", dir.display());
    println!(
        "corpus: {} documents, {:.1} MB of text (default caps; gathered in {:.0} ms)",
        corpus.documents.len(),
        bytes as f64 / 1e6,
        gathered.as_secs_f64() * 1e3
    );
    println!("query: {QUERY:?}; budget {budget} tokens; {iterations} iterations per tokenizer");

    let mut ok = true;
    for tokenizer in [Tokenizer::Estimate, Tokenizer::OpenAi] {
        let mut times = Vec::with_capacity(iterations);
        let mut cpu_times = Vec::with_capacity(iterations);
        let mut packed = None;
        for _ in 0..iterations {
            let cpu = cpu_time();
            let started = Instant::now();
            let result = pack(&corpus, QUERY, budget, tokenizer);
            times.push(started.elapsed());
            if let (Some(before), Some(after)) = (cpu, cpu_time()) {
                cpu_times.push(after.saturating_sub(before));
            }
            packed = Some(result);
        }
        let Some(packed) = packed else {
            continue;
        };
        times.sort();
        cpu_times.sort();
        let ms = |t: Duration| t.as_secs_f64() * 1e3;
        let cpu = cpu_times
            .get(cpu_times.len() / 2)
            .map_or(String::new(), |t| format!("; cpu median {:.0} ms", ms(*t)));
        let actual = count_tokens(&packed.text, tokenizer);
        let fits = actual <= budget && packed.included_tokens <= budget;
        ok &= fits;
        println!(
            "pack with {tokenizer:?}: median {:.0} ms (min {:.0}, max {:.0}){cpu}",
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(times[times.len() - 1]),
        );
        println!(
            "  {} tokens reported, {actual} counted over the whole text ({}), {} omitted ranges, {:.0} KB of text, digest {}",
            packed.included_tokens,
            if fits { "fits" } else { "OVER BUDGET" },
            packed.omitted.len(),
            packed.text.len() as f64 / 1e3,
            &blake3::hash(packed.text.as_bytes()).to_hex()[..16],
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// CPU time of this process so far, all threads (Linux: the sum of each
/// thread's run time in /proc/self/task/*/schedstat, in ns). Threads that
/// have exited are not counted; rayon's pool threads stay.
fn cpu_time() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}
