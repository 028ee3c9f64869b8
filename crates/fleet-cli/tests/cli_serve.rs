//! `fleet serve` and `fleet gate link` through the real binary: settings that
//! would expose the dashboard are refused, the server answers on loopback,
//! a printed link opens the decision page, and SIGTERM stops it cleanly.

mod common;

use common::fleet;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

const OWNER: &str = "release-owner@example.com";

fn project_at_gate() -> (tempfile::TempDir, String) {
    let tmp = common::initialized();
    let out = fleet(tmp.path())
        .args(["run", "release-gate", "--json"])
        .assert()
        .get_output()
        .stdout
        .clone();
    let run: serde_json::Value = serde_json::from_slice(&out).expect("run JSON");
    let id = run["run_id"].as_str().expect("run_id").to_owned();
    (tmp, id)
}

/// A plain HTTP/1.1 GET; returns (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer op-token\r\nConnection: close\r\n\r\n"
    )
    .expect("write request");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read response");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn gate_link_prints_a_signed_link_for_approvers_only() {
    let (tmp, id) = project_at_gate();
    let out = fleet(tmp.path())
        .args(["gate", "link", &id[..8], "go-no-go", "--for", OWNER])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let link = String::from_utf8_lossy(&out).trim().to_owned();
    assert!(
        link.starts_with(&format!(
            "http://127.0.0.1:8080/runs/{id}/gates/go-no-go?t=v1."
        )),
        "{link}"
    );
    // The secret was created once, readable by the owner only.
    let secret = tmp.path().join(".fleet/secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret)
            .expect("secret")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fleet(tmp.path())
        .args([
            "gate",
            "link",
            &id,
            "go-no-go",
            "--for",
            "mallory@example.com",
        ])
        .assert()
        .code(2);
    fleet(tmp.path())
        .args(["gate", "link", &id, "readiness", "--for", OWNER])
        .assert()
        .code(2);
}

#[test]
fn serve_refuses_unauthenticated_exposure() {
    let (tmp, _) = project_at_gate();
    fleet(tmp.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("FLEET_API_TOKEN"));
    fleet(tmp.path())
        .args(["serve", "--bind", "0.0.0.0:0", "--insecure-local"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("loopback"));
}

#[test]
fn serve_answers_and_stops_on_sigterm() {
    let (tmp, id) = project_at_gate();
    let link_out = fleet(tmp.path())
        .args(["gate", "link", &id, "go-no-go", "--for", OWNER])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let link = String::from_utf8_lossy(&link_out).trim().to_owned();
    let path = link
        .strip_prefix("http://127.0.0.1:8080")
        .expect("default public URL")
        .to_owned();

    let bin = assert_cmd::cargo::cargo_bin("fleet");
    let mut serve = std::process::Command::new(bin);
    common::use_database_std(&mut serve, tmp.path());
    let mut child = serve
        .env_remove("FLEET_CONFIG")
        .env_remove("FLEET_SECRET")
        .env("FLEET_API_TOKEN", "op-token")
        .arg("-C")
        .arg(tmp.path())
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fleet serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{line}`"));

    let (status, body) = http_get(port, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(port, &path);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Ship release 2.4.0 to production?"));
    let (status, body) = http_get(port, &format!("/api/v1/runs/{id}"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"waiting_gates\":[\"go-no-go\"]"), "{body}");

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "fleet serve exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "fleet serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A label-triggered genflow and the GitHub hook secret it needs, added to
/// the example `fleet init` writes.
const TRIGGERED: &str = r#"  - name: triage
    params:
      - {name: ticket_number, pattern: '\d+'}
    trigger:
      github: {label: fleet-review}
    steps:
      - {name: look, kind: report, prompt: "Triage.", corpus: ["docs/runbooks/*.md"]}
server:
  github: {secret_env: FLEET_TEST_HOOK_SECRET}
"#;

#[test]
fn a_triggered_genflow_is_listed_and_serve_needs_its_hook_secret() {
    let tmp = common::initialized();
    let config = tmp.path().join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, format!("{text}{TRIGGERED}")).expect("write config");
    fleet(tmp.path())
        .arg("flows")
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "triage\n  trigger: github label `fleet-review`\n",
        ));
    let flows = fleet(tmp.path())
        .args(["flows", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let flows: serde_json::Value = serde_json::from_slice(&flows).expect("flows JSON");
    assert_eq!(
        flows["genflows"][1]["trigger"],
        serde_json::json!({"github": {"label": "fleet-review"}})
    );
    // The variable the config names is unset: the server does not start
    // (it would otherwise have to accept or refuse every delivery blind).
    fleet(tmp.path())
        .env_remove("FLEET_TEST_HOOK_SECRET")
        .args(["serve", "--bind", "127.0.0.1:0", "--insecure-local"])
        .timeout(Duration::from_secs(60))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "`server.github.secret_env` names the environment variable FLEET_TEST_HOOK_SECRET, which is not set",
        ));
}
