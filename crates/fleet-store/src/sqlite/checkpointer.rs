//! Checkpoints on their own thread.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the
//! threshold, on the one writer thread, which then copies the whole log into
//! the database file while every queued commit waits. Here the writer's WAL
//! hook only nudges this thread, which copies the log with its own
//! connection while the writer goes on (a PASSIVE checkpoint never blocks
//! writers). The log can only restart from its beginning once everything in
//! it was copied with no commit in between, which a checkpoint beside a busy
//! writer rarely manages; so past a hard limit the writer copies the
//! remainder itself, between two commits, and that remainder is small
//! because this thread already copied the rest.

use crate::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::ffi::c_int;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

/// Log frames (pages) at which this thread is asked to checkpoint:
/// SQLite's default automatic checkpoint threshold.
pub(super) const NUDGE_AT: c_int = 1000;
/// Log frames at which the writer checkpoints inline so the log restarts.
pub(super) const INLINE_AT: c_int = 4 * NUDGE_AT;

pub(super) struct Checkpointer {
    nudges: Option<mpsc::SyncSender<()>>,
    /// Held by the thread for each checkpoint pass.
    running: Arc<Mutex<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread with its own connection to `path`.
    pub(super) fn start(path: PathBuf, busy_timeout: Duration) -> Result<Checkpointer, StoreError> {
        // Capacity 1: nudges while a checkpoint runs coalesce into one more.
        let (nudges, received) = mpsc::sync_channel::<()>(1);
        let running = Arc::new(Mutex::new(()));
        let pass = Arc::clone(&running);
        let thread = std::thread::Builder::new()
            .name("fleet-store-checkpoint".into())
            .spawn(move || {
                let conn = match Connection::open_with_flags(
                    &path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                ) {
                    Ok(conn) => conn,
                    // The writer's hard limit still checkpoints; nothing is lost.
                    Err(_) => return,
                };
                let _ = conn.busy_timeout(busy_timeout);
                // A connection learns the file is in WAL mode only when it
                // first reads it; until then a checkpoint does nothing.
                let _ = conn.query_row("PRAGMA journal_mode", [], |r| r.get::<_, String>(0));
                while received.recv().is_ok() {
                    // Errors (a busy database, I/O) leave the frames in the
                    // log, where readers find them; the next nudge retries.
                    let _pass = pass.lock().unwrap_or_else(PoisonError::into_inner);
                    let _ = conn
                        .wal_checkpoint_v2(None::<&str>, rusqlite::wal::CheckpointMode::PASSIVE);
                }
            })
            .map_err(|e| StoreError::Database(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            nudges: Some(nudges),
            running,
            thread: Some(thread),
        })
    }

    /// Asks for a checkpoint; never blocks.
    pub(super) fn nudge(&self) {
        if let Some(nudges) = &self.nudges {
            let _ = nudges.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudges.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Installs the WAL hook on the writer connection: nudge `checkpointer` past
/// [`NUDGE_AT`] frames, checkpoint inline past [`INLINE_AT`]. Replaces
/// SQLite's automatic checkpoint (which is itself a WAL hook); the hook owns
/// the checkpointer, so closing the connection stops and joins its thread.
pub(super) fn install(conn: &mut Connection, checkpointer: Checkpointer) -> Result<(), StoreError> {
    // Log size at the last nudge: nudging again only after another half
    // threshold keeps the thread from checkpointing (and syncing) per commit.
    let mut nudged_at: c_int = 0;
    conn.wal_hook(Some(
        move |wal: &mut rusqlite::hooks::Wal, frames: c_int| {
            if frames < nudged_at {
                nudged_at = 0; // the log restarted
            }
            if frames >= INLINE_AT {
                // Best effort, like SQLite's own automatic checkpoint: a failure
                // here must not fail the commit that already happened.
                // A pass of the thread holds the checkpoint lock, and this one
                // would just fail busy: wait for it (it is not nudged any more
                // past this size), then copy what it left.
                let _pass = checkpointer
                    .running
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let _ = wal.checkpoint_v2(rusqlite::wal::CheckpointMode::PASSIVE);
            } else if frames >= NUDGE_AT && frames >= nudged_at + NUDGE_AT / 2 {
                nudged_at = frames;
                checkpointer.nudge();
            }
            Ok(())
        },
    ))?;
    Ok(())
}
