//! The `review_flags` fuzz target's inputs (its seed corpus and every
//! crash saved under `fuzz/regressions/review_flags/`) replayed through
//! the property the fuzzer checks (see docs/FUZZING.md).

use fleet_core::fuzzing::replay;
use fleet_models::fuzzing::review_flags;

#[test]
fn review_flags_fuzz_inputs_replay() {
    assert!(
        replay("review_flags", review_flags) >= 3,
        "the seed corpus is missing"
    );
}
