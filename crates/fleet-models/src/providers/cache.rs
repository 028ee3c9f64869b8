//! The response cache: one file per answer, named by the SHA-256 of
//! everything that determines it, so a rerun with unchanged inputs costs no
//! tokens. Written atomically (temp file + rename) so a killed process never
//! leaves half an entry that a later run would read.

use super::Answer;
use super::prompt::Prompt;
use crate::ModelRequest;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Bumped when the entry format or what goes into the key changes.
const FORMAT: u32 = 1;

pub(crate) struct Cache {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    format: u32,
    key: String,
    text: String,
    input_tokens: u64,
    output_tokens: u64,
    model: Option<String>,
    cut_short: bool,
}

impl Cache {
    pub(crate) fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    fn path(&self, key: &str) -> PathBuf {
        // Two-character fan-out keeps directories small.
        self.dir
            .join(key.get(..2).unwrap_or("00"))
            .join(format!("{key}.json"))
    }

    /// The stored answer, if any. An unreadable or foreign entry is a miss:
    /// the call is made again and the entry rewritten.
    pub(crate) fn get(&self, key: &str) -> Option<Answer> {
        let bytes = std::fs::read(self.path(key)).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        if entry.format != FORMAT || entry.key != key {
            return None;
        }
        Some(Answer {
            text: entry.text,
            input_tokens: entry.input_tokens,
            output_tokens: entry.output_tokens,
            model: entry.model,
            cut_short: entry.cut_short,
        })
    }

    pub(crate) fn put(&self, key: &str, answer: &Answer) -> std::io::Result<()> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let entry = Entry {
            format: FORMAT,
            key: key.to_owned(),
            text: answer.text.clone(),
            input_tokens: answer.input_tokens,
            output_tokens: answer.output_tokens,
            model: answer.model.clone(),
            cut_short: answer.cut_short,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut tmp, &entry)?;
        tmp.flush()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// `sha256` hex of the provider identity (provider, model, the settings that
/// change the answer), the full prompt, the corpus manifest's hashes and the
/// upstream documents' hashes. The prompt already contains the corpus and
/// upstream text; the hashes are in the key too so that what a cached answer
/// was made from can be stated without the prompt.
pub(crate) fn key(identity: &Value, prompt: &Prompt, req: &ModelRequest) -> String {
    let corpus: Vec<(&str, &str)> = req
        .corpus
        .manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.blake3.as_str()))
        .collect();
    let upstream: Vec<(&str, String)> = req
        .upstream
        .iter()
        .map(|d| {
            (
                d.path.as_str(),
                hex::encode(Sha256::digest(d.text.as_bytes())),
            )
        })
        .collect();
    let material = json!({
        "format": FORMAT,
        "identity": identity,
        "kind": req.kind.as_str(),
        "system": prompt.system,
        "user": prompt.user,
        "corpus": corpus,
        "upstream": upstream,
    });
    // serde_json writes object keys sorted (no preserve_order), so equal
    // inputs give equal bytes.
    hex::encode(Sha256::digest(material.to_string().as_bytes()))
}
