//! "Has anything been committed since?" without a transaction.
//!
//! Every SQLite connection to a WAL database finds the newest commit through
//! the WAL-index header, kept twice (48 bytes each) at the start of the
//! shared-memory file `<db>-shm` (https://sqlite.org/walformat.html, "The
//! WAL-Index Header"). Every commit, by any connection of any process,
//! rewrites it before COMMIT returns, and increments its `iChange` counter;
//! a writer writes the second copy, then the first, so a reader that finds
//! both equal has a consistent header. Reading it is a few loads, where a
//! read transaction (`PRAGMA data_version`) takes SQLite's shared-memory
//! mutex and two `fcntl` locks: on the decision page and the run listing,
//! that was the largest cost of a request.
//!
//! The file outlives our mapping only while some connection has the
//! database open, and this store keeps its writer connection open as long
//! as it lives, so SQLite never re-creates it under us.

use memmap2::{Mmap, MmapOptions};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering, fence};

/// Words of one header copy.
const HEADER_WORDS: usize = 12;
/// `iVersion` of the only WAL-index format there has been (SQLite 3.7.0 on).
const WAL_INDEX_VERSION: u32 = 3_007_000;

pub(super) struct WalIndex {
    map: Mmap,
}

/// The header's words, both copies equal.
pub(super) type Header = [u32; HEADER_WORDS];

impl WalIndex {
    /// Maps the start of `<db>-shm` read-only; None if it is missing or too
    /// small, or the platform is not little-endian (the header's layout is
    /// read as native little-endian words).
    pub(super) fn open(db: &Path) -> Option<WalIndex> {
        if cfg!(target_endian = "big") {
            return None;
        }
        let mut path = db.as_os_str().to_owned();
        path.push("-shm");
        let file = std::fs::File::open(path).ok()?;
        let bytes = 2 * HEADER_WORDS * 4;
        if file.metadata().ok()?.len() < bytes as u64 {
            return None;
        }
        // SAFETY: a read-only shared mapping of a file other processes
        // write; it is only ever read through atomic loads (`word`).
        let map = unsafe { MmapOptions::new().len(bytes).map(&file) }.ok()?;
        (map.len() >= bytes).then_some(WalIndex { map })
    }

    fn word(&self, i: usize) -> u32 {
        assert!(i < 2 * HEADER_WORDS);
        // SAFETY: in bounds (checked in `open`) and 4-byte aligned (the
        // mapping starts on a page); written concurrently by other
        // connections, so read atomically.
        let word = unsafe { &*(self.map.as_ptr().add(4 * i).cast::<AtomicU32>()) };
        word.load(Ordering::Acquire)
    }

    /// The current header; None while a commit is rewriting it or if it is
    /// not an initialized header of the known version.
    pub(super) fn header(&self) -> Option<Header> {
        let first: Header = std::array::from_fn(|i| self.word(i));
        fence(Ordering::Acquire);
        let second: Header = std::array::from_fn(|i| self.word(HEADER_WORDS + i));
        // isInit is the first byte of word 3.
        let initialized = first[3] & 0xff == 1;
        (first == second && first[0] == WAL_INDEX_VERSION && initialized).then_some(first)
    }
}
