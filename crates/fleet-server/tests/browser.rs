//! A real browser (Debian's headless Chromium, driven through chromedriver)
//! against a real `fleet_server::serve` on loopback: an approver opens the
//! decision link, sees both documents, the flags and the rounds of the
//! review's redraft loop, clicks No-go without a reason and sees the error,
//! then clicks Go; the run completes.
//!
//! Needs: `apt-get update && apt-get install -y chromium chromium-driver`.
//! Screenshots go to `$FLEET_SCREENSHOTS` (e.g. `docs/screenshots`) when set.

mod common;

use common::*;
use fantoccini::{ClientBuilder, Locator};
use fleet_server::{OperatorAuth, ServeOptions};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver";

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

async fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn shot(client: &fantoccini::Client, dir: &Path, name: &str) {
    let png = client
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    std::fs::write(dir.join(name), &png).unwrap_or_else(|e| panic!("write {name}: {e}"));
}

async fn text_of(client: &fantoccini::Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find {css}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("text of {css}: {e}"))
}

/// Polls until the element's text contains `want` (pages load after a
/// click; an element of the previous page may go stale meanwhile).
async fn wait_text(client: &fantoccini::Client, css: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        if let Ok(el) = client.find(Locator::Css(css)).await
            && let Ok(text) = el.text().await
        {
            if text.contains(want) {
                return text;
            }
            last = text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("`{css}` never said `{want}` (last: `{last}`)");
}

async fn click(client: &fantoccini::Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("find {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approver_decides_in_a_real_browser() {
    let (Some(driver_bin), Some(chromium)) = (which("chromedriver"), which("chromium")) else {
        panic!("the browser test needs Chromium and chromedriver; install them with:\n  {INSTALL}");
    };
    // The review sends the report back once: the page then leads with the
    // rounds of that loop.
    let env = env_with(false, |t| {
        t.replace(
            "kind: review, out: risks.md}",
            "kind: review, out: risks.md, on_flag: {redraft: readiness, max: 1}}",
        )
    })
    .await;
    let run = env.run_to_gate().await;
    assert_eq!(
        run.state.steps[1].redrafts, 1,
        "the builtin review raised high flags"
    );

    // The real server (worker included) on a free loopback port.
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<SocketAddr>();
    let opts = ServeOptions {
        bind: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        auth: OperatorAuth {
            api_token: Some(API_TOKEN.into()),
            open: false,
        },
        public_url: None,
        link_ttl: Duration::from_secs(3600),
        drain_timeout: Duration::from_secs(5),
        scheduler: true,
        config_path: None,
    };
    let engine = env.engine.clone();
    let signer = env.signer.clone();
    tokio::spawn(async move {
        let r = fleet_server::serve(engine, signer, opts, move |a| {
            let _ = addr_tx.send(a);
        })
        .await;
        if let Err(e) = r {
            eprintln!("serve: {e}");
        }
    });
    let addr = addr_rx
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e}"));
    let base = format!("http://{addr}");

    let port = free_port();
    let _driver = Driver(
        Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start chromedriver ({INSTALL}): {e}")),
    );
    wait_for_port(port).await;
    let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--window-size=1280,1100",
                format!("--user-data-dir={}", profile.path().display()),
            ]
        }),
    );
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot start a Chromium session ({INSTALL}): {e}"));

    let shots_dir = std::env::var_os("FLEET_SCREENSHOTS").map(PathBuf::from);
    let tmp_shots = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let shots: &Path = shots_dir.as_deref().unwrap_or(tmp_shots.path());
    std::fs::create_dir_all(shots).unwrap_or_else(|e| panic!("{e}"));

    // Operator: the login form, then the dashboard and the run page.
    client
        .goto(&format!("{base}/"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client
        .find(Locator::Css("#token"))
        .await
        .unwrap_or_else(|e| panic!("login form: {e}"))
        .send_keys(API_TOKEN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    click(&client, "button[type=submit]").await;
    wait_text(&client, "h1", "Runs").await;
    shot(&client, shots, "dashboard.png").await;
    client
        .goto(&format!("{base}/runs/{}", run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        client
            .source()
            .await
            .unwrap_or_default()
            .contains("dag-node st-waiting")
    );
    shot(&client, shots, "run.png").await;

    // Approver: the decision link (as an email would carry it).
    let link = env
        .state
        .approver_link(&run.id, "go-no-go", OWNER, Duration::from_secs(3600));
    let path = link.trim_start_matches("http://fleet.test");
    client
        .goto(&format!("{base}{path}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let page = client.source().await.unwrap_or_default();
    assert!(
        page.contains("readiness.md") && page.contains("risks.md"),
        "both documents"
    );
    assert!(
        page.contains("Readiness report"),
        "the readiness document is rendered"
    );
    let flags = client
        .find_all(Locator::Css(".flag"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!flags.is_empty(), "the review's flags are shown");
    assert!(text_of(&client, ".who").await.contains(OWNER));
    // The redraft loop: where it ended, at the top, then both rounds and the diff.
    let banner = text_of(&client, ".redraft-banner").await;
    assert!(
        banner.starts_with("1 of 1 redrafts used; ") && banner.contains("high flag"),
        "{banner}"
    );
    let rounds = client
        .find_all(Locator::Css("#rounds tr.round"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rounds.len(), 2, "both rounds are listed");
    assert!(
        text_of(&client, ".redraft-diff summary")
            .await
            .contains("r1 → r2")
    );
    shot(&client, shots, "decision.png").await;
    // The same page on a phone-sized window, then back.
    client
        .set_window_size(390, 1200)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.refresh().await.unwrap_or_else(|e| panic!("{e}"));
    shot(&client, shots, "decision-phone.png").await;
    client
        .set_window_size(1280, 1100)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    client.refresh().await.unwrap_or_else(|e| panic!("{e}"));

    // No-go without a reason: refused, and the page says why.
    click(&client, "#nogo").await;
    wait_text(&client, "#notice", "needs a reason").await;
    let none = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(none.is_empty());

    // Go: recorded, and the worker finishes the run.
    click(&client, "#go").await;
    wait_text(&client, "#notice", "Your decision was recorded").await;
    let done = env.wait_terminal(&run.id).await;
    assert_eq!(done.state.status.as_str(), "succeeded");
    let d = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (d.len(), d[0].approver.as_str(), d[0].channel.as_str()),
        (1, OWNER, "web")
    );
    shot(&client, shots, "decision-recorded.png").await;

    client
        .goto(&format!("{base}/runs/{}", run.id))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    shot(&client, shots, "run-succeeded.png").await;
    let _ = client.close().await;
}
