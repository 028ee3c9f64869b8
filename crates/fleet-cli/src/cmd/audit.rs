//! `fleet audit verify`, `pubkey` and `checkpoint` (`export`: bundle.rs).

use crate::context::App;
use crate::workspace::UsageError;
use anyhow::{Context, Result};
use std::path::Path;
use std::process::ExitCode;

use super::checkpoints::{self, Log};
use fleet_evidence::{Checkpoint, Verifier};

/// The keys checkpoints and attestations are checked with: this
/// installation's (if it has one yet) and any given as `--key VKEY`.
fn trusted_keys(app: &App, keys: &[String]) -> Result<Vec<Verifier>> {
    let mut trusted = Vec::new();
    if app.engine.settings().signing_key_file.exists() {
        trusted.push(app.engine.signing_key()?.verifier());
    }
    for k in keys {
        let v = Verifier::parse(k).map_err(|e| UsageError(format!("--key: {e}")))?;
        if !trusted.contains(&v) {
            trusted.push(v);
        }
    }
    Ok(trusted)
}

pub async fn verify(app: &App, kept: Option<&Path>, keys: &[String]) -> Result<ExitCode> {
    let trusted = trusted_keys(app, keys)?;
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
        Some((path, note)) => match Checkpoint::open(note, &trusted) {
            Err(e) => Some(format!("{}: {e}", path.display())),
            Ok((cp, signer)) => {
                let good = checkpoints::confirmed_prefix(&events, &log, &trusted);
                log.check(&cp, signer, good)
                    .err()
                    .map(|why| format!("{}: {why}", path.display()))
            }
        },
    };
    let problem = kept_problem
        .or(report.first_problem.clone())
        .or(stored.problem);
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

/// `fleet audit pubkey`: the key attestations and checkpoints are signed
/// with, created if this installation has none yet.
pub fn pubkey(app: &App) -> Result<()> {
    let key = app.engine.signing_key()?;
    let v = key.verifier();
    println!("{}", v.vkey());
    eprintln!(
        "key id {} (ed25519; the file is {})",
        v.key_id(),
        app.engine.settings().signing_key_file.display()
    );
    Ok(())
}

/// `fleet audit checkpoint`: the newest signed checkpoint in the log, to
/// keep somewhere the database's owner cannot rewrite.
pub async fn checkpoint(app: &App) -> Result<ExitCode> {
    let events = app.store().events(None).await?;
    match events.iter().rev().find(|e| e.kind == "audit.checkpoint") {
        Some(e) => {
            print!("{}", e.payload["note"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no checkpoint yet: one is signed with every decision");
            Ok(ExitCode::from(1))
        }
    }
}
