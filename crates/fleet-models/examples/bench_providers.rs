//! What Fleet itself adds to an LLM step, on the example repository's
//! corpus: building a provider, a cache hit (prompt packing, numbering,
//! token count, hash, read), and a full call to an OpenAI-compatible server
//! on loopback (wiremock) with the cache off.
//!
//!     cargo run --release -p fleet-models --example bench_providers

#[path = "../tests/common/mod.rs"]
mod common;

use fleet_core::config::{ModelConfig, Provider};
use fleet_models::{ProviderOptions, from_config};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

fn config(base_url: String) -> ModelConfig {
    ModelConfig {
        provider: Provider::Openai,
        model: Some("gpt-4o-mini".into()),
        base_url: Some(base_url),
        api_key_env: None,
        temperature: None,
        max_tokens: Some(2000),
        context_tokens: Some(128_000),
        headers: BTreeMap::new(),
        prices: None,
        command: Vec::new(),
        timeout: None,
        concurrency: Some(4),
    }
}

/// Runs `f` for about `secs` seconds after a short warm-up; mean µs per call.
async fn time<F, Fut>(secs: u64, mut f: F) -> Result<(f64, u64), Box<dyn std::error::Error>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Box<dyn std::error::Error>>>,
{
    for _ in 0..5 {
        f().await?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        f().await?;
        n += 1;
    }
    Ok((start.elapsed().as_secs_f64() * 1e6 / n as f64, n))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "gpt-4o-mini",
            "choices": [{"message": {"role": "assistant", "content": "# Readiness\n\nSee docs/runbooks/deploy.md:1."}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}
        })))
        .mount(&server)
        .await;
    let cfg = config(format!("{}/v1", server.uri()));
    let req = common::report_request(common::example_corpus());
    let bytes: usize = req.corpus.documents.iter().map(|d| d.text.len()).sum();
    let cache = tempfile::tempdir()?;

    let (build_us, _) = time(1, || async {
        std::hint::black_box(from_config("gpt", &cfg, &ProviderOptions::default())?);
        Ok(())
    })
    .await?;

    let cached = from_config(
        "gpt",
        &cfg,
        &ProviderOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..ProviderOptions::default()
        },
    )?;
    cached.complete(&req).await?;
    let (hit_us, hits) = time(2, || async {
        let c = cached.complete(&req).await?;
        assert!(c.cached);
        Ok(())
    })
    .await?;

    let uncached = from_config("gpt", &cfg, &ProviderOptions::default())?;
    let (call_us, calls) = time(2, || async {
        uncached.complete(&req).await?;
        Ok(())
    })
    .await?;

    println!(
        "corpus: {} documents, {bytes} bytes (release-gate example)",
        req.corpus.documents.len()
    );
    println!("from_config (openai; the HTTP client is built on the first call): {build_us:.1} µs");
    println!(
        "cache hit (pack + number + count tokens + sha256 + read): {hit_us:.0} µs ({hits} runs)"
    );
    println!("full call to a loopback server, cache off: {call_us:.0} µs ({calls} runs)");
    Ok(())
}
