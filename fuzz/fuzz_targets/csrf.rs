//! `csrf`: see `fleet_server::fuzzing::csrf` for the property checked.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        fleet_server::fuzzing::csrf(data);
    });
}
