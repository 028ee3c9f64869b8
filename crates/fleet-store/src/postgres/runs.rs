//! Runs on PostgreSQL: creating them and committing their transitions
//! (reading them: `run_reads.rs`).

use super::chain::{self, Announce, Contribution, Tally};
use super::group::{self, Call, Outcome};
use super::pipeline::{Answers, Param, Pipeline, Slot, Tx, params};
use super::writes::{self, Write};
use super::{PostgresStore, is_unique_violation, pg, to_i64, to_u32, to_u64};
use crate::audit::{self, Pending};
use crate::{
    ArtifactRef, LeaseChange, NewRun, RunRecord, StepRun, StoreError, Transition, check_shape,
};
use deadpool_postgres::Object;
use fleet_core::config::Genflow;
use fleet_core::run::RunState;
use jiff::Timestamp;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::Row;

pub(super) const RUN_COLUMNS: &str =
    "id, genflow_name, definition_hash, state_json, version, triggered_by, created_at, updated_at";

fn json<T: serde::Serialize>(what: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid(format!("{what}: {e}")))
}

pub(super) fn from_json<T: serde::de::DeserializeOwned>(
    text: &str,
    what: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// A run as of one version, as this store read or committed it, and the
/// newest revision of each artifact path it knows the run has (a path it
/// does not list is guessed to have none). See [`commit_fast`].
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub record: RunRecord,
    pub revisions: HashMap<String, u32>,
}

impl Known {
    pub(super) fn read(record: &RunRecord) -> Known {
        Known {
            record: record.clone(),
            revisions: HashMap::new(),
        }
    }

    fn committed(
        record: &RunRecord,
        before: &HashMap<String, u32>,
        written: &[ArtifactRef],
    ) -> Known {
        let mut revisions = before.clone();
        for r in written {
            let newest = revisions.entry(r.path.clone()).or_insert(0);
            *newest = (*newest).max(r.revision);
        }
        Known {
            record: record.clone(),
            revisions,
        }
    }
}

pub(super) async fn run_from_row(
    store: &PostgresStore,
    client: &impl deadpool_postgres::GenericClient,
    row: &Row,
) -> Result<RunRecord, StoreError> {
    let id: String = row.get(0);
    let hash: String = row.get(2);
    let definition = store.definition(client, &id, &hash).await?;
    let state: RunState = from_json(row.get(3), &format!("run {id} state"))?;
    Ok(RunRecord {
        genflow_name: row.get(1),
        definition,
        definition_hash: hash,
        state,
        version: row.get(4),
        triggered_by: row.get(5),
        created_at: audit::parse_time(row.get(6))?,
        updated_at: audit::parse_time(row.get(7))?,
        id,
    })
}

/// Creates `run`, and commits `first` in the same transaction if given:
/// one round trip (a new run has no earlier rows to read).
pub(super) async fn create(
    store: &PostgresStore,
    run: NewRun,
    first: Option<Transition>,
) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
    check_shape(&run.genflow, &run.state)?;
    if let Some(first) = &first
        && (first.run_id != run.id || first.expected_version != 1)
    {
        return Err(StoreError::Invalid(format!(
            "the first transition of run {} must be for that run at version 1",
            run.id
        )));
    }
    let mut in_flight = None;
    if let Some(f) = &first {
        match create_grouped(store, &run, f).await? {
            Grouped::Committed(done) => return Ok(*done),
            // Sent alone the pipeline way; commits made meanwhile group
            // behind it until `in_flight` is dropped.
            Grouped::Alone(marker) => in_flight = marker,
            Grouped::Other => {}
        }
    }
    let durable = first.as_ref().is_some_and(|f| f.durable);
    let tx = Tx::new(store.client().await?, durable);
    let result = create_in(store, &tx, run, first).await;
    if result.is_err() {
        tx.rollback().await;
    }
    drop(in_flight);
    result
}

enum Grouped {
    Committed(Box<(RunRecord, Vec<ArtifactRef>)>),
    /// Nothing was sent: create it alone.
    Alone(Option<group::InFlight>),
    /// Nothing was written: create it the pipeline way, which gives any
    /// error its own words.
    Other,
}

/// Creates `run` with its first transition as one call (`fleet_create`,
/// migration 0006) of a group commit, when other commits are in flight.
async fn create_grouped(
    store: &PostgresStore,
    run: &NewRun,
    first: &Transition,
) -> Result<Grouped, StoreError> {
    let definition_hash = run.genflow.definition_hash();
    let now = audit::now();
    let mut queue = Vec::new();
    let work = queue_sync(&mut queue, &run.genflow, None, &run.state, &[], now)?;
    let mut initial_queue = Vec::new();
    for w in queue {
        match w {
            Write::QueueInsert(step) => initial_queue.push(step),
            // A new run's queue only gains rows.
            _ => return Ok(Grouped::Other),
        }
    }
    let record = RunRecord {
        id: run.id.clone(),
        genflow_name: run.genflow.name.clone(),
        definition: store.remember_definition(&definition_hash, run.genflow.clone()),
        definition_hash: definition_hash.clone(),
        state: run.state.clone(),
        version: 1,
        triggered_by: run.triggered_by.clone(),
        created_at: now,
        updated_at: now,
    };
    let prior = Prior::new_run(first);
    let Ok(mut applied) = plan(&record, first.clone(), now, &prior) else {
        return Ok(Grouped::Other);
    };
    if !writes::fits_commit_call(&applied.writes) {
        return Ok(Grouped::Other);
    }
    let tally = Tally {
        run_status: applied.tally.run_status.take().map(|(_, to)| (None, to)),
        step: applied.tally.step.take(),
    };
    let mut events = vec![audit::run_created(
        &run.id,
        &run.genflow,
        &definition_hash,
        &run.state,
    )];
    events.append(&mut applied.events);
    let announce = Announce::Run {
        id: &run.id,
        status: applied.record.state.status,
        work: work || applied.work,
    };
    let Some(append) = chain::append_args(Some(&run.id), &events, &tally, announce)? else {
        return Ok(Grouped::Other);
    };
    let mut args = params![
        definition_hash,
        run.genflow.canonical_json(),
        run.genflow.name.clone(),
        run.triggered_by.clone(),
        json("run state", &run.state)?,
        run.state.status.as_str().to_owned(),
        initial_queue,
    ];
    let durable_at = args.len() + 2;
    args.extend(write_call(
        first,
        &HashMap::new(),
        now,
        std::mem::take(&mut applied.writes),
    ));
    let call = Call {
        run_id: run.id.clone(),
        expected_version: 1,
        durable: first.durable,
        function: "fleet_create",
        durable_at,
        args,
        append,
    };
    match store.group.commit(&store.pool, call).await {
        Outcome::Returned(0) => {
            store.remember_run(Known::committed(
                &applied.record,
                &HashMap::new(),
                &applied.written,
            ));
            Ok(Grouped::Committed(Box::new((
                applied.record,
                applied.written,
            ))))
        }
        Outcome::Alone(_, in_flight) => Ok(Grouped::Alone(in_flight)),
        // `fleet_create` raises rather than return a refusal.
        Outcome::Returned(_) | Outcome::Retry => Ok(Grouped::Other),
        Outcome::Failed(why) => Err(StoreError::Unavailable(why)),
    }
}

/// `fleet_write`'s arguments (migration 0006) for transition `t` with
/// `writes` planned at `now`: the guard's (the run's version, the newest
/// revision `guessed` for each artifact path, the deliveries' keys), then
/// the rows.
fn write_call(
    t: &Transition,
    guessed: &HashMap<String, u32>,
    now: Timestamp,
    writes: Vec<Write>,
) -> Vec<Param> {
    let (paths, revisions): (Vec<String>, Vec<i64>) = guessed
        .iter()
        .map(|(p, r)| (p.clone(), i64::from(*r)))
        .unzip();
    let d_steps: Vec<String> = t.outbox.iter().map(|d| d.step.clone()).collect();
    let d_rounds: Vec<i64> = t.outbox.iter().map(|d| i64::from(d.round)).collect();
    let d_purposes: Vec<String> = t.outbox.iter().map(|d| d.purpose.as_key()).collect();
    let d_channels: Vec<String> = t.outbox.iter().map(|d| d.channel.clone()).collect();
    let d_recipients: Vec<String> = t.outbox.iter().map(|d| d.recipient.clone()).collect();
    let mut args = params![
        t.run_id.clone(),
        t.expected_version,
        t.durable,
        paths,
        revisions,
        d_steps,
        d_rounds,
        d_purposes,
        d_channels,
        d_recipients,
    ];
    // The step run's key (the guard's guess is about it) is in here.
    args.extend(writes::commit_call(&audit::format_time(now), writes));
    args
}

async fn create_in(
    store: &PostgresStore,
    tx: &Tx,
    run: NewRun,
    first: Option<Transition>,
) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
    let definition_json = run.genflow.canonical_json();
    let definition_hash = run.genflow.definition_hash();
    let now = audit::now();
    let now_text = audit::format_time(now);
    let state_json = json("run state", &run.state)?;
    let mut p = tx.pipeline();
    p.exec(
        "INSERT INTO definitions (hash, json) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
        params![definition_hash.clone(), definition_json],
        "storing a run's definition",
    )
    .await?;
    let inserted = p
        .exec(
            "INSERT INTO runs (id, genflow_name, definition_hash, state_json, status, version, triggered_by, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $7)",
            params![
                run.id.clone(),
                run.genflow.name.clone(),
                definition_hash.clone(),
                state_json,
                run.state.status.as_str(),
                run.triggered_by.clone(),
                now_text.clone(),
            ],
            "creating a run",
        )
        .await?;
    let mut queue = Vec::new();
    let mut work = queue_sync(&mut queue, &run.genflow, None, &run.state, &[], now)?;
    writes::queue(&mut p, &run.id, &now_text, queue).await?;
    let created = audit::run_created(&run.id, &run.genflow, &definition_hash, &run.state);
    let definition = store.remember_definition(&definition_hash, run.genflow);
    let record = RunRecord {
        id: run.id.clone(),
        genflow_name: definition.name.clone(),
        definition,
        definition_hash,
        state: run.state,
        version: 1,
        triggered_by: run.triggered_by,
        created_at: now,
        updated_at: now,
    };
    let mut tally = Tally {
        run_status: Some((None, record.state.status.as_str().to_owned())),
        step: None,
    };
    let mut events = vec![created];
    // The run row is written by this transaction, so the first transition
    // applies to it directly.
    let (record, written) = match first {
        Some(first) => {
            let prior = Prior::new_run(&first);
            let applied = plan(&record, first, now, &prior)?;
            writes::queue(&mut p, &applied.record.id, &now_text, applied.writes).await?;
            work |= applied.work;
            events.extend(applied.events);
            tally.run_status = applied.tally.run_status.map(|(_, to)| (None, to));
            tally.step = applied.tally.step;
            (applied.record, applied.written)
        }
        None => (record, Vec::new()),
    };
    let announce = Announce::Run {
        id: &record.id,
        status: record.state.status,
        work,
    };
    chain::queue_append(&mut p, Some(&record.id), &events, &tally, announce).await?;
    let answers = tx.commit_with(p).await;
    if let Some((slot, e)) = answers.first_error()
        && answers.is(slot, inserted)
        && is_unique_violation(e)
    {
        return Err(StoreError::AlreadyExists(record.id));
    }
    answers.check()?;
    store.remember_run(Known::committed(&record, &HashMap::new(), &written));
    Ok((record, written))
}

/// What applying a transition to a locked run writes.
struct Applied {
    record: RunRecord,
    written: Vec<ArtifactRef>,
    events: Vec<Pending>,
    tally: Tally,
    work: bool,
    /// The rows to write, in order.
    writes: Vec<Write>,
}

/// Commits transition `t` in two round trips: BEGIN, the run row's lock
/// and the earlier rows the transition replaces; then every write, the
/// audit append and COMMIT (so the chain head is locked only while the
/// server executes the end of that second pipeline).
pub(super) async fn commit(
    store: &PostgresStore,
    t: Transition,
) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
    if let Some(known) = store.known_at(&t.run_id, t.expected_version)
        && let Some(done) = commit_fast(store, &known, &t).await?
    {
        return Ok(done);
    }
    let tx = Tx::new(store.client().await?, t.durable);
    let result = commit_in(store, &tx, t).await;
    if result.is_err() {
        tx.rollback().await;
    }
    result
}

async fn commit_in(
    store: &PostgresStore,
    tx: &Tx,
    t: Transition,
) -> Result<(RunRecord, Vec<ArtifactRef>), StoreError> {
    // Locked until COMMIT: a second committer from the same version waits,
    // then sees the new version; and no other transaction writes this
    // run's artifacts, step runs or deliveries meanwhile, so what is read
    // here stays true until then.
    let mut p = tx.pipeline();
    let locked = p
        .query(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1 FOR UPDATE"),
            params![t.run_id.clone()],
            "committing a transition",
        )
        .await?;
    let reads = Prior::queue_reads(&mut p, &t).await?;
    let answers = p.send().await;
    answers.check()?;
    let row = answers
        .rows(locked)?
        .first()
        .ok_or_else(|| StoreError::NotFound(format!("run {}", t.run_id)))?;
    let version: i64 = row.get(4);
    if version != t.expected_version {
        return Err(StoreError::Conflict { run_id: t.run_id });
    }
    let current = run_from_row(store, tx.client(), row).await?;
    let prior = reads.read(&answers, &t)?;
    let now = audit::now();
    let mut p = tx.pipeline();
    let (decision, run_id) = (t.decision.clone(), t.run_id.clone());
    let mut applied = plan(&current, t, now, &prior)?;
    let decision_slot = writes::queue(
        &mut p,
        &applied.record.id,
        &audit::format_time(now),
        std::mem::take(&mut applied.writes),
    )
    .await?;
    let announce = Announce::Run {
        id: &applied.record.id,
        status: applied.record.state.status,
        work: applied.work,
    };
    chain::queue_append(
        &mut p,
        Some(&applied.record.id),
        &applied.events,
        &applied.tally,
        announce,
    )
    .await?;
    let answers = tx.commit_with(p).await;
    if let (Some(slot), Some(d)) = (decision_slot, decision)
        && let Some((failed, e)) = answers.first_error()
        && answers.is(failed, slot)
        && is_unique_violation(e)
    {
        return Err(StoreError::DuplicateDecision {
            run_id,
            step: d.step,
            approver: d.approver,
        });
    }
    answers.check()?;
    store.remember_run(Known::committed(
        &applied.record,
        &prior.revisions,
        &applied.written,
    ));
    Ok((applied.record, applied.written))
}

/// What `fleet_commit` (migration 0006) returns for a transition it
/// refuses, having written nothing.
const REFUSED_NO_RUN: i64 = -1;
const REFUSED_MOVED: i64 = -2;
const REFUSED_GUESSED_WRONG: i64 = -3;

/// Commits `t` in one statement, `fleet_commit` (migrations 0003, 0006),
/// when this store knows the run at the version `t` expects (`known`):
/// the writes are computed from `known` and from guesses of what they
/// replace (the newest revisions `known` lists, else none; no step-run
/// record for the step's attempt; no live delivery row), and the function
/// first locks the run row and checks the version and every guess, raising
/// otherwise, so the statement's transaction writes nothing. `None`: a
/// guess was wrong (or the transition is one the two-round-trip path
/// should refuse with its own error); nothing was written, commit it that
/// way.
async fn commit_fast(
    store: &PostgresStore,
    known: &Known,
    t: &Transition,
) -> Result<Option<(RunRecord, Vec<ArtifactRef>)>, StoreError> {
    let mut guessed: HashMap<String, u32> = HashMap::new();
    for a in &t.artifacts {
        guessed.insert(
            a.path.clone(),
            known.revisions.get(&a.path).copied().unwrap_or(0),
        );
    }
    let prior = Prior {
        revisions: guessed.clone(),
        old_step_run: None,
        requeued: vec![true; t.outbox.len()],
    };

    let now = audit::now();
    let Ok(mut applied) = plan(&known.record, t.clone(), now, &prior) else {
        // Nothing was sent: the two-round-trip path gives the error.
        return Ok(None);
    };
    if !writes::fits_commit_call(&applied.writes) {
        return Ok(None);
    }
    let announce = Announce::Run {
        id: &applied.record.id,
        status: applied.record.state.status,
        work: applied.work,
    };
    let Some(append) = chain::append_args(
        Some(&applied.record.id),
        &applied.events,
        &applied.tally,
        announce,
    )?
    else {
        return Ok(None);
    };
    let args = write_call(t, &guessed, now, std::mem::take(&mut applied.writes));
    let call = Call {
        run_id: t.run_id.clone(),
        expected_version: t.expected_version,
        durable: t.durable,
        function: "fleet_write",
        durable_at: 2,
        args,
        append,
    };
    let code = match store.group.commit(&store.pool, call).await {
        Outcome::Returned(code) => code,
        Outcome::Alone(call, in_flight) => {
            let sent = commit_alone(store, *call, t).await;
            drop(in_flight);
            match sent? {
                Some(code) => code,
                None => return Ok(None),
            }
        }
        Outcome::Retry => return Ok(None),
        Outcome::Failed(why) => return Err(StoreError::Unavailable(why)),
    };
    match code {
        REFUSED_NO_RUN => return Err(StoreError::NotFound(format!("run {}", t.run_id))),
        REFUSED_MOVED => {
            return Err(StoreError::Conflict {
                run_id: t.run_id.clone(),
            });
        }
        REFUSED_GUESSED_WRONG => return Ok(None),
        _ => {}
    }
    let mut before = known.revisions.clone();
    before.extend(prior.revisions);
    store.remember_run(Known::committed(&applied.record, &before, &applied.written));
    Ok(Some((applied.record, applied.written)))
}

/// Sends one `fleet_commit` call in its own (implicit) transaction: what
/// it returned, or `None` when the transition should go the other way.
async fn commit_alone(
    store: &PostgresStore,
    call: Call,
    t: &Transition,
) -> Result<Option<i64>, StoreError> {
    let mut args = call.args;
    // Its run id is the first argument already.
    args.extend(call.append.params().into_iter().skip(1));
    let sql = group::call_sql("fleet_commit", args.len());
    let client = store.client().await?;
    let mut p = Pipeline::new(&client);
    let slot = p.query(&sql, args, "committing a transition").await?;
    let answers = p.send().await;
    if let Some((_, e)) = answers.first_error()
        && let Some(d) = &t.decision
        && is_unique_violation(e)
        && e.as_db_error().and_then(|db| db.table()) == Some("decisions")
    {
        return Err(StoreError::DuplicateDecision {
            run_id: t.run_id.clone(),
            step: d.step.clone(),
            approver: d.approver.clone(),
        });
    }
    let code: i64 = answers
        .rows(slot)?
        .first()
        .ok_or_else(|| StoreError::Database("fleet_commit answered no row".into()))?
        .try_get(0)
        .map_err(pg("reading fleet_commit's answer"))?;
    Ok(Some(code))
}

/// What a transition replaces: read under the run row's lock before its
/// writes, so the writes, their audit events and the totals are computed
/// here and sent in one pipeline.
#[derive(Default)]
struct Prior {
    /// The newest revision of each artifact path the transition writes.
    revisions: HashMap<String, u32>,
    /// What the step-run record the transition replaces contributed.
    old_step_run: Option<Contribution>,
    /// Per delivery of `t.outbox`: whether writing it queues it (it is new,
    /// or gave up before).
    requeued: Vec<bool>,
}

/// Where [`Prior`]'s reads will be answered.
struct PriorReads {
    revisions: Option<Slot>,
    old_step_run: Option<Slot>,
    deliveries: Vec<Slot>,
}

impl Prior {
    /// Nothing of a run that is being created exists yet.
    fn new_run(t: &Transition) -> Prior {
        Prior {
            requeued: vec![true; t.outbox.len()],
            ..Prior::default()
        }
    }

    async fn queue_reads(
        p: &mut Pipeline<'_, Object>,
        t: &Transition,
    ) -> Result<PriorReads, StoreError> {
        let revisions = if t.artifacts.is_empty() {
            None
        } else {
            let paths: Vec<String> = t.artifacts.iter().map(|a| a.path.clone()).collect();
            Some(
                p.query(
                    "SELECT path, MAX(revision) FROM artifact_revisions
                     WHERE run_id = $1 AND path = ANY($2) GROUP BY path",
                    params![t.run_id.clone(), paths],
                    "reading artifact revisions",
                )
                .await?,
            )
        };
        let old_step_run = match &t.step_run {
            Some(r) => Some(
                p.query(
                    "SELECT started_at, finished_at, input_tokens, output_tokens, cost_usd, cached
                     FROM step_runs WHERE run_id = $1 AND step = $2 AND attempt = $3",
                    params![t.run_id.clone(), r.step.clone(), i64::from(r.attempt)],
                    "reading a step run",
                )
                .await?,
            ),
            None => None,
        };
        let mut deliveries = Vec::with_capacity(t.outbox.len());
        for d in &t.outbox {
            deliveries.push(super::outbox::queue_status(p, d).await?);
        }
        Ok(PriorReads {
            revisions,
            old_step_run,
            deliveries,
        })
    }
}

impl PriorReads {
    fn read(self, answers: &Answers, t: &Transition) -> Result<Prior, StoreError> {
        let mut prior = Prior::default();
        if let Some(slot) = self.revisions {
            for row in answers.rows(slot)? {
                let revision: i64 = row.get(1);
                prior
                    .revisions
                    .insert(row.get(0), to_u32(revision, "artifact revision")?);
            }
        }
        if let (Some(slot), Some(r)) = (self.old_step_run, &t.step_run) {
            prior.old_step_run = answers
                .rows(slot)?
                .first()
                .map(|row| old_contribution(r, row))
                .transpose()?;
        }
        for slot in self.deliveries {
            let status: Option<String> = answers.rows(slot)?.first().map(|row| row.get(0));
            prior
                .requeued
                .push(status.is_none_or(|s| super::outbox::requeues(&s)));
        }
        Ok(prior)
    }
}

/// The writes of transition `t` of `current` (locked by the caller, or
/// written earlier in the same transaction), given what they replace.
fn plan(
    current: &RunRecord,
    t: Transition,
    now: Timestamp,
    prior: &Prior,
) -> Result<Applied, StoreError> {
    let genflow: &Arc<Genflow> = &current.definition;
    check_shape(genflow, &t.state)?;
    let version = current.version + 1;
    let mut writes = vec![Write::Run {
        state_json: json("run state", &t.state)?,
        status: t.state.status.as_str().to_owned(),
        version,
    }];

    let mut events = Vec::new();
    let mut written = Vec::with_capacity(t.artifacts.len());
    let mut revisions = prior.revisions.clone();
    for a in &t.artifacts {
        let Some(step_index) = genflow.step_index(&a.step) else {
            return Err(StoreError::Invalid(format!(
                "artifact for unknown step `{}` of run {}",
                a.step, t.run_id
            )));
        };
        let revision = revisions.entry(a.path.clone()).or_insert(0);
        *revision += 1;
        let r = ArtifactRef {
            run_id: t.run_id.clone(),
            step: a.step.clone(),
            path: a.path.clone(),
            revision: *revision,
            sha256: audit::sha256_hex(&a.bytes),
            size: a.bytes.len() as u64,
            created_at: now,
        };
        writes.push(Write::Artifact {
            step: r.step.clone(),
            step_index: to_i64(step_index as u64),
            path: r.path.clone(),
            revision: i64::from(r.revision),
            sha256: r.sha256.clone(),
            bytes: a.bytes.clone(),
            size: to_i64(r.size),
        });
        events.push(audit::artifact_stored(&r));
        written.push(r);
    }

    if !t.blobs.is_empty() {
        // One statement for all of them; a content already stored is left as is.
        let shas: Vec<String> = t.blobs.iter().map(|b| b.sha256().to_owned()).collect();
        let bytes: Vec<Vec<u8>> = t.blobs.iter().map(|b| b.bytes().to_vec()).collect();
        let sizes: Vec<i64> = t
            .blobs
            .iter()
            .map(|b| to_i64(b.bytes().len() as u64))
            .collect();
        writes.push(Write::Blobs { shas, bytes, sizes });
    }

    let mut tally = Tally {
        run_status: Some((
            Some(current.state.status.as_str().to_owned()),
            t.state.status.as_str().to_owned(),
        )),
        step: None,
    };
    if let Some(r) = &t.step_run {
        if genflow.step_index(&r.step).is_none() {
            return Err(StoreError::Invalid(format!(
                "step run for unknown step `{}` of run {}",
                r.step, t.run_id
            )));
        }
        let change = Contribution::of(r).minus(prior.old_step_run.unwrap_or_default());
        tally.step = Some((current.genflow_name.clone(), r.step.clone(), change));
        writes.push(Write::StepRun {
            step: r.step.clone(),
            attempt: i64::from(r.attempt),
            model: r.model.clone(),
            prompt: r.prompt.clone(),
            settings_json: json("step run settings", &r.settings)?,
            manifest_json: r
                .manifest
                .as_ref()
                .map(|m| json("step run manifest", m))
                .transpose()?,
            input_tokens: to_i64(r.input_tokens),
            output_tokens: to_i64(r.output_tokens),
            cost_usd: r.cost_usd,
            cached: r.cached,
            started_at: audit::format_time(r.started_at),
            finished_at: r.finished_at.map(audit::format_time),
            error: r.error.clone(),
        });
        events.push(audit::step_run_recorded(r));
    }

    if let Some(d) = &t.decision {
        let record = crate::decision_record(
            genflow,
            &t,
            d,
            &current.genflow_name,
            &current.definition_hash,
            now,
        )?;
        writes.push(Write::Decision {
            step: record.step.clone(),
            gate_round: i64::from(record.gate_round),
            approver: record.approver.clone(),
            approver_key: record.approver.trim().to_lowercase(),
            verdict: record.verdict.as_str().to_owned(),
            reason: record.reason.clone(),
            channel: record.channel.clone(),
            genflow_name: record.genflow_name.clone(),
            definition_hash: record.definition_hash.clone(),
            shown_json: json("decision shown", &record.shown)?,
            is_final: record.is_final,
        });
        events.push(audit::decision_recorded(&record)?);
    }

    for (i, d) in t.outbox.iter().enumerate() {
        if d.run_id != t.run_id || genflow.step_index(&d.step).is_none() {
            return Err(StoreError::Invalid(format!(
                "delivery for step `{}` of run {} does not belong to run {}",
                d.step, d.run_id, t.run_id
            )));
        }
        writes.push(super::outbox::delivery_write(d)?);
        if prior.requeued.get(i).copied().unwrap_or(true) {
            events.push(super::outbox::queued_event(d));
        }
    }

    // Lock order, queue row before lease row, as every claimer takes
    // them (see `work.rs`): the other order deadlocks against a claim.
    for change in &t.leases {
        let step = match change {
            LeaseChange::Take { step, .. } | LeaseChange::Release { step, .. } => step,
        };
        if genflow.step_index(step).is_none() {
            return Err(StoreError::Invalid(format!(
                "lease for unknown step `{step}` of run {}",
                t.run_id
            )));
        }
    }
    let work = queue_sync(
        &mut writes,
        genflow,
        Some(&current.state),
        &t.state,
        &t.leases,
        now,
    )?;
    for change in &t.leases {
        writes.push(match change {
            LeaseChange::Take { step, owner, ttl } => Write::LeaseTake {
                step: step.clone(),
                owner: owner.clone(),
                expires_at: audit::format_time(super::work::lease_expiry(now, *ttl)?),
            },
            LeaseChange::Release { step, owner } => Write::LeaseRelease {
                step: step.clone(),
                owner: owner.clone(),
            },
        });
    }

    events.extend(audit::state_changes(genflow, &current.state, &t.state));
    events.extend(t.events.iter().map(|e| Pending {
        kind: e.kind.clone(),
        payload: e.payload.clone(),
    }));
    let record = RunRecord {
        id: t.run_id,
        genflow_name: current.genflow_name.clone(),
        definition: current.definition.clone(),
        definition_hash: current.definition_hash.clone(),
        state: t.state,
        version,
        triggered_by: current.triggered_by.clone(),
        created_at: current.created_at,
        updated_at: now,
    };
    Ok(Applied {
        record,
        written,
        events,
        tally,
        work,
        writes,
    })
}

/// What the step-run record `r` replaces contributed to its step's totals.
fn old_contribution(r: &StepRun, row: &Row) -> Result<Contribution, StoreError> {
    let finished: Option<String> = row.get(1);
    Ok(Contribution::of(&StepRun {
        step: r.step.clone(),
        attempt: r.attempt,
        model: None,
        prompt: None,
        settings: serde_json::Value::Null,
        manifest: None,
        input_tokens: to_u64(row.get(2), "input tokens")?,
        output_tokens: to_u64(row.get(3), "output tokens")?,
        cost_usd: row.get(4),
        cached: row.get(5),
        started_at: audit::parse_time(row.get(0))?,
        finished_at: finished.as_deref().map(audit::parse_time).transpose()?,
        error: None,
    }))
}

/// Adds what brings the run's rows of the step queue from `before` to
/// `after` (see `sqlite/queue.rs`); true when a step may have become
/// claimable (a notice too many is harmless: notices are hints).
fn queue_sync(
    writes: &mut Vec<Write>,
    genflow: &Genflow,
    before: Option<&RunState>,
    after: &RunState,
    leases: &[LeaseChange],
    now: Timestamp,
) -> Result<bool, StoreError> {
    let old = before
        .map(|b| crate::runnable(genflow, b))
        .unwrap_or_default();
    let new = crate::runnable(genflow, after);
    let mut work = false;
    for step in old.iter().filter(|s| !new.contains(s)) {
        writes.push(Write::QueueDelete(step.to_string()));
    }
    for step in new.iter().filter(|s| !old.contains(s)) {
        work |= !crate::takes_lease(leases, step);
        writes.push(Write::QueueInsert(step.to_string()));
    }
    for change in leases {
        match change {
            LeaseChange::Take { step, ttl, .. } => {
                let until = audit::format_time(super::work::lease_expiry(now, *ttl)?);
                writes.push(Write::QueueTake {
                    step: step.clone(),
                    until,
                });
            }
            // A step that leaves the queue (its result) has no row to re-time.
            LeaseChange::Release { step, .. } if new.contains(&step.as_str()) => {
                work = true;
                writes.push(Write::QueueRelease(step.clone()));
            }
            LeaseChange::Release { .. } => {}
        }
    }
    Ok(work)
}
