//! The PostgreSQL backend, for several workers and servers on one database
//! (tokio-postgres with a deadpool pool).
//!
//! Every write is one transaction that takes the same steps as SQLite's
//! (`commit` locks the run row, checks the version, writes, then appends the
//! audit events); the guarantees SQLite gets from its single writer come
//! from the database here:
//! - the version compare-and-swap: the run row is locked (`FOR UPDATE`), so
//!   of two committers from one version the second sees the new version and
//!   gets `Conflict`;
//! - the audit chain: every transaction that appends locks the one
//!   `chain_head` row, as late as it can (after all its other writes), so
//!   events are numbered and linked in commit order with no gap or fork;
//!   the run counts and step totals for `/metrics` are adjusted under the
//!   same lock, so hot counter rows never deadlock two writers;
//! - claims: `FOR UPDATE SKIP LOCKED` on the step queue and the outbox;
//! - notices: `pg_notify` inside the transaction, delivered on COMMIT to
//!   every process `LISTEN`ing (`notices.rs`).
//!
//! Timestamps are the same RFC 3339 text as on SQLite (the hash covers it).

mod cached;
mod chain;
mod group;
mod known;
mod notices;
mod outbox;
mod pipeline;
mod run_reads;
mod runs;
mod schema;
mod work;
mod writes;

use crate::{
    ArtifactRef, AuditEvent, AuditReport, DecisionRecord, Delivery, DeliveryOutcome, DeliveryScope,
    NewDelivery, NewRun, RunFilter, RunRecord, ScheduleRecord, StepClaim, StepRun, Store,
    StoreError, StoreStats, Subscription, Transition,
};
use async_trait::async_trait;
use cached::Cached;
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod};
use fleet_core::config::Genflow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_postgres::NoTls;

pub use schema::known as schema_version_known;

/// What a process does with a schema it does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrate {
    /// Apply the migrations the database lacks (`fleet migrate`).
    Apply,
    /// Refuse to start unless the schema is exactly this build's.
    Refuse,
}

/// Connections per process: a CLI command uses one or two, a worker one
/// per step in flight plus claims.
const POOL_SIZE: usize = 16;
/// Decoded definitions kept; the cache starts over past this.
const MAX_DEFINITIONS: usize = 256;
/// Runs whose latest known version is kept (`runs::Known`): far more than
/// a worker or server has in flight (see `known.rs`).
const MAX_KNOWN_RUNS: usize = 4096;

pub struct PostgresStore {
    pool: Pool,
    /// For the dedicated connections of subscriptions.
    config: tokio_postgres::Config,
    /// The URL with its password redacted, for messages.
    name: String,
    definitions: Mutex<HashMap<String, Arc<Genflow>>>,
    /// Each run as of the newest version this store read or committed:
    /// what lets a commit from that version skip reading the run first.
    known: Mutex<known::Generations<runs::Known>>,
    /// Commits made at the same time, sent together (`group.rs`).
    group: Arc<group::Group>,
}

/// Maps a driver error to a `StoreError` saying what was being done.
pub(crate) fn pg(what: impl std::fmt::Display) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| {
        // The driver's Display for a server error is only "db error";
        // the server's message is in the source.
        let detail = e
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_else(|| e.to_string());
        if is_connection_lost(&e) {
            StoreError::Unavailable(format!("{what}: {detail}"))
        } else {
            StoreError::Database(format!("{what}: {detail}"))
        }
    }
}

/// The connection is gone or the server is going away, rather than the
/// statement failing: closed sockets, I/O errors, SQLSTATE class 08
/// (connection exception) and 57P01-57P03 (terminated by an administrator,
/// server shutting down, cannot connect now).
fn is_connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }
        // No server error: the driver failed to talk to the server at all.
        None => {
            e.as_db_error().is_none()
                && std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>())
        }
    }
}

pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u32(n: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} {n} is out of range")))
}

fn to_u64(n: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{what} {n} is out of range")))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and checks (or, with
    /// `Migrate::Apply`, brings up to date) its schema.
    pub async fn connect(url: &str, migrate: Migrate) -> Result<PostgresStore, StoreError> {
        let name = crate::url::redact(url);
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Invalid(format!("{name} is not a valid PostgreSQL URL: {e}"))
        })?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .build()
            .map_err(|e| StoreError::Database(format!("cannot set up a pool for {name}: {e}")))?;
        let store = PostgresStore {
            pool,
            config,
            name,
            definitions: Mutex::default(),
            known: Mutex::new(known::Generations::new(MAX_KNOWN_RUNS)),
            group: Arc::default(),
        };
        let mut client = store.client().await?;
        match migrate {
            Migrate::Apply => {
                schema::apply(&mut client, &store.name).await?;
            }
            Migrate::Refuse => schema::check(&client, &store.name).await?,
        }
        Ok(store)
    }

    /// Applies pending migrations to `url`; returns (version, name) of each.
    pub async fn migrate(url: &str) -> Result<Vec<(i32, String)>, StoreError> {
        let store = PostgresStore::connect_unchecked(url).await?;
        let mut client = store.client().await?;
        schema::apply(&mut client, &store.name).await
    }

    /// The schema version `url` is at (0: none).
    pub async fn schema_version(url: &str) -> Result<i32, StoreError> {
        let store = PostgresStore::connect_unchecked(url).await?;
        let client = store.client().await?;
        schema::version(&client).await
    }

    async fn connect_unchecked(url: &str) -> Result<PostgresStore, StoreError> {
        let name = crate::url::redact(url);
        let config: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::Invalid(format!("{name} is not a valid PostgreSQL URL: {e}"))
        })?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(2)
            .build()
            .map_err(|e| StoreError::Database(format!("cannot set up a pool for {name}: {e}")))?;
        Ok(PostgresStore {
            pool,
            config,
            name,
            definitions: Mutex::default(),
            known: Mutex::new(known::Generations::new(MAX_KNOWN_RUNS)),
            group: Arc::default(),
        })
    }

    /// The URL with its password redacted.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) async fn pool_client(&self) -> Result<Client, StoreError> {
        self.client().await
    }

    async fn client(&self) -> Result<Client, StoreError> {
        self.pool.get().await.map_err(|e| {
            // deadpool wraps the driver's error; neither includes the password.
            StoreError::Unavailable(format!("cannot connect to {}: {e}", self.name))
        })
    }

    fn cached_definition(&self, hash: &str) -> Option<Arc<Genflow>> {
        self.definitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned()
    }

    fn remember_definition(&self, hash: &str, genflow: Genflow) -> Arc<Genflow> {
        let genflow = Arc::new(genflow);
        let mut defs = self
            .definitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if defs.len() >= MAX_DEFINITIONS {
            defs.clear();
        }
        defs.insert(hash.to_owned(), genflow.clone());
        genflow
    }

    /// The run as this store last knew it, if that is `version`.
    fn known_at(&self, run_id: &str, version: i64) -> Option<runs::Known> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .filter(|k| k.record.version == version)
            .cloned()
    }

    /// The newest version of the run this store knows.
    fn latest_known(&self, run_id: &str) -> Option<RunRecord> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(run_id)
            .map(|k| k.record.clone())
    }

    /// Remembers `known` unless a newer version of the run is known.
    /// A run's record at a version never changes (every write of the run
    /// row advances the version), so an entry is true forever; it is
    /// useful while it is the newest.
    fn remember_run(&self, known: runs::Known) {
        let mut map = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(k) = map.get(&known.record.id)
            && k.record.version >= known.record.version
        {
            return;
        }
        map.insert(known.record.id.clone(), known);
    }

    /// The definition stored under `hash` (cached once decoded).
    async fn definition(
        &self,
        client: &impl deadpool_postgres::GenericClient,
        run_id: &str,
        hash: &str,
    ) -> Result<Arc<Genflow>, StoreError> {
        if let Some(g) = self.cached_definition(hash) {
            return Ok(g);
        }
        let row = client
            .query_opt("SELECT json FROM definitions WHERE hash = $1", &[&hash])
            .await
            .map_err(pg("reading a run's definition"))?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("run {run_id}: definition {hash} is missing"))
            })?;
        let json: String = row.get(0);
        let genflow: Genflow = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("run {run_id} definition: {e}")))?;
        Ok(self.remember_definition(hash, genflow))
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_run(&self, run: NewRun) -> Result<RunRecord, StoreError> {
        runs::create(self, run, None).await.map(|(r, _)| r)
    }

    async fn create_run_with(
        &self,
        run: NewRun,
        first: Transition,
    ) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
        runs::create(self, run, Some(first)).await
    }

    async fn get_run(&self, id_or_prefix: &str) -> Result<RunRecord, StoreError> {
        run_reads::get(self, id_or_prefix).await
    }

    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        run_reads::list(self, filter).await
    }

    async fn run_versions(&self, filter: &RunFilter) -> Result<Vec<(String, i64)>, StoreError> {
        run_reads::versions(self, filter).await
    }

    async fn run_version(&self, id: &str) -> Result<i64, StoreError> {
        let client = self.client().await?;
        client
            .row_opt("SELECT version FROM runs WHERE id = $1", &[&id])
            .await
            .map_err(pg("reading a run's version"))?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound(format!("run `{id}`")))
    }

    async fn change_stamp(&self) -> Result<Option<u64>, StoreError> {
        let client = self.client().await?;
        let seq: i64 = client
            .row("SELECT seq FROM chain_head WHERE id = 1", &[])
            .await
            .map_err(pg("reading the change stamp"))?
            .get(0);
        Ok(Some(u64::try_from(seq).unwrap_or(0)))
    }

    async fn unfinished_runs(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .rows(
                "SELECT id FROM runs WHERE status = 'running' ORDER BY created_at, id",
                &[],
            )
            .await
            .map_err(pg("listing unfinished runs"))?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn claim_steps(
        &self,
        owner: &str,
        ttl: Duration,
        limit: u32,
        run_id: Option<&str>,
    ) -> Result<Vec<StepClaim>, StoreError> {
        work::claim_steps(self, owner, ttl, limit, run_id).await
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, StoreError> {
        Ok(Box::new(
            notices::PgSubscription::start(
                self.config.clone(),
                self.name.clone(),
                notices::Channels::All,
            )
            .await?,
        ))
    }

    async fn subscribe_work(&self) -> Result<Box<dyn Subscription>, StoreError> {
        Ok(Box::new(
            notices::PgSubscription::start(
                self.config.clone(),
                self.name.clone(),
                notices::Channels::Work,
            )
            .await?,
        ))
    }

    async fn commit(&self, t: Transition) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
        runs::commit(self, t).await
    }

    async fn artifacts(&self, run_id: &str) -> Result<Vec<ArtifactRef>, StoreError> {
        run_reads::artifacts(self, run_id).await
    }

    async fn artifact_bytes(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let client = self.client().await?;
        Ok(client
            .row_opt("SELECT bytes FROM artifacts WHERE sha256 = $1", &[&sha256])
            .await
            .map_err(pg("reading an artifact"))?
            .map(|r| r.get(0)))
    }

    async fn content_totals(&self) -> Result<crate::ContentTotals, StoreError> {
        let client = self.client().await?;
        let row = client
            .row(
                "SELECT COUNT(*)::BIGINT, COALESCE(SUM(size), 0)::BIGINT FROM artifacts",
                &[],
            )
            .await
            .map_err(pg("counting stored contents"))?;
        let (contents, bytes): (i64, i64) = (row.get(0), row.get(1));
        Ok(crate::ContentTotals {
            contents: u64::try_from(contents).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }

    async fn step_runs(&self, run_id: &str) -> Result<Vec<StepRun>, StoreError> {
        run_reads::step_runs(self, run_id).await
    }

    async fn decisions(&self, run_id: &str) -> Result<Vec<DecisionRecord>, StoreError> {
        run_reads::decisions(self, run_id).await
    }

    async fn events(&self, run_id: Option<&str>) -> Result<Vec<AuditEvent>, StoreError> {
        chain::events(self, run_id).await
    }

    async fn chain_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let client = self.client().await?;
        let row = client
            .row("SELECT seq, hash FROM chain_head WHERE id = 1", &[])
            .await
            .map_err(pg("reading the chain head"))?;
        let seq: i64 = row.get(0);
        Ok((seq > 0).then(|| (seq, row.get(1))))
    }

    async fn append_events(
        &self,
        events: Vec<crate::NewEvent>,
    ) -> Result<Option<(i64, String)>, StoreError> {
        chain::append_alone(self, events).await
    }

    async fn events_of_kind(
        &self,
        kind: &str,
        newest: Option<u32>,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        chain::events_of_kind(self, kind, newest).await
    }

    async fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        chain::verify(self).await
    }

    async fn claim_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        work::claim_lease(self, run_id, step, owner, ttl).await
    }

    async fn renew_lease(
        &self,
        run_id: &str,
        step: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        work::renew_lease(self, run_id, step, owner, ttl).await
    }

    async fn release_lease(&self, run_id: &str, step: &str, owner: &str) -> Result<(), StoreError> {
        work::release_lease(self, run_id, step, owner).await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        work::schedules(self).await
    }

    async fn ensure_schedule(
        &self,
        genflow: &str,
        cron: &str,
        next_due: jiff::Timestamp,
    ) -> Result<ScheduleRecord, StoreError> {
        work::ensure_schedule(self, genflow, cron, next_due).await
    }

    async fn claim_schedule(
        &self,
        genflow: &str,
        due: jiff::Timestamp,
        next_due: jiff::Timestamp,
        run_id: &str,
    ) -> Result<bool, StoreError> {
        work::claim_schedule(self, genflow, due, next_due, run_id).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        chain::stats(self).await
    }

    async fn enqueue_deliveries(&self, deliveries: Vec<NewDelivery>) -> Result<u64, StoreError> {
        outbox::enqueue_many(self, deliveries).await
    }

    async fn claim_deliveries(
        &self,
        scope: &DeliveryScope,
        owner: &str,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        outbox::claim(self, scope, owner, lease, limit).await
    }

    async fn finish_delivery(
        &self,
        id: i64,
        owner: &str,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        outbox::finish(self, id, owner, outcome).await
    }

    async fn deliveries(&self, run_id: &str) -> Result<Vec<Delivery>, StoreError> {
        outbox::list(self, run_id).await
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::pg;
    use crate::testing::ScratchDb;

    /// A lost connection is `Unavailable` (a step behind a Go is executed
    /// again rather than failed); a statement that fails is not.
    #[tokio::test]
    async fn a_terminated_connection_is_unavailable_and_a_failed_statement_is_not() {
        let scratch = ScratchDb::create();
        let (client, connection) = tokio_postgres::connect(scratch.url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let connection = tokio::spawn(connection);
        let failed = client
            .batch_execute("SELECT 1 / 0")
            .await
            .expect_err("division by zero fails");
        let failed = pg("dividing")(failed);
        assert!(!failed.is_unavailable(), "{failed}");
        // As `pg_terminate_backend` from elsewhere (bench/faults) does.
        let _ = client
            .batch_execute("SELECT pg_terminate_backend(pg_backend_pid())")
            .await;
        let _ = connection.await;
        let lost = client
            .batch_execute("SELECT 1")
            .await
            .expect_err("the connection is gone");
        let lost = pg("reading")(lost);
        assert!(lost.is_unavailable(), "{lost}");
        assert!(
            lost.to_string()
                .starts_with("database unavailable: reading"),
            "{lost}"
        );
    }
}
