//! Gathers a large tree and compares with ripgrep reading the same tree.
//!
//!     cargo run --release -p fleet-corpus --example bench_gather -- [DIR] [ITERATIONS]
//!
//! DIR defaults to ~/.cargo/registry/src, ITERATIONS to 5. Two comparisons,
//! each with the same rules on both sides:
//! - no rules: `rg -uuu -c ''` (no ignore files, hidden files, binary files
//!   searched to the end) against gather with `include_ignored: true`;
//! - ignore rules: gather with `include_ignored: false` honours `.gitignore`
//!   and `.ignore` even outside git, skips hidden files and ignores the
//!   user's global excludes, so rg runs with `--no-require-git
//!   --no-ignore-global --binary -c ''`.
//!
//! `-c ''` makes rg read every file to its end (the empty pattern matches
//! every line), as gather reads (and hashes) every file. Also timed, as the
//! floor for reading: rg listing the same files (`--files`, same rules) and
//! this program reading each with `std::fs::read` on two threads (no
//! hashing, no UTF-8 check). `rg -uuu --files` alone shows the walk's share. Each runs once first to warm the page
//! cache, then the two alternate; medians, minimum and maximum are printed,
//! with CPU time (user + system, all threads, rg's included, from
//! /proc/self/stat in 10 ms ticks), which is steadier than wall time on a
//! busy machine.

use fleet_corpus::{Limits, Tokenizer, gather_globs, gather_globs_is_cached, pack};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

struct Mode {
    name: &'static str,
    rg_args: &'static [&'static str],
    /// The same rules, listing the files instead of reading them.
    rg_files_args: &'static [&'static str],
    include_ignored: bool,
}

const MODES: &[Mode] = &[
    Mode {
        name: "no rules",
        rg_args: &["-uuu", "-c", ""],
        rg_files_args: &["-uuu", "--files"],
        include_ignored: true,
    },
    Mode {
        name: "ignore rules",
        rg_args: &[
            "--no-require-git",
            "--no-ignore-global",
            "--binary",
            "-c",
            "",
        ],
        rg_files_args: &["--no-require-git", "--no-ignore-global", "--files"],
        include_ignored: false,
    },
];

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
    println!("tree: {}", dir.display());
    println!(
        "limits: total cap off (u64::MAX) so nothing is cut by it; per-file cap {} MiB; glob **/*",
        limits.max_file_bytes / (1024 * 1024)
    );
    match run_rg(&dir, &["-uuu", "--files"]) {
        Ok((wall, _)) => println!("rg -uuu --files (the walk alone): {:.1} ms", ms(wall)),
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    }

    let mut ok = true;
    for mode in MODES {
        let gather = || {
            let cpu = cpu_self();
            let started = Instant::now();
            let corpus = gather_globs(&dir, &globs, mode.include_ignored, &limits)
                .map_err(|e| e.to_string())?;
            let wall = started.elapsed();
            let cpu = cpu_self()
                .zip(cpu)
                .map(|(after, before)| after.saturating_sub(before));
            Ok::<_, String>((wall, cpu, corpus))
        };
        // Warm-up, and the counts to report.
        let rg_files = match Command::new("rg").args(mode.rg_args).arg(&dir).output() {
            Ok(out) => out.stdout.iter().filter(|b| **b == b'\n').count(),
            Err(e) => {
                eprintln!("could not run rg (apt-get install -y ripgrep): {e}");
                return ExitCode::FAILURE;
            }
        };
        let corpus = match gather() {
            Ok((_, _, corpus)) => corpus,
            Err(e) => {
                eprintln!("gather failed: {e}");
                return ExitCode::FAILURE;
            }
        };
        let files = corpus.manifest.entries.len();
        let bytes: u64 = corpus.manifest.entries.iter().map(|e| e.size).sum();
        let text_files = corpus.documents.len();
        drop(corpus);
        let cached = gather_globs_is_cached(&dir, &globs, mode.include_ignored, &limits);

        let mut rg_times = Vec::new();
        let mut listed_times = Vec::new();
        let mut gather_times = Vec::new();
        for _ in 0..iterations {
            match list_then_read(&dir, mode.rg_files_args) {
                Ok(t) => listed_times.push(t),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
            match run_rg(&dir, mode.rg_args) {
                Ok(t) => rg_times.push(t),
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
            match gather() {
                Ok((wall, cpu, _)) => gather_times.push((wall, cpu)),
                Err(e) => {
                    eprintln!("gather failed: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        println!();
        println!(
            "{}: {files} files, {:.1} MB ({text_files} text files included, served from the cache: {cached}; rg lists {rg_files} non-empty files)",
            mode.name,
            bytes as f64 / 1e6
        );
        println!("{iterations} iterations after one warm-up each, alternating:");
        let rg_name = format!("rg {}", shell_words(mode.rg_args));
        let gather_name = format!("fleet gather (include_ignored: {})", mode.include_ignored);
        let rg_median = report(&rg_name, &mut rg_times, files, bytes);
        let listed_name = format!(
            "rg {} + std::fs::read each, 2 threads",
            shell_words(mode.rg_files_args)
        );
        let listed_median = report(&listed_name, &mut listed_times, files, bytes);
        let gather_median = report(&gather_name, &mut gather_times, files, bytes);
        let ratio = gather_median.as_secs_f64() / rg_median.as_secs_f64();
        println!(
            "  gather / rg wall time: {ratio:.2}x (target <= 1.20x): {}",
            if ratio <= 1.2 {
                "ok"
            } else {
                "SLOWER than target"
            }
        );
        println!(
            "  gather / (rg --files + read) wall time: {:.2}x",
            gather_median.as_secs_f64() / listed_median.as_secs_f64()
        );
        ok &= ratio <= 1.2;
    }
    println!();

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
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn ms(t: Duration) -> f64 {
    t.as_secs_f64() * 1e3
}

/// Runs rg on `dir`; wall time and the CPU time it used.
fn run_rg(dir: &Path, args: &[&str]) -> Result<(Duration, Option<Duration>), String> {
    let cpu = cpu_children();
    let started = Instant::now();
    let status = Command::new("rg")
        .args(args)
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("could not run rg (apt-get install -y ripgrep): {e}"))?;
    let wall = started.elapsed();
    // 0: matches, 1: no match; both mean it read the tree.
    if status.code().is_some_and(|c| c > 1) {
        return Err(format!("rg failed: {status}"));
    }
    let cpu = cpu_children()
        .zip(cpu)
        .map(|(after, before)| after.saturating_sub(before));
    Ok((wall, cpu))
}

/// Lists the files with rg, then reads each whole on two threads; wall
/// time and CPU time (this process's threads and rg's).
fn list_then_read(dir: &Path, args: &[&str]) -> Result<(Duration, Option<Duration>), String> {
    let cpu = cpu_self().zip(cpu_children());
    let started = Instant::now();
    let out = Command::new("rg")
        .args(args)
        .arg(dir)
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("could not run rg (apt-get install -y ripgrep): {e}"))?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let paths: Vec<&str> = listing.lines().collect();
    let read: u64 = std::thread::scope(|scope| {
        let halves: Vec<_> = (0..2)
            .map(|half| {
                let paths = &paths;
                scope.spawn(move || {
                    paths
                        .iter()
                        .skip(half)
                        .step_by(2)
                        .map(|p| std::fs::read(p).map_or(0, |b| b.len() as u64))
                        .sum::<u64>()
                })
            })
            .collect();
        halves.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    std::hint::black_box(read);
    let wall = started.elapsed();
    let cpu = cpu_self()
        .zip(cpu_children())
        .zip(cpu)
        .map(|((s1, c1), (s0, c0))| s1.saturating_sub(s0) + c1.saturating_sub(c0));
    Ok((wall, cpu))
}

/// Prints median (min-max) wall time and median CPU time; returns the
/// median wall time.
fn report(
    name: &str,
    times: &mut [(Duration, Option<Duration>)],
    files: usize,
    bytes: u64,
) -> Duration {
    times.sort_by_key(|(wall, _)| *wall);
    let median = times[times.len() / 2].0;
    let mut cpu: Vec<Duration> = times.iter().filter_map(|(_, cpu)| *cpu).collect();
    cpu.sort();
    let cpu = cpu
        .get(cpu.len() / 2)
        .map_or(String::new(), |t| format!(", cpu {:.0} ms", ms(*t)));
    let secs = median.as_secs_f64();
    println!(
        "  {name:<62} {:>7.1} ms (min {:.1}, max {:.1}{cpu})  {:>6.0} files/s  {:>6.1} MB/s",
        ms(median),
        ms(times[0].0),
        ms(times[times.len() - 1].0),
        files as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
    median
}

fn shell_words(args: &[&str]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() {
                "''".to_string()
            } else {
                a.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU time (user + system) of this process so far, all threads, exited
/// ones included (Linux: utime + stime in /proc/self/stat, 10 ms ticks).
fn cpu_self() -> Option<Duration> {
    proc_stat_ticks(11)
}

/// CPU time (user + system) of the children waited for so far (Linux:
/// cutime + cstime in /proc/self/stat, 10 ms ticks).
fn cpu_children() -> Option<Duration> {
    proc_stat_ticks(13)
}

/// The sum of two adjacent fields of /proc/self/stat, counted from the one
/// after the command name (`at` 11: utime and stime; 13: cutime and
/// cstime), as a duration of 10 ms clock ticks.
fn proc_stat_ticks(at: usize) -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 =
        fields.get(at)?.parse::<u64>().ok()? + fields.get(at + 1)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}
