//! Two `fleet serve` processes on one database: a schedule due every second
//! fires each occurrence exactly once across both (the due time is claimed
//! with a compare-and-swap in the database), and each run names the
//! occurrence it is for.

mod common;

use common::Backend;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Servers(Vec<Child>);

impl Drop for Servers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `fleet serve` on a free loopback port; returns once it listens.
fn serve(backend: &Backend, dir: &Path) -> Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleet"));
    backend.apply_std(&mut cmd);
    let mut child = cmd
        .arg("-C")
        .arg(dir)
        .args(["serve", "--bind", "127.0.0.1:0", "--insecure-local"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fleet serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("read the listening line");
    assert!(line.contains("listening on"), "fleet serve said: {line}");
    // Keep reading, so the server never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    child
}

fn every_occurrence_starts_one_run(backend: Backend) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    backend
        .fleet_plain()
        .arg("init")
        .arg(dir)
        .assert()
        .success();
    let config = dir.join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replacen(
        "  - name: release-gate\n",
        "  - name: release-gate\n    schedule: \"* * * * * *\"\n",
        1,
    );
    std::fs::write(&config, text).expect("write config");

    let started = Instant::now();
    let mut servers = Servers(vec![serve(&backend, dir), serve(&backend, dir)]);
    std::thread::sleep(Duration::from_secs(6));
    for s in &servers.0 {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &s.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
    }
    for s in &mut servers.0 {
        let status = s.wait().expect("server exits");
        assert!(status.success(), "fleet serve exited {status}");
    }
    let window = started.elapsed();

    let out = backend
        .fleet(dir)
        .args(["runs", "--json", "--limit", "1000"])
        .output()
        .expect("fleet runs");
    assert!(out.status.success());
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runs JSON");
    let mut by_occurrence: BTreeMap<String, u32> = BTreeMap::new();
    for r in runs["runs"].as_array().expect("runs") {
        let who = r["triggered_by"].as_str().unwrap_or_default().to_owned();
        assert!(
            who.starts_with("schedule "),
            "a run not started by the schedule: {who}"
        );
        *by_occurrence.entry(who).or_default() += 1;
    }
    let doubled: Vec<_> = by_occurrence.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "occurrences started twice: {doubled:?}");
    // One per second the servers were up, give or take start-up and the
    // first sighting of the schedule (due at the next second, not now).
    let n = by_occurrence.len() as u64;
    assert!(
        n >= 3 && n <= window.as_secs() + 1,
        "{n} occurrences fired in {window:?}: {by_occurrence:?}"
    );
}

#[test]
fn two_servers_fire_each_occurrence_once_sqlite() {
    every_occurrence_starts_one_run(Backend::sqlite());
}

#[test]
fn two_servers_fire_each_occurrence_once_postgres() {
    every_occurrence_starts_one_run(Backend::postgres());
}
