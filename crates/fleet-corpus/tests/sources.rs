mod common;

use common::write;
use fleet_core::config::{Source, SourceCommand};
use fleet_corpus::{CorpusError, Inclusion, Limits, run_sources};
use std::time::{Duration, Instant};

fn shell(name: &str, script: &str) -> Source {
    Source {
        name: name.into(),
        command: SourceCommand::Shell(script.into()),
        env: Default::default(),
    }
}

fn argv(name: &str, args: &[&str]) -> Source {
    Source {
        name: name.into(),
        command: SourceCommand::Argv(args.iter().map(|a| a.to_string()).collect()),
        env: Default::default(),
    }
}

fn limits_with_timeout(timeout: Duration) -> Limits {
    Limits {
        source_timeout: timeout,
        ..Limits::default()
    }
}

#[test]
fn a_shell_source_runs_in_the_workspace_root_and_is_snapshotted() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "marker.txt", "from the root\n");
    let out = run_sources(
        dir.path(),
        &[shell("marker", "cat marker.txt; printf 'second\\n'")],
        &Limits::default(),
    )
    .unwrap();
    let (doc, entry) = &out[0];
    let expected = "from the root\nsecond\n";
    assert_eq!(doc.path, "source:marker");
    assert_eq!(doc.text, expected);
    assert_eq!(entry.path, "source:marker");
    assert_eq!(entry.size, expected.len() as u64);
    assert_eq!(entry.lines, 2);
    assert_eq!(
        entry.blake3,
        blake3::hash(expected.as_bytes()).to_hex().to_string()
    );
    assert_eq!(entry.inclusion, Inclusion::Whole);
}

#[test]
fn an_argv_source_runs_without_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_sources(
        dir.path(),
        &[argv(
            "literal",
            &["printf", "%s|", "a b", "$HOME", "$(id)", ";rm -rf x"],
        )],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(out[0].0.text, "a b|$HOME|$(id)|;rm -rf x|");
}

#[test]
fn sources_get_no_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_sources(
        dir.path(),
        &[argv("cat", &["cat"])],
        &limits_with_timeout(Duration::from_secs(20)),
    )
    .unwrap();
    assert_eq!(out[0].0.text, "");
}

#[test]
fn a_non_zero_exit_is_an_error_naming_the_command_and_quoting_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_sources(
        dir.path(),
        &[
            shell("fine", "echo ok"),
            shell(
                "ci-state",
                "echo partial; echo 'gh: not logged in' >&2; exit 3",
            ),
        ],
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CorpusError::SourceFailed { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("ci-state"), "{message}");
    assert!(message.contains("exit 3"), "{message}");
    assert!(message.contains("exit status 3"), "{message}");
    assert!(message.contains("gh: not logged in"), "{message}");
}

#[test]
fn a_command_that_runs_too_long_is_killed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = run_sources(
        dir.path(),
        &[shell("slow", "sleep 30")],
        &limits_with_timeout(Duration::from_millis(300)),
    )
    .unwrap_err();
    assert!(matches!(err, CorpusError::SourceTimedOut { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out after 0.3s"), "{err}");
    // Killed, not waited for: far less than the 30 s the command wanted.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_background_child_holding_stdout_open_is_killed_too() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let err = run_sources(
        dir.path(),
        &[shell("daemon", "(sleep 30; echo late) & echo started")],
        &limits_with_timeout(Duration::from_millis(500)),
    )
    .unwrap_err();
    assert!(matches!(err, CorpusError::SourceTimedOut { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_missing_program_or_empty_argv_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_sources(
        dir.path(),
        &[argv("nope", &["definitely-not-a-program-fleet"])],
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(err, CorpusError::SourceSpawn { .. }), "{err:?}");
    assert!(err.to_string().contains("definitely-not-a-program-fleet"));

    let err = run_sources(dir.path(), &[argv("empty", &[])], &Limits::default()).unwrap_err();
    assert!(
        matches!(err, CorpusError::EmptySourceCommand { .. }),
        "{err:?}"
    );
}

#[test]
fn output_is_capped_at_whole_lines_and_the_manifest_describes_all_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_file_bytes: 1000,
        ..Limits::default()
    };
    let out = run_sources(dir.path(), &[argv("seq", &["seq", "1", "100000"])], &limits).unwrap();
    let (doc, entry) = &out[0];
    let full: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert!(doc.text.len() <= 1000 && doc.text.ends_with('\n'));
    assert!(full.starts_with(&doc.text));
    assert_eq!(entry.inclusion, Inclusion::Truncated);
    assert_eq!(entry.lines, 100_000);
    assert_eq!(entry.size, full.len() as u64);
    assert_eq!(
        entry.blake3,
        blake3::hash(full.as_bytes()).to_hex().to_string()
    );
}

#[test]
fn invalid_utf8_output_is_decoded_lossily_and_noted() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_sources(
        dir.path(),
        &[shell("latin1", "printf 'caf\\351\\n'")],
        &Limits::default(),
    )
    .unwrap();
    let (doc, entry) = &out[0];
    assert_eq!(doc.text, "caf\u{FFFD}\n");
    assert_eq!(
        entry.blake3,
        blake3::hash(b"caf\xe9\n").to_hex().to_string()
    );
    assert!(entry.note.as_deref().unwrap().contains("lossily"));
}

#[test]
fn sources_run_concurrently() {
    // The writer blocks until the reader opens the FIFO: run one after the
    // other, the first would time out.
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("rendezvous"))
        .status()
        .unwrap();
    assert!(status.success());
    let out = run_sources(
        dir.path(),
        &[
            shell("writer", "echo hello > rendezvous; echo wrote"),
            shell("reader", "cat rendezvous"),
        ],
        &limits_with_timeout(Duration::from_secs(20)),
    )
    .unwrap();
    assert_eq!(out[0].0.text, "wrote\n");
    assert_eq!(out[1].0.text, "hello\n");
}

#[test]
fn a_shell_command_reads_param_values_from_its_environment() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut source = shell("version", "printf '%s' \"$FLEET_PARAM_VERSION\"");
    // A value a shell would run if it were spliced into the script.
    let value = "4.2.0; touch pwned";
    source
        .env
        .insert("FLEET_PARAM_VERSION".into(), value.into());
    let docs =
        run_sources(dir.path(), &[source], &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs[0].0.text, value);
    assert!(!dir.path().join("pwned").exists());
}
