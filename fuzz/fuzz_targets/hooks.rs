//! `hooks`: see `fleet_server::fuzzing::hooks` for the property checked.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        fleet_server::fuzzing::hooks(data);
    });
}
