//! `fleet worker` processes sharing one database through the real binary:
//! 200 release-gate runs started detached, executed by three workers,
//! approved through the CLI; every step completes exactly once, also when
//! one worker is SIGKILLed halfway (its steps are taken over once its
//! lease lapses), and the audit chain verifies.

mod common;

use common::Backend;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const OWNER: &str = "release-owner@example.com";
const RUNS: usize = 200;

/// Worker processes, killed when dropped (a failing test leaves none behind).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_worker(backend: &Backend, dir: &Path, log: &Path, freeze: bool) -> Child {
    let log = std::fs::File::create(log).expect("worker log");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("fleet"));
    backend.apply_std(&mut cmd);
    if freeze {
        // Freezes as it begins executing its first step, holding the
        // step's lease: the step can only finish by a takeover.
        cmd.env("FLEET_FAULT", "pause-after:step_executing");
    }
    cmd.env("FLEET_LEASE_TTL", "2s")
        .arg("-C")
        .arg(dir)
        .args(["worker", "--concurrency", "4", "--poll", "500ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start fleet worker")
}

fn statuses(backend: &Backend, dir: &Path) -> BTreeMap<String, String> {
    let out = backend
        .fleet(dir)
        .args(["runs", "--json", "--limit", "1000"])
        .output()
        .expect("fleet runs");
    assert!(
        out.status.success(),
        "fleet runs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("runs JSON");
    runs["runs"]
        .as_array()
        .expect("runs array")
        .iter()
        .map(|r| {
            (
                r["run_id"].as_str().unwrap_or_default().to_owned(),
                r["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn wait_until_all(backend: &Backend, dir: &Path, status: &str, n: usize, deadline: Duration) {
    let start = Instant::now();
    loop {
        let now = statuses(backend, dir);
        let done = now.values().filter(|s| *s == status).count();
        if done == n {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "after {:?}, {done} of {n} runs are {status}: {:?}",
            deadline,
            now.values().fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s.clone()).or_insert(0) += 1;
                m
            })
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn three_workers_run_every_step_once(backend: Backend, kill_one: bool) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    backend
        .fleet_plain()
        .arg("init")
        .arg(dir)
        .assert()
        .success();
    let logs: Vec<_> = (0..3).map(|i| dir.join(format!("worker{i}.log"))).collect();
    let mut workers = Workers(
        logs.iter()
            .enumerate()
            .map(|(i, l)| start_worker(&backend, dir, l, kill_one && i == 0))
            .collect(),
    );

    let mut ids = Vec::new();
    for i in 0..RUNS {
        let out = backend
            .fleet(dir)
            .args(["run", "release-gate", "--detach"])
            .output()
            .expect("fleet run --detach");
        assert!(
            out.status.success(),
            "run {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ids.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        if kill_one && i == RUNS / 2 {
            let frozen = Instant::now();
            while !std::fs::read_to_string(&logs[0])
                .unwrap_or_default()
                .contains("paused after")
            {
                assert!(
                    frozen.elapsed() < Duration::from_secs(60),
                    "worker 0 never started a step"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            // SIGKILL: no drain; its lease lapses and another worker takes
            // the step over.
            workers.0[0].kill().expect("SIGKILL a worker");
            workers.0[0].wait().expect("reap");
        }
    }
    wait_until_all(&backend, dir, "waiting", RUNS, Duration::from_secs(180));

    for id in &ids {
        let out = backend
            .fleet(dir)
            .args(["approve", id, "--step", "go-no-go", "--as", OWNER, "--json"])
            .output()
            .expect("fleet approve");
        assert!(
            out.status.success(),
            "approve {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    wait_until_all(&backend, dir, "succeeded", RUNS, Duration::from_secs(180));

    // Exactly once: each step of each run reached its final status once.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = rt.block_on(backend.store(dir));
    for id in &ids {
        let events = rt.block_on(store.events(Some(id))).expect("events");
        let mut finished: BTreeMap<String, u32> = BTreeMap::new();
        for e in events.iter().filter(|e| e.kind == "step.status") {
            let status = e.payload["status"].as_str().unwrap_or_default();
            if matches!(status, "succeeded" | "approved") {
                *finished
                    .entry(e.payload["step"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
        let expected: BTreeMap<String, u32> = ["readiness", "risk-review", "go-no-go", "announce"]
            .into_iter()
            .map(|s| (s.to_owned(), 1))
            .collect();
        assert_eq!(finished, expected, "run {id}: steps completed {finished:?}");
        let records = rt.block_on(store.step_runs(id)).expect("step runs");
        for step in ["readiness", "risk-review", "announce"] {
            let n = records.iter().filter(|r| r.step == step).count();
            assert_eq!(n, 1, "run {id}: {n} attempts recorded for {step}");
        }
    }
    drop(store);
    backend
        .fleet(dir)
        .args(["audit", "verify"])
        .assert()
        .success();

    // The surviving workers drain on SIGTERM and exit 0.
    let survivors = if kill_one { 1..3 } else { 0..3 };
    for i in survivors.clone() {
        let pid = workers.0[i].id().to_string();
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(ok.success());
    }
    for i in survivors {
        let status = workers.0[i].wait().expect("worker exits");
        let log = std::fs::read_to_string(&logs[i]).unwrap_or_default();
        assert!(status.success(), "worker {i} exited {status}:\n{log}");
        assert!(log.contains("draining"), "worker {i} did not drain:\n{log}");
    }
    let claimed: usize = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap_or_default())
        .map(|t| t.matches("step started").count())
        .sum();
    assert!(claimed > 0, "the workers executed nothing");
}

#[test]
fn three_workers_sqlite() {
    three_workers_run_every_step_once(Backend::sqlite(), false);
}

#[test]
fn three_workers_one_killed_sqlite() {
    three_workers_run_every_step_once(Backend::sqlite(), true);
}

#[test]
fn three_workers_postgres() {
    three_workers_run_every_step_once(Backend::postgres(), false);
}

#[test]
fn three_workers_one_killed_postgres() {
    three_workers_run_every_step_once(Backend::postgres(), true);
}
