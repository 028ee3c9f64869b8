//! Scratch PostgreSQL databases for tests: each test gets a database of its
//! own (so tests run in parallel), dropped when the guard is dropped, also
//! when the test panics. The server is `FLEET_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); if it cannot be reached
//! the test fails saying so: PostgreSQL tests never skip.

use tokio_postgres::NoTls;

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub fn admin_url() -> String {
    std::env::var("FLEET_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// A database that exists until this is dropped.
pub struct ScratchDb {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDb {
    /// Creates an empty database named `fleet_t_<random>`.
    pub fn create() -> ScratchDb {
        let admin = admin_url();
        let name = format!("fleet_t_{}", uuid::Uuid::now_v7().simple());
        run_admin(&admin, &format!("CREATE DATABASE {name}"));
        let url = with_dbname(&admin, &name);
        ScratchDb { admin, name, url }
    }

    /// The scratch database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        run_admin(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// `url` with its database name replaced by `db`.
fn with_dbname(url: &str, db: &str) -> String {
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..path_start])
}

/// Runs one statement on the admin database, on a thread of its own (so it
/// works from Drop, inside or outside a runtime).
fn run_admin(admin: &str, sql: &str) {
    let (admin, sql) = (admin.to_owned(), sql.to_owned());
    let outcome = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.map_err(|e| {
                format!(
                    "PostgreSQL is not reachable at {} ({e}); these tests need it (set FLEET_TEST_POSTGRES_URL)",
                    crate::redact(&admin)
                )
            })?;
            let driver = tokio::spawn(connection);
            let done = client.batch_execute(&sql).await.map_err(|e| {
                let detail = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
                format!("`{sql}`: {detail}")
            });
            drop(client);
            let _ = driver.await;
            done
        })
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            if std::thread::panicking() {
                eprintln!("scratch database: {e}");
            } else {
                panic!("scratch database: {e}");
            }
        }
        Err(_) => panic!("scratch database: the admin thread panicked"),
    }
}

/// A store on a backend named at run time, for benchmarks and tests that
/// measure both: `sqlite` (a file in a directory the caller owns) or
/// `postgres` (a scratch database, migrated, dropped with this).
pub struct ScratchStore {
    sqlite: std::path::PathBuf,
    postgres: Option<ScratchDb>,
}

impl ScratchStore {
    pub fn new(backend: &str, dir: &std::path::Path) -> Result<ScratchStore, String> {
        let postgres = match backend {
            "sqlite" => None,
            "postgres" => Some(ScratchDb::create()),
            other => return Err(format!("unknown backend `{other}` (sqlite, postgres)")),
        };
        Ok(ScratchStore {
            sqlite: dir.join("fleet.db"),
            postgres,
        })
    }

    /// After a bulk fill, brings the store to the state a server's database
    /// is in after a minute of normal running. On PostgreSQL that is
    /// `VACUUM ANALYZE`, which autovacuum runs on its own within a minute:
    /// a fill updates the few aggregate and chain-head rows hundreds of
    /// thousands of times in minutes, and until vacuumed every read of them
    /// steps over the dead versions. SQLite updates in place: nothing to do.
    pub async fn settle(&self) -> Result<(), crate::StoreError> {
        let Some(db) = &self.postgres else {
            return Ok(());
        };
        let fail = |e: tokio_postgres::Error| crate::StoreError::Database(format!("vacuum: {e}"));
        let (client, connection) = tokio_postgres::connect(db.url(), NoTls)
            .await
            .map_err(fail)?;
        let connection = tokio::spawn(connection);
        client.batch_execute("VACUUM ANALYZE").await.map_err(fail)?;
        drop(client);
        let _ = connection.await;
        Ok(())
    }

    /// Opens (a new handle on) the store; each call shares the same data.
    pub async fn open(&self) -> Result<std::sync::Arc<dyn crate::Store>, crate::StoreError> {
        Ok(match &self.postgres {
            None => std::sync::Arc::new(crate::SqliteStore::open(&self.sqlite).await?),
            Some(db) => std::sync::Arc::new(
                crate::PostgresStore::connect(db.url(), crate::Migrate::Apply).await?,
            ),
        })
    }
}
