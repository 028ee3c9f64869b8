//! Evidence bundles through the real binary: `fleet audit export` a decided
//! release gate, copy the bundle elsewhere, `fleet verify --key` passes; it
//! fails naming the file after any kind of file in it is altered; a cited
//! corpus file edited in the workspace after the run is still checkable
//! from the bundle, which holds the bytes the model read.

mod common;

use common::{fleet, stdout_of};

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

const OWNER: &str = "release-owner@example.com";

/// The example project, run and decided Go, exported; (project, run id,
/// bundle copied to a directory of its own, the installation's vkey).
fn exported() -> (tempfile::TempDir, String, tempfile::TempDir, String) {
    let tmp = common::initialized();
    let dir = tmp.path();
    let out = stdout_of(fleet(dir).args(["run", "release-gate", "--json"]));
    let run: Value = serde_json::from_str(&out).expect("run json");
    let id = run["run_id"].as_str().expect("id").to_owned();
    fleet(dir)
        .args(["approve", &id, "--as", OWNER])
        .assert()
        .success();
    fleet(dir)
        .args(["audit", "export", &id, "--out", "bundle"])
        .assert()
        .success()
        .stdout(predicate::str::contains("kept corpus files"));
    let vkey = stdout_of(fleet(dir).args(["audit", "pubkey"]))
        .trim()
        .to_owned();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    copy_dir(&dir.join("bundle"), elsewhere.path());
    (tmp, id, elsewhere, vkey)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// `fleet verify` run outside any project.
fn verify(bundle: &Path, key: &str) -> assert_cmd::assert::Assert {
    let nowhere = tempfile::tempdir().expect("tempdir");
    Command::cargo_bin("fleet")
        .expect("fleet binary")
        .current_dir(nowhere.path())
        .env_remove("FLEET_CONFIG")
        .args(["verify"])
        .arg(bundle)
        .args(["--key", key])
        .assert()
}

/// A fresh copy of `bundle` to alter.
fn copy_of(bundle: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().expect("tempdir");
    copy_dir(bundle, copy.path());
    copy
}

fn first_file(bundle: &Path, prefix: &str) -> PathBuf {
    let sums = std::fs::read_to_string(bundle.join("SHA256SUMS")).expect("sums");
    let rel = sums
        .lines()
        .filter_map(|l| l.split_once("  ").map(|(_, p)| p))
        .find(|p| p.starts_with(prefix))
        .unwrap_or_else(|| panic!("no file {prefix}* in the bundle"));
    PathBuf::from(rel)
}

#[test]
fn an_exported_bundle_verifies_elsewhere_and_names_any_altered_file() {
    let (_project, _id, bundle, vkey) = exported();
    let bundle = bundle.path();
    for file in [
        "pubkey.txt",
        "corpus.json",
        "chain.jsonl",
        "events.jsonl",
        "VERIFY.md",
        "documents/decision.intoto.json",
        "corpus/readiness/docs/runbooks/deploy.md",
    ] {
        assert!(bundle.join(file).is_file(), "{file} is in the bundle");
    }
    verify(bundle, &vkey)
        .success()
        .stdout(predicate::str::contains("attestation"))
        .stdout(predicate::str::contains("kept corpus files match"))
        .stdout(predicate::str::contains("bundle verified"));
    // The key may also be given as a file.
    let key_file = tempfile::NamedTempFile::new().expect("tmp");
    std::fs::write(key_file.path(), format!("{vkey}\n")).expect("write");
    verify(bundle, &key_file.path().to_string_lossy()).success();

    // Another key: refused, even though the bundle is self-consistent.
    let stranger = fleet_evidence::SigningKey::generate("fleet-audit")
        .expect("key")
        .verifier()
        .vkey();
    verify(bundle, &stranger)
        .code(1)
        .stderr(predicate::str::contains("pubkey.txt: the bundle says"));

    // Each kind of file, altered: named, and the run fails.
    let decision_md = PathBuf::from("documents/decision.md");
    let corpus_file = PathBuf::from("corpus/readiness/docs/runbooks/deploy.md");
    let attestation = PathBuf::from("documents/decision.intoto.json");
    let checkpoint = first_file(bundle, "checkpoints/");
    let manifest = PathBuf::from("steps/readiness.attempt1.json");
    for rel in [
        decision_md.clone(),
        corpus_file.clone(),
        attestation.clone(),
        checkpoint.clone(),
        manifest.clone(),
        PathBuf::from("chain.jsonl"),
        PathBuf::from("SHA256SUMS"),
    ] {
        let copy = copy_of(bundle);
        let path = copy.path().join(&rel);
        let mut bytes = std::fs::read(&path).expect("read");
        let at = bytes.len() / 2;
        bytes[at] = if bytes[at] == b'x' { b'y' } else { b'x' };
        std::fs::write(&path, bytes).expect("write");
        let named = if rel == Path::new("SHA256SUMS") {
            // An altered listing names the file it no longer matches.
            "verify FAILED".to_owned()
        } else {
            format!("verify FAILED: {}", rel.display())
        };
        verify(copy.path(), &vkey)
            .code(1)
            .stderr(predicate::str::contains(named));
    }

    // Altered consistently (file and SHA256SUMS), the signatures still catch it.
    for (rel, check) in [
        (&attestation, "signature does not verify"),
        (&manifest, "the manifest was changed"),
        (&checkpoint, "does not verify"),
    ] {
        let copy = copy_of(bundle);
        let path = copy.path().join(rel);
        let text = std::fs::read_to_string(&path).expect("read");
        let changed = if rel == &checkpoint {
            // Another event count, same signature.
            let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
            lines[1] = format!("{}", lines[1].parse::<u64>().expect("size") + 1);
            lines.join("\n") + "\n"
        } else if rel == &manifest {
            text.replacen("\"lines\": ", "\"lines\": 1", 1)
        } else {
            text.replacen("\"payload\": \"", "\"payload\": \"e30=", 1)
        };
        assert_ne!(changed, text, "{}", rel.display());
        std::fs::write(&path, &changed).expect("write");
        resum(copy.path());
        verify(copy.path(), &vkey)
            .code(1)
            .stderr(predicate::str::contains(format!(
                "verify FAILED: {}",
                rel.display()
            )))
            .stderr(predicate::str::contains(check));
    }

    // A corpus file swapped with SHA256SUMS and corpus.json updated to match:
    // the signed manifest still names the original digest.
    let copy = copy_of(bundle);
    let path = copy.path().join(&corpus_file);
    std::fs::write(&path, "# Deploy\nall good\n").expect("write");
    let new_sha = fleet_store::audit::sha256_hex(b"# Deploy\nall good\n");
    let index = copy.path().join("corpus.json");
    let mut files: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&index).expect("index")).expect("json");
    for f in &mut files {
        if f["file"] == corpus_file.to_string_lossy().as_ref() {
            f["sha256"] = new_sha.clone().into();
        }
    }
    std::fs::write(&index, serde_json::to_vec_pretty(&files).expect("json")).expect("write");
    resum(copy.path());
    verify(copy.path(), &vkey)
        .code(1)
        .stderr(predicate::str::contains(
            "verify FAILED: steps/readiness.attempt1.json: its manifest does not name",
        ));

    // A file added, one removed.
    let copy = copy_of(bundle);
    std::fs::write(copy.path().join("documents/extra.md"), "x").expect("write");
    verify(copy.path(), &vkey)
        .code(1)
        .stderr(predicate::str::contains(
            "verify FAILED: documents/extra.md: not listed",
        ));
    let copy = copy_of(bundle);
    std::fs::remove_file(copy.path().join(&corpus_file)).expect("rm");
    verify(copy.path(), &vkey)
        .code(1)
        .stderr(predicate::str::contains(format!(
            "verify FAILED: {}",
            corpus_file.display()
        )));
}

/// Rewrites SHA256SUMS to match the files as they are now.
fn resum(dir: &Path) {
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("sums");
    let mut out = String::new();
    for line in sums.lines() {
        let (_, rel) = line.split_once("  ").expect("line");
        let bytes = std::fs::read(dir.join(rel)).expect("file");
        out.push_str(&format!(
            "{}  {rel}\n",
            fleet_store::audit::sha256_hex(&bytes)
        ));
    }
    std::fs::write(dir.join("SHA256SUMS"), out).expect("write");
}

#[test]
fn a_cited_file_edited_after_the_run_is_checkable_from_the_bundle() {
    let (project, _id, bundle, vkey) = exported();
    let bundle = bundle.path();
    // The report cites the deploy runbook as `path:line`.
    let report = std::fs::read_to_string(bundle.join("documents/readiness.md")).expect("report");
    let cited = "docs/runbooks/deploy.md";
    assert!(report.contains(&format!("{cited}:")), "{report}");
    let original = std::fs::read(project.path().join(cited)).expect("runbook");
    std::fs::write(
        project.path().join(cited),
        "# Deploy\n\nRewritten after the run.\n",
    )
    .expect("edit");

    // The bundle still verifies and holds the bytes the model read.
    verify(bundle, &vkey).success();
    let kept = std::fs::read(bundle.join("corpus/readiness").join(cited)).expect("kept");
    assert_eq!(kept, original);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(bundle.join("steps/readiness.attempt1.json")).expect("step"),
    )
    .expect("json");
    let entry = record["manifest"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["path"] == cited)
        .expect("manifest entry")
        .clone();
    assert_eq!(
        entry["sha256"].as_str(),
        Some(fleet_store::audit::sha256_hex(&original).as_str())
    );
    // Every citation of the report points at a line of a kept file.
    for (n, line) in report.lines().enumerate() {
        if let Some(at) = line.find(&format!("{cited}:")) {
            let digits: String = line[at + cited.len() + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let line_no: usize = digits.parse().unwrap_or_else(|_| panic!("line {n}"));
            let text = String::from_utf8_lossy(&kept);
            assert!(text.lines().count() >= line_no, "{cited}:{line_no}");
        }
    }
    // A fresh export after the edit still holds the original for this run.
    fleet(project.path())
        .args(["audit", "export", &_id, "--out", "again"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(project.path().join("again/corpus/readiness").join(cited)).expect("kept"),
        original
    );
}

#[test]
fn keep_corpus_none_keeps_the_manifest_only_and_cited_keeps_cited_files() {
    for (mode, expect_some, expect_uncited) in [("none", false, false), ("cited", true, false)] {
        let tmp = common::initialized();
        let dir = tmp.path();
        let config = dir.join(".fleet/config.yaml");
        let text = std::fs::read_to_string(&config).expect("config");
        let text = text.replacen(
            "    steps:\n",
            &format!("    evidence: {{keep_corpus: {mode}}}\n    steps:\n"),
            1,
        );
        std::fs::write(&config, text).expect("write");
        let out = stdout_of(fleet(dir).args(["run", "release-gate", "--json"]));
        let id = serde_json::from_str::<Value>(&out).expect("json")["run_id"]
            .as_str()
            .expect("id")
            .to_owned();
        fleet(dir)
            .args(["audit", "export", &id, "--out", "b"])
            .assert()
            .success();
        let index: Vec<Value> = serde_json::from_str(
            &std::fs::read_to_string(dir.join("b/corpus.json")).expect("index"),
        )
        .expect("json");
        assert_eq!(!index.is_empty(), expect_some, "{mode}: {index:?}");
        let report = std::fs::read_to_string(dir.join("b/documents/readiness.md")).expect("doc");
        for f in &index {
            let path = f["path"].as_str().expect("path");
            assert!(
                report.contains(path) || f["step"] != "readiness" || expect_uncited,
                "{mode}: {path} kept but not cited"
            );
        }
        let record: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("b/steps/readiness.attempt1.json")).expect("step"),
        )
        .expect("json");
        assert!(
            !record["manifest"]["entries"]
                .as_array()
                .expect("entries")
                .is_empty(),
            "{mode}: the manifest is always kept"
        );
    }
}

#[test]
fn an_unknown_keep_corpus_value_is_a_config_error_with_a_suggestion() {
    let tmp = common::initialized();
    let dir = tmp.path();
    let config = dir.join(".fleet/config.yaml");
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replacen(
            "    steps:\n",
            "    evidence: {keep_corpus: cite}\n    steps:\n",
            1,
        ),
    )
    .expect("write");
    fleet(dir)
        .arg("validate")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown `evidence.keep_corpus` `cite`",
        ))
        .stderr(predicate::str::contains("cited"));
}
