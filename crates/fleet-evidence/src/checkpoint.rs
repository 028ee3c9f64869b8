//! Checkpoints of the audit chain as C2SP signed notes (c2sp.org/signed-note,
//! in the shape of c2sp.org/tlog-checkpoint):
//!
//! ```text
//! <origin>
//! <number of events>
//! <base64 of the head event's 32-byte hash>
//!
//! — <key name> <base64(4-byte key hash || ed25519 signature of the text above the blank line)>
//! ```
//!
//! One difference from a transparency log: the third line is the hash of
//! the last event of a hash chain, not a Merkle tree root, so proving the
//! log still holds event N means re-hashing the chain up to N.

use crate::{EvidenceError, SigningKey, Verifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Which log: the installation's key name.
    pub origin: String,
    /// Events 1..=size are covered.
    pub size: u64,
    /// Lower-case hex SHA-256 of event `size` (its chain hash).
    pub head: String,
}

impl Checkpoint {
    /// The signed text.
    pub fn body(&self) -> Result<String, EvidenceError> {
        let head = hex::decode(&self.head)
            .ok()
            .filter(|h| h.len() == 32)
            .ok_or_else(|| EvidenceError::Malformed(format!("`{}` is not a sha256", self.head)))?;
        if self.origin.is_empty() || self.origin.contains('\n') {
            return Err(EvidenceError::Malformed(
                "a checkpoint needs a one-line origin".into(),
            ));
        }
        Ok(format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(head)
        ))
    }

    /// The signed note.
    pub fn sign(&self, key: &SigningKey) -> Result<String, EvidenceError> {
        let body = self.body()?;
        let mut sig = key.verifier().key_hash().to_vec();
        sig.extend_from_slice(&key.sign(body.as_bytes()));
        Ok(format!(
            "{body}\n\u{2014} {} {}\n",
            key.name(),
            B64.encode(sig)
        ))
    }

    /// Parses a signed note and checks a signature by one of `trusted`;
    /// returns the checkpoint and the key that signed it.
    pub fn open<'a>(
        note: &str,
        trusted: &'a [Verifier],
    ) -> Result<(Checkpoint, &'a Verifier), EvidenceError> {
        let bad = |why: &str| EvidenceError::Malformed(format!("not a checkpoint: {why}"));
        let (body, signatures) = note
            .split_once("\n\n")
            .map(|(b, s)| (format!("{b}\n"), s))
            .ok_or_else(|| bad("no blank line before the signatures"))?;
        let lines: Vec<&str> = body.lines().collect();
        let [origin, size, head] = lines.as_slice() else {
            return Err(bad("expected three lines: origin, size, hash"));
        };
        let size: u64 = size.parse().map_err(|_| bad("the size is not a number"))?;
        let head = B64
            .decode(head)
            .ok()
            .filter(|h| h.len() == 32)
            .ok_or_else(|| bad("the hash is not 32 bytes of base64"))?;
        let checkpoint = Checkpoint {
            origin: (*origin).to_owned(),
            size,
            head: hex::encode(head),
        };
        let mut names = Vec::new();
        for line in signatures.lines().filter(|l| !l.is_empty()) {
            let rest = line
                .strip_prefix("\u{2014} ")
                .ok_or_else(|| bad("a signature line does not start with an em dash"))?;
            let (name, sig) = rest
                .split_once(' ')
                .ok_or_else(|| bad("a signature line has no signature"))?;
            let raw = B64
                .decode(sig)
                .map_err(|_| bad("a signature is not base64"))?;
            if raw.len() != 68 {
                return Err(bad("a signature is not 4 + 64 bytes"));
            }
            names.push(format!("{name}+{}", hex::encode(&raw[..4])));
            for v in trusted {
                if v.name() == name && v.key_hash() == raw[..4] {
                    v.verify(body.as_bytes(), &raw[4..])?;
                    return Ok((checkpoint, v));
                }
            }
        }
        Err(EvidenceError::BadSignature(format!(
            "signed by {} but none of these is a trusted key",
            if names.is_empty() {
                "nobody".into()
            } else {
                names.join(", ")
            }
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_opens_with_its_key_and_not_after_a_change() {
        let key = SigningKey::generate("fleet-test").expect("key");
        let cp = Checkpoint {
            origin: "fleet-test".into(),
            size: 1234,
            head: "ab".repeat(32),
        };
        let note = cp.sign(&key).expect("sign");
        assert!(note.starts_with("fleet-test\n1234\n"), "{note}");
        let trusted = [key.verifier()];
        let (opened, by) = Checkpoint::open(&note, &trusted).expect("opens");
        assert_eq!(opened, cp);
        assert_eq!(by.key_id(), key.verifier().key_id());
        let forged = note.replace("\n1234\n", "\n1233\n");
        assert!(Checkpoint::open(&forged, &trusted).is_err());
        let other = [SigningKey::generate("fleet-test").expect("key").verifier()];
        assert!(Checkpoint::open(&note, &other).is_err());
    }
}
