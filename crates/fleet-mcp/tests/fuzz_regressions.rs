//! The `mcp` fuzz target's inputs (its seed corpus and every crash saved
//! under `fuzz/regressions/mcp/`) replayed through the property the fuzzer
//! checks: real MCP sessions against an engine on SQLite with a run
//! waiting at its gate (see docs/FUZZING.md).

use fleet_core::fuzzing::replay;
use fleet_mcp::fuzzing::mcp;

#[test]
fn mcp_fuzz_inputs_replay() {
    assert!(replay("mcp", mcp) >= 5, "the seed corpus is missing");
}
