//! DSSE envelopes (github.com/secure-systems-lab/dsse, v1): the signature
//! is over `PAE(payloadType, payload)` =
//! `"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload`, so neither
//! the type nor the payload can be swapped without breaking it.

use crate::{EvidenceError, SigningKey, Verifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

/// The payload type of an in-toto Statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signing key's id (its 4-byte key hash, hex).
    pub keyid: String,
    /// Base64 of the ed25519 signature over the PAE.
    pub sig: String,
}

/// The pre-authentication encoding DSSE signs.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// `payload` of `payload_type`, signed with `key`.
    pub fn sign(key: &SigningKey, payload_type: &str, payload: &[u8]) -> Envelope {
        let sig = key.sign(&pae(payload_type, payload));
        Envelope {
            payload: B64.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![Signature {
                keyid: key.verifier().key_id(),
                sig: B64.encode(sig),
            }],
        }
    }

    /// The payload bytes, once a signature by `verifier` checks out.
    pub fn verify(&self, verifier: &Verifier) -> Result<Vec<u8>, EvidenceError> {
        let payload = B64
            .decode(&self.payload)
            .map_err(|_| EvidenceError::Malformed("the envelope's payload is not base64".into()))?;
        let message = pae(&self.payload_type, &payload);
        let mut last =
            EvidenceError::BadSignature(format!("no signature by key {}", verifier.key_id()));
        for s in self
            .signatures
            .iter()
            .filter(|s| s.keyid == verifier.key_id())
        {
            let Ok(sig) = B64.decode(&s.sig) else {
                last = EvidenceError::Malformed("a signature is not base64".into());
                continue;
            };
            match verifier.verify(&message, &sig) {
                Ok(()) => return Ok(payload),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn an_envelope_verifies_until_a_byte_changes() {
        let key = SigningKey::generate("fleet-test").expect("key");
        let env = Envelope::sign(&key, IN_TOTO, br#"{"a":1}"#);
        assert_eq!(env.verify(&key.verifier()).expect("ok"), br#"{"a":1}"#);
        let mut changed = env.clone();
        changed.payload = B64.encode(br#"{"a":2}"#);
        assert!(changed.verify(&key.verifier()).is_err());
        let mut retyped = env.clone();
        retyped.payload_type = "text/plain".into();
        assert!(retyped.verify(&key.verifier()).is_err());
        let other = SigningKey::generate("fleet-test").expect("key");
        assert!(env.verify(&other.verifier()).is_err());
    }
}
