//! Properties the fuzz targets in `fuzz/` check, kept here so the
//! regression test (`tests/fuzz_regressions.rs`) replays saved inputs
//! through exactly the same assertions, and so the hook parsers can be
//! reached without making them public. Each function panics when its
//! property does not hold. Not a public API: only with the `fuzzing` feature.

mod hooks;
mod html;
mod tokens;

pub use hooks::hooks;
pub use html::{inert, markdown};
pub use tokens::{FUZZ_KEY, approver_token, csrf};
