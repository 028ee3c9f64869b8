//! The audit chain on PostgreSQL: appending under the `chain_head` lock
//! (with the `/metrics` aggregates), reading, verifying; and `stats()`.

use super::cached::Cached;
use super::notices;
use super::pipeline::{Param, Pipeline, params};
use super::{PostgresStore, pg, to_u64};
use crate::audit::{self, Pending};
use crate::{AuditEvent, AuditReport, StepRun, StepStats, StoreError, StoreStats};
use deadpool_postgres::{GenericClient, Transaction};
use fleet_core::run::RunStatus;

/// One attempt's contribution to its step's totals. Computed the same way
/// for the record written and the one it replaces, so replacing subtracts
/// exactly what was added.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Contribution {
    pub attempts: i64,
    pub finished: i64,
    pub duration_us: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nusd: i64,
    pub cached: i64,
}

impl Contribution {
    pub fn of(r: &StepRun) -> Contribution {
        let started = r.started_at.as_microsecond();
        Contribution {
            attempts: 1,
            finished: i64::from(r.finished_at.is_some()),
            duration_us: r
                .finished_at
                .map_or(0, |f| (f.as_microsecond() - started).max(0)),
            input_tokens: i64::try_from(r.input_tokens).unwrap_or(i64::MAX),
            output_tokens: i64::try_from(r.output_tokens).unwrap_or(i64::MAX),
            // Saturating float-to-int conversion; cost is never negative.
            cost_nusd: (r.cost_usd.unwrap_or(0.0).max(0.0) * 1e9).round() as i64,
            cached: i64::from(r.cached),
        }
    }

    /// `self - old`: what replacing `old` by `self` changes.
    pub fn minus(self, old: Contribution) -> Contribution {
        Contribution {
            attempts: self.attempts - old.attempts,
            finished: self.finished - old.finished,
            duration_us: self.duration_us - old.duration_us,
            input_tokens: self.input_tokens - old.input_tokens,
            output_tokens: self.output_tokens - old.output_tokens,
            cost_nusd: self.cost_nusd - old.cost_nusd,
            cached: self.cached - old.cached,
        }
    }
}

/// How a transaction changes the aggregates `stats()` reads.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// A run left status `.0` (None: it is new) for `.1`.
    pub run_status: Option<(Option<String>, String)>,
    /// (genflow, step, change) of a step-run record written.
    pub step: Option<(String, String, Contribution)>,
}

/// Appends `events` to the chain and applies `tally` in `tx`: call it last,
/// after every other write of the transaction (see [`queue_append`]).
pub(super) async fn append(
    tx: &Transaction<'_>,
    run_id: Option<&str>,
    events: &[Pending],
    tally: &Tally,
) -> Result<(), StoreError> {
    let mut p = Pipeline::new(tx);
    queue_append(&mut p, run_id, events, tally, Announce::Nothing).await?;
    p.send().await.check()
}

/// What a commit tells subscribers (delivered when it commits).
#[derive(Debug, Clone, Copy)]
pub(super) enum Announce<'a> {
    Nothing,
    /// `fleet_run` with the run id, and `fleet_work` if `work` (a step
    /// may have become claimable; one notice too many is harmless).
    Run {
        id: &'a str,
        /// The run's status after the commit, named in the notice.
        status: RunStatus,
        work: bool,
    },
}

/// Queues on `p` the call of `fleet_append` (migration 0002): the append
/// of `events`, the aggregates of `tally` and the notices of `announce`.
/// It locks the `chain_head` row until the transaction ends, serializing
/// every writer of the database: queue it after every other write of the
/// transaction, and the COMMIT in the same pipeline, so the lock is never
/// held across a round trip.
pub(super) async fn queue_append<C: GenericClient + Sync>(
    p: &mut Pipeline<'_, C>,
    run_id: Option<&str>,
    events: &[Pending],
    tally: &Tally,
    announce: Announce<'_>,
) -> Result<(), StoreError> {
    let Some(append) = append_args(run_id, events, tally, announce)? else {
        return Ok(());
    };
    p.exec(
        "SELECT fleet_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        append.params(),
        "appending audit events",
    )
    .await?;
    Ok(())
}

/// The eleven arguments of `fleet_append` (also the last of
/// `fleet_commit`'s), typed: a group commit sends several as arrays.
pub(super) struct Append {
    pub run_id: Option<String>,
    pub at: String,
    pub kinds: Vec<String>,
    pub payloads: Vec<String>,
    pub status_from: Option<String>,
    pub status_to: Option<String>,
    pub genflow: Option<String>,
    pub step: Option<String>,
    /// attempts, finished, duration_us, input/output tokens, cost, cached.
    pub totals: Option<Vec<i64>>,
    pub notify_run: Option<String>,
    pub notify_work: bool,
}

impl Append {
    pub fn params(self) -> Vec<Param> {
        params![
            self.run_id,
            self.at,
            self.kinds,
            self.payloads,
            self.status_from,
            self.status_to,
            self.genflow,
            self.step,
            self.totals,
            self.notify_run,
            self.notify_work,
        ]
    }
}

/// What `fleet_append` is called with; None when there is nothing to
/// append or tally.
pub(super) fn append_args(
    run_id: Option<&str>,
    events: &[Pending],
    tally: &Tally,
    announce: Announce<'_>,
) -> Result<Option<Append>, StoreError> {
    let aggregates = tally.run_status.is_some() || tally.step.is_some();
    if events.is_empty() && !aggregates && matches!(announce, Announce::Nothing) {
        return Ok(None);
    }
    // One transaction, one time: its events happen together.
    let at = audit::format_time(audit::now());
    let mut kinds = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        kinds.push(e.kind.clone());
        payloads.push(audit::canonical_payload(i as i64 + 1, &e.payload)?);
    }
    let (status_from, status_to) = match &tally.run_status {
        Some((from, to)) => (from.clone(), Some(to.clone())),
        None => (None, None),
    };
    let (genflow, step, totals) = match &tally.step {
        Some((genflow, step, c)) => (
            Some(genflow.clone()),
            Some(step.clone()),
            Some(vec![
                c.attempts,
                c.finished,
                c.duration_us,
                c.input_tokens,
                c.output_tokens,
                c.cost_nusd,
                c.cached,
            ]),
        ),
        None => (None, None, None),
    };
    let (notify_run, notify_work) = match announce {
        Announce::Nothing => (None, false),
        Announce::Run { id, status, work } => (Some(notices::run_payload(id, status)), work),
    };
    Ok(Some(Append {
        run_id: run_id.map(str::to_owned),
        at,
        kinds,
        payloads,
        status_from,
        status_to,
        genflow,
        step,
        totals,
        notify_run,
        notify_work,
    }))
}

pub(super) async fn events(
    store: &PostgresStore,
    run_id: Option<&str>,
) -> Result<Vec<AuditEvent>, StoreError> {
    let client = store.client().await?;
    let rows = match run_id {
        Some(id) => client
            .rows(
                "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events WHERE run_id = $1 ORDER BY seq",
                &[&id],
            )
            .await,
        None => client
            .rows(
                "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events ORDER BY seq",
                &[],
            )
            .await,
    }
    .map_err(pg("reading audit events"))?;
    rows.iter().map(event_from_row).collect()
}

/// An event from `seq, run_id, at, kind, payload_json, prev_hash, hash`.
fn event_from_row(r: &tokio_postgres::Row) -> Result<AuditEvent, StoreError> {
    let seq: i64 = r.get(0);
    let payload: String = r.get(4);
    Ok(AuditEvent {
        seq,
        run_id: r.get(1),
        at: audit::parse_time(r.get(2))?,
        kind: r.get(3),
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("event {seq} payload: {e}")))?,
        prev_hash: r.get(5),
        hash: r.get(6),
    })
}

/// `Store::events_of_kind`: newest first by the primary key, so the
/// latest checkpoint costs the events since it, not the whole log.
pub(super) async fn events_of_kind(
    store: &PostgresStore,
    kind: &str,
    newest: Option<u32>,
) -> Result<Vec<AuditEvent>, StoreError> {
    let client = store.client().await?;
    let limit: Option<i64> = newest.map(i64::from);
    let rows = client
        .rows(&events_of_kind_sql(kind), &[&kind, &limit])
        .await
        .map_err(pg("reading audit events by kind"))?;
    let mut events = rows
        .iter()
        .map(event_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    events.reverse();
    Ok(events)
}

/// `events_of_kind`'s query, by the kind's own index where it has one.
pub(super) fn events_of_kind_sql(kind: &str) -> String {
    format!(
        "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events
         WHERE {} kind = $1 ORDER BY seq DESC LIMIT $2",
        crate::audit::indexed_kind(kind)
    )
}

/// `Store::append_events`: events of no run, in a transaction of their
/// own, appended by `fleet_append` under the `chain_head` lock like a
/// commit's; the head is read under that lock, so it is this append's.
pub(super) async fn append_alone(
    store: &PostgresStore,
    events: Vec<crate::NewEvent>,
) -> Result<Option<(i64, String)>, StoreError> {
    let pending: Vec<Pending> = events
        .into_iter()
        .map(|e| Pending {
            kind: e.kind,
            payload: e.payload,
        })
        .collect();
    let mut client = store.client().await?;
    let tx = client
        .transaction()
        .await
        .map_err(pg("appending audit events"))?;
    append(&tx, None, &pending, &Tally::default()).await?;
    let row = tx
        .query_one("SELECT seq, hash FROM chain_head WHERE id = 1", &[])
        .await
        .map_err(pg("reading the chain head"))?;
    tx.commit().await.map_err(pg("appending audit events"))?;
    let seq: i64 = row.get(0);
    Ok((seq > 0).then(|| (seq, row.get(1))))
}

fn problem(report: &mut AuditReport, text: String) {
    report.first_problem.get_or_insert(text);
}

/// Events and artifacts are read a page at a time, so verifying a long
/// history never holds it all in memory.
const PAGE: i64 = 5000;

pub(super) async fn verify(store: &PostgresStore) -> Result<AuditReport, StoreError> {
    let client = store.client().await?;
    let mut report = AuditReport::default();
    let mut prev = audit::GENESIS_HASH.to_string();
    let mut expected_seq = 1;
    let mut after = 0i64;
    loop {
        let rows = client
            .rows(
                "SELECT seq, run_id, at, kind, payload_json, prev_hash, hash FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &PAGE],
            )
            .await
            .map_err(pg("verifying the audit log"))?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            report.events_checked += 1;
            let seq: i64 = row.get(0);
            after = seq;
            let kind: String = row.get(3);
            let name = format!("event {seq} ({kind})");
            if seq != expected_seq {
                problem(
                    &mut report,
                    format!("{name}: expected event {expected_seq} here; events are missing"),
                );
            }
            expected_seq = seq + 1;
            let prev_hash: String = row.get(5);
            let hash: String = row.get(6);
            if prev_hash != prev {
                problem(
                    &mut report,
                    format!("{name}: does not link to the event before it"),
                );
            }
            let text: String = row.get(4);
            let run_id: Option<String> = row.get(1);
            let at: String = row.get(2);
            if let Some(why) = audit::stored_event_problem(
                seq,
                run_id.as_deref(),
                &at,
                &kind,
                &text,
                &prev_hash,
                &hash,
            ) {
                problem(&mut report, format!("{name}: {why}"));
            }
            prev = hash;
        }
    }
    let head = client
        .row("SELECT seq, hash FROM chain_head WHERE id = 1", &[])
        .await
        .map_err(pg("reading the chain head"))?;
    let (head_seq, head_hash): (i64, String) = (head.get(0), head.get(1));
    if head_seq != expected_seq - 1 || head_hash != prev {
        problem(
            &mut report,
            format!(
                "the chain head (event {head_seq}) does not match the last event ({})",
                expected_seq - 1
            ),
        );
    }
    let mut after = String::new();
    loop {
        let rows = client
            .rows(
                "SELECT sha256, bytes, size FROM artifacts WHERE sha256 > $1 ORDER BY sha256 LIMIT $2",
                &[&after, &PAGE],
            )
            .await
            .map_err(pg("verifying artifacts"))?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            report.artifacts_checked += 1;
            let sha: String = row.get(0);
            let bytes: &[u8] = row.get(1);
            let size: i64 = row.get(2);
            if audit::sha256_hex(bytes) != sha || i64::try_from(bytes.len()).ok() != Some(size) {
                let used = client
                    .row_opt(
                        "SELECT run_id, path, revision FROM artifact_revisions WHERE sha256 = $1 ORDER BY created_at, run_id LIMIT 1",
                        &[&sha],
                    )
                    .await
                    .map_err(pg("verifying artifacts"))?;
                let place = used
                    .map(|u| {
                        format!(
                            " (run {}, {} rev {})",
                            u.get::<_, String>(0),
                            u.get::<_, String>(1),
                            u.get::<_, i64>(2)
                        )
                    })
                    .unwrap_or_default();
                problem(
                    &mut report,
                    format!("artifact {sha}{place}: content does not match its sha256"),
                );
            }
            after = sha;
        }
    }
    Ok(report)
}

pub(super) async fn stats(store: &PostgresStore) -> Result<StoreStats, StoreError> {
    let client = store.client().await?;
    let runs_by_status = client
        .rows(
            "SELECT status, runs FROM run_counts WHERE runs > 0 ORDER BY status",
            &[],
        )
        .await
        .map_err(pg("reading statistics"))?
        .iter()
        .map(|r| Ok((r.get::<_, String>(0), to_u64(r.get(1), "run count")?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    let steps = client
        .rows(
            "SELECT genflow, step, attempts, finished, duration_us, input_tokens, output_tokens, cost_nusd, cached
             FROM step_totals ORDER BY genflow, step",
            &[],
        )
        .await
        .map_err(pg("reading statistics"))?
        .iter()
        .map(|r| {
            Ok(StepStats {
                genflow: r.get(0),
                step: r.get(1),
                attempts: to_u64(r.get(2), "attempts")?,
                finished: to_u64(r.get(3), "finished")?,
                seconds: r.get::<_, i64>(4) as f64 / 1e6,
                input_tokens: to_u64(r.get(5), "input tokens")?,
                output_tokens: to_u64(r.get(6), "output tokens")?,
                cost_usd: r.get::<_, i64>(7) as f64 / 1e9,
                cached: to_u64(r.get(8), "cached")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(StoreStats {
        runs_by_status,
        steps,
    })
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::events_of_kind_sql;
    use crate::Migrate;
    use crate::testing::ScratchDb;

    /// The key list and the latest checkpoint are read through their
    /// partial indexes, not by scanning the log (`fleet approve` reads the
    /// key list in every process).
    #[tokio::test]
    async fn events_of_an_indexed_kind_are_read_by_their_index() {
        let scratch = ScratchDb::create();
        let _store = crate::PostgresStore::connect(scratch.url(), Migrate::Apply)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let (client, connection) = tokio_postgres::connect(scratch.url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        tokio::spawn(connection);
        // As on a log of many events, where a scan would be chosen only
        // if the index did not apply; and as a prepared statement is run
        // once PostgreSQL settles on its generic plan, which knows no
        // parameter's value.
        client
            .batch_execute("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let plan = |kind: &'static str| {
            let client = &client;
            async move {
                let name = kind.replace('.', "_");
                let explain = format!(
                    "PREPARE {name} (text, bigint) AS {}; EXPLAIN EXECUTE {name} ('{kind}', 1)",
                    events_of_kind_sql(kind)
                );
                let rows = client
                    .simple_query(&explain)
                    .await
                    .unwrap_or_else(|e| panic!("explain: {e}"));
                rows.iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        for (kind, index) in [
            ("audit.key", "events_audit_key"),
            ("audit.checkpoint", "events_audit_checkpoint"),
        ] {
            let plan = plan(kind).await;
            assert!(plan.contains(index), "{kind}:\n{plan}");
        }
        let plan = plan("step.status").await;
        assert!(!plan.contains("events_audit"), "{plan}");
    }
}
