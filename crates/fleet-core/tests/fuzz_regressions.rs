//! The `config` fuzz target's inputs (its seed corpus and every crash
//! saved under `fuzz/regressions/config/`) replayed through the property
//! the fuzzer checks, so a fixed crash stays fixed (see docs/FUZZING.md).

use fleet_core::config::Pos;
use fleet_core::fuzzing::{config, position_in, replay};

#[test]
fn config_fuzz_inputs_replay() {
    assert!(replay("config", config) >= 5, "the seed corpus is missing");
}

#[test]
fn positions_outside_the_text_are_caught() {
    let pos = |line, col| Pos { line, col };
    assert!(position_in("ab\ncd\n", pos(1, 1)).is_ok());
    assert!(position_in("ab\ncd\n", pos(2, 3)).is_ok());
    assert!(position_in("ab\ncd\n", pos(3, 1)).is_ok());
    assert!(position_in("ab\ncd\n", pos(2, 4)).is_err());
    assert!(position_in("ab\ncd\n", pos(4, 1)).is_err());
    assert!(position_in("ab\ncd", pos(0, 1)).is_err());
    assert!(position_in("ab\ncd", pos(1, 0)).is_err());
    // Lines end at LF (a lone CR is part of its line, as the renderer
    // and serde-saphyr count); columns count characters.
    assert!(position_in("a\rb\r\nc", pos(1, 4)).is_ok());
    assert!(position_in("a\rb\r\nc", pos(2, 2)).is_ok());
    assert!(position_in("a\rb\r\nc", pos(3, 1)).is_err());
    assert!(position_in("é\n", pos(1, 2)).is_ok());
    assert!(position_in("é\n", pos(1, 3)).is_err());
}

#[test]
fn a_diagnostic_outside_its_input_fails_the_property() {
    // The property itself must be able to fail: replaying it over an
    // input it rejects is what `replay` reports.
    let outcome = std::panic::catch_unwind(|| {
        replay("config", |_| panic!("rejected"));
    });
    assert!(outcome.is_err());
}
