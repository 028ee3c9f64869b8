//! `fleet audit export RUN --out DIR`: a self-contained evidence bundle
//! that `fleet verify DIR --key KEY` (verify_bundle.rs), or sha256sum and a
//! few lines of Python (VERIFY.md), check with nothing but the bundle.

use crate::context::App;
use crate::workspace::UsageError;
use anyhow::{Context, Result, bail};
use fleet_store::AuditEvent;
use fleet_store::audit::{format_time, sha256_hex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path};

/// The file listing every other file's sha256, in `sha256sum` format.
pub const SUMS: &str = "SHA256SUMS";
/// The verifier key text of the key the bundle's signatures are by.
pub const PUBKEY: &str = "pubkey.txt";
/// Which kept corpus file is which step's input (`CorpusFile` per line).
pub const CORPUS_INDEX: &str = "corpus.json";
/// The run's own audit events.
pub const EVENTS: &str = "events.jsonl";
/// The stretch of the whole log from the run's first event to the event
/// the covering checkpoint signs: what links the run's events to a signature.
pub const CHAIN: &str = "chain.jsonl";
pub const CHECKPOINTS: &str = "checkpoints";

/// One kept corpus file of one step attempt, as `corpus.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorpusFile {
    pub step: String,
    pub attempt: u32,
    /// The path as the step read it (and as citations name it).
    pub path: String,
    pub sha256: String,
    /// Where it is in the bundle.
    pub file: String,
}

/// Where a step attempt's manifest is (inside the step run's record).
pub fn step_file(step: &str, attempt: u32) -> String {
    format!("steps/{step}.attempt{attempt}.json")
}

/// An audit event as one line of `events.jsonl`/`chain.jsonl`, with `at`
/// exactly as hashed.
pub fn event_line(e: &AuditEvent) -> Result<String> {
    let line = serde_json::json!({
        "seq": e.seq, "run_id": e.run_id, "at": format_time(e.at), "kind": e.kind,
        "payload": e.payload, "prev_hash": e.prev_hash, "hash": e.hash,
    });
    Ok(serde_json::to_string(&line)? + "\n")
}

struct Bundle<'a> {
    dir: &'a Path,
    sums: BTreeMap<String, String>,
}

impl Bundle<'_> {
    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        if Path::new(rel)
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            bail!("refusing to export `{rel}`: not a plain relative path");
        }
        let sum = sha256_hex(bytes);
        if let Some(before) = self.sums.get(rel) {
            if *before == sum {
                return Ok(());
            }
            bail!("refusing to export `{rel}` twice with different contents");
        }
        let path = self.dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        self.sums.insert(rel.to_owned(), sum);
        Ok(())
    }
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
    let mut b = Bundle {
        dir: out,
        sums: BTreeMap::new(),
    };

    // The definition the run executed, exactly as hashed.
    b.write("genflow.json", run.definition.canonical_json().as_bytes())?;

    // Every revision of every artifact (attestations included); the latest
    // also under its own name.
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
        b.write(&format!("artifacts/rev{}/{}", r.revision, r.path), &bytes)?;
        if latest.get(&r.path) == Some(&r.revision) {
            b.write(&format!("documents/{}", r.path), &bytes)?;
        }
    }
    b.write("artifacts.json", &serde_json::to_vec_pretty(&refs)?)?;

    // Per step attempt: model, prompt, settings, corpus manifest, tokens;
    // and the corpus files it kept.
    let step_runs = store.step_runs(&run.id).await?;
    let mut corpus = Vec::new();
    for s in &step_runs {
        b.write(
            &step_file(&s.step, s.attempt),
            &serde_json::to_vec_pretty(s)?,
        )?;
    }
    for file in corpus_files(&step_runs)? {
        let bytes = store.artifact_bytes(&file.sha256).await?.with_context(|| {
            format!(
                "the kept corpus file {} ({} of step `{}`) is missing from the store",
                file.sha256, file.path, file.step
            )
        })?;
        b.write(&file.file, &bytes)?;
        corpus.push(file);
    }
    b.write(CORPUS_INDEX, &serde_json::to_vec_pretty(&corpus)?)?;

    let decisions = store.decisions(&run.id).await?;
    b.write("decisions.json", &serde_json::to_vec_pretty(&decisions)?)?;

    // The run's events, the stretch of the log tying them to a signed
    // checkpoint, and the checkpoints.
    let all = store.events(None).await?;
    let mine: Vec<&AuditEvent> = all
        .iter()
        .filter(|e| e.run_id.as_deref() == Some(run.id.as_str()))
        .collect();
    let mut jsonl = String::new();
    for e in &mine {
        jsonl.push_str(&event_line(e)?);
    }
    b.write(EVENTS, jsonl.as_bytes())?;
    let notes = checkpoint_notes(&all, &run.id, mine.last().map_or(0, |e| e.seq));
    let first = mine.first().map_or(0, |e| e.seq);
    let last = mine.last().map_or(0, |e| e.seq);
    let end = notes.covering.map_or(last, |size| size.max(last));
    let mut chain = String::new();
    for e in all.iter().filter(|e| e.seq >= first && e.seq <= end) {
        chain.push_str(&event_line(e)?);
    }
    b.write(CHAIN, chain.as_bytes())?;
    for (size, note) in &notes.notes {
        b.write(
            &format!("{CHECKPOINTS}/checkpoint-{size}.txt"),
            note.as_bytes(),
        )?;
    }

    let key = app.engine.signing_key()?.verifier();
    b.write(PUBKEY, format!("{}\n", key.vkey()).as_bytes())?;

    let verify = super::bundle_readme::verify_md(&run.id, &run.genflow_name, &run.definition_hash);
    b.write("VERIFY.md", verify.as_bytes())?;

    let mut sums = String::new();
    for (path, sum) in &b.sums {
        sums.push_str(&format!("{sum}  {path}\n"));
    }
    std::fs::write(out.join(SUMS), sums)
        .with_context(|| format!("cannot write {}", out.join(SUMS).display()))?;
    println!(
        "Exported run {} ({} files, {} kept corpus files) to {}",
        run.id,
        b.sums.len() + 1,
        corpus.len(),
        out.display()
    );
    Ok(())
}

/// The kept corpus files of every step attempt, one per (step, path): the
/// latest attempt's under `corpus/<step>/<path>`, an earlier attempt's only
/// where it read other bytes, under `corpus/<step>/@attempt<N>/<path>`.
fn corpus_files(step_runs: &[fleet_store::StepRun]) -> Result<Vec<CorpusFile>> {
    let mut newest: BTreeMap<&str, u32> = BTreeMap::new();
    for s in step_runs.iter().filter(|s| s.manifest.is_some()) {
        let e = newest.entry(s.step.as_str()).or_insert(0);
        *e = (*e).max(s.attempt);
    }
    let mut out: Vec<CorpusFile> = Vec::new();
    let mut by_latest: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut runs: Vec<&fleet_store::StepRun> = step_runs.iter().collect();
    // Latest attempts first, so earlier ones compare against them.
    runs.sort_by_key(|s| std::cmp::Reverse(s.attempt));
    for s in runs {
        let Some(manifest) = &s.manifest else {
            continue;
        };
        let manifest: fleet_corpus::Manifest = serde_json::from_value(manifest.clone())
            .with_context(|| format!("the corpus manifest of step `{}` does not read", s.step))?;
        let is_latest = newest.get(s.step.as_str()) == Some(&s.attempt);
        for entry in manifest.entries {
            let Some(sha) = entry.sha256 else {
                continue;
            };
            let key = (s.step.clone(), entry.path.clone());
            let file = if is_latest {
                by_latest.insert(key, sha.clone());
                format!("corpus/{}/{}", s.step, entry.path)
            } else if by_latest.get(&key) == Some(&sha) {
                continue;
            } else {
                format!("corpus/{}/@attempt{}/{}", s.step, s.attempt, entry.path)
            };
            out.push(CorpusFile {
                step: s.step.clone(),
                attempt: s.attempt,
                path: entry.path,
                sha256: sha,
                file,
            });
        }
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

struct Notes {
    /// (size, note) of each exported checkpoint.
    notes: BTreeMap<u64, String>,
    /// The size of the first checkpoint that covers the run's last event.
    covering: Option<i64>,
}

/// The checkpoints signed by the run's decisions, the first that covers the
/// run's last event `last`, and the newest.
fn checkpoint_notes(all: &[AuditEvent], run_id: &str, last: i64) -> Notes {
    let checkpoints: Vec<(&AuditEvent, i64)> = all
        .iter()
        .filter(|e| e.kind == "audit.checkpoint")
        .filter_map(|e| Some((e, e.payload["size"].as_i64()?)))
        .collect();
    let covering = checkpoints.iter().find(|(_, size)| *size >= last).copied();
    let newest = checkpoints.last().copied();
    let mut notes = BTreeMap::new();
    for (e, size) in checkpoints
        .iter()
        .filter(|(e, _)| e.run_id.as_deref() == Some(run_id))
        .copied()
        .chain(covering)
        .chain(newest)
    {
        if let (Some(note), Ok(size)) = (e.payload["note"].as_str(), u64::try_from(size)) {
            notes.insert(size, note.to_owned());
        }
    }
    Notes {
        notes,
        covering: covering.map(|(_, size)| size),
    }
}
