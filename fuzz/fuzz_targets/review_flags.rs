//! `review_flags`: see `fleet_models::fuzzing::review_flags` for the property checked.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        fleet_models::fuzzing::review_flags(data);
    });
}
