//! The writer thread: the only owner of the write connection, committing
//! queued requests in groups.
//!
//! Callers send a closure over the connection and await its result on a
//! oneshot channel. The thread takes whatever is queued (up to
//! [`MAX_GROUP`]) and runs it in ONE `BEGIN IMMEDIATE … COMMIT`, each request
//! inside its own savepoint: a request that fails is rolled back alone and
//! gets its own error, the others commit. Replies go out only after COMMIT
//! returns, so a caller never sees a result that could still be lost; if
//! COMMIT (or BEGIN) fails, every request in the group gets that error.
//! A group containing a durable request runs with `synchronous = FULL`.

use crate::StoreError;
use rusqlite::Connection;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The most requests committed in one transaction; bounds how long the
/// write lock is held and how long the first request waits for the last.
const MAX_GROUP: usize = 64;

/// One queued request, type-erased so requests of any result type share the queue.
trait Job: Send {
    fn durable(&self) -> bool;
    /// Runs the request inside the group's transaction and keeps its result
    /// until the group ends. Err carries the error's text.
    fn run(&mut self, conn: &Connection) -> Result<(), String>;
    /// Sends the kept result, or `failed` (the group did not commit) instead.
    fn reply(self: Box<Self>, failed: Option<&str>);
}

struct Request<T, F> {
    durable: bool,
    work: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Request<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn durable(&self) -> bool {
        self.durable
    }

    fn run(&mut self, conn: &Connection) -> Result<(), String> {
        let Some(work) = self.work.take() else {
            return Ok(());
        };
        // A bug in one request must not take the writer (and every later
        // caller) down with it; its savepoint is rolled back like any failure.
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Database("a store request panicked".into())));
        let status = outcome.as_ref().map(|_| ()).map_err(|e| e.to_string());
        self.outcome = Some(outcome);
        status
    }

    fn reply(self: Box<Self>, failed: Option<&str>) {
        let result = match (failed, self.outcome) {
            (None, Some(outcome)) => outcome,
            (Some(why), _) => Err(StoreError::Database(why.to_string())),
            (None, None) => Err(StoreError::Database("request was not run".into())),
        };
        // The caller may have stopped waiting (its future was dropped).
        let _ = self.reply.send(result);
    }
}

/// Handle to the writer thread. Dropping it lets the thread finish the
/// queued requests, close the connection and exit; drop waits for that.
pub(super) struct Writer {
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

fn stopped() -> StoreError {
    StoreError::Database("the store's writer thread has stopped".into())
}

impl Writer {
    /// Starts the thread, which first runs `open` (connecting and migrating
    /// off the async runtime, since both may wait on other processes' locks).
    pub(super) async fn start<O>(open: O) -> Result<Writer, StoreError>
    where
        O: FnOnce() -> Result<Connection, StoreError> + Send + 'static,
    {
        let (queue, requests) = mpsc::channel::<Box<dyn Job>>();
        let (ready, opened) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("fleet-store-writer".into())
            .spawn(move || {
                let conn = match open() {
                    Ok(conn) => {
                        let _ = ready.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                serve(&conn, &requests);
            })
            .map_err(|e| StoreError::Database(format!("starting the writer thread: {e}")))?;
        let writer = Writer {
            queue: Some(queue),
            thread: Some(thread),
        };
        opened.await.map_err(|_| stopped())??;
        Ok(writer)
    }

    /// Runs `work` on the writer connection inside a write transaction
    /// (possibly shared with other requests) and returns its result once
    /// that transaction has committed. `durable`: flush to stable storage.
    pub(super) async fn call<T, F>(&self, durable: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job = Box::new(Request {
            durable,
            work: Some(work),
            outcome: None,
            reply,
        });
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it is drained.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread's loop: block for one request, take whatever else is queued,
/// commit the group; until every sender is gone and the queue is empty.
fn serve(conn: &Connection, requests: &mpsc::Receiver<Box<dyn Job>>) {
    // The connection starts at NORMAL (see `configure`); None = unknown
    // after a failed switch, so the next group sets it explicitly.
    let mut full_sync = Some(false);
    while let Ok(first) = requests.recv() {
        let mut group = Vec::with_capacity(8);
        group.push(first);
        while group.len() < MAX_GROUP {
            match requests.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        commit_group(conn, group, &mut full_sync);
    }
}

fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([])?;
    Ok(())
}

fn fail_all(jobs: Vec<Box<dyn Job>>, why: &str) {
    for job in jobs {
        job.reply(Some(why));
    }
}

fn commit_group(conn: &Connection, group: Vec<Box<dyn Job>>, full_sync: &mut Option<bool>) {
    let durable = group.iter().any(|j| j.durable());
    // Outside the transaction: SQLite ignores a change of `synchronous` inside one.
    if *full_sync != Some(durable) {
        *full_sync = None;
        let pragma = if durable {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        if let Err(e) = conn.execute_batch(pragma) {
            return fail_all(group, &format!("setting durability: {e}"));
        }
        *full_sync = Some(durable);
    }
    // IMMEDIATE takes the write lock up front, so two processes never
    // deadlock upgrading read locks; the busy timeout makes the loser wait.
    if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
        return fail_all(group, &format!("starting a write transaction: {e}"));
    }
    let mut done: Vec<Box<dyn Job>> = Vec::with_capacity(group.len());
    let mut pending = group.into_iter();
    while let Some(mut job) = pending.next() {
        let step = exec(conn, "SAVEPOINT request").map_err(|e| e.to_string());
        let status = match step {
            Ok(()) => job.run(conn),
            Err(e) => Err(e),
        };
        // Some errors (I/O, disk full) make SQLite roll back the whole
        // transaction: everything done so far in this group is gone.
        if conn.is_autocommit() {
            let why = format!(
                "the write transaction was rolled back: {}",
                status.err().unwrap_or_else(|| "unknown reason".into())
            );
            done.push(job);
            done.extend(pending);
            return fail_all(done, &why);
        }
        let end = if status.is_ok() {
            exec(conn, "RELEASE request")
        } else {
            exec(conn, "ROLLBACK TO request").and_then(|()| exec(conn, "RELEASE request"))
        };
        done.push(job);
        if let Err(e) = end {
            let _ = conn.execute_batch("ROLLBACK");
            done.extend(pending);
            return fail_all(done, &format!("ending a request's savepoint: {e}"));
        }
    }
    match exec(conn, "COMMIT") {
        Ok(()) => {
            for job in done {
                job.reply(None);
            }
        }
        Err(e) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            fail_all(done, &format!("committing: {e}"));
        }
    }
}
