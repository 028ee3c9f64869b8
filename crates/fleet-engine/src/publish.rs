//! The publish step: writes the document a Go approved to its destinations
//! (a workspace file, a signed webhook, an argv on stdin) and records which
//! revision went where.
//!
//! Crash idempotence: the approved revision is fixed by the decision record,
//! not by whatever is latest, so re-executing the step after a crash between
//! publishing and recording publishes those same bytes again, never others.

use crate::Engine;
use crate::exec::{StepDone, StepFailure};
use fleet_core::config::{PublishDestination, Step, StepKind, publish_path_problem};
use fleet_core::dag;
use fleet_core::run::Verdict;
use fleet_store::{ArtifactRef, NewArtifact, RunRecord, StepRun};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// How much of a failed command's stderr goes into the error.
const STDERR_LIMIT: usize = 2_000;

pub(crate) async fn publish_step(
    engine: &Engine,
    run: &RunRecord,
    idx: usize,
    attempt: u32,
) -> Result<StepDone, StepFailure> {
    let step = &run.definition.steps[idx];
    let started_at = jiff::Timestamp::now();
    let source = source_step(run, step)?;
    let approved = approved_revision(engine, run, idx, &source.out_path()).await?;
    let bytes = engine
        .store
        .artifact_bytes(&approved.sha256)
        .await
        .map_err(|e| format!("cannot load {}: {e}", approved.path))?
        .ok_or_else(|| format!("artifact {} is missing from the store", approved.sha256))?;
    // The store is content-addressed; checking again costs little and means
    // the bytes sent out are provably the ones approved.
    if hex::encode(Sha256::digest(&bytes)) != approved.sha256 {
        return Err(StepFailure::from(format!(
            "step `{}`: the stored bytes of {} do not hash to the approved sha256 {}",
            step.name, approved.path, approved.sha256
        )));
    }

    let mut results = Vec::new();
    let mut failures = Vec::new();
    for destination in &step.destinations {
        let outcome = match destination {
            PublishDestination::Path(path) => write_path(&engine.settings.root, path, &bytes),
            PublishDestination::Webhook(url) => {
                post_webhook(engine, run, step, &approved, url, &bytes).await
            }
            PublishDestination::Command(argv) => {
                run_command(&engine.settings.root, argv, &bytes).await
            }
        };
        let label = describe(destination);
        match outcome {
            Ok(note) => results.push((label, note)),
            Err(e) => failures.push(format!("{label}: {e}")),
        }
    }
    if !failures.is_empty() {
        return Err(StepFailure::from(format!(
            "step `{}`: {} of {} destinations failed: {}",
            step.name,
            failures.len(),
            step.destinations.len(),
            failures.join("; ")
        )));
    }
    // Crash tests freeze here: published, not yet recorded.
    engine.pause_at("published");

    let finished_at = jiff::Timestamp::now();
    let mut text = format!(
        "# {}: published\n\nRun `{}` of genflow `{}` published `{}` (step `{}`) revision {}, sha256 `{}`, the revision the Go decision approved.\n\n| destination | result | sha256 |\n|---|---|---|\n",
        step.name,
        run.id,
        run.genflow_name,
        approved.path,
        approved.step,
        approved.revision,
        approved.sha256
    );
    for (label, note) in &results {
        text.push_str(&format!(
            "| {} | {} | `{}` |\n",
            label.replace('|', "\\|"),
            note.replace('|', "\\|"),
            approved.sha256
        ));
    }
    Ok(StepDone {
        artifacts: vec![NewArtifact {
            step: step.name.clone(),
            path: step.out_path(),
            bytes: text.into_bytes(),
        }],
        step_run: Some(StepRun {
            step: step.name.clone(),
            attempt,
            model: None,
            prompt: None,
            settings: serde_json::json!({
                "from": approved.step,
                "document": approved.path,
                "revision": approved.revision,
                "sha256": approved.sha256,
                "destinations": step.destinations.iter().map(describe).collect::<Vec<_>>(),
            }),
            manifest: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            cached: false,
            started_at,
            finished_at: Some(finished_at),
            error: None,
        }),
        flags: fleet_core::flags::FlagCounts::NONE,
        blobs: Vec::new(),
    })
}

/// `from`, or the first step in `depends_on` that is not an approval.
fn source_step<'a>(run: &'a RunRecord, step: &Step) -> Result<&'a Step, String> {
    let genflow = &run.definition;
    let found = match &step.from {
        Some(name) => genflow.step(name),
        None => step
            .depends_on
            .iter()
            .filter_map(|d| genflow.step(d))
            .find(|s| s.kind != StepKind::Approval),
    };
    found.ok_or_else(|| {
        format!(
            "step `{}`: no upstream document to publish (set `from:`)",
            step.name
        )
    })
}

/// The revision of `path` the Go decisions upstream were shown. Every Go of
/// the latest round of every upstream gate that was shown `path` must have
/// seen the same revision, and it must still be the latest: a document
/// that changed after the decision is not published.
async fn approved_revision(
    engine: &Engine,
    run: &RunRecord,
    idx: usize,
    path: &str,
) -> Result<ArtifactRef, String> {
    let step = &run.definition.steps[idx];
    let deps = run.definition.dependency_indices();
    let gates: Vec<&str> = dag::ancestors(&deps, idx)
        .into_iter()
        .map(|i| &run.definition.steps[i])
        .filter(|s| s.kind == StepKind::Approval)
        .map(|s| s.name.as_str())
        .collect();
    let decisions = engine
        .store
        .decisions(&run.id)
        .await
        .map_err(|e| format!("cannot load decisions: {e}"))?;
    let mut approved: Option<ArtifactRef> = None;
    for gate in &gates {
        let of_gate: Vec<_> = decisions.iter().filter(|d| d.step == *gate).collect();
        let Some(round) = of_gate.iter().map(|d| d.gate_round).max() else {
            return Err(format!(
                "step `{}`: gate `{gate}` has no recorded decision",
                step.name
            ));
        };
        for d in of_gate.iter().filter(|d| d.gate_round == round) {
            if d.verdict != Verdict::Go {
                return Err(format!(
                    "step `{}`: gate `{gate}` was not approved",
                    step.name
                ));
            }
            let Some(seen) = d.shown.iter().find(|r| r.path == path) else {
                continue;
            };
            match &approved {
                Some(a) if a.sha256 != seen.sha256 => {
                    return Err(format!(
                        "step `{}`: approvers were shown different revisions of {path} ({} and {}); nothing published",
                        step.name, a.revision, seen.revision
                    ));
                }
                Some(_) => {}
                None => approved = Some(seen.clone()),
            }
        }
    }
    let Some(approved) = approved else {
        return Err(format!(
            "step `{}`: no Go decision upstream was shown {path}, so there is no approved revision to publish",
            step.name
        ));
    };
    let refs = engine
        .store
        .artifacts(&run.id)
        .await
        .map_err(|e| format!("cannot load the run's documents: {e}"))?;
    if let Some(latest) = fleet_store::latest_revisions(&refs).get(path)
        && latest.sha256 != approved.sha256
    {
        return Err(format!(
            "step `{}`: {path} changed after the decision (approved revision {}, now revision {}); refusing to publish an unapproved revision",
            step.name, approved.revision, latest.revision
        ));
    }
    Ok(approved)
}

fn describe(destination: &PublishDestination) -> String {
    match destination {
        PublishDestination::Path(p) => format!("path {p}"),
        PublishDestination::Webhook(url) => format!("webhook {}", fleet_notify::url_label(url)),
        PublishDestination::Command(argv) => format!("command {}", argv.join(" ")),
    }
}

/// Writes `bytes` to `root/relative` atomically: a temp file in the same
/// directory, renamed over the target, so a reader never sees half a file.
fn write_path(root: &Path, relative: &str, bytes: &[u8]) -> Result<String, String> {
    // The run definition was checked, but this is where it matters.
    if let Some(problem) = publish_path_problem(relative) {
        return Err(problem);
    }
    let target = root.join(relative);
    let parent = target
        .parent()
        .ok_or_else(|| format!("`{relative}` has no parent directory"))?;
    // A symlinked directory could still lead outside the workspace.
    let canonical_root = root
        .canonicalize()
        .map_err(|e| format!("cannot resolve the workspace root: {e}"))?;
    // Before creating anything: `create_dir_all` would follow a symlink in
    // the part that exists and make directories outside the workspace.
    let existing = parent
        .ancestors()
        .find(|a| std::fs::symlink_metadata(a).is_ok())
        .unwrap_or(root);
    let canonical_existing = existing
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", existing.display()))?;
    if !canonical_existing.starts_with(&canonical_root) {
        return Err(format!(
            "`{relative}` resolves outside the workspace (through a symlink)"
        ));
    }
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let canonical_parent = parent
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", parent.display()))?;
    if !canonical_parent.starts_with(&canonical_root) {
        return Err(format!(
            "`{relative}` resolves outside the workspace (through a symlink)"
        ));
    }
    let file_name = target
        .file_name()
        .ok_or_else(|| format!("`{relative}` names no file"))?;
    let final_path: PathBuf = canonical_parent.join(file_name);
    if std::fs::symlink_metadata(&final_path).is_ok_and(|m| m.is_dir()) {
        return Err(format!("`{relative}` is a directory"));
    }
    let temp = canonical_parent.join(format!(
        ".{}.fleet-{}.tmp",
        file_name.to_string_lossy(),
        uuid::Uuid::now_v7().simple()
    ));
    let written = std::fs::write(&temp, bytes)
        .and_then(|()| std::fs::File::open(&temp)?.sync_all())
        .and_then(|()| std::fs::rename(&temp, &final_path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(format!("cannot write {}: {e}", final_path.display()));
    }
    Ok(format!("written, {} bytes", bytes.len()))
}

/// POSTs the document as JSON through the notify webhook channel, so the
/// signature (`X-Fleet-Signature`, `X-Fleet-Timestamp`) is the same.
async fn post_webhook(
    engine: &Engine,
    run: &RunRecord,
    step: &Step,
    approved: &ArtifactRef,
    url: &str,
    bytes: &[u8],
) -> Result<String, String> {
    let channel = engine.notifier().channel("webhook")?;
    let body = serde_json::json!({
        "event": "publish",
        "run_id": run.id,
        "genflow": run.genflow_name,
        "step": step.name,
        "document": {
            "step": approved.step,
            "path": approved.path,
            "revision": approved.revision,
            "sha256": approved.sha256,
            "text": String::from_utf8_lossy(bytes),
        },
    });
    let post = fleet_notify::HttpPost {
        url: url.to_owned(),
        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
        // The same id on every retry: a receiver can drop a repeat.
        delivery_id: format!("publish:{}:{}:{}", run.id, step.name, approved.sha256),
    };
    let receipt = channel
        .send(&fleet_notify::Outgoing::Webhook(post))
        .await
        .map_err(|e| e.to_string())?;
    Ok(format!("posted, {}", receipt.response))
}

/// Runs `argv` (no shell) in the workspace root with the document on stdin.
async fn run_command(root: &Path, argv: &[String], bytes: &[u8]) -> Result<String, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "the command is empty".to_owned())?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that exits without reading all of stdin is judged by
        // its exit status, not by the broken pipe.
        let _ = stdin.write_all(bytes).await;
        drop(stdin);
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("`{program}` failed: {e}"))?;
    if output.status.success() {
        return Ok("exit 0".to_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    let shown: String = stderr.chars().take(STDERR_LIMIT).collect();
    let more = if shown.len() < stderr.len() {
        " […]"
    } else {
        ""
    };
    Err(format!(
        "`{program}` exited with {}: {shown}{more}",
        output.status
    ))
}
