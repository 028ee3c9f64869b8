//! The corpus kept as evidence (`evidence.keep_corpus`): which documents a
//! model step read are stored, content-addressed, with its result, and the
//! sha256 of each kept text in the step's manifest. The attestation of a
//! decision signs each upstream step's manifest digest, so a signature
//! covers the bytes every `path:line` citation points into.

use fleet_core::config::KeepCorpus;
use fleet_corpus::{Corpus, Manifest};
use fleet_store::Blob;
use std::collections::{BTreeSet, HashMap};

pub(crate) struct Kept {
    /// The step's manifest, with `sha256` on every kept entry.
    pub manifest: Manifest,
    /// One per distinct content.
    pub blobs: Vec<Blob>,
}

/// What step output `document` (its bytes as stored) keeps of `corpus`.
pub(crate) fn keep(mode: KeepCorpus, corpus: &Corpus, document: &[u8]) -> Kept {
    let mut manifest = corpus.manifest.clone();
    let cited: Option<BTreeSet<String>> = match mode {
        KeepCorpus::None => {
            return Kept {
                manifest,
                blobs: Vec::new(),
            };
        }
        KeepCorpus::Read => None,
        KeepCorpus::Cited => Some(fleet_models::cited_paths(
            &String::from_utf8_lossy(document),
            corpus,
        )),
    };
    let mut digests: HashMap<&str, String> = HashMap::new();
    let mut blobs: Vec<Blob> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for doc in &corpus.documents {
        if cited.as_ref().is_some_and(|c| !c.contains(&doc.path)) {
            continue;
        }
        let blob = Blob::new(doc.text.as_bytes());
        digests.insert(doc.path.as_str(), blob.sha256().to_owned());
        if seen.insert(blob.sha256().to_owned()) {
            blobs.push(blob);
        }
    }
    for entry in &mut manifest.entries {
        if let Some(sha) = digests.get(entry.path.as_str()) {
            entry.sha256 = Some(sha.clone());
        }
    }
    Kept { manifest, blobs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_corpus::{Document, Inclusion, ManifestEntry};

    fn corpus() -> Corpus {
        let docs = [("a.md", "same\n"), ("b.md", "same\n"), ("c.md", "other\n")];
        Corpus {
            documents: docs
                .iter()
                .map(|(p, t)| Document {
                    path: (*p).into(),
                    text: (*t).into(),
                })
                .collect(),
            manifest: Manifest {
                entries: docs
                    .iter()
                    .map(|(p, t)| ManifestEntry {
                        path: (*p).into(),
                        size: t.len() as u64,
                        blake3: String::new(),
                        lines: 1,
                        inclusion: Inclusion::Whole,
                        note: None,
                        sha256: None,
                    })
                    .collect(),
                ..Manifest::default()
            },
        }
    }

    #[test]
    fn read_keeps_every_document_once_per_content() {
        let kept = keep(KeepCorpus::Read, &corpus(), b"no citations");
        assert_eq!(kept.blobs.len(), 2);
        let shas: Vec<_> = kept
            .manifest
            .entries
            .iter()
            .map(|e| e.sha256.clone())
            .collect();
        assert_eq!(shas[0], shas[1]);
        assert_eq!(
            shas[2].as_deref(),
            Some(fleet_store::audit::sha256_hex(b"other\n").as_str())
        );
    }

    #[test]
    fn cited_keeps_only_what_the_document_cites() {
        let kept = keep(KeepCorpus::Cited, &corpus(), b"See c.md:1.");
        assert_eq!(kept.blobs.len(), 1);
        assert_eq!(kept.blobs[0].bytes(), b"other\n");
        let with: Vec<_> = kept
            .manifest
            .entries
            .iter()
            .filter(|e| e.sha256.is_some())
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(with, ["c.md"]);
    }

    #[test]
    fn none_keeps_the_manifest_only() {
        let kept = keep(KeepCorpus::None, &corpus(), b"See c.md:1.");
        assert!(kept.blobs.is_empty());
        assert!(kept.manifest.entries.iter().all(|e| e.sha256.is_none()));
        assert_eq!(kept.manifest.entries.len(), 3);
    }
}
