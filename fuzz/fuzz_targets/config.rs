//! `config`: see `fleet_core::fuzzing::config` for the property checked.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        fleet_core::fuzzing::config(data);
    });
}
