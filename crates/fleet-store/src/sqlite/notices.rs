//! Commit notices for [`Store::subscribe`](crate::Store::subscribe) on SQLite.
//!
//! Within the process, every commit is announced on a broadcast channel the
//! moment it returns. Other processes cannot be heard directly, so a
//! subscription also keeps a read-only connection of its own and polls
//! `PRAGMA data_version`, which changes exactly when some other connection
//! (another process, or this process's writer) committed: the bounded poll
//! the trait asks for, a few microseconds every `POLL`.

use crate::{Notice, StoreError, Subscription};
use async_trait::async_trait;
use fleet_core::run::RunStatus;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often another process's commits are looked for.
const POLL: Duration = Duration::from_millis(20);
/// Notices a slow subscriber may fall behind by before it is told `Any`.
const BACKLOG: usize = 1024;

pub(crate) struct Notices {
    tx: broadcast::Sender<Notice>,
}

impl Notices {
    pub(crate) fn new() -> Notices {
        Notices {
            tx: broadcast::channel(BACKLOG).0,
        }
    }

    /// Announces a commit of `run_id` (and new work, if it made a step claimable).
    pub(crate) fn committed(&self, run_id: &str, status: RunStatus, work: bool) {
        // No subscriber is not an error.
        let _ = self.tx.send(Notice::Run(run_id.to_owned(), Some(status)));
        if work {
            self.work();
        }
    }

    pub(crate) fn work(&self) {
        let _ = self.tx.send(Notice::Work);
    }

    /// A subscription; `file` is the database to watch for other processes'
    /// commits (`None` for an in-memory database, which only this process sees).
    pub(crate) fn subscribe(&self, file: Option<&Path>) -> Result<SqliteSubscription, StoreError> {
        let watch = match file {
            Some(path) => {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                let version = data_version(&conn)?;
                Some((conn, version))
            }
            None => None,
        };
        Ok(SqliteSubscription {
            rx: self.tx.subscribe(),
            watch,
        })
    }
}

fn data_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?)
}

pub(crate) struct SqliteSubscription {
    rx: broadcast::Receiver<Notice>,
    /// A connection of our own and the data version it last saw.
    watch: Option<(Connection, i64)>,
}

impl SqliteSubscription {
    /// `Any` if some connection committed since the last look.
    fn other_commits(&mut self) -> Result<Option<Notice>, StoreError> {
        let Some((conn, seen)) = &mut self.watch else {
            return Ok(None);
        };
        let now = data_version(conn)?;
        if now == *seen {
            return Ok(None);
        }
        *seen = now;
        Ok(Some(Notice::Any))
    }
}

#[async_trait]
impl Subscription for SqliteSubscription {
    async fn next(&mut self, timeout: Duration) -> Result<Option<Notice>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = if self.watch.is_some() {
                left.min(POLL)
            } else {
                left
            };
            match tokio::time::timeout(wait, self.rx.recv()).await {
                Ok(Ok(notice)) => return Ok(Some(notice)),
                // Fell behind: something happened, look again.
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => return Ok(Some(Notice::Any)),
                // The store was dropped: only other processes remain to hear.
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    if self.watch.is_none() {
                        tokio::time::sleep(left).await;
                        return Ok(None);
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(_elapsed) => {}
            }
            if let Some(notice) = self.other_commits()? {
                return Ok(Some(notice));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}
