//! Read-only connections, opened on demand and kept for reuse, and the
//! change stamp they observe.

use super::{BUSY_TIMEOUT, READERS, keep_plans};
use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

/// Read-only connections, opened on demand and kept for reuse.
pub(super) struct Readers {
    pub(super) path: PathBuf,
    pub(super) idle: Mutex<Vec<Reader>>,
    /// See `change_stamp`: bumped whenever a reader sees that something was
    /// committed since it last looked.
    pub(super) generation: AtomicU64,
}

pub(super) struct Reader {
    conn: Connection,
    /// Its `PRAGMA data_version` when last read; None: never read.
    data_version: Option<i64>,
}

impl Readers {
    pub(super) fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_reader(|reader| work(&reader.conn))
    }

    fn with_reader<T>(
        &self,
        work: impl FnOnce(&mut Reader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut reader = match idle {
            Some(reader) => reader,
            None => Reader {
                conn: self.open()?,
                data_version: None,
            },
        };
        let out = work(&mut reader);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < READERS {
            idle.push(reader);
        }
        out
    }

    /// The store's change stamp. SQLite's `data_version` differs between
    /// two reads on one connection exactly when another connection (this
    /// process's writer, or any other process) committed in between. Each
    /// reader compares with what it saw last and bumps the shared
    /// generation when it differs (or on its first read). A commit after a
    /// stamp was taken is seen by whichever reader next looks, which bumps
    /// the generation after that commit, so every later stamp differs;
    /// extra bumps only cost a cache miss.
    pub(super) fn stamp(&self) -> Result<u64, StoreError> {
        self.with_reader(|reader| {
            let now: i64 = reader
                .conn
                .prepare_cached("PRAGMA data_version")?
                .query_row([], |r| r.get(0))?;
            if reader.data_version != Some(now) {
                reader.data_version = Some(now);
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            Ok(self.generation.load(Ordering::SeqCst))
        })
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        keep_plans(&conn)?;
        Ok(conn)
    }
}
