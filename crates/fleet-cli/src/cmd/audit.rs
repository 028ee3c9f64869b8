//! `fleet audit verify` and `fleet audit export`.

use crate::context::App;
use crate::workspace::UsageError;
use anyhow::{Context, Result, bail};
use fleet_store::audit::{format_time, sha256_hex};
use std::collections::BTreeMap;
use std::path::{Component, Path};
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

fn write(dir: &Path, rel: &str, bytes: &[u8], sums: &mut BTreeMap<String, String>) -> Result<()> {
    if Path::new(rel)
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        bail!("refusing to export `{rel}`: not a plain relative path");
    }
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    sums.insert(rel.to_owned(), sha256_hex(bytes));
    Ok(())
}

/// Writes a self-contained evidence bundle for one run.
pub async fn export(app: &App, id: &str, out: &Path) -> Result<()> {
    let store = app.store();
    let run = store.get_run(id).await?;
    if out.exists()
        && std::fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(UsageError(format!(
            "{} exists and is not empty; choose a new directory",
            out.display()
        )));
    }
    let mut sums = BTreeMap::new();

    // The definition the run executed, exactly as hashed.
    write(
        out,
        "genflow.json",
        run.definition.canonical_json().as_bytes(),
        &mut sums,
    )?;

    // Every revision of every artifact; the latest also under its own name.
    let refs = store.artifacts(&run.id).await?;
    let mut latest: BTreeMap<String, u32> = BTreeMap::new();
    for r in &refs {
        let e = latest.entry(r.path.clone()).or_insert(0);
        *e = (*e).max(r.revision);
    }
    for r in &refs {
        let bytes = store.artifact_bytes(&r.sha256).await?.with_context(|| {
            format!(
                "artifact {} ({}) is missing from the store",
                r.sha256, r.path
            )
        })?;
        write(
            out,
            &format!("artifacts/rev{}/{}", r.revision, r.path),
            &bytes,
            &mut sums,
        )?;
        if latest.get(&r.path) == Some(&r.revision) {
            write(out, &format!("documents/{}", r.path), &bytes, &mut sums)?;
        }
    }
    write(
        out,
        "artifacts.json",
        &serde_json::to_vec_pretty(&refs)?,
        &mut sums,
    )?;

    // Corpus manifests and model settings per step attempt.
    for s in store.step_runs(&run.id).await? {
        write(
            out,
            &format!("steps/{}.attempt{}.json", s.step, s.attempt),
            &serde_json::to_vec_pretty(&s)?,
            &mut sums,
        )?;
    }
    let decisions = store.decisions(&run.id).await?;
    write(
        out,
        "decisions.json",
        &serde_json::to_vec_pretty(&decisions)?,
        &mut sums,
    )?;

    // The audit events of this run, with `at` exactly as hashed.
    let mut jsonl = String::new();
    for e in store.events(Some(&run.id)).await? {
        let line = serde_json::json!({
            "seq": e.seq, "run_id": e.run_id, "at": format_time(e.at), "kind": e.kind,
            "payload": e.payload, "prev_hash": e.prev_hash, "hash": e.hash,
        });
        jsonl.push_str(&serde_json::to_string(&line)?);
        jsonl.push('\n');
    }
    write(out, "events.jsonl", jsonl.as_bytes(), &mut sums)?;

    let verify = verify_md(&run.id, &run.genflow_name, &run.definition_hash);
    write(out, "VERIFY.md", verify.as_bytes(), &mut sums)?;

    let mut manifest = String::new();
    for (path, sum) in &sums {
        manifest.push_str(&format!("{sum}  {path}\n"));
    }
    std::fs::write(out.join("SHA256SUMS"), manifest)
        .with_context(|| format!("cannot write {}", out.join("SHA256SUMS").display()))?;
    println!(
        "Exported run {} ({} files) to {}",
        run.id,
        sums.len() + 1,
        out.display()
    );
    Ok(())
}

fn verify_md(run_id: &str, genflow: &str, definition_hash: &str) -> String {
    format!(
        r#"# Evidence bundle for run {run_id}

Genflow `{genflow}`, definition `{definition_hash}`.

## What is here

- `genflow.json`: the exact definition the run executed (canonical JSON).
- `documents/`: the latest revision of every document (`decision.md` is the decision record).
- `artifacts/revN/`: every revision of every document; `artifacts.json` lists them with sha256.
- `steps/`: per step attempt: model, prompt, settings, corpus manifest (blake3 per file), tokens.
- `decisions.json`: every decision with approver, channel, time and the revisions shown.
- `events.jsonl`: the run's audit events, each hash-chained to the one before it.
- `SHA256SUMS`: sha256 of every file above.

## Checking it by hand

1. Files are intact:

       sha256sum -c SHA256SUMS

2. The definition is the one recorded:

       printf 'sha256:%s\n' "$(sha256sum genflow.json | cut -d' ' -f1)"

   must print `{definition_hash}`.

3. The documents are the ones decided on: each `sha256` in `decision.md` (and in
   `decisions.json` under `shown`) must equal `sha256sum documents/<name>`.

4. Each event's hash is sha256 over the RFC 8785 canonical JSON of its fields
   `seq, run_id, at, kind, payload, prev_hash`. For these events (strings and
   integers only), Python's sorted compact JSON is the same text:

       python3 - <<'PY'
       import hashlib, json
       prev = None
       for line in open("events.jsonl"):
           e = json.loads(line)
           body = {{k: e[k] for k in ("seq", "run_id", "at", "kind", "payload", "prev_hash")}}
           text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
           assert hashlib.sha256(text.encode()).hexdigest() == e["hash"], e["seq"]
           print(e["seq"], e["kind"], "ok")
       PY

   `prev_hash` links each event to the previous event in the store's global
   chain (other runs' events sit between them); `fleet audit verify` checks the
   whole chain in the store.
"#
    )
}
