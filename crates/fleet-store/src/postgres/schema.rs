//! The PostgreSQL schema's versions (`migrations/postgres/`), tracked in
//! `fleet_schema`. Only `fleet migrate` (and `fleet db copy`, into an empty
//! database) applies them; every other process checks that the schema is
//! exactly the one it knows and refuses to start otherwise.

use super::pg;
use crate::StoreError;
use deadpool_postgres::Client;

/// Migration `n` (1-based) takes the schema from version `n - 1` to `n`.
pub const MIGRATIONS: [(&str, &str); 8] = [
    (
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        "append function",
        include_str!("../../migrations/postgres/0002_append_function.sql"),
    ),
    (
        "commit guard",
        include_str!("../../migrations/postgres/0003_commit_guard.sql"),
    ),
    (
        "commit function",
        include_str!("../../migrations/postgres/0004_commit_function.sql"),
    ),
    (
        "event kinds",
        include_str!("../../migrations/postgres/0005_event_kinds.sql"),
    ),
    (
        "commit codes and kept files",
        include_str!("../../migrations/postgres/0006_commit_codes.sql"),
    ),
    (
        "queue take",
        include_str!("../../migrations/postgres/0007_queue_take.sql"),
    ),
    (
        "batched appends",
        include_str!("../../migrations/postgres/0008_batched_appends.sql"),
    ),
];

/// The newest schema version this build knows.
pub fn known() -> i32 {
    MIGRATIONS.len() as i32
}

/// Arbitrary, fixed: serializes concurrent `fleet migrate`s.
const MIGRATE_LOCK: i64 = 0x666c_6565_7431;

pub async fn version(client: &Client) -> Result<i32, StoreError> {
    let exists: Option<String> = client
        .query_one("SELECT to_regclass('fleet_schema')::text", &[])
        .await
        .map_err(pg("reading the schema version"))?
        .get(0);
    if exists.is_none() {
        return Ok(0);
    }
    Ok(client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM fleet_schema", &[])
        .await
        .map_err(pg("reading the schema version"))?
        .get(0))
}

/// Fails unless the schema is exactly the one this build knows.
pub async fn check(client: &Client, name: &str) -> Result<(), StoreError> {
    let at = version(client).await?;
    let known = known();
    if at == known {
        return Ok(());
    }
    Err(StoreError::Incompatible(if at > known {
        format!(
            "the database {name} has schema version {at}, made by a newer fleet; this build knows versions 1..={known}: upgrade fleet"
        )
    } else {
        format!(
            "the database {name} has schema version {at} and this build needs version {known}: run `fleet migrate`"
        )
    }))
}

/// Applies the migrations the database lacks, in one transaction under an
/// advisory lock; returns what it applied as (version, name).
pub async fn apply(client: &mut Client, name: &str) -> Result<Vec<(i32, String)>, StoreError> {
    let tx = client
        .transaction()
        .await
        .map_err(pg("starting the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(pg("locking for the migration"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS fleet_schema (
             version    INTEGER PRIMARY KEY,
             name       TEXT NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg("creating fleet_schema"))?;
    let at: i32 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM fleet_schema", &[])
        .await
        .map_err(pg("reading the schema version"))?
        .get(0);
    if at > known() {
        return Err(StoreError::Incompatible(format!(
            "the database {name} has schema version {at}, made by a newer fleet; this build knows versions 1..={}: upgrade fleet",
            known()
        )));
    }
    let mut applied = Vec::new();
    for (i, (what, sql)) in MIGRATIONS.iter().enumerate().skip(at as usize) {
        let v = i as i32 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(pg(format_args!("applying migration {v} ({what})")))?;
        tx.execute(
            "INSERT INTO fleet_schema (version, name) VALUES ($1, $2)",
            &[&v, what],
        )
        .await
        .map_err(pg("recording the migration"))?;
        applied.push((v, (*what).to_owned()));
    }
    tx.commit().await.map_err(pg("committing the migration"))?;
    Ok(applied)
}
