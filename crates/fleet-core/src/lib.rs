//! Fleet's functional core: the config language, the step DAG and the run
//! state machine. Nothing here does I/O, so all ordering and guardrail logic
//! can be tested exhaustively and reused by every shell (CLI, server, worker).

pub mod config;
pub mod dag;
pub mod flags;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod rounds;
pub mod run;
