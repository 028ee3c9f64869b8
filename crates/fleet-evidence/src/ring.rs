//! The keys an installation has signed with: the current one and every
//! retired one, each with where the audit log recorded it. Old evidence
//! keeps verifying after a rotation, but a retired key vouches only for
//! what came before its retirement: a leaked old key cannot sign a
//! checkpoint of the log as it is now.

use crate::{Checkpoint, Envelope, EvidenceError, Verifier};

/// One key the log lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownKey {
    pub verifier: Verifier,
    /// The event that first recorded it (0: not recorded in the log, e.g.
    /// a key given on the command line or the key file not yet used).
    pub recorded_at: i64,
    /// The event that retired it, and when (RFC 3339).
    pub retired: Option<(i64, String)>,
}

impl KnownKey {
    /// `NAME+KEYID`, how people and signatures name it.
    pub fn label(&self) -> String {
        format!("{}+{}", self.verifier.name(), self.verifier.key_id())
    }

    /// `current` or `retired at event N (TIME)`.
    pub fn status(&self) -> String {
        match &self.retired {
            None => "current".into(),
            Some((seq, at)) => format!("retired at event {seq} ({at})"),
        }
    }

    /// Whether this key may vouch for the log up to event `size`: any
    /// size while current, only sizes before its retirement once retired.
    pub fn vouches_for(&self, size: i64) -> Result<(), EvidenceError> {
        match &self.retired {
            Some((seq, at)) if size >= *seq => Err(EvidenceError::BadSignature(format!(
                "key {} was retired at event {seq} ({at}) but signed for events up to {size}",
                self.label()
            ))),
            _ => Ok(()),
        }
    }
}

/// Every key the installation knows, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<KnownKey>,
}

impl KeyRing {
    /// Adds `verifier` recorded at event `seq` (0: not in the log); a key
    /// already known keeps its first record.
    pub fn add(&mut self, verifier: Verifier, seq: i64) {
        match self.keys.iter_mut().find(|k| k.verifier == verifier) {
            Some(k) if k.recorded_at == 0 => k.recorded_at = seq,
            Some(_) => {}
            None => self.keys.push(KnownKey {
                verifier,
                recorded_at: seq,
                retired: None,
            }),
        }
    }

    /// Marks `verifier` retired at event `seq`, time `at` (added if unknown).
    pub fn retire(&mut self, verifier: Verifier, seq: i64, at: String) {
        self.add(verifier.clone(), seq);
        if let Some(k) = self.keys.iter_mut().find(|k| k.verifier == verifier) {
            k.retired.get_or_insert((seq, at));
        }
    }

    pub fn keys(&self) -> &[KnownKey] {
        &self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key whose id (4-byte key hash, hex) is `key_id`.
    pub fn by_id(&self, key_id: &str) -> Option<&KnownKey> {
        self.keys.iter().find(|k| k.verifier.key_id() == key_id)
    }

    pub fn verifiers(&self) -> Vec<Verifier> {
        self.keys.iter().map(|k| k.verifier.clone()).collect()
    }

    /// Opens a signed checkpoint with any key of the ring, refusing one a
    /// retired key signed for events at or past its retirement. An unknown
    /// signer is named in the error.
    pub fn open_checkpoint(&self, note: &str) -> Result<(Checkpoint, &KnownKey), EvidenceError> {
        let verifiers = self.verifiers();
        let (cp, signer) = Checkpoint::open(note, &verifiers)?;
        let key = self
            .keys
            .iter()
            .find(|k| &k.verifier == signer)
            .ok_or_else(|| EvidenceError::BadSignature("signer vanished".into()))?;
        key.vouches_for(i64::try_from(cp.size).unwrap_or(i64::MAX))?;
        Ok((cp, key))
    }

    /// The payload of a DSSE envelope signed by any key of the ring, and
    /// that key. An envelope whose signatures name no known key says which
    /// key ids it names.
    pub fn open_envelope(
        &self,
        envelope: &Envelope,
    ) -> Result<(Vec<u8>, &KnownKey), EvidenceError> {
        let mut last = None;
        for s in &envelope.signatures {
            if let Some(key) = self.by_id(&s.keyid) {
                match envelope.verify(&key.verifier) {
                    Ok(payload) => return Ok((payload, key)),
                    Err(e) => last = Some(e),
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            EvidenceError::BadSignature(format!(
                "signed by key {} but none of these is a known key",
                if envelope.signatures.is_empty() {
                    "(nobody)".to_owned()
                } else {
                    envelope
                        .signatures
                        .iter()
                        .map(|s| s.keyid.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SigningKey;

    #[test]
    fn a_retired_key_vouches_only_for_what_came_before() {
        let old = SigningKey::generate("fleet-test").expect("key");
        let new = SigningKey::generate("fleet-test").expect("key");
        let mut ring = KeyRing::default();
        ring.add(old.verifier(), 3);
        ring.retire(old.verifier(), 50, "2026-12-04T09:00:00Z".into());
        ring.add(new.verifier(), 51);
        let cp = |size| Checkpoint {
            origin: "fleet-test".into(),
            size,
            head: "ab".repeat(32),
        };
        let before = cp(40).sign(&old).expect("sign");
        let (_, by) = ring
            .open_checkpoint(&before)
            .expect("old evidence verifies");
        assert_eq!(by.verifier, old.verifier());
        let after = cp(60).sign(&old).expect("sign");
        let e = ring.open_checkpoint(&after).expect_err("refused");
        assert!(e.to_string().contains("retired at event 50"), "{e}");
        let (_, by) = ring
            .open_checkpoint(&cp(60).sign(&new).expect("sign"))
            .expect("the new key");
        assert_eq!(by.status(), "current");
        let stranger = SigningKey::generate("fleet-test").expect("key");
        let e = ring
            .open_checkpoint(&cp(60).sign(&stranger).expect("sign"))
            .expect_err("unknown key");
        assert!(
            e.to_string().contains(&stranger.verifier().key_id()),
            "names the key: {e}"
        );
        let env = Envelope::sign(&old, crate::dsse::IN_TOTO, b"{}");
        let (payload, by) = ring.open_envelope(&env).expect("opens");
        assert_eq!(payload, b"{}");
        assert_eq!(by.verifier, old.verifier());
        let e = ring
            .open_envelope(&Envelope::sign(&stranger, crate::dsse::IN_TOTO, b"{}"))
            .expect_err("unknown");
        assert!(e.to_string().contains(&stranger.verifier().key_id()), "{e}");
    }
}
