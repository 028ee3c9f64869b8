//! `fleet audit verify`, `pubkey` and `checkpoint` (`export`: bundle.rs).

use crate::context::App;
use crate::workspace::UsageError;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

use super::checkpoints::{self, Log};
use fleet_evidence::{KeyRing, Verifier};

/// The keys checkpoints and attestations are checked with: every key the
/// log lists (current and retired), this installation's key file, and any
/// given as `--key VKEY`.
async fn trusted_keys(app: &App, keys: &[String]) -> Result<KeyRing> {
    let mut ring = app.engine.key_ring().await?;
    for k in keys {
        let v = Verifier::parse(k).map_err(|e| UsageError(format!("--key: {e}")))?;
        ring.add(v, 0);
    }
    Ok(ring)
}

pub async fn verify(app: &App, kept: Option<&Path>, keys: &[String]) -> Result<ExitCode> {
    let trusted = trusted_keys(app, keys).await?;
    let kept = match kept {
        Some(path) => Some((
            path,
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the checkpoint {}", path.display()))?,
        )),
        None => None,
    };
    let report = app.store().verify_audit().await?;
    let events = app.store().events(None).await?;
    let log = Log::new(&events);
    let stored = checkpoints::check_stored(&events, &log, &trusted);
    let kept_problem = match &kept {
        None => None,
        Some((path, note)) => match trusted.open_checkpoint(note) {
            Err(e) => Some(format!("{}: {e}", path.display())),
            Ok((cp, signer)) => {
                let good = checkpoints::confirmed_prefix(&events, &log, &trusted);
                log.check(&cp, &signer.label(), good)
                    .err()
                    .map(|why| format!("{}: {why}", path.display()))
            }
        },
    };
    let problem = kept_problem
        .or(report.first_problem.clone())
        .or(stored.problem.clone());
    match problem {
        None => {
            println!(
                "audit ok: {} events chained, {} artifacts match their sha256, {} signed {}{}",
                report.events_checked,
                report.artifacts_checked,
                stored.matched,
                if stored.matched == 1 {
                    "checkpoint matches"
                } else {
                    "checkpoints match"
                },
                if kept.is_some() {
                    ", and so does the kept checkpoint"
                } else {
                    ""
                }
            );
            print_signers(&stored);
            Ok(ExitCode::SUCCESS)
        }
        Some(problem) => {
            eprintln!("audit FAILED: {problem}");
            eprintln!(
                "  ({} events and {} artifacts checked; {} stored checkpoints matched)",
                report.events_checked, report.artifacts_checked, stored.matched
            );
            Ok(ExitCode::from(1))
        }
    }
}

/// Which key signed the stored checkpoints that matched, with the events
/// holding them.
fn print_signers(stored: &checkpoints::Findings) {
    for (key, (status, seqs)) in &stored.by_key {
        let shown: Vec<String> = seqs.iter().take(10).map(i64::to_string).collect();
        let more = if seqs.len() > shown.len() {
            format!(" and {} more", seqs.len() - shown.len())
        } else {
            String::new()
        };
        println!(
            "  signed by key {key} ({status}): {} checkpoint{} (events {}{more})",
            seqs.len(),
            if seqs.len() == 1 { "" } else { "s" },
            shown.join(", ")
        );
    }
}

/// `fleet audit checkpoint`: the newest signed checkpoint in the log, to
/// keep somewhere the database's owner cannot rewrite.
pub async fn checkpoint(app: &App) -> Result<ExitCode> {
    let events = app
        .store()
        .events_of_kind("audit.checkpoint", Some(1))
        .await?;
    match events.last() {
        Some(e) => {
            print!("{}", e.payload["note"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!(
                "no checkpoint yet: one is signed with every decision, and every 1,000 events or 10 minutes of activity"
            );
            Ok(ExitCode::from(1))
        }
    }
}
