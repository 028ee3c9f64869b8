//! The `command` provider with small shell scripts standing in for an agent
//! CLI: the prompt goes in on stdin, the document comes out on stdout.

use fleet_core::config::{Duration as CfgDuration, ModelConfig, Provider, StepKind};
use fleet_core::flags::FlagSeverity;
use fleet_corpus::{Corpus, Document};
use fleet_models::{ModelError, ModelRequest, ProviderOptions, UpstreamDoc, from_config};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn config(argv: Vec<String>, timeout_ms: u64, concurrency: u32) -> ModelConfig {
    ModelConfig {
        provider: Provider::Command,
        model: None,
        base_url: None,
        api_key_env: None,
        temperature: None,
        max_tokens: None,
        context_tokens: Some(32_000),
        headers: BTreeMap::new(),
        prices: None,
        command: argv,
        timeout: Some(CfgDuration(timeout_ms)),
        concurrency: Some(concurrency),
    }
}

fn request(kind: StepKind) -> ModelRequest {
    ModelRequest {
        genflow: "release-gate".into(),
        step: if kind == StepKind::Review {
            "risk-review".into()
        } else {
            "readiness".into()
        },
        kind,
        prompt: "Assemble the release readiness report.".into(),
        corpus: Corpus {
            documents: vec![Document {
                path: "docs/runbooks/deploy.md".into(),
                text: "# Deploy\nRollback: TBD\n".into(),
            }],
            ..Corpus::default()
        },
        upstream: if kind == StepKind::Review {
            vec![UpstreamDoc {
                step: "readiness".into(),
                kind: StepKind::Report,
                path: "readiness.md".into(),
                text: "# Readiness\nAll good.\n".into(),
                flags: None,
            }]
        } else {
            Vec::new()
        },
        feedback: None,
        budget: None,
        release: None,
    }
}

fn options(dir: &Path) -> ProviderOptions {
    ProviderOptions {
        work_dir: Some(dir.to_path_buf()),
        ..ProviderOptions::default()
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn the_agent_reads_the_prompt_on_stdin_and_writes_the_document() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Records its argv and stdin, and answers with a citation.
    let agent = script(
        tmp.path(),
        "agent.sh",
        "printf '%s\\n' \"$@\" > args.txt\ncat > stdin.txt\n\
         printf '# Readiness\\n\\nRollback is TBD (docs/runbooks/deploy.md:2).\\n'\n",
    );
    let argv = vec![s(&agent), "-p".into(), "two words; $(not a shell)".into()];
    let model =
        from_config("agent", &config(argv, 10_000, 1), &options(tmp.path())).expect("builds");
    assert_eq!(model.name(), "agent");
    let c = model
        .complete(&request(StepKind::Report))
        .await
        .expect("agent answers");
    assert!(
        c.text
            .starts_with("# Readiness\n\nRollback is TBD (docs/runbooks/deploy.md:2).")
    );
    assert!(!c.text.contains("Citation check"), "{}", c.text);
    assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (0, 0));
    assert_eq!(c.usage.cost_usd, None);

    // The agent ran in the work dir, got the argv verbatim (no shell) and the prompt on stdin.
    let args = std::fs::read_to_string(tmp.path().join("args.txt")).expect("args recorded");
    assert_eq!(args, "-p\ntwo words; $(not a shell)\n");
    let stdin = std::fs::read_to_string(tmp.path().join("stdin.txt")).expect("stdin recorded");
    assert!(
        stdin.contains("Cite every factual claim"),
        "system prompt first"
    );
    assert!(stdin.contains("Assemble the release readiness report."));
    assert!(stdin.contains("    2| Rollback: TBD"));
}

#[tokio::test]
async fn a_review_agent_returns_flags() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = script(
        tmp.path(),
        "review.sh",
        "cat > /dev/null\ncat <<'EOF'\n## Rollback missing\n\nSee docs/runbooks/deploy.md:2.\n\n```json\n\
         {\"flags\": [{\"id\": \"F1\", \"severity\": \"high\", \"claim\": \"Rollback is TBD\", \
         \"evidence\": [\"docs/runbooks/deploy.md:2\"]}]}\n```\nEOF\n",
    );
    let model = from_config(
        "agent",
        &config(vec![s(&agent)], 10_000, 1),
        &options(tmp.path()),
    )
    .expect("builds");
    let c = model
        .complete(&request(StepKind::Review))
        .await
        .expect("review");
    let flags = c.flags.expect("flags");
    assert_eq!(flags.flags.len(), 1, "{:?}", flags.flags);
    assert_eq!(flags.flags[0].severity, FlagSeverity::High);
    assert_eq!(flags.flags[0].evidence[0].quote, "Rollback: TBD");
}

#[tokio::test]
async fn a_failing_agent_fails_the_step_quoting_stderr() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = script(
        tmp.path(),
        "broken.sh",
        "cat > /dev/null\necho 'partial output'\necho 'error: not logged in (run `agent login`)' >&2\nexit 3\n",
    );
    let model = from_config(
        "agent",
        &config(vec![s(&agent)], 10_000, 1),
        &options(tmp.path()),
    )
    .expect("builds");
    let err = model
        .complete(&request(StepKind::Report))
        .await
        .expect_err("exit 3 fails");
    let text = err.to_string();
    assert!(matches!(err, ModelError::Agent { .. }), "{err:?}");
    assert!(text.contains("exited with status 3"), "{text}");
    assert!(text.contains("not logged in (run `agent login`)"), "{text}");
}

#[tokio::test]
async fn an_agent_that_prints_nothing_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = script(tmp.path(), "silent.sh", "cat > /dev/null\n");
    let model = from_config(
        "agent",
        &config(vec![s(&agent)], 10_000, 1),
        &options(tmp.path()),
    )
    .expect("builds");
    let err = model
        .complete(&request(StepKind::Report))
        .await
        .expect_err("empty document");
    assert!(err.to_string().contains("empty document"), "{err}");
}

#[tokio::test]
async fn a_slow_agent_is_stopped_at_the_timeout_with_what_it_started() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The agent starts a child that would outlive it; the whole group is stopped.
    let agent = script(
        tmp.path(),
        "slow.sh",
        "cat > /dev/null\n(sleep 30; echo late > late.txt) &\necho $! > child.pid\nsleep 30\n",
    );
    let model = from_config(
        "agent",
        &config(vec![s(&agent)], 500, 1),
        &options(tmp.path()),
    )
    .expect("builds");
    let err = model
        .complete(&request(StepKind::Report))
        .await
        .expect_err("times out");
    assert!(
        err.to_string().contains("did not finish within 0.5s"),
        "{err}"
    );
    let pid: i32 = std::fs::read_to_string(tmp.path().join("child.pid"))
        .expect("child pid")
        .trim()
        .parse()
        .expect("pid");
    // The background child was killed with the group (it may linger as a zombie briefly).
    let mut gone = false;
    for _ in 0..50 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z ") {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(gone, "the agent's child {pid} is still running");
}

#[tokio::test]
async fn a_missing_program_and_an_empty_command_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let model = from_config(
        "agent",
        &config(vec!["fleet-test-no-such-agent".into()], 1_000, 1),
        &options(tmp.path()),
    )
    .expect("builds");
    let err = model
        .complete(&request(StepKind::Report))
        .await
        .expect_err("cannot start");
    assert!(err.to_string().contains("could not be started"), "{err}");
    let err = from_config("agent", &config(Vec::new(), 1_000, 1), &options(tmp.path()))
        .err()
        .expect("an empty argv is refused");
    assert!(err.to_string().contains("empty `command`"), "{err}");
}

/// Three steps at once against an agent that fails if it ever runs twice at
/// the same time (an atomic `mkdir` lock): `concurrency` decides.
async fn overlapping_runs(concurrency: u32) -> Vec<Result<(), String>> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = script(
        tmp.path(),
        "exclusive.sh",
        "cat > /dev/null\nmkdir running.lock 2>/dev/null || { echo 'ran concurrently' >&2; exit 9; }\n\
         sleep 0.3\nrmdir running.lock\necho '# Done'\n",
    );
    let model: Arc<dyn fleet_models::Model> = from_config(
        "agent",
        &config(vec![s(&agent)], 10_000, concurrency),
        &options(tmp.path()),
    )
    .expect("builds");
    let mut tasks = Vec::new();
    for _ in 0..3 {
        let model = model.clone();
        tasks.push(tokio::spawn(async move {
            model
                .complete(&request(StepKind::Report))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_holds_calls_back() {
    let limited = overlapping_runs(1).await;
    assert!(limited.iter().all(Result::is_ok), "{limited:?}");
    // The same agent without the limit does overlap, so the check above can fail.
    let unlimited = overlapping_runs(3).await;
    assert!(
        unlimited
            .iter()
            .any(|r| r.as_ref().is_err_and(|e| e.contains("ran concurrently"))),
        "{unlimited:?}"
    );
}
