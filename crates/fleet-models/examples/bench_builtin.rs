//! Throughput of the builtin analyst on the example repository: one report
//! plus one review over its corpus, as a `fleet run release-gate` does.
//!
//!     cargo run --release -p fleet-models --example bench_builtin
//!     cargo run --release -p fleet-models --example bench_builtin -- print   # show the documents

#[path = "../tests/common/mod.rs"]
mod common;

use fleet_models::Builtin;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = common::example_corpus();
    let bytes: usize = corpus.documents.iter().map(|d| d.text.len()).sum();
    let report_req = common::report_request(corpus.clone());
    // The first calls in a process also compile the rules (what every
    // `fleet run` pays once); the loop below measures the warm cost.
    let cold = Instant::now();
    let report = Builtin.complete_now(&report_req)?;
    let review_req = common::review_request(corpus, &report.text);
    let review = Builtin.complete_now(&review_req)?;
    let cold = cold.elapsed();

    if std::env::args().any(|a| a == "print") {
        println!("{}\n\n{}", report.text, review.text);
        println!("{}", serde_json::to_string_pretty(&review.flags)?);
        return Ok(());
    }

    println!("first report+review in this process (rules compiled): {cold:.1?}");
    // Warm up, then time whole report+review pairs for about two seconds.
    for _ in 0..200 {
        std::hint::black_box(Builtin.complete_now(&report_req)?);
        std::hint::black_box(Builtin.complete_now(&review_req)?);
    }
    let mut runs = 0u64;
    let (mut report_time, mut review_time) = (Duration::ZERO, Duration::ZERO);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        std::hint::black_box(Builtin.complete_now(&report_req)?);
        let t2 = Instant::now();
        std::hint::black_box(Builtin.complete_now(&review_req)?);
        report_time += t2 - t;
        review_time += t2.elapsed();
        runs += 1;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / runs as f64;
    println!(
        "corpus: {} documents, {bytes} bytes; report {} bytes, review {} bytes, {} flags",
        report_req.corpus.documents.len(),
        report.text.len(),
        review.text.len(),
        review.flags.as_ref().map_or(0, |f| f.flags.len())
    );
    println!(
        "report {:.1} µs + review {:.1} µs = {:.1} µs per pair; {:.0} report+review pairs/s (one core)",
        per(report_time),
        per(review_time),
        per(report_time + review_time),
        runs as f64 / (report_time + review_time).as_secs_f64()
    );
    Ok(())
}
