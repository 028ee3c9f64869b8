//! `sources:` commands: run each one and snapshot its standard output as a
//! virtual document `source:NAME`.

use crate::error::CorpusError;
use crate::read::{Content, Raw, classify_output, count_lines, read_capped};
use crate::render::human_bytes;
use crate::{Document, Inclusion, Limits, ManifestEntry};
use fleet_core::config::{Source, SourceCommand};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;
use wait_timeout::ChildExt;

/// How much of a failing command's stderr goes into the error.
const STDERR_TAIL_BYTES: usize = 4 * 1024;

/// Runs every source (concurrently; each is usually waiting on a network) in
/// `root`, with no stdin and `limits.source_timeout` each. Output beyond
/// `limits.max_file_bytes` is cut at a line boundary; the manifest entry
/// still describes the whole output. The first failure (in `sources` order)
/// is returned.
pub fn run_sources(
    root: &Path,
    sources: &[Source],
    limits: &Limits,
) -> Result<Vec<(Document, ManifestEntry)>, CorpusError> {
    let results: Vec<Result<(Document, ManifestEntry), CorpusError>> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = sources
                .iter()
                .map(|source| scope.spawn(move || run_source(root, source, limits)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
    results.into_iter().collect()
}

/// How a command is shown in errors.
fn display_command(command: &SourceCommand) -> String {
    match command {
        SourceCommand::Shell(script) => script.clone(),
        SourceCommand::Argv(argv) => argv
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                {
                    format!("{a:?}")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn run_source(
    root: &Path,
    source: &Source,
    limits: &Limits,
) -> Result<(Document, ManifestEntry), CorpusError> {
    let shown = display_command(&source.command);
    let mut command = match &source.command {
        SourceCommand::Shell(script) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(script);
            c
        }
        SourceCommand::Argv(argv) => {
            let Some((program, args)) = argv.split_first() else {
                return Err(CorpusError::EmptySourceCommand {
                    name: source.name.clone(),
                });
            };
            let mut c = Command::new(program);
            c.args(args);
            c
        }
    };
    command
        .current_dir(root)
        .envs(&source.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a timeout kills what a shell started too
    // (otherwise a grandchild keeps the pipe open and the read never ends).
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);

    let io_error = |source_err: std::io::Error| CorpusError::SourceIo {
        name: source.name.clone(),
        command: shown.clone(),
        source: source_err,
    };
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| CorpusError::SourceSpawn {
        name: source.name.clone(),
        command: shown.clone(),
        source: e,
    })?;

    // Readers run on their own threads so neither pipe can fill up and stall
    // the command while we wait for it.
    let (stdout_tx, stdout_rx) = mpsc::channel();
    let (stderr_tx, stderr_rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        let max = limits.max_file_bytes;
        std::thread::spawn(move || {
            let _ = stdout_tx.send(read_capped(stdout, 0, max));
        });
    }
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            let _ = stderr_tx.send(buf);
        });
    }

    let timeout = limits.source_timeout;
    let timed_out = || CorpusError::SourceTimedOut {
        name: source.name.clone(),
        command: shown.clone(),
        timeout,
    };
    let status = match child.wait_timeout(timeout).map_err(io_error)? {
        Some(status) => status,
        None => {
            kill(&mut child);
            return Err(timed_out());
        }
    };
    // The command has exited, but something it started may still hold the
    // pipes open: the deadline covers that too.
    let remaining = timeout.saturating_sub(started.elapsed());
    let stdout: Raw = match stdout_rx.recv_timeout(remaining) {
        Ok(read) => read.map_err(io_error)?,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            kill(&mut child);
            return Err(timed_out());
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Err(io_error(std::io::Error::other("stdout reader stopped")));
        }
    };
    if !status.success() {
        let remaining = timeout.saturating_sub(started.elapsed());
        let stderr = stderr_rx.recv_timeout(remaining).unwrap_or_default();
        return Err(CorpusError::SourceFailed {
            name: source.name.clone(),
            command: shown,
            status: describe_status(status),
            stderr: tail(&stderr),
        });
    }

    let max_file_bytes = limits.max_file_bytes;
    let (snapshot, lossy) = classify_output(stdout);
    let Content::Text { text, truncated } = snapshot.content else {
        // classify_output always yields text.
        return Err(io_error(std::io::Error::other("output was not text")));
    };
    let mut notes = Vec::new();
    if truncated {
        notes.push(format!(
            "truncated to the first {} of {} lines ({} of {}): per-file cap {}",
            count_lines(&text),
            snapshot.lines,
            human_bytes(text.len() as u64),
            human_bytes(snapshot.size),
            human_bytes(max_file_bytes)
        ));
    }
    if lossy {
        notes.push("output was not valid UTF-8; decoded lossily".to_string());
    }
    let path = format!("source:{}", source.name);
    let entry = ManifestEntry {
        path: path.clone(),
        size: snapshot.size,
        blake3: snapshot.blake3,
        lines: snapshot.lines,
        inclusion: if truncated {
            Inclusion::Truncated
        } else {
            Inclusion::Whole
        },
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        sha256: None,
    };
    Ok((Document { path, text }, entry))
}

/// Kills the command's whole process group, then reaps it.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        let pid = rustix::process::Pid::from_child(child);
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn describe_status(status: std::process::ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("signal {signal}");
        }
    }
    status.to_string()
}

/// The last few KiB of stderr, starting at a line boundary when possible.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    if text.len() <= STDERR_TAIL_BYTES {
        return text.into_owned();
    }
    let mut start = text.len() - STDERR_TAIL_BYTES;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let tail = &text[start..];
    let tail = tail.find('\n').map_or(tail, |i| &tail[i + 1..]);
    format!("...\n{tail}")
}
