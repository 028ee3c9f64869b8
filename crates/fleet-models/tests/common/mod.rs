//! Builds a `Corpus` from a directory the way a report step would see it,
//! without depending on fleet-corpus's `gather` (built in parallel).

#![allow(dead_code)]

use fleet_core::config::StepKind;
use fleet_corpus::{Corpus, Document, Inclusion, Manifest, ManifestEntry};
use fleet_models::{ModelRequest, UpstreamDoc};
use std::path::{Path, PathBuf};

/// The example repository `fleet init` writes.
pub fn example_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fleet-cli/example/release-gate")
}

/// Every file under `root/<dir>` (or the file itself) for each of `dirs`, sorted by path, paths
/// relative to `root` with `/` separators.
pub fn load_corpus(root: &Path, dirs: &[&str]) -> Corpus {
    let mut files = Vec::new();
    for dir in dirs {
        walk(&root.join(dir), &mut files);
    }
    let mut documents: Vec<Document> = files
        .into_iter()
        .map(|file| {
            let rel = file
                .strip_prefix(root)
                .expect("walked under root")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&file).expect("fixture is UTF-8 text");
            Document { path: rel, text }
        })
        .collect();
    documents.sort_by(|a, b| a.path.cmp(&b.path));
    let entries = documents
        .iter()
        .map(|d| ManifestEntry {
            path: d.path.clone(),
            size: d.text.len() as u64,
            blake3: format!("{:064x}", d.text.len()),
            lines: d.text.lines().count() as u64,
            inclusion: Inclusion::Whole,
            note: None,
            sha256: None,
        })
        .collect();
    Corpus {
        documents,
        manifest: Manifest {
            entries,
            ..Manifest::default()
        },
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.is_file() {
        out.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

pub fn example_corpus() -> Corpus {
    load_corpus(
        &example_root(),
        &["docs/runbooks", "docs/releases", "migrations"],
    )
}

pub fn report_request(corpus: Corpus) -> ModelRequest {
    ModelRequest {
        genflow: "release-gate".into(),
        step: "readiness".into(),
        kind: StepKind::Report,
        prompt: "Assemble the release readiness report: open issues, migration state, rollback plan, known risks.".into(),
        corpus,
        upstream: vec![],
        feedback: None,
        budget: None,
        release: None,
    }
}

pub fn review_request(corpus: Corpus, report_text: &str) -> ModelRequest {
    ModelRequest {
        genflow: "release-gate".into(),
        step: "risk-review".into(),
        kind: StepKind::Review,
        prompt: "Adversarially review the readiness report. Flag understated risks and missing rollback steps.".into(),
        corpus,
        upstream: vec![UpstreamDoc {
            step: "readiness".into(),
            kind: StepKind::Report,
            path: "readiness.md".into(),
            text: report_text.to_string(),
            flags: None,
        }],
        feedback: None,
        budget: None,
        release: None,
    }
}
