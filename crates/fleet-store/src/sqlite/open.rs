//! Opening the database file: the writer connection (retried while another
//! process creates the file), its settings, and the schema migrations.

use super::*;

/// Opens the write connection. Several processes may open a brand-new file
/// at the same instant (a CLI run and a `fleet runs` beside it): switching to
/// WAL needs the file to itself, so a loser retries for a few seconds
/// instead of failing.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let mut attempt = 0u32;
    loop {
        match try_open_writer(path) {
            Ok(conn) => return Ok(conn),
            Err(e @ StoreError::Incompatible(_)) => return Err(e),
            Err(_) if attempt < OPEN_RETRIES => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(u64::from(attempt.min(5)) * 50));
            }
            Err(e) => return Err(e),
        }
    }
}

pub(super) fn try_open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Database(format!(
            "could not switch to WAL (journal mode is {mode})"
        )));
    }
    configure(&conn)?;
    migrate(&conn, path)?;
    let mut conn = conn;
    checkpointer::install(
        &mut conn,
        checkpointer::Checkpointer::start(path.to_path_buf(), BUSY_TIMEOUT)?,
    )?;
    Ok(conn)
}

/// Settings of the write connection: synchronous NORMAL (the writer switches
/// to FULL per group), foreign keys enforced, temporary tables (`RETURNING`
/// results, sorts) in memory rather than in a temporary file.
pub(super) fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
    )?;
    keep_plans(conn)?;
    Ok(())
}

/// Makes cached statements stay prepared. Without the query planner
/// stability guarantee, SQLite marks a statement whose plan could depend on
/// a bound value (a LIMIT, a LIKE pattern, a column that a partial index
/// filters on, ...) for re-preparation whenever its bindings are cleared,
/// which the statement cache does on every use: a full re-parse per query.
pub(super) fn keep_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

pub(super) fn user_version(conn: &Connection) -> Result<usize, StoreError> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    usize::try_from(v).map_err(|_| corrupt("schema version", v))
}

/// Applies pending migrations, each in its own transaction together with the
/// `user_version` bump. The version is read again under the write lock, so
/// two processes migrating a fresh file at once apply each migration once.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let known = MIGRATIONS.len();
    let check = |version: usize| -> Result<(), StoreError> {
        if version > known {
            return Err(StoreError::Incompatible(format!(
                "{} was made by a newer Fleet (schema version {version}; this build knows up to {known}); upgrade fleet",
                path.display()
            )));
        }
        if version == 0 {
            let sqlx: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
                [],
                |r| r.get(0),
            )?;
            if sqlx {
                return Err(StoreError::Incompatible(format!(
                    "{} was made by an older development build of Fleet and cannot be upgraded; move it aside to start a new database",
                    path.display()
                )));
            }
        }
        Ok(())
    };
    // The usual case, an up-to-date file, takes no write lock.
    let version = user_version(conn)?;
    check(version)?;
    if version == known {
        return Ok(());
    }
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let step = (|| {
            let version = user_version(conn)?;
            check(version)?;
            let Some((name, sql)) = MIGRATIONS.get(version) else {
                return Ok(false);
            };
            conn.execute_batch(sql)
                .and_then(|()| conn.pragma_update(None, "user_version", version as i64 + 1))
                .map_err(StoreError::from)
                .map_err(doing(format_args!("migration {} ({name})", version + 1)))?;
            Ok(true)
        })();
        match step {
            Ok(more) => {
                conn.execute_batch("COMMIT")?;
                if !more {
                    return Ok(());
                }
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}
