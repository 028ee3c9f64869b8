#![allow(dead_code)]

use std::path::Path;

/// Writes `contents` at `rel` under `root`, creating directories.
pub fn write(root: &Path, rel: &str, contents: impl AsRef<[u8]>) {
    let path = root.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, contents).unwrap();
}

pub fn globs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

pub fn paths(corpus: &fleet_corpus::Corpus) -> Vec<&str> {
    corpus.documents.iter().map(|d| d.path.as_str()).collect()
}

pub fn entry<'a>(corpus: &'a fleet_corpus::Corpus, path: &str) -> &'a fleet_corpus::ManifestEntry {
    corpus
        .manifest
        .entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no manifest entry for {path}: {:#?}", corpus.manifest))
}
