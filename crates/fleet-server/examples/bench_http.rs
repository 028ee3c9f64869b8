//! Load benchmark: the decision page and `/api/v1/runs` of a real server
//! (SQLite store, the release-gate example at its gate), next to a minimal
//! axum hello-world started in the same process, all on loopback, measured
//! by `wrk` (bounded: BENCH_SECS seconds per target, default 5).
//!
//!   apt-get install -y wrk
//!   cargo run --release -p fleet-server --example bench_http
//!
//! Prints requests/s and p99 latency per target, each as a share of the
//! hello-world's requests/s, and the CPU time the serving process spent per
//! request (wrk excluded; steadier than requests/s on a busy machine).
//! `BENCH_ONLY=gate` (or `runs`, `hello`; comma separated) loads only those
//! targets, e.g. to profile one with `perf`; `BENCH_URLS=1` prints the URLs
//! so a response can be inspected with curl.
//!
//! Each page is followed by "same bytes, static": its response (headers
//! that matter and body, recorded once) served by a hello-world-like handler
//! that does nothing else. That row is the most any server could reach for a
//! response of that size on this machine, with wrk on the same cores.
//!
//! Every target is asked with a browser's `Accept-Encoding: gzip, deflate,
//! br` (the server gzips large pages; the hello-world's 13 bytes are never
//! compressed). `BENCH_ENCODING=` (empty) sends no Accept-Encoding, i.e.
//! measures the uncompressed responses; any other value is sent as is.

// The same allocator as the `fleet` binary, so the numbers are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use fleet_engine::{Engine, Quiet, Settings};
use fleet_server::{OperatorAuth, Secret, ServeOptions, Signer};
use fleet_store::{SqliteStore, Store};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "bench-operator-token";

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

struct Wrk {
    rps: f64,
    p99_ms: f64,
    requests: f64,
    /// Bytes read per response, headers included (from wrk's Transfer/sec).
    bytes_per_request: Option<f64>,
}

/// CPU time this process (the servers, not wrk) has used, in microseconds,
/// from /proc (Linux; clock ticks of 10 ms, fine over a run of seconds).
/// On a shared machine this is steadier than requests/s.
fn process_cpu_us() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10_000.0)
}

fn parse_latency_ms(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (t, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * scale)
}

/// wrk's `Transfer/sec` (e.g. `12.34MB`) in bytes.
fn parse_bytes(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = [
        ("GB", 1024.0 * 1024.0 * 1024.0),
        ("MB", 1024.0 * 1024.0),
        ("KB", 1024.0),
        ("B", 1.0),
    ]
    .iter()
    .find_map(|(unit, scale)| t.strip_suffix(unit).map(|n| (n, *scale)))?;
    num.parse::<f64>().ok().map(|v| v * scale)
}

fn wrk(url: &str, secs: u64, bearer: bool, encoding: &str) -> Result<Wrk, String> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c32", &format!("-d{secs}s"), "--latency"]);
    if bearer {
        cmd.args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
    }
    if !encoding.is_empty() {
        cmd.args(["-H", &format!("Accept-Encoding: {encoding}")]);
    }
    let out = cmd
        .arg(url)
        .output()
        .map_err(|e| format!("cannot run wrk ({e}); install it with `apt-get install -y wrk`"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if text.contains("Non-2xx") {
        return Err(format!("{url} answered errors under load:\n{text}"));
    }
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{text}"))?;
    let p99_ms = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .and_then(parse_latency_ms)
        .ok_or_else(|| format!("no 99% latency in wrk output:\n{text}"))?;
    let requests = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .and_then(|(n, _)| n.parse::<f64>().ok())
        })
        .ok_or_else(|| format!("no request count in wrk output:\n{text}"))?;
    let bytes_per_request = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Transfer/sec:"))
        .and_then(parse_bytes)
        .map(|b| b / rps);
    Ok(Wrk {
        rps,
        p99_ms,
        requests,
        bytes_per_request,
    })
}

async fn hello() -> &'static str {
    "Hello, world!"
}

/// A response as recorded from the real server: status 200, these headers
/// and body bytes.
#[derive(Clone)]
struct Recorded {
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
}

/// GETs `url` once as wrk will (same Accept-Encoding and authorization).
async fn record(url: &str, bearer: bool, encoding: &str) -> Result<Recorded, String> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<axum::body::Bytes>>();
    let mut req = axum::http::Request::get(url);
    if bearer {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    if !encoding.is_empty() {
        req = req.header("accept-encoding", encoding);
    }
    let req = req
        .body(http_body_util::Empty::new())
        .map_err(|e| e.to_string())?;
    let resp = client.request(req).await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let mut headers = axum::http::HeaderMap::new();
    for name in ["content-type", "content-encoding", "vary", "cache-control"] {
        if let Some(v) = resp.headers().get(name) {
            headers.insert(name, v.clone());
        }
    }
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok(Recorded { headers, body })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .clamp(1, 60);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir()?;
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate");
    copy_dir(&example, dir.path())?;
    let text = std::fs::read_to_string(dir.path().join(".fleet/config.yaml"))?;
    let config = fleet_core::config::check_str(&text)
        .config
        .ok_or("the example config is invalid")?;
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join(".fleet/fleet.db")).await?);
    let mut settings = Settings::new(dir.path().to_path_buf());
    settings.write_files = false;
    let engine = Arc::new(Engine::new(store, Arc::new(config), settings));
    // Several runs waiting at the gate, so /api/v1/runs has a realistic page.
    let mut last = None;
    for _ in 0..runs.max(1) {
        let run = engine
            .start_run("release-gate", Some("bench@example.com".into()))
            .await?;
        last = Some(engine.drive(&run.id, &Quiet).await?);
    }
    let run = last.ok_or("no run")?;
    let secret = Secret::from_bytes(b"bench secret, not for production use".to_vec())?;
    let signer = Signer::new(&secret)?;

    let (tx, rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    let opts = ServeOptions {
        bind: "127.0.0.1:0".parse()?,
        auth: OperatorAuth {
            api_token: Some(TOKEN.into()),
            open: false,
        },
        public_url: None,
        link_ttl: Duration::from_secs(3600),
        drain_timeout: Duration::from_secs(5),
        scheduler: false,
        config_path: None,
    };
    let server_signer = signer.clone();
    let server_engine = engine.clone();
    tokio::spawn(async move {
        let _ = fleet_server::serve(server_engine, server_signer, opts, move |a| {
            let _ = tx.send(a);
        })
        .await;
    });
    let fleet_addr = rx.await?;
    let link = fleet_server::approver_link(
        &signer,
        &format!("http://{fleet_addr}"),
        &run.id,
        "go-no-go",
        "release-owner@example.com",
        Duration::from_secs(3600),
    );
    let encoding =
        std::env::var("BENCH_ENCODING").unwrap_or_else(|_| "gzip, deflate, br".to_owned());
    let runs_url = format!("http://{fleet_addr}/api/v1/runs");
    // The same bytes served by handlers that do nothing else: how fast this
    // machine can serve responses of that size at all, next to hello-world.
    let gate_copy = record(&link, false, &encoding).await?;
    let runs_copy = record(&runs_url, true, &encoding).await?;
    let hello_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hello_addr = hello_listener.local_addr()?;
    tokio::spawn(async move {
        let serve_copy = |copy: Recorded| {
            axum::routing::get(move || {
                let copy = copy.clone();
                async move { (copy.headers, copy.body) }
            })
        };
        let app = axum::Router::new()
            .route("/", axum::routing::get(hello))
            .route("/gate-copy", serve_copy(gate_copy))
            .route("/runs-copy", serve_copy(runs_copy));
        let _ = axum::serve(hello_listener, app).await;
    });
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |key: &str| only.is_empty() || only.split(',').any(|k| k.trim() == key);
    let targets = [
        (
            "hello",
            "axum hello-world",
            format!("http://{hello_addr}/"),
            false,
        ),
        ("gate", "decision page", link, false),
        (
            "gate-copy",
            "  same bytes, static",
            format!("http://{hello_addr}/gate-copy"),
            false,
        ),
        ("runs", "/api/v1/runs", runs_url, true),
        (
            "runs-copy",
            "  same bytes, static",
            format!("http://{hello_addr}/runs-copy"),
            false,
        ),
    ];
    if std::env::var_os("BENCH_URLS").is_some() {
        for (_, name, url, bearer) in &targets {
            let auth = if *bearer {
                format!(" (Authorization: Bearer {TOKEN})")
            } else {
                String::new()
            };
            println!("{name}: {url}{auth}");
        }
    }
    println!(
        "wrk -t2 -c32 -d{secs}s on loopback, {} cores, {runs} runs in the store, Accept-Encoding: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        if encoding.is_empty() {
            "(none)"
        } else {
            &encoding
        }
    );
    println!(
        "{:<22} {:>12} {:>10} {:>10} {:>14} {:>12}",
        "target", "req/s", "p99 ms", "vs hello", "server µs/req", "bytes/resp"
    );
    let mut baseline = None;
    for (key, name, url, bearer) in targets {
        if !wanted(key) {
            continue;
        }
        let cpu_before = process_cpu_us();
        let sent = encoding.clone();
        let r = tokio::task::spawn_blocking(move || wrk(&url, secs, bearer, &sent)).await??;
        let cpu = match (cpu_before, process_cpu_us()) {
            (Some(a), Some(b)) if r.requests > 0.0 => format!("{:.1}", (b - a) / r.requests),
            _ => "-".into(),
        };
        if key == "hello" {
            baseline = Some(r.rps);
        }
        let share = baseline
            .map(|base| format!("{:.0}%", 100.0 * r.rps / base))
            .unwrap_or_else(|| "-".into());
        let bytes = r
            .bytes_per_request
            .map_or_else(|| "-".into(), |b| format!("{b:.0}"));
        println!(
            "{name:<22} {:>12.0} {:>10.2} {share:>10} {cpu:>14} {bytes:>12}",
            r.rps, r.p99_ms
        );
    }
    Ok(())
}
