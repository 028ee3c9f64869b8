//! The change stamp read straight from SQLite's WAL-index header.
//!
//! Every commit in WAL mode, by any connection of any process, increments
//! the header's `iChange` counter in the shared `-shm` mapping before the
//! commit returns; a WAL restart changes its salts (SQLite's `walformat.html`
//! documents the layout). Reading them is two atomic loads, where
//! `PRAGMA data_version` takes a read transaction (a pool lock, a statement
//! step, and `fcntl` lock calls).
//!
//! The mapping is SQLite's own, obtained through the VFS (`xShmMap`) on a
//! connection kept open only for this. Mapping the `-shm` file with a
//! descriptor of our own is not safe: closing it drops every POSIX lock the
//! process holds on the file, SQLite's included, and another process may
//! then truncate the file under live mappings (SIGBUS). SQLite's connection
//! keeps its shared lock on the file for as long as it is open, so nobody
//! re-initializes the region while we read it.

use rusqlite::{Connection, OpenFlags, ffi};
use std::ffi::{c_int, c_void};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// The size SQLite maps the WAL-index in (`WALINDEX_PGSZ`).
const REGION_SIZE: c_int = 32768;
/// Offsets in the first copy of the header (`WalIndexHdr`), 4-byte aligned.
const ICHANGE: usize = 8;
const SALT0: usize = 32;

pub struct ShmStamp {
    /// Points into SQLite's mapping of the first WAL-index region, which
    /// stays mapped while `_conn` is open. Read only with atomic loads: other
    /// processes write it concurrently.
    header: NonNull<AtomicU32>,
    /// Never used after setup; held so the mapping and its lock stay.
    _conn: Mutex<Connection>,
}

// SAFETY: `header` is only read, with atomic loads, and what it points to
// lives as long as `_conn`, which lives as long as this value.
unsafe impl Send for ShmStamp {}
unsafe impl Sync for ShmStamp {}

impl ShmStamp {
    /// Maps the header of the WAL database at `path`; None where SQLite
    /// keeps no shared mapping (another VFS, heap-memory WAL index, a
    /// read-only `-shm` it could not map), and then callers fall back to
    /// `PRAGMA data_version`.
    pub fn open(path: &Path) -> Option<ShmStamp> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        // A read opens the WAL and its index.
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .ok()?;
        // SAFETY: the connection is open and used by this thread only; the
        // file pointer and its methods are SQLite's, valid while it is open.
        let region = unsafe {
            let mut file: *mut ffi::sqlite3_file = std::ptr::null_mut();
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast::<c_void>(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
                return None;
            }
            let methods = &*(*file).pMethods;
            // xShmMap exists from version 2 of the methods on.
            if methods.iVersion < 2 {
                return None;
            }
            let map = methods.xShmMap?;
            let mut region: *mut c_void = std::ptr::null_mut();
            // bExtend 0: map what exists; the header region always does once
            // the WAL was read.
            if map(file, 0, REGION_SIZE, 0, &raw mut region) != ffi::SQLITE_OK {
                return None;
            }
            region
        };
        let header = NonNull::new(region.cast::<AtomicU32>())?;
        Some(ShmStamp {
            header,
            _conn: Mutex::new(conn),
        })
    }

    /// Differs from every earlier value once anything committed since; the
    /// top bit is always clear.
    pub fn read(&self) -> u64 {
        // SAFETY: both offsets lie in the 48-byte header at the start of the
        // mapped region and are 4-byte aligned (mmap is page aligned).
        let (change, salt) = unsafe {
            let base = self.header.as_ptr();
            (
                (*base.add(ICHANGE / 4)).load(Ordering::Acquire),
                (*base.add(SALT0 / 4)).load(Ordering::Acquire),
            )
        };
        (u64::from(salt & 0x7fff_ffff) << 32) | u64::from(change)
    }
}
