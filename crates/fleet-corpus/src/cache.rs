//! A process-wide cache of walk results, validated by metadata the way git's
//! index is.
//!
//! The engine gathers the same step from the same workspace on every run, and
//! the workspace rarely changes between runs. Walking it again means probing
//! every walked and every parent directory for ignore files, parsing them, and
//! opening, reading and hashing every matched file. A [`Snapshot`] keeps the
//! result together with a stamp (device, inode, mode, size, mtime, ctime) of
//! everything the result depends on; a gather re-stats those paths, and serves
//! the snapshot only if every stamp is unchanged. Any doubt means a full walk.
//!
//! What the stamps cover:
//! - a directory's stamp changes when an entry is added, removed or renamed in
//!   it (mtime and ctime), so it covers new files, new subdirectories, swapped
//!   symlinks, and ignore files that did not exist;
//! - a file's ctime changes on every write, even when the writer puts the
//!   size and mtime back, and cannot be set from user space;
//! - each path is re-resolved by `stat` on every check, so a renamed or
//!   re-pointed component on the way changes the device/inode seen.
//!
//! Racy stamps: file-system timestamps are coarse (a clock tick of a few ms,
//! seconds on some file systems), so a change right after a stamp was taken
//! can leave it unchanged. Like git, a snapshot is only kept when every stamp
//! is [`RACY_MARGIN`] older than the moment the walk started; a tree changed
//! within that margin is walked again until it settles.

use std::fs::Metadata;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How much older than the start of the walk every stamp must be.
pub(crate) const RACY_MARGIN: Duration = Duration::from_secs(2);

/// Bounds on what the cache holds: a few workspaces times a few steps.
const MAX_SNAPSHOTS: usize = 32;
/// Text held by all snapshots together; a larger walk result is not cached.
const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;

/// What a file or directory looked like; equal stamps mean unchanged content
/// (for a directory: unchanged entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    mode: u32,
    size: u64,
    mtime: i128,
    ctime: i128,
}

impl Stamp {
    /// `None` where the platform offers no inode and ctime: nothing is cached.
    #[cfg(unix)]
    pub(crate) fn of(md: &Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Some(Stamp {
            dev: md.dev(),
            ino: md.ino(),
            mode: md.mode(),
            size: md.size(),
            mtime: ns(md.mtime(), md.mtime_nsec()),
            ctime: ns(md.ctime(), md.ctime_nsec()),
        })
    }

    #[cfg(not(unix))]
    pub(crate) fn of(_md: &Metadata) -> Option<Stamp> {
        None
    }

    /// Can this stamp be trusted for a walk that started at `started` (ns
    /// since the epoch)?
    fn settled(&self, started: i128) -> bool {
        let limit = started - RACY_MARGIN.as_nanos() as i128;
        self.mtime < limit && self.ctime < limit
    }
}

pub(crate) fn nanos_since_epoch(t: SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// One thing a walk result depends on.
#[derive(Debug)]
enum Dep {
    /// `stat(path)` (following symlinks unless `!follow`) must give `stamp`.
    Present {
        path: PathBuf,
        follow: bool,
        stamp: Stamp,
    },
    /// `stat(path)` (following symlinks) must fail.
    Absent { path: PathBuf },
}

impl Dep {
    fn holds(&self) -> bool {
        match self {
            Dep::Present {
                path,
                follow,
                stamp,
            } => {
                let md = if *follow {
                    std::fs::metadata(path)
                } else {
                    std::fs::symlink_metadata(path)
                };
                md.ok().and_then(|md| Stamp::of(&md)) == Some(*stamp)
            }
            Dep::Absent { path } => std::fs::metadata(path).is_err(),
        }
    }
}

/// Collects the dependencies of one walk. Anything it cannot pin down makes
/// the result uncacheable (`ok = false`).
pub(crate) struct Recorder {
    deps: Vec<Dep>,
    ok: bool,
    /// When the walk started, ns since the epoch.
    started: i128,
}

impl Recorder {
    pub(crate) fn new(started: SystemTime) -> Recorder {
        Recorder {
            deps: Vec::new(),
            ok: true,
            started: nanos_since_epoch(started),
        }
    }

    /// Everything so far pinned down and settled.
    pub(crate) fn ok(&self) -> bool {
        self.ok
    }

    /// Records a stamp taken elsewhere (e.g. `fstat` of the file just read):
    /// `symlink_metadata(path)` must match it.
    pub(crate) fn stamped(&mut self, path: &Path, stamp: Option<Stamp>) {
        match stamp {
            Some(stamp) if stamp.settled(self.started) => self.deps.push(Dep::Present {
                path: path.to_path_buf(),
                follow: false,
                stamp,
            }),
            _ => self.ok = false,
        }
    }

    /// Records `path` as it is now, following symlinks. Returns its metadata.
    fn present(&mut self, path: &Path) -> Option<Metadata> {
        match std::fs::metadata(path) {
            Ok(md) => {
                match Stamp::of(&md) {
                    Some(stamp) if stamp.settled(self.started) => self.deps.push(Dep::Present {
                        path: path.to_path_buf(),
                        follow: true,
                        stamp,
                    }),
                    _ => self.ok = false,
                }
                Some(md)
            }
            Err(_) => {
                self.ok = false;
                None
            }
        }
    }

    /// Records whether `path` exists (following symlinks), like `Path::exists`.
    fn maybe(&mut self, path: &Path) -> Option<Metadata> {
        match std::fs::metadata(path) {
            Ok(_) => self.present(path),
            Err(_) => {
                self.deps.push(Dep::Absent {
                    path: path.to_path_buf(),
                });
                None
            }
        }
    }

    /// Records `dir/name`, an entry of a directory whose stamp is recorded:
    /// when there is no such entry at all, the directory's stamp covers it
    /// (creating it changes the directory), so nothing is re-checked. A
    /// dangling symlink is not covered (its target may appear anywhere).
    fn entry(&mut self, dir: &Path, name: &str) {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            _ => {
                self.maybe(&path);
            }
        }
    }

    /// A directory whose listing the walk used.
    pub(crate) fn listed_dir(&mut self, dir: &Path) {
        if !self.present(dir).is_some_and(|md| md.is_dir()) {
            self.ok = false;
        }
    }

    /// The ignore files `ignore` reads for `dir` (`ignore::dir`,
    /// `add_child_path`): `.ignore`, `.gitignore`, and the git exclude file
    /// found through `.git` (a directory, or a worktree's `gitdir:` file and
    /// its `commondir`). Recording more than `ignore` reads is safe (a
    /// needless miss at worst); less is not. `dir` itself must be recorded
    /// with [`Recorder::listed_dir`].
    pub(crate) fn ignore_files_in(&mut self, dir: &Path) {
        self.entry(dir, ".ignore");
        self.entry(dir, ".gitignore");
        let dot_git = dir.join(".git");
        let exclude = match std::fs::symlink_metadata(&dot_git) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            // A real directory: `dir`'s listing covers that it stays one. Its
            // own stamp changes with nearly every git command, and only
            // `info/exclude` in it matters, so it is not recorded.
            Ok(md) if md.is_dir() => dot_git.join("info/exclude"),
            // A worktree's `gitdir:` file, a symlink, or unreadable.
            _ => match self.maybe(&dot_git) {
                None => return,
                Some(md) if md.is_file() => match self.worktree_commondir(&dot_git) {
                    Some(common) => common.join("info/exclude"),
                    None => return,
                },
                Some(_) => dot_git.join("info/exclude"),
            },
        };
        // Absent, it is probed again on every check (its directory may be
        // the busy `.git`).
        self.maybe(&exclude);
    }

    /// Mirrors `ignore::dir::resolve_git_commondir` for a `.git` file: its
    /// first line `gitdir: PATH`, then the first line of `PATH/commondir`.
    /// Both files' stamps are recorded, so the paths read from them hold.
    fn worktree_commondir(&mut self, dot_git: &Path) -> Option<PathBuf> {
        let first_line = |path: &Path| -> Option<String> {
            let file = std::fs::File::open(path).ok()?;
            std::io::BufReader::new(file).lines().next()?.ok()
        };
        let line = first_line(dot_git)?;
        let real_git_dir = PathBuf::from(line.strip_prefix("gitdir: ")?);
        let commondir_file = real_git_dir.join("commondir");
        self.maybe(&commondir_file)?;
        let line = first_line(&commondir_file)?;
        Some(if line.starts_with('.') {
            real_git_dir.join(line)
        } else {
            PathBuf::from(line)
        })
    }
}

/// What identifies a walk: the same key and unchanged dependencies give the
/// same result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub root: PathBuf,
    pub globs: Vec<String>,
    pub include_ignored: bool,
    pub max_file_bytes: u64,
}

/// A walk result and what it depends on. `T` is the result (kept generic so
/// this module knows nothing of records).
pub(crate) struct Snapshot<T> {
    deps: Vec<Dep>,
    pub value: T,
    text_bytes: usize,
}

impl<T> Snapshot<T> {
    /// Still valid: every dependency holds. One `stat` per dependency.
    pub(crate) fn valid(&self) -> bool {
        self.deps.iter().all(Dep::holds)
    }
}

/// The process-wide store, least recently used first.
pub(crate) struct Cache<T> {
    entries: Mutex<Vec<(Key, Arc<Snapshot<T>>)>>,
}

impl<T> Cache<T> {
    pub(crate) const fn new() -> Cache<T> {
        Cache {
            entries: Mutex::new(Vec::new()),
        }
    }

    /// The snapshot for `key`, not yet validated.
    pub(crate) fn get(&self, key: &Key) -> Option<Arc<Snapshot<T>>> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let at = entries.iter().position(|(k, _)| k == key)?;
        let entry = entries.remove(at);
        let snapshot = Arc::clone(&entry.1);
        entries.push(entry);
        Some(snapshot)
    }

    /// Forgets `key` (its snapshot no longer holds).
    pub(crate) fn remove(&self, key: &Key) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(k, _)| k != key);
    }

    /// Would a result holding `text_bytes` of text be kept?
    pub(crate) fn fits(&self, text_bytes: usize) -> bool {
        text_bytes <= MAX_TEXT_BYTES / 2
    }

    /// Keeps `value` for `key` if the recorder pinned everything down.
    pub(crate) fn put(&self, key: Key, recorder: Recorder, text_bytes: usize, value: T) {
        if !recorder.ok || !self.fits(text_bytes) {
            self.remove(&key);
            return;
        }
        let snapshot = Arc::new(Snapshot {
            deps: recorder.deps,
            value,
            text_bytes,
        });
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|(k, _)| *k != key);
        entries.push((key, snapshot));
        let mut total: usize = entries.iter().map(|(_, s)| s.text_bytes).sum();
        while entries.len() > MAX_SNAPSHOTS || total > MAX_TEXT_BYTES {
            let (_, evicted) = entries.remove(0);
            total -= evicted.text_bytes;
        }
    }
}
