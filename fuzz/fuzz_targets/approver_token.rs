//! `approver_token`: see `fleet_server::fuzzing::approver_token` for the property checked.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        fleet_server::fuzzing::approver_token(data);
    });
}
