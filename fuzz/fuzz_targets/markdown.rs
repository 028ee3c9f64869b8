//! `markdown`: see `fleet_server::fuzzing::markdown` for the property checked.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        fleet_server::fuzzing::markdown(data);
    });
}
