//! Properties the fuzz targets in `fuzz/` check, kept here so the
//! regression test (`tests/fuzz_regressions.rs`) replays saved inputs
//! through exactly the same assertions, and so the review-flags parser is
//! reachable without being public. Not a public API: only with the
//! `fuzzing` feature.

use fleet_core::flags::FlagSet;

/// The review-flags parser on arbitrary model output: never panics; every
/// flag it reads has a non-empty id and claim without surrounding space,
/// and the flags survive the JSON sidecar (`<out>.flags.json`) unchanged.
pub fn review_flags(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok((flags, problems)) = crate::providers::parse_flags(&text) else {
        return;
    };
    for flag in &flags {
        assert!(
            !flag.id.is_empty() && flag.id.trim() == flag.id,
            "id {:?}",
            flag.id
        );
        assert!(
            !flag.claim.is_empty() && flag.claim.trim() == flag.claim,
            "claim {:?}",
            flag.claim
        );
    }
    for problem in &problems {
        assert!(problem.starts_with("flag "), "problem {problem:?}");
    }
    let set = FlagSet {
        step: "review".into(),
        flags,
    };
    let json = serde_json::to_string(&set).expect("flags serialize");
    let back: FlagSet = serde_json::from_str(&json).expect("the sidecar reads back");
    assert_eq!(back, set, "the flags changed through their sidecar");
}
