//! `mcp`: see `fleet_mcp::fuzzing::mcp` for the property checked.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        fleet_mcp::fuzzing::mcp(data);
    });
}
