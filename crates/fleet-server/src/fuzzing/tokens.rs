//! Approver links and CSRF tokens: whatever is presented, only what the
//! server signed with its key verifies.

use crate::{Secret, Signer};
use std::sync::OnceLock;

/// The server secret the fuzz targets sign with. The seed tokens in
/// `fuzz/corpus/` are signed with it (by `fuzz/make-seeds`).
pub const FUZZ_KEY: &[u8] = b"fleet fuzzing key, 32 bytes long";

/// When the targets verify: 2023-11-14.
const NOW: i64 = 1_700_000_000;

fn signer(key: &[u8]) -> Signer {
    Secret::from_bytes(key.to_vec())
        .and_then(|s| Signer::new(&s))
        .expect("the fuzzing key is a valid secret")
}

fn signers() -> &'static (Signer, Signer) {
    static SIGNERS: OnceLock<(Signer, Signer)> = OnceLock::new();
    SIGNERS.get_or_init(|| {
        (
            signer(FUZZ_KEY),
            signer(b"another server's key, 32 bytes!!"),
        )
    })
}

/// `verify_approver` on arbitrary text: never panics; a token verifies
/// only if it is exactly what the server signs for the claims it carries
/// (so mutated tokens never verify), twice the same way (the second time
/// through the memory of verified links), and never under another key.
pub fn approver_token(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let (signer, other) = signers();
    let first = signer.verify_approver(token, NOW);
    if let Ok(claims) = &first {
        assert_eq!(
            token.trim(),
            signer.approver_token(claims),
            "a token verified that the server did not sign"
        );
        assert!(claims.expires > NOW, "an expired token verified");
    }
    assert_eq!(
        signer.verify_approver(token, NOW),
        first,
        "a second verification disagrees with the first"
    );
    assert!(
        other.verify_approver(token, NOW).is_err(),
        "a token verified under another key"
    );
}

/// The form's CSRF value, the operator session and the bearer check on
/// arbitrary text: `token\nnonce\npresented` (CSRF) and
/// `api_token\npresented` (session, bearer). Each verifies exactly when
/// the presented value is the one the server derives.
pub fn csrf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (signer, other) = signers();
    let mut parts = text.splitn(3, '\n');
    let (a, b, c) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );

    let expected = signer.csrf(a, b);
    assert_eq!(
        signer.verify_csrf(a, b, c),
        c == expected,
        "CSRF value {c:?} for token {a:?} and nonce {b:?}"
    );
    assert!(signer.verify_csrf(a, b, &expected));
    assert!(
        !other.verify_csrf(a, b, &expected),
        "CSRF under another key"
    );

    // Session and bearer: `api_token\npresented`.
    let (api, presented) = text.split_once('\n').unwrap_or((text, ""));
    assert_eq!(
        signer.verify_operator_session(api, presented),
        presented == signer.operator_session(api),
        "session {presented:?} for API token {api:?}"
    );
    assert_eq!(
        signer.bearer_matches(api, presented),
        api == presented,
        "bearer {presented:?} for API token {api:?}"
    );
}
