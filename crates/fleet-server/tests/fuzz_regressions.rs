//! The fleet-server fuzz targets' inputs (their seed corpora and every
//! crash saved under `fuzz/regressions/<target>/`) replayed through the
//! properties the fuzzer checks (see docs/FUZZING.md).

use fleet_core::fuzzing::replay;
use fleet_server::fuzzing::{approver_token, csrf, hooks, inert, markdown};

#[test]
fn markdown_fuzz_inputs_replay() {
    assert!(
        replay("markdown", markdown) >= 4,
        "the seed corpus is missing"
    );
}

#[test]
fn approver_token_fuzz_inputs_replay() {
    assert!(
        replay("approver_token", approver_token) >= 4,
        "the seed corpus is missing"
    );
}

#[test]
fn csrf_fuzz_inputs_replay() {
    assert!(replay("csrf", csrf) >= 3, "the seed corpus is missing");
}

#[test]
fn hooks_fuzz_inputs_replay() {
    assert!(replay("hooks", hooks) >= 5, "the seed corpus is missing");
}

#[test]
fn the_inertness_check_catches_what_it_is_for() {
    for bad in [
        "<p>x</p><SCRIPT>alert(1)</SCRIPT>",
        "<img src=x onerror=alert(1)>",
        "<a href=\"jav&#x61;script:alert(1)\">x</a>",
        "<a href=\" &#9;java&Tab;script&colon;alert(1)\">x</a>",
        "<a href='VBScript:x'>x</a>",
        "<p style=\"x\">x</p>",
        "<iframe src=\"https://x\"></iframe>",
    ] {
        assert!(inert(bad).is_err(), "{bad} passed");
    }
    for good in [
        "<p>onclick=alert(1) &lt;script&gt; javascript:alert(1)</p>",
        "<a href=\"https://example.com/javascript:x\" rel=\"noopener\">x</a>",
        "<p>a &amp; b</p><img src=\"x.png\" alt=\"onerror=1\">",
        // Text attributes may say anything (a crash the fuzzer found in
        // the check itself, fuzz/regressions/markdown/alt-text).
        "<img alt=\"javascript:alert(5)\" title=\"data:x\">",
        // A control character inside the scheme makes it a relative URL.
        "<a href=\"java\u{1}script:alert(2)\">b</a>",
    ] {
        assert_eq!(inert(good), Ok(()), "{good}");
    }
}

#[test]
fn seed_tokens_verify_and_their_mutations_do_not() {
    // The seeds are signed with the fuzzing key: the property's "only
    // what the server signed verifies" is exercised on both sides.
    let key =
        fleet_server::Secret::from_bytes(fleet_server::fuzzing::FUZZ_KEY.to_vec()).expect("key");
    let signer = fleet_server::Signer::new(&key).expect("signer");
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/approver_token");
    let valid = std::fs::read_to_string(dir.join("valid")).expect("seed");
    assert!(signer.verify_approver(&valid, 1_700_000_000).is_ok());
    let mut flipped = valid.clone().into_bytes();
    let last = flipped.len() - 5;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    assert!(signer.verify_approver(&flipped, 1_700_000_000).is_err());
    approver_token(flipped.as_bytes());
}
