//! The signing key, in the text forms of Go's `golang.org/x/mod/sumdb/note`
//! (which C2SP signed notes specify): a private key file
//! `PRIVATE+KEY+NAME+KEYHASH+BASE64(0x01 || seed)` and a verifier key
//! `NAME+KEYHASH+BASE64(0x01 || public key)`, where KEYHASH is the first 4
//! bytes of `SHA-256(NAME || "\n" || 0x01 || public key)` in hex.

use crate::EvidenceError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};
use std::path::Path;

/// The signature algorithm byte of ed25519 in signed notes.
const ALG_ED25519: u8 = 0x01;

/// The private key. Its `Debug` shows the key id, never the key.
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.verifier().key_id())
    }
}

/// A public key: checks what its private key signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

fn key_hash(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

/// A key name: printable, no spaces or `+` (it is a field of the key texts).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
    {
        return Err(format!("`{name}` is not a key name (no spaces or `+`)"));
    }
    Ok(())
}

impl SigningKey {
    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<SigningKey, EvidenceError> {
        check_name(name).map_err(EvidenceError::Malformed)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| EvidenceError::Malformed(format!("no randomness for a key: {e}")))?;
        Ok(SigningKey {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Reads the key at `path`, or creates it there (mode 0600, created
    /// exclusively so two processes starting at once cannot both write one)
    /// named `name`.
    pub fn load_or_create(path: &Path, name: &str) -> Result<SigningKey, EvidenceError> {
        let fail = |message: String| EvidenceError::Key {
            path: path.display().to_string(),
            message,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return SigningKey::parse(text.trim()).map_err(|e| fail(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e.to_string())),
        }
        let key = SigningKey::generate(name)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        match key.write_new(path) {
            Ok(()) => Ok(key),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
                SigningKey::parse(text.trim()).map_err(|e| fail(e.to_string()))
            }
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// Reads the key at `path` (no key there is an error).
    pub fn load(path: &Path) -> Result<SigningKey, EvidenceError> {
        let fail = |message: String| EvidenceError::Key {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        SigningKey::parse(text.trim()).map_err(|e| fail(e.to_string()))
    }

    /// Writes this key to a new file at `path` (mode 0600; an existing
    /// file is an `AlreadyExists` error, never overwritten), flushed to
    /// disk. The key is written whole to a private temporary file first and
    /// then linked in place, so `path` never exists half-written: a process
    /// reading it while another creates it sees no file or the whole key.
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        static TEMP_FILES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = path.with_file_name(format!(
            ".{name}.{}-{}.tmp",
            std::process::id(),
            TEMP_FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&temp).and_then(|mut file| {
            use std::io::Write as _;
            file.write_all(format!("{}\n", self.to_text()).as_bytes())?;
            file.sync_all()
        });
        // hard_link fails with AlreadyExists when another process won.
        let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
        let _ = std::fs::remove_file(&temp);
        linked
    }

    /// `PRIVATE+KEY+NAME+KEYHASH+BASE64(0x01 || seed)`.
    fn to_text(&self) -> String {
        let public = self.key.verifying_key().to_bytes();
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex::encode(key_hash(&self.name, &public)),
            B64.encode(raw)
        )
    }

    fn parse(text: &str) -> Result<SigningKey, EvidenceError> {
        let bad = |why: &str| EvidenceError::Malformed(format!("not a signing key: {why}"));
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("it does not start with PRIVATE+KEY+"))?;
        // Base64 has `+` of its own: the key is everything after the hash.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(hash), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected PRIVATE+KEY+NAME+HASH+KEY"));
        };
        let raw = B64.decode(b64).map_err(|_| bad("the key is not base64"))?;
        let seed: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, seed)) => seed.try_into().map_err(|_| bad("wrong key length"))?,
            _ => return Err(bad("not an ed25519 key")),
        };
        let key = SigningKey {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        };
        if hex::encode(key_hash(name, &key.key.verifying_key().to_bytes())) != hash {
            return Err(bad("its key hash does not match the key"));
        }
        Ok(key)
    }

    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An ed25519 signature of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

impl Verifier {
    /// Parses `NAME+KEYHASH+BASE64(0x01 || public key)`.
    pub fn parse(text: &str) -> Result<Verifier, EvidenceError> {
        let bad = |why: &str| EvidenceError::Malformed(format!("not a public key (vkey): {why}"));
        // Base64 has `+` of its own: the key is everything after the hash.
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(hash), Some(b64)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("expected NAME+HASH+KEY"));
        };
        check_name(name).map_err(|e| bad(&e))?;
        let raw = B64.decode(b64).map_err(|_| bad("the key is not base64"))?;
        let public: [u8; 32] = match raw.split_first() {
            Some((&ALG_ED25519, k)) => k.try_into().map_err(|_| bad("wrong key length"))?,
            _ => return Err(bad("not an ed25519 key")),
        };
        if hex::encode(key_hash(name, &public)) != hash {
            return Err(bad("its key hash does not match the key"));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| bad("not a valid ed25519 point"))?;
        Ok(Verifier {
            name: name.to_owned(),
            key,
        })
    }

    /// The verifier key text (what `fleet audit pubkey` prints).
    pub fn vkey(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, self.key_id(), B64.encode(raw))
    }

    /// The 4-byte key hash in hex: how signatures name the key.
    pub fn key_id(&self) -> String {
        hex::encode(self.key_hash())
    }

    pub(crate) fn key_hash(&self) -> [u8; 4] {
        key_hash(&self.name, self.key.as_bytes())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The raw 32-byte public key (for tools outside Fleet).
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Checks an ed25519 signature of `message` (strict: no malleable forms).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), EvidenceError> {
        let sig = ed25519_dalek::Signature::from_slice(signature)
            .map_err(|_| EvidenceError::BadSignature("not a 64-byte signature".into()))?;
        self.key.verify_strict(message, &sig).map_err(|_| {
            EvidenceError::BadSignature(format!("does not verify with key {}", self.key_id()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_file_and_its_vkey() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signing.key");
        let key = SigningKey::load_or_create(&path, "fleet-test").expect("create");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SigningKey::load_or_create(&path, "other-name").expect("load");
        assert_eq!(
            again.verifier(),
            key.verifier(),
            "the file is read, not replaced"
        );
        let vkey = key.verifier().vkey();
        assert!(vkey.starts_with("fleet-test+"), "{vkey}");
        let parsed = Verifier::parse(&vkey).expect("parse");
        let sig = key.sign(b"hello");
        parsed.verify(b"hello", &sig).expect("verifies");
        assert!(parsed.verify(b"hellO", &sig).is_err());
        assert!(format!("{key:?}").contains(&key.verifier().key_id()));
        assert!(!format!("{key:?}").contains("PRIVATE"));
        // A key hash that does not match is refused.
        let mut broken = vkey.clone();
        broken.replace_range(
            vkey.find('+').expect("+") + 1..vkey.find('+').expect("+") + 2,
            "x",
        );
        assert!(Verifier::parse(&broken).is_err());
    }

    /// Twenty `fleet approve`s at once on a new workspace all create the
    /// key: each must get the one key that won, never a half-written file.
    #[test]
    fn keys_created_at_once_are_one_key_and_never_read_half_written() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("signing.key");
            let keys: Vec<_> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..16)
                    .map(|_| s.spawn(|| SigningKey::load_or_create(&path, "fleet-test")))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("thread"))
                    .collect()
            });
            let first = keys[0].as_ref().expect("a key").verifier();
            for key in &keys {
                let key = key.as_ref().unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(key.verifier(), first, "two keys were created");
            }
            let left: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
            assert_eq!(left.len(), 1, "temporary files were left behind");
        }
    }
}
