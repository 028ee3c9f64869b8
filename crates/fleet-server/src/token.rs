//! Signed approver links, CSRF tokens and operator sessions: all HMAC-SHA256
//! under the server secret, each with its own domain-separation label, all
//! verified in constant time (`Mac::verify_slice`).

use crate::secret::Secret;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const APPROVER_DOMAIN: &[u8] = b"fleet approver link v1\0";
const CSRF_DOMAIN: &[u8] = b"fleet decision form v1\0";
const NONCE_DOMAIN: &[u8] = b"fleet decision form nonce v1\0";
const SESSION_DOMAIN: &[u8] = b"fleet operator session v1\0";
const BEARER_DOMAIN: &[u8] = b"fleet operator bearer v1\0";
const TOKEN_PREFIX: &str = "v1.";

/// What an approver link grants: this person may decide this gate of this
/// run until `expires` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApproverClaims {
    #[serde(rename = "r")]
    pub run: String,
    #[serde(rename = "s")]
    pub step: String,
    #[serde(rename = "a")]
    pub approver: String,
    #[serde(rename = "e")]
    pub expires: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("this link is not a Fleet approver link (it is damaged or incomplete)")]
    Malformed,
    #[error("this link's signature does not match; it was not issued by this server")]
    BadSignature,
    #[error(
        "this link expired at {expired_at}; ask the run's operator for a new one (`fleet gate link RUN STEP --for EMAIL`)"
    )]
    Expired { expired_at: String },
    #[error("this link is for another gate or run")]
    WrongGate,
}

/// Signs and verifies with one secret.
#[derive(Clone)]
pub struct Signer {
    /// Keyed once; each MAC starts from a clone of this state.
    keyed: HmacSha256,
    /// Approver links verified before (see `Verified`), shared by clones.
    verified: Arc<Mutex<HashMap<Box<str>, Verified>>>,
}

/// A link whose signature was checked: its claims and the tag that matched,
/// keyed by the link's payload. Another visit with the same link costs a
/// constant-time comparison of the presented tag with this one (the same
/// test `verify_slice` makes) instead of a base64 decode, a MAC and a JSON
/// parse. The key is the payload, which is public (the claims in base64),
/// never the tag: looking it up reveals nothing about any secret.
struct Verified {
    tag: Box<str>,
    claims: ApproverClaims,
}

/// Links remembered; past this the memory starts over (the cost of
/// forgetting is one full verification per link).
const MAX_VERIFIED: usize = 4096;

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

impl Signer {
    pub fn new(secret: &Secret) -> Result<Signer, crate::ServerError> {
        let keyed = HmacSha256::new_from_slice(secret.as_bytes())
            .map_err(|e| crate::ServerError::Secret(e.to_string()))?;
        Ok(Signer {
            keyed,
            verified: Arc::default(),
        })
    }

    fn mac(&self, domain: &[u8], parts: &[&[u8]]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(domain);
        for p in parts {
            // Length-prefixed so ("ab","c") and ("a","bc") sign differently.
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        mac
    }

    /// `v1.<base64url(claims json)>.<base64url(hmac)>`.
    pub fn approver_token(&self, claims: &ApproverClaims) -> String {
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let tag = self
            .mac(APPROVER_DOMAIN, &[&payload])
            .finalize()
            .into_bytes();
        format!("{TOKEN_PREFIX}{}.{}", B64.encode(&payload), B64.encode(tag))
    }

    /// The claims of a token this server signed that has not expired at `now`
    /// (Unix seconds). The signature is checked before the payload is parsed.
    pub fn verify_approver(&self, token: &str, now: i64) -> Result<ApproverClaims, TokenError> {
        let rest = token
            .trim()
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(TokenError::Malformed)?;
        let (payload_b64, tag_b64) = rest.split_once('.').ok_or(TokenError::Malformed)?;
        let claims = match self.remembered(payload_b64, tag_b64) {
            Some(claims) => claims,
            None => {
                let payload = B64.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
                let tag = B64.decode(tag_b64).map_err(|_| TokenError::Malformed)?;
                self.mac(APPROVER_DOMAIN, &[&payload])
                    .verify_slice(&tag)
                    .map_err(|_| TokenError::BadSignature)?;
                let claims: ApproverClaims =
                    serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
                self.remember(payload_b64, tag_b64, &claims);
                claims
            }
        };
        if claims.expires <= now {
            let expired_at = jiff::Timestamp::from_second(claims.expires)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_else(|_| claims.expires.to_string());
            return Err(TokenError::Expired { expired_at });
        }
        Ok(claims)
    }

    fn remembered(&self, payload_b64: &str, tag_b64: &str) -> Option<ApproverClaims> {
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        let known = verified.get(payload_b64)?;
        bool::from(known.tag.as_bytes().ct_eq(tag_b64.as_bytes())).then(|| known.claims.clone())
    }

    fn remember(&self, payload_b64: &str, tag_b64: &str, claims: &ApproverClaims) {
        let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(
            payload_b64.into(),
            Verified {
                tag: tag_b64.into(),
                claims: claims.clone(),
            },
        );
    }

    /// The CSRF value a decision form carries: bound to the approver token and
    /// to the nonce in the browser's cookie (double submit).
    pub fn csrf(&self, token: &str, nonce: &str) -> String {
        let tag = self
            .mac(CSRF_DOMAIN, &[token.as_bytes(), nonce.as_bytes()])
            .finalize()
            .into_bytes();
        B64.encode(tag)
    }

    /// The form nonce given to a browser that has none yet: derived from the
    /// link, so every page for one link and version is the same bytes and
    /// can be served from cache. It needs no more randomness than that: the
    /// link is already the secret that lets one decide, the nonce cannot be
    /// computed without the server secret, and the double submit's job is
    /// to require the `SameSite=Strict` cookie, which a cross-site post
    /// never carries.
    pub fn form_nonce(&self, token: &str) -> String {
        let tag = self
            .mac(NONCE_DOMAIN, &[token.as_bytes()])
            .finalize()
            .into_bytes();
        hex::encode(&tag[..16])
    }

    pub fn verify_csrf(&self, token: &str, nonce: &str, presented: &str) -> bool {
        match B64.decode(presented) {
            Ok(tag) => self
                .mac(CSRF_DOMAIN, &[token.as_bytes(), nonce.as_bytes()])
                .verify_slice(&tag)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// The operator session cookie value: derived from the API token, so
    /// changing `FLEET_API_TOKEN` ends every session and nothing is stored.
    pub fn operator_session(&self, api_token: &str) -> String {
        B64.encode(
            self.mac(SESSION_DOMAIN, &[api_token.as_bytes()])
                .finalize()
                .into_bytes(),
        )
    }

    pub fn verify_operator_session(&self, api_token: &str, presented: &str) -> bool {
        match B64.decode(presented) {
            Ok(tag) => self
                .mac(SESSION_DOMAIN, &[api_token.as_bytes()])
                .verify_slice(&tag)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Constant-time comparison of a presented bearer token with the API
    /// token: both go through the same MAC and the tags are compared with
    /// `verify_slice`, so timing reveals nothing about the expected token.
    pub fn bearer_matches(&self, api_token: &str, presented: &str) -> bool {
        self.bearer_matches_tag(&self.bearer_tag(api_token), presented)
    }

    /// The API token's tag for [`Signer::bearer_matches_tag`]; computed once
    /// per server, not per request.
    pub fn bearer_tag(&self, api_token: &str) -> BearerTag {
        BearerTag(
            self.mac(BEARER_DOMAIN, &[api_token.as_bytes()])
                .finalize()
                .into_bytes()
                .into(),
        )
    }

    /// [`Signer::bearer_matches`] against a precomputed tag.
    pub fn bearer_matches_tag(&self, expected: &BearerTag, presented: &str) -> bool {
        self.mac(BEARER_DOMAIN, &[presented.as_bytes()])
            .verify_slice(&expected.0)
            .is_ok()
    }
}

/// The MAC of the operator API token (see [`Signer::bearer_tag`]).
#[derive(Clone)]
pub struct BearerTag([u8; 32]);

impl std::fmt::Debug for BearerTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerTag(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(key: &[u8]) -> Signer {
        let secret = Secret::from_bytes(key.to_vec()).unwrap_or_else(|e| panic!("{e}"));
        Signer::new(&secret).unwrap_or_else(|e| panic!("{e}"))
    }

    fn claims() -> ApproverClaims {
        ApproverClaims {
            run: "0190-run".into(),
            step: "go-no-go".into(),
            approver: "owner@example.com".into(),
            expires: 2_000,
        }
    }

    #[test]
    fn round_trip_and_expiry() {
        let s = signer(b"0123456789abcdef0123");
        let t = s.approver_token(&claims());
        assert_eq!(s.verify_approver(&t, 1_999), Ok(claims()));
        assert!(matches!(
            s.verify_approver(&t, 2_000),
            Err(TokenError::Expired { .. })
        ));
    }

    #[test]
    fn other_secret_or_edited_payload_is_refused() {
        let s = signer(b"0123456789abcdef0123");
        let t = s.approver_token(&claims());
        let other = signer(b"another secret of 20b");
        assert_eq!(other.verify_approver(&t, 0), Err(TokenError::BadSignature));
        // Re-encode the payload for another approver, keep the old tag.
        let mut forged = claims();
        forged.approver = "mallory@example.com".into();
        let payload = B64.encode(serde_json::to_vec(&forged).unwrap_or_default());
        let tag = t.rsplit('.').next().unwrap_or_default();
        let forged = format!("v1.{payload}.{tag}");
        assert_eq!(s.verify_approver(&forged, 0), Err(TokenError::BadSignature));
        assert_eq!(s.verify_approver("v1.abc", 0), Err(TokenError::Malformed));
        assert_eq!(s.verify_approver("", 0), Err(TokenError::Malformed));
    }

    #[test]
    fn a_remembered_link_is_still_checked_in_full() {
        let s = signer(b"0123456789abcdef0123");
        let t = s.approver_token(&claims());
        assert_eq!(s.verify_approver(&t, 0), Ok(claims()), "now remembered");
        let (head, tag) = t.rsplit_once('.').unwrap_or_default();
        for other in [
            B64.encode([0u8; 32]),
            tag[..tag.len() - 1].to_owned(),
            format!("{tag}A"),
            String::new(),
        ] {
            assert!(
                s.verify_approver(&format!("{head}.{other}"), 0).is_err(),
                "the payload with tag {other:?}"
            );
        }
        assert_eq!(s.verify_approver(&t, 1_999), Ok(claims()));
        assert!(matches!(
            s.verify_approver(&t, 2_000),
            Err(TokenError::Expired { .. })
        ));
        // Clones share what was verified; the memory stays bounded.
        assert_eq!(s.clone().verify_approver(&t, 0), Ok(claims()));
        for i in 0..MAX_VERIFIED + 10 {
            let mut c = claims();
            c.expires = 3_000 + i as i64;
            assert_eq!(s.verify_approver(&s.approver_token(&c), 0), Ok(c));
        }
        let remembered = s
            .verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        assert!((1..=MAX_VERIFIED).contains(&remembered), "{remembered}");
    }

    #[test]
    fn csrf_and_sessions_are_bound() {
        let s = signer(b"0123456789abcdef0123");
        let c = s.csrf("tok", "nonce1");
        assert!(s.verify_csrf("tok", "nonce1", &c));
        assert!(!s.verify_csrf("tok", "nonce2", &c));
        assert!(!s.verify_csrf("tok2", "nonce1", &c));
        assert!(!s.verify_csrf("tok", "nonce1", "not base64!"));
        let session = s.operator_session("api");
        assert!(s.verify_operator_session("api", &session));
        assert!(!s.verify_operator_session("api2", &session));
        assert!(s.bearer_matches("api", "api"));
        assert!(!s.bearer_matches("api", "apj"));
        let tag = s.bearer_tag("api");
        assert!(s.bearer_matches_tag(&tag, "api"));
        assert!(!s.bearer_matches_tag(&tag, "api "));
        assert!(!signer(b"another secret of 20b").bearer_matches_tag(&tag, "api"));
    }

    #[test]
    fn form_nonces_are_per_link_and_per_secret() {
        let s = signer(b"0123456789abcdef0123");
        let n = s.form_nonce("tok");
        assert_eq!(n.len(), 32);
        assert!(n.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(s.form_nonce("tok"), n, "the same link, the same nonce");
        assert_ne!(s.form_nonce("tok2"), n);
        assert_ne!(signer(b"another secret of 20b").form_nonce("tok"), n);
    }
}
