//! Group commit: one-statement commits (`fleet_commit`, migration 0006)
//! that callers of one store make at the same time travel together, in
//! one transaction sent in one round trip: each transition's checks and
//! writes (`fleet_write`), then all their audit appends in one
//! `fleet_append_group` call, so the chain head is locked only for the
//! appends and the COMMIT.
//!
//! Why: per transaction the server pays a fixed cost (a wake-up, a
//! protocol exchange, a commit record, relation locks, NOTIFY's commit
//! lock) and every commit serializes behind the audit chain's head row.
//! Under load a worker's steps finish together; a group pays that cost
//! once. A commit that finds nothing in flight leaves at once, alone, so
//! an idle store adds no wait.
//!
//! Invariants:
//! - A refused call (a negative code: no run, another version, a wrong
//!   guess) writes nothing and leaves the other calls of its group alone.
//! - Any other error rolls the whole group back, and every call of it is
//!   then sent again alone by its caller: an error reaches only the caller
//!   whose call caused it, with the same error as without grouping.
//! - A group locks its runs' rows in id order, then their step queue rows,
//!   before any call: the order every single commit and claim takes them
//!   (run, queue row, lease), so a group never holds the chain head or a
//!   lease while it waits for a run row or a queue row, and a claim
//!   (which skips locked queue rows) never waits on a group's lease.
//! - A group is durable if any of its calls is.
//! - A group holds at most one transition per run: the append tells a
//!   transition that was written by its run row (written by this
//!   transaction, at the version after the one expected).

use super::chain::Append;
use super::is_connection_lost;
use super::pipeline::{Param, Pipeline, params};
use deadpool_postgres::Pool;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::oneshot;

/// Calls sent in one transaction at most (each gets a run row lock; a
/// bound keeps one group from holding the chain head for long).
const MAX_GROUP: usize = 32;

/// One transition (migration 0006): a call that writes it (`fleet_write`,
/// or `fleet_create` for a new run with its first transition), and its
/// `fleet_append` arguments.
pub(super) struct Call {
    pub run_id: String,
    /// The version the write expects (the run row ends one past it).
    pub expected_version: i64,
    pub durable: bool,
    pub function: &'static str,
    /// The function's arguments; p_durable, at `durable_at`, is set for
    /// the whole group.
    pub args: Vec<Param>,
    pub durable_at: usize,
    pub append: Append,
}

/// `SELECT function($1, …, $n)`.
pub(super) fn call_sql(function: &str, n: usize) -> String {
    let placeholders: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
    format!("SELECT {function}({})", placeholders.join(", "))
}

pub(super) enum Outcome {
    /// What `fleet_commit` returned, committed with its group.
    Returned(i64),
    /// Nothing was sent: send the call alone (nothing else was in flight,
    /// or it was the only call of its group). Calls made while it is in
    /// flight group behind it until the [`InFlight`] is dropped.
    Alone(Box<Call>, Option<InFlight>),
    /// The group failed as a whole and was rolled back: nothing of it was
    /// written. Commit the transition the other way, which reports its
    /// own error, if any, to this caller only.
    Retry,
    /// The database could not be reached; the group may or may not have
    /// committed, as for any commit whose connection drops.
    Failed(String),
}

#[derive(Default)]
pub(super) struct Group {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<(Call, oneshot::Sender<Outcome>)>,
    /// A commit is in flight (alone or a group); what waits is sent after it.
    busy: bool,
}

/// A call sent alone is in flight; dropped (however its caller ends), what
/// queued meanwhile is sent.
pub(super) struct InFlight {
    group: Arc<Group>,
    pool: Pool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.group.clone().next(&self.pool);
    }
}

impl Group {
    /// Commits `call` with what else is waiting, or says to send it alone.
    pub async fn commit(self: &Arc<Self>, pool: &Pool, call: Call) -> Outcome {
        let (reply, answer) = oneshot::channel();
        {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if !q.busy {
                q.busy = true;
                let in_flight = InFlight {
                    group: self.clone(),
                    pool: pool.clone(),
                };
                return Outcome::Alone(Box::new(call), Some(in_flight));
            }
            q.waiting.push((call, reply));
        }
        answer.await.unwrap_or_else(|_| {
            Outcome::Failed("the group commit was abandoned (the runtime is shutting down)".into())
        })
    }

    /// The commit in flight ended: send what waits, from a task of its own
    /// (so no caller that gives up can leave the others waiting), or go idle.
    fn next(self: Arc<Self>, pool: &Pool) {
        let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if q.waiting.is_empty() {
            q.busy = false;
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                drop(q);
                let pool = pool.clone();
                handle.spawn(async move { self.send_waiting(pool).await });
            }
            // No runtime left to send them: their callers are gone with it.
            Err(_) => {
                q.waiting.clear();
                q.busy = false;
            }
        }
    }

    async fn send_waiting(self: Arc<Self>, pool: Pool) {
        let batch: Vec<_> = {
            let mut q = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            // At most one transition per run (`fleet_append_group` tells
            // a written one by its run row); the rest wait their turn.
            let mut runs = std::collections::HashSet::new();
            let mut batch = Vec::new();
            let mut later = Vec::new();
            for (call, reply) in q.waiting.drain(..) {
                if batch.len() < MAX_GROUP && runs.insert(call.run_id.clone()) {
                    batch.push((call, reply));
                } else {
                    later.push((call, reply));
                }
            }
            q.waiting = later;
            batch
        };
        let (calls, replies): (Vec<Call>, Vec<_>) = batch.into_iter().unzip();
        let outcomes = send(&pool, calls).await;
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            let _ = reply.send(outcome);
        }
        self.next(&pool);
    }
}

/// Sends `calls` in one transaction; one outcome per call, in order.
async fn send(pool: &Pool, mut calls: Vec<Call>) -> Vec<Outcome> {
    if calls.len() == 1 {
        return calls
            .into_iter()
            .map(|call| Outcome::Alone(Box::new(call), None))
            .collect();
    }
    let failed = |n: usize, why: String| (0..n).map(|_| Outcome::Failed(why.clone())).collect();
    let client = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            return failed(
                calls.len(),
                format!("cannot connect for a group commit: {e}"),
            );
        }
    };
    let durable = calls.iter().any(|c| c.durable);
    let mut runs: Vec<String> = calls.iter().map(|c| c.run_id.clone()).collect();
    runs.sort();
    runs.dedup();
    let mut p = Pipeline::new(&client);
    p.command(
        if durable {
            "BEGIN"
        } else {
            "BEGIN; SET LOCAL synchronous_commit = off"
        },
        "starting a group commit",
    );
    let mut slots = Vec::with_capacity(calls.len());
    let locked = async {
        p.query(
            "SELECT id FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE",
            params![runs.clone()],
            "locking the runs of a group commit",
        )
        .await?;
        p.query(
            "SELECT run_id FROM step_queue WHERE run_id = ANY($1) ORDER BY run_id, step FOR UPDATE",
            params![runs],
            "locking the queued steps of a group commit",
        )
        .await
    }
    .await;
    if let Err(e) = locked {
        // Preparing failed; nothing was sent.
        return failed(calls.len(), e.to_string());
    }
    let mut appends = Appends::default();
    for call in &mut calls {
        let mut args = std::mem::take(&mut call.args);
        args[call.durable_at] = Box::new(durable);
        let sql = call_sql(call.function, args.len());
        match p.query(&sql, args, "committing a transition").await {
            Ok(slot) => slots.push(slot),
            Err(e) => return failed(calls.len(), e.to_string()),
        }
        appends.push(call);
    }
    // Last, so the chain head is locked only for the appends and COMMIT.
    if let Err(e) = p
        .exec(
            &call_sql("fleet_append_group", 13),
            appends.params(),
            "appending a group's audit events",
        )
        .await
    {
        return failed(calls.len(), e.to_string());
    }
    p.command("COMMIT", "committing a group");
    let answers = p.send().await;
    match answers.first_error() {
        None => {}
        Some((_, e)) if is_connection_lost(e) => {
            return failed(calls.len(), format!("a group commit: {e}"));
        }
        // COMMIT after an error answers ROLLBACK: nothing was written.
        Some(_) => return calls.iter().map(|_| Outcome::Retry).collect(),
    }
    slots
        .into_iter()
        .map(|slot| match answers.rows(slot) {
            Ok(rows) => match rows.first().map(|r| r.try_get::<_, i64>(0)) {
                Some(Ok(code)) => Outcome::Returned(code),
                _ => Outcome::Failed("fleet_commit answered no code".into()),
            },
            Err(e) => Outcome::Failed(e.to_string()),
        })
        .collect()
}

/// The arguments of `fleet_append_group`: every call's `fleet_append`
/// arguments as arrays, events concatenated.
#[derive(Default)]
struct Appends {
    run_ids: Vec<String>,
    versions: Vec<i64>,
    ats: Vec<String>,
    counts: Vec<i32>,
    kinds: Vec<String>,
    payloads: Vec<String>,
    status_froms: Vec<Option<String>>,
    status_tos: Vec<Option<String>>,
    genflows: Vec<Option<String>>,
    steps: Vec<Option<String>>,
    totals: Vec<i64>,
    notify_runs: Vec<Option<String>>,
    notify_works: Vec<bool>,
}

impl Appends {
    fn push(&mut self, call: &mut Call) {
        let a = &mut call.append;
        self.run_ids.push(call.run_id.clone());
        self.versions.push(call.expected_version);
        self.ats.push(std::mem::take(&mut a.at));
        self.counts
            .push(i32::try_from(a.kinds.len()).unwrap_or(i32::MAX));
        self.kinds.append(&mut a.kinds);
        self.payloads.append(&mut a.payloads);
        self.status_froms.push(a.status_from.take());
        self.status_tos.push(a.status_to.take());
        self.genflows.push(a.genflow.take());
        self.steps.push(a.step.take());
        let totals = a.totals.take().unwrap_or_default();
        self.totals
            .extend((0..7).map(|i| totals.get(i).copied().unwrap_or(0)));
        self.notify_runs.push(a.notify_run.take());
        self.notify_works.push(a.notify_work);
    }

    fn params(self) -> Vec<Param> {
        params![
            self.run_ids,
            self.versions,
            self.ats,
            self.counts,
            self.kinds,
            self.payloads,
            self.status_froms,
            self.status_tos,
            self.genflows,
            self.steps,
            self.totals,
            self.notify_runs,
            self.notify_works,
        ]
    }
}
