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
    // Every line break ends a line, as YAML counts them: LF, CRLF and a
    // lone CR; columns count characters.
    assert!(position_in("a\rb\r\nc", pos(1, 2)).is_ok());
    assert!(position_in("a\rb\r\nc", pos(1, 3)).is_err());
    assert!(position_in("a\rb\r\nc", pos(3, 2)).is_ok());
    assert!(position_in("a\rb\r\nc", pos(4, 1)).is_err());
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

#[test]
fn a_config_with_old_mac_line_breaks_is_located_and_shown_like_any_other() {
    // The fuzzer's finding: a CR after an LF is a line break of its own for
    // the YAML scanner, so the error's line must be the one the renderer shows.
    for text in [
        "version: 1\rgenflows:\r  g: [\r",
        "version: 1\r\ngenflows:\r\n  g: [\r\n",
        "version: 1\ngenflows:\n  g: [\n",
    ] {
        let checked = fleet_core::config::check_str(text);
        let error = checked
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .expect("an unclosed flow sequence is an error");
        position_in(text, error.pos).unwrap_or_else(|why| panic!("{text:?}: {why}"));
        assert!(error.pos.line >= 3, "{text:?}: {:?}", error.pos);
        let shown = error.render("config.yaml", text);
        assert!(!shown.contains('\r'), "{shown:?}");
    }
}
