//! Content kept beside a transition without being a document of the run:
//! the corpus files a step read (`evidence.keep_corpus`). Stored in the
//! same content-addressed table as artifacts, so the same bytes are stored
//! once however many runs read them, and `Store::artifact_bytes` serves them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::sync::Arc;

/// Bytes with their sha256, hashed once when made (off the store's writer
/// thread); the only way to make one is from the bytes, so the digest
/// always matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    sha256: String,
    bytes: Arc<[u8]>,
}

impl Blob {
    pub fn new(bytes: impl Into<Arc<[u8]>>) -> Blob {
        let bytes = bytes.into();
        Blob {
            sha256: crate::audit::sha256_hex(&bytes),
            bytes,
        }
    }

    /// Lower-case hex SHA-256 of the bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.bytes.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        Vec::<u8>::deserialize(d).map(Blob::new)
    }
}

/// What the content-addressed table holds: distinct contents and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentTotals {
    pub contents: u64,
    pub bytes: u64,
}
