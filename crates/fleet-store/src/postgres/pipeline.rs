//! Statements sent together and answered together.
//!
//! Over loopback TCP each round trip costs more than the statement it
//! carries (two context switches and the network stack both ways), and a
//! commit holds the `chain_head` lock for every round trip from its head
//! read to its COMMIT, which bounds commits per second for the whole
//! database. tokio-postgres pipelines requests whose futures are polled
//! together, sending them in the order they are first polled; a
//! [`Pipeline`] queues prepared statements, then polls them in queue order,
//! so a transaction's independent writes (and its COMMIT) take one round
//! trip.
//!
//! [`Tx`] is a transaction whose BEGIN and COMMIT travel inside pipelines
//! (deadpool's `Transaction` sends each on its own round trip).

use super::cached::Cached;
use super::pg;
use crate::StoreError;
use deadpool_postgres::{GenericClient, Object};
use futures_util::future::{BoxFuture, MaybeDone, maybe_done};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// An owned statement parameter (lives inside the queued future).
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// Boxes each argument as a [`Param`].
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        vec![$(Box::new($p) as $crate::postgres::pipeline::Param),*]
    };
}
pub(super) use params;

/// What one queued statement answered.
pub(super) enum Answer {
    Count(u64),
    Rows(Vec<Row>),
}

/// Where a statement's answer will be in [`Answers`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot(usize);

pub(super) struct Pipeline<'c, C: GenericClient + Sync> {
    client: &'c C,
    /// Set when sent: the transaction this pipeline begins has begun.
    begins: Option<&'c AtomicBool>,
    queued: Vec<(
        BoxFuture<'c, Result<Answer, tokio_postgres::Error>>,
        &'static str,
    )>,
}

impl<'c, C: GenericClient + Sync> Pipeline<'c, C> {
    pub fn new(client: &'c C) -> Pipeline<'c, C> {
        Pipeline {
            client,
            begins: None,
            queued: Vec::new(),
        }
    }

    /// Queues a statement whose row count is wanted; `what` names it in errors.
    pub async fn exec(
        &mut self,
        sql: &str,
        params: Vec<Param>,
        what: &'static str,
    ) -> Result<Slot, StoreError> {
        self.queue(sql, params, what, false).await
    }

    /// Queues a statement whose rows are wanted.
    pub async fn query(
        &mut self,
        sql: &str,
        params: Vec<Param>,
        what: &'static str,
    ) -> Result<Slot, StoreError> {
        self.queue(sql, params, what, true).await
    }

    /// Prepares now (a round trip only the first time on a connection), so
    /// nothing is left to await before the statement is sent in order.
    async fn queue(
        &mut self,
        sql: &str,
        params: Vec<Param>,
        what: &'static str,
        rows: bool,
    ) -> Result<Slot, StoreError> {
        let statement = self.client.statement(sql).await.map_err(pg(what))?;
        let client = self.client;
        self.queued.push((
            Box::pin(async move {
                let refs: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                if rows {
                    client.query(&statement, &refs).await.map(Answer::Rows)
                } else {
                    client.execute(&statement, &refs).await.map(Answer::Count)
                }
            }),
            what,
        ));
        Ok(Slot(self.queued.len() - 1))
    }

    /// Queues a simple-protocol command without parameters (`BEGIN`,
    /// `COMMIT`, `SET LOCAL …`).
    pub fn command(&mut self, sql: &'static str, what: &'static str) -> Slot {
        let client = self.client;
        self.queued.push((
            Box::pin(async move { client.batch_execute(sql).await.map(|()| Answer::Count(0)) }),
            what,
        ));
        Slot(self.queued.len() - 1)
    }

    /// Sends everything queued, in queue order, and waits for every answer.
    pub async fn send(self) -> Answers {
        if let Some(begun) = self.begins {
            begun.store(true, Ordering::Relaxed);
        }
        let whats: Vec<&'static str> = self.queued.iter().map(|(_, w)| *w).collect();
        let mut pending: Vec<MaybeDone<_>> = self
            .queued
            .into_iter()
            .map(|(f, _)| maybe_done(f))
            .collect();
        // Polled front to back every time: the first poll of each sends its
        // request, so requests leave in queue order.
        std::future::poll_fn(|cx| {
            let mut all_done = true;
            for f in pending.iter_mut() {
                if Pin::new(f).poll(cx).is_pending() {
                    all_done = false;
                }
            }
            if all_done {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        let results = pending
            .iter_mut()
            .map(|f| {
                Pin::new(f)
                    .take_output()
                    .expect("every queued statement finished")
            })
            .collect();
        Answers { results, whats }
    }
}

/// The answers of one [`Pipeline::send`], by [`Slot`].
pub(super) struct Answers {
    results: Vec<Result<Answer, tokio_postgres::Error>>,
    whats: Vec<&'static str>,
}

impl Answers {
    /// The first statement that failed (every later one in the same
    /// transaction then failed only because the transaction was aborted).
    pub fn first_error(&self) -> Option<(Slot, &tokio_postgres::Error)> {
        self.results
            .iter()
            .enumerate()
            .find_map(|(i, r)| r.as_ref().err().map(|e| (Slot(i), e)))
    }

    /// Fails with the first error, named by what its statement was for.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.first_error() {
            Some((Slot(i), e)) => Err(describe(self.whats[i], e)),
            None => Ok(()),
        }
    }

    pub fn count(&self, slot: Slot) -> Result<u64, StoreError> {
        match &self.results[slot.0] {
            Ok(Answer::Count(n)) => Ok(*n),
            Ok(Answer::Rows(rows)) => Ok(rows.len() as u64),
            Err(e) => Err(describe(self.whats[slot.0], e)),
        }
    }

    pub fn rows(&self, slot: Slot) -> Result<&[Row], StoreError> {
        match &self.results[slot.0] {
            Ok(Answer::Rows(rows)) => Ok(rows),
            Ok(Answer::Count(_)) => Ok(&[]),
            Err(e) => Err(describe(self.whats[slot.0], e)),
        }
    }

    pub fn is(&self, slot: Slot, s: Slot) -> bool {
        slot.0 == s.0
    }
}

fn describe(what: &'static str, e: &tokio_postgres::Error) -> StoreError {
    let detail = e
        .as_db_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string());
    StoreError::Database(format!("{what}: {detail}"))
}

/// A transaction on a pooled connection whose BEGIN is sent with its first
/// pipeline and whose COMMIT with its last. Dropped while open (an error
/// path that did not roll back, or a cancelled future), its connection is
/// closed instead of returned to the pool, and the server rolls it back.
pub(super) struct Tx {
    client: Option<Object>,
    durable: bool,
    // Atomics only so a `&Tx` can be held across awaits by `Send` futures.
    begun: AtomicBool,
    open: AtomicBool,
}

impl Tx {
    /// `durable: false` commits without waiting for the WAL flush
    /// (`synchronous_commit = off`): a step's progress, which whoever takes
    /// the step over redoes if a crash of the database host loses it; the
    /// durability SQLite's WAL gives the same commit. A crash can lose the
    /// last such commits, never corrupt or reorder them (a durable commit
    /// flushes every earlier one). Decisions and deliveries are durable.
    pub fn new(client: Object, durable: bool) -> Tx {
        Tx {
            client: Some(client),
            durable,
            begun: AtomicBool::new(false),
            open: AtomicBool::new(true),
        }
    }

    pub fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("the client is taken only on drop")
    }

    /// A pipeline inside this transaction (the first one sent starts it).
    pub fn pipeline(&self) -> Pipeline<'_, Object> {
        let mut p = Pipeline::new(self.client());
        if !self.begun.load(Ordering::Relaxed) {
            p.begins = Some(&self.begun);
            // One message either way.
            p.command(
                if self.durable {
                    "BEGIN"
                } else {
                    "BEGIN; SET LOCAL synchronous_commit = off"
                },
                "starting a transaction",
            );
        }
        p
    }

    /// Sends `p` (from [`Tx::pipeline`]) with COMMIT after it. Committed
    /// only if every statement succeeded: check the answers.
    pub async fn commit_with(&self, mut p: Pipeline<'_, Object>) -> Answers {
        let commit = p.command("COMMIT", "committing");
        let answers = p.send().await;
        // A COMMIT after a failed statement answers ROLLBACK, without error:
        // the transaction is over either way. A failed COMMIT leaves it to
        // the connection's end (see `Drop`).
        if answers.results[commit.0].is_ok() {
            self.open.store(false, Ordering::Relaxed);
        }
        answers
    }

    /// Ends the transaction without a trace (an error path).
    pub async fn rollback(self) {
        if self.open.load(Ordering::Relaxed)
            && self.begun.load(Ordering::Relaxed)
            && self.client().batch_execute("ROLLBACK").await.is_ok()
        {
            self.open.store(false, Ordering::Relaxed);
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open.load(Ordering::Relaxed)
            && self.begun.load(Ordering::Relaxed)
            && let Some(client) = self.client.take()
        {
            // Not back to the pool mid-transaction: closing it aborts it.
            drop(Object::take(client));
        }
    }
}
