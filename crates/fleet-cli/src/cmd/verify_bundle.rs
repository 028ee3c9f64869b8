//! `fleet verify DIR --key KEY`: checks an evidence bundle offline, with
//! nothing but the bundle and a public key that came from elsewhere. Every
//! file against SHA256SUMS (and nothing unlisted), the signatures of the
//! attestations and checkpoints under the key, the attestations' subjects
//! and manifest digests against the files, the audit chain stretch, and the
//! kept corpus against its manifests. Names the first failure and its file.

use super::bundle::{
    CHAIN, CHECKPOINTS, CORPUS_INDEX, CorpusFile, EVENTS, PUBKEY, SUMS, step_file,
};
use crate::workspace::UsageError;
use anyhow::Result;
use fleet_evidence::{Checkpoint, Envelope, Verifier};
use fleet_store::audit::{canonical_payload, event_hash, sha256_hex};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

/// A failed check: the file it concerns and what is wrong.
struct Failure {
    file: String,
    why: String,
}

fn fail<T>(file: &str, why: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        file: file.to_owned(),
        why: why.into(),
    })
}

/// The expected key: the verifier key text itself, or a file holding it.
fn expected_key(arg: &str) -> Result<Verifier> {
    if let Ok(v) = Verifier::parse(arg) {
        return Ok(v);
    }
    let text = std::fs::read_to_string(arg).map_err(|e| {
        UsageError(format!(
            "--key `{arg}` is neither a public key (NAME+ID+KEY, as `fleet audit pubkey` prints it) nor a readable file: {e}"
        ))
    })?;
    Verifier::parse(&text).map_err(|e| UsageError(format!("--key {arg}: {e}")).into())
}

pub fn verify(dir: &Path, key: &str) -> Result<ExitCode> {
    let key = expected_key(key)?;
    if !dir.is_dir() {
        return Err(UsageError(format!("{} is not a directory", dir.display())).into());
    }
    let mut checked = Vec::new();
    match check(dir, &key, &mut checked) {
        Ok(()) => {
            for line in &checked {
                println!("ok  {line}");
            }
            println!("bundle verified under key {}", key.vkey());
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            for line in &checked {
                println!("ok  {line}");
            }
            eprintln!("verify FAILED: {}: {}", f.file, f.why);
            Ok(ExitCode::from(1))
        }
    }
}

/// What the bundle holds: relative path -> sha256, as SHA256SUMS lists it
/// and as the files are (checked equal first).
struct Files {
    dir: std::path::PathBuf,
    sums: BTreeMap<String, String>,
}

impl Files {
    fn text(&self, rel: &str) -> Result<String, Failure> {
        std::fs::read_to_string(self.dir.join(rel))
            .or_else(|e| fail(rel, format!("cannot read it as text: {e}")))
    }

    fn json(&self, rel: &str) -> Result<Value, Failure> {
        serde_json::from_str(&self.text(rel)?).or_else(|e| fail(rel, format!("not JSON: {e}")))
    }

    fn require(&self, rel: &str) -> Result<(), Failure> {
        if self.sums.contains_key(rel) {
            Ok(())
        } else {
            fail(rel, "missing from the bundle")
        }
    }
}

fn check(dir: &Path, key: &Verifier, checked: &mut Vec<String>) -> Result<(), Failure> {
    let files = check_sums(dir)?;
    checked.push(format!(
        "{SUMS}: {} files match their sha256, no file unlisted",
        files.sums.len()
    ));

    files.require(PUBKEY)?;
    let own = Verifier::parse(&files.text(PUBKEY)?)
        .or_else(|e| fail(PUBKEY, format!("not a public key: {e}")))?;
    if own != *key {
        return fail(
            PUBKEY,
            format!(
                "the bundle says it is signed by {}, not by the expected key {}",
                own.vkey(),
                key.vkey()
            ),
        );
    }
    checked.push(format!("{PUBKEY}: the expected key"));

    let attestations = check_attestations(&files, key)?;
    checked.push(format!(
        "{attestations} attestation{} signed, subjects and step manifests match",
        if attestations == 1 { "" } else { "s" }
    ));

    let chain = check_chain(&files)?;
    checked.push(chain.summary.clone());
    let covered = check_checkpoints(&files, key, &chain)?;
    checked.push(covered);

    let kept = check_corpus(&files)?;
    checked.push(format!(
        "{CORPUS_INDEX}: {kept} kept corpus files match their step manifests"
    ));
    Ok(())
}

/// Every file against SHA256SUMS; nothing in the directory unlisted.
fn check_sums(dir: &Path) -> Result<Files, Failure> {
    let text = std::fs::read_to_string(dir.join(SUMS))
        .or_else(|e| fail(SUMS, format!("cannot read it: {e}")))?;
    let mut sums = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let Some((sum, rel)) = line.split_once("  ") else {
            return fail(SUMS, format!("line {} is not `SHA256  PATH`", n + 1));
        };
        if sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return fail(SUMS, format!("line {}: `{sum}` is not a sha256", n + 1));
        }
        if Path::new(rel)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return fail(SUMS, format!("line {}: `{rel}` leaves the bundle", n + 1));
        }
        sums.insert(rel.to_owned(), sum.to_ascii_lowercase());
    }
    for (rel, sum) in &sums {
        let bytes = std::fs::read(dir.join(rel))
            .or_else(|e| fail(rel, format!("listed in {SUMS} but cannot be read: {e}")))?;
        if sha256_hex(&bytes) != *sum {
            return fail(
                rel,
                format!("its sha256 is not the one {SUMS} lists: the file was changed"),
            );
        }
    }
    let mut present = Vec::new();
    walk(dir, "", &mut present)?;
    if let Some(extra) = present
        .iter()
        .find(|p| *p != SUMS && !sums.contains_key(*p))
    {
        return fail(extra, format!("not listed in {SUMS}: added to the bundle"));
    }
    Ok(Files {
        dir: dir.to_owned(),
        sums,
    })
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), Failure> {
    let here = if prefix.is_empty() { "." } else { prefix };
    let entries = std::fs::read_dir(dir).or_else(|e| fail(here, format!("cannot list it: {e}")))?;
    for entry in entries {
        let entry = entry.or_else(|e| fail(here, format!("cannot list it: {e}")))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry
            .file_type()
            .or_else(|e| fail(&rel, format!("cannot stat it: {e}")))?;
        if kind.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else if kind.is_file() {
            out.push(rel);
        } else {
            return fail(&rel, "not a regular file (a bundle holds only files)");
        }
    }
    Ok(())
}

/// Every `*.intoto.json`: signed by `key`; each subject is a document of
/// the bundle with that digest; each step's manifest digest matches.
fn check_attestations(files: &Files, key: &Verifier) -> Result<usize, Failure> {
    let mut count = 0;
    for rel in files.sums.keys().filter(|p| {
        p.ends_with(".intoto.json") && (p.starts_with("documents/") || p.starts_with("artifacts/"))
    }) {
        let envelope: Envelope = serde_json::from_str(&files.text(rel)?)
            .or_else(|e| fail(rel, format!("not a DSSE envelope: {e}")))?;
        let payload = envelope
            .verify(key)
            .or_else(|e| fail(rel, format!("signature does not verify: {e}")))?;
        let statement: Value = serde_json::from_slice(&payload)
            .or_else(|e| fail(rel, format!("the signed statement is not JSON: {e}")))?;
        for subject in statement["subject"].as_array().into_iter().flatten() {
            let (Some(name), Some(digest)) = (
                subject["name"].as_str(),
                subject["digest"]["sha256"].as_str(),
            ) else {
                return fail(rel, "a subject has no name or sha256");
            };
            let held = files.sums.iter().any(|(p, sum)| {
                sum == digest
                    && p.strip_prefix("artifacts/rev")
                        .and_then(|r| r.split_once('/'))
                        .is_some_and(|(n, path)| {
                            path == name && n.bytes().all(|b| b.is_ascii_digit())
                        })
            });
            if !held {
                return fail(
                    rel,
                    format!(
                        "its subject `{name}` (sha256 {digest}) is not in the bundle: no artifacts/revN/{name} with that digest"
                    ),
                );
            }
        }
        let predicate = &statement["predicate"];
        if let Some(hash) = predicate["run"]["definitionHash"].as_str() {
            let held = files
                .sums
                .get("genflow.json")
                .map(|s| format!("sha256:{s}"));
            if held.as_deref() != Some(hash) {
                return fail(
                    "genflow.json",
                    format!("is not the definition {hash} {rel} signs"),
                );
            }
        }
        for step in predicate["steps"].as_array().into_iter().flatten() {
            let (Some(name), Some(attempt), Some(signed)) = (
                step["name"].as_str(),
                step["attempt"].as_u64(),
                step["corpusManifestSha256"].as_str(),
            ) else {
                continue;
            };
            let file = step_file(name, u32::try_from(attempt).unwrap_or(u32::MAX));
            files.require(&file)?;
            let manifest = &files.json(&file)?["manifest"];
            let digest = canonical_payload(0, manifest)
                .map(|text| sha256_hex(text.as_bytes()))
                .or_else(|e| fail(&file, e.to_string()))?;
            if digest != signed {
                return fail(
                    &file,
                    format!(
                        "its corpus manifest hashes to {digest}, but {rel} signs {signed}: the manifest was changed"
                    ),
                );
            }
        }
        count += 1;
    }
    Ok(count)
}

/// The chain stretch as checked: hash per seq.
struct Chain {
    hashes: BTreeMap<i64, String>,
    /// The run's last event.
    last_of_run: Option<i64>,
    summary: String,
}

/// `chain.jsonl`: every hash recomputed, every link to the event before;
/// `events.jsonl`: each of the run's events is in it, unchanged.
fn check_chain(files: &Files) -> Result<Chain, Failure> {
    files.require(CHAIN)?;
    files.require(EVENTS)?;
    let mut hashes = BTreeMap::new();
    let mut lines: BTreeMap<i64, Value> = BTreeMap::new();
    let mut prev: Option<(i64, String)> = None;
    for (n, line) in files.text(CHAIN)?.lines().enumerate() {
        let at = format!("{CHAIN} line {}", n + 1);
        let e: Value = serde_json::from_str(line).or_else(|e| fail(CHAIN, format!("{at}: {e}")))?;
        let (Some(seq), Some(time), Some(kind), Some(prev_hash), Some(hash)) = (
            e["seq"].as_i64(),
            e["at"].as_str(),
            e["kind"].as_str(),
            e["prev_hash"].as_str(),
            e["hash"].as_str(),
        ) else {
            return fail(CHAIN, format!("{at}: not an audit event"));
        };
        let computed = event_hash(
            seq,
            e["run_id"].as_str(),
            time,
            kind,
            &e["payload"],
            prev_hash,
        )
        .or_else(|err| fail(CHAIN, format!("{at}: {err}")))?;
        if computed != hash {
            return fail(
                CHAIN,
                format!("event {seq} ({kind}) does not hash to its recorded hash: it was changed"),
            );
        }
        if let Some((p, h)) = &prev
            && (seq != p + 1 || prev_hash != h)
        {
            return fail(
                CHAIN,
                format!("event {seq} does not link to event {p} before it"),
            );
        }
        prev = Some((seq, hash.to_owned()));
        hashes.insert(seq, hash.to_owned());
        lines.insert(seq, e);
    }
    let mut last_of_run = None;
    let mut count = 0;
    for (n, line) in files.text(EVENTS)?.lines().enumerate() {
        let e: Value = serde_json::from_str(line)
            .or_else(|err| fail(EVENTS, format!("line {}: {err}", n + 1)))?;
        let seq = e["seq"].as_i64().unwrap_or(-1);
        if lines.get(&seq) != Some(&e) {
            return fail(
                EVENTS,
                format!("event {seq} is not the event {CHAIN} chains at that position"),
            );
        }
        last_of_run = Some(seq);
        count += 1;
    }
    let summary = match (hashes.keys().next(), hashes.keys().next_back()) {
        (Some(first), Some(last)) => format!(
            "{CHAIN}: events {first}..{last} hash and link; {EVENTS}: the run's {count} events are among them"
        ),
        _ => format!("{CHAIN}: empty"),
    };
    Ok(Chain {
        hashes,
        last_of_run,
        summary,
    })
}

/// Every checkpoint signed by `key`; one inside the chain stretch must sign
/// the hash there. Says whether the run's last event is covered.
fn check_checkpoints(files: &Files, key: &Verifier, chain: &Chain) -> Result<String, Failure> {
    let trusted = [key.clone()];
    let mut signed = 0;
    let mut covering: Option<u64> = None;
    for rel in files
        .sums
        .keys()
        .filter(|p| p.starts_with(&format!("{CHECKPOINTS}/")))
    {
        let (cp, _) = Checkpoint::open(&files.text(rel)?, &trusted)
            .or_else(|e| fail(rel, format!("does not verify: {e}")))?;
        let seq = i64::try_from(cp.size).unwrap_or(i64::MAX);
        if let Some(hash) = chain.hashes.get(&seq) {
            if *hash != cp.head {
                return fail(
                    rel,
                    format!(
                        "signs event {seq} as {}, but {CHAIN} has {hash}: the log in the bundle is not the one signed",
                        cp.head
                    ),
                );
            }
            if chain.last_of_run.is_some_and(|last| seq >= last) {
                covering = Some(covering.map_or(cp.size, |c| c.min(cp.size)));
            }
        }
        signed += 1;
    }
    Ok(match (covering, chain.last_of_run) {
        (Some(size), Some(last)) => format!(
            "{signed} checkpoints signed; checkpoint-{size} covers the run's last event {last}"
        ),
        (_, Some(last)) => format!(
            "{signed} checkpoints signed; none yet covers the run's last event {last} (one is signed with every decision; export again later)"
        ),
        _ => format!("{signed} checkpoints signed"),
    })
}

/// Each kept file is the bytes its step's manifest names; each manifest
/// entry with a sha256 has its file.
fn check_corpus(files: &Files) -> Result<usize, Failure> {
    files.require(CORPUS_INDEX)?;
    let index: Vec<CorpusFile> = serde_json::from_str(&files.text(CORPUS_INDEX)?)
        .or_else(|e| fail(CORPUS_INDEX, format!("not a corpus index: {e}")))?;
    let mut manifests: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for rel in files.sums.keys().filter(|p| p.starts_with("steps/")) {
        let mut kept = BTreeMap::new();
        let record = files.json(rel)?;
        for e in record["manifest"]["entries"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(path), Some(sha)) = (e["path"].as_str(), e["sha256"].as_str()) {
                kept.insert(path.to_owned(), sha.to_owned());
            }
        }
        manifests.insert(rel.clone(), kept);
    }
    for f in &index {
        files.require(&f.file)?;
        if files.sums.get(&f.file) != Some(&f.sha256) {
            return fail(
                &f.file,
                format!("is not the bytes {CORPUS_INDEX} names ({})", f.sha256),
            );
        }
        let step = step_file(&f.step, f.attempt);
        files.require(&step)?;
        let named = manifests.get(&step).and_then(|m| m.get(&f.path));
        if named != Some(&f.sha256) {
            return fail(
                &step,
                format!(
                    "its manifest does not name {} with sha256 {} (kept as {})",
                    f.path, f.sha256, f.file
                ),
            );
        }
    }
    for (step, kept) in &manifests {
        for (path, sha) in kept {
            if !index.iter().any(|f| f.path == *path && f.sha256 == *sha) {
                return fail(
                    step,
                    format!(
                        "its manifest keeps {path} (sha256 {sha}), but the bundle has no such file"
                    ),
                );
            }
        }
    }
    Ok(index.len())
}
