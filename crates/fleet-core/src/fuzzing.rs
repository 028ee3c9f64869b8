//! Properties the fuzz targets in `fuzz/` check, kept here so the
//! regression test (`tests/fuzz_regressions.rs`) replays saved inputs
//! through exactly the same assertions. Each function panics when the
//! property does not hold; that panic is what the fuzzer reports.
//! Not a public API: compiled only with the `fuzzing` feature.

use crate::config::{self, Pos};

/// `fleet check` on arbitrary bytes: never panics, a valid config has no
/// errors, and every diagnostic points at a line and column of the input
/// (1-based, columns in characters, the caret may sit one past the end).
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = config::check_str(text);
    if checked.config.is_some() {
        assert!(
            !checked.diagnostics.iter().any(|d| d.is_error()),
            "a config was returned with errors: {:?}",
            checked.diagnostics
        );
    } else {
        assert!(
            checked.diagnostics.iter().any(|d| d.is_error()),
            "no config and no error"
        );
    }
    for d in &checked.diagnostics {
        if let Err(why) = position_in(text, d.pos) {
            panic!("diagnostic `{}` at {:?}: {why}", d.message, d.pos);
        }
        let _ = d.render(".fleet/config.yaml", text);
    }
}

/// Whether `pos` is a place in `text` as `Diagnostic::render` shows it:
/// every line break (LF, CRLF, a lone CR) ends a line, as YAML counts them,
/// the last line may be the empty one after a final line break, and the
/// caret may sit one past the end of its line.
pub fn position_in(text: &str, pos: Pos) -> Result<(), String> {
    let text = config::diag::normalize_line_breaks(text);
    let lines: Vec<&str> = config::diag::source_lines(&text).collect();
    if pos.line == 0 || pos.line > lines.len() {
        return Err(format!("line {} of {}", pos.line, lines.len()));
    }
    let width = lines[pos.line - 1].chars().count();
    if pos.col == 0 || pos.col > width + 1 {
        return Err(format!(
            "column {} of a line of {width} characters",
            pos.col
        ));
    }
    Ok(())
}

/// Runs `property` on every saved input of fuzz target `target`: its seed
/// corpus (`fuzz/corpus/<target>/`) and the crashes turned into
/// regressions (`fuzz/regressions/<target>/`). Returns how many ran; a
/// failing input is named in the panic.
pub fn replay(target: &str, property: fn(&[u8])) -> usize {
    let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut ran = 0;
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.is_file()) {
            let data = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| property(&data));
            if let Err(panic) = outcome {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!("{target}: {} fails: {why}", path.display());
            }
            ran += 1;
        }
    }
    ran
}
