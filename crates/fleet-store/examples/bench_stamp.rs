//! Times `Store::change_stamp` (what the server asks before serving a cached
//! page): `cargo run --release -p fleet-store --example bench_stamp [N]`.

use fleet_store::{SqliteStore, Store};
use std::time::Instant;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("fleet.db"))
        .await
        .expect("open");
    store.change_stamp().await.expect("stamp");
    for round in 0..3 {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(store.change_stamp().await.expect("stamp"));
        }
        let per = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!("round {round}: {n} stamps, {per:.0} ns per stamp");
    }
}
