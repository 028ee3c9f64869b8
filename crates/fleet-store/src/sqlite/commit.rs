//! Writes on the writer thread: creating runs, committing transitions
//! (the version compare-and-swap, artifacts, step runs, decisions,
//! deliveries, leases, the step queue and the aggregates), and appending
//! their audit events to the chain.

use super::*;

/// Appends events to the chain; runs inside the write transaction, so the
/// last hash cannot change underneath.
pub(super) fn append_events(
    conn: &Connection,
    run_id: Option<&str>,
    events: &[Pending],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let last = conn
        .prepare_cached("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
        .optional()?;
    let (mut seq, mut prev) = last.unwrap_or_else(|| (0, audit::GENESIS_HASH.to_string()));
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (seq, run_id, at, kind, payload_json, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    // One transaction, one time: its events happen together.
    let at = audit::format_time(audit::now());
    for e in events {
        seq += 1;
        let payload = audit::canonical_payload(seq, &e.payload)?;
        let hash = audit::event_hash_canonical(seq, run_id, &at, &e.kind, &payload, &prev);
        insert.execute(params![seq, run_id, at, e.kind, payload, prev, hash])?;
        prev = hash;
    }
    Ok(())
}

/// A committed run, before its definition is copied into a [`RunRecord`]
/// (done by the caller, off the writer thread).
pub(super) struct Committed {
    pub(super) id: String,
    pub(super) genflow_name: String,
    pub(super) definition: Arc<Genflow>,
    pub(super) definition_hash: String,
    pub(super) state: RunState,
    pub(super) version: i64,
    pub(super) triggered_by: Option<String>,
    pub(super) created_at: Timestamp,
    pub(super) updated_at: Timestamp,
    /// The commit made a step claimable (workers should look).
    pub(super) work: bool,
}

impl Committed {
    pub(super) fn into_record(self) -> RunRecord {
        RunRecord {
            id: self.id,
            genflow_name: self.genflow_name,
            definition: self.definition,
            definition_hash: self.definition_hash,
            state: self.state,
            version: self.version,
            triggered_by: self.triggered_by,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// `state_json` is `t.state` encoded (by the caller, off the writer thread).
pub(super) fn commit_in(
    conn: &Connection,
    defs: &Definitions,
    t: Transition,
    state_json: &str,
) -> Result<(Committed, Vec<ArtifactRef>), StoreError> {
    // Only what the commit needs, the version first: a loser of the
    // compare-and-swap decodes nothing.
    let current = conn
        .prepare_cached(
            "SELECT version, genflow_name, definition_hash, state_json, triggered_by, created_at FROM runs WHERE id = ?1",
        )?
        .query_row([&t.run_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .optional()?;
    let Some((
        current_version,
        genflow_name,
        definition_hash,
        before_json,
        triggered_by,
        created_at,
    )) = current
    else {
        return Err(StoreError::NotFound(format!("run {}", t.run_id)));
    };
    if current_version != t.expected_version {
        return Err(StoreError::Conflict { run_id: t.run_id });
    }
    let genflow = defs.get(conn, &t.run_id, &definition_hash)?;
    check_shape(&genflow, &t.state)?;
    let before: RunState = from_json(&before_json, || format!("run {} state", t.run_id))?;
    let now = audit::now();
    let now_text = audit::format_time(now);
    let version = current_version + 1;
    conn.prepare_cached(
        "UPDATE runs SET state_json = ?1, status = ?2, version = ?3, updated_at = ?4 WHERE id = ?5",
    )?
    .execute(params![
        state_json,
        t.state.status.as_str(),
        version,
        now_text,
        t.run_id
    ])?;

    let mut events = Vec::new();
    let mut written = Vec::with_capacity(t.artifacts.len());
    for a in &t.artifacts {
        let Some(step_index) = genflow.step_index(&a.step) else {
            return Err(StoreError::Invalid(format!(
                "artifact for unknown step `{}` of run {}",
                a.step, t.run_id
            )));
        };
        let sha = audit::sha256_hex(&a.bytes);
        let size = a.bytes.len() as u64;
        conn.prepare_cached(
            "INSERT INTO artifacts (sha256, bytes, size) VALUES (?1, ?2, ?3) ON CONFLICT (sha256) DO NOTHING",
        )?
        .execute(params![sha, a.bytes, to_i64(size)])?;
        let revision: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(MAX(revision), 0) + 1 FROM artifact_revisions WHERE run_id = ?1 AND path = ?2",
            )?
            .query_row(params![t.run_id, a.path], |r| r.get(0))?;
        conn.prepare_cached(
            "INSERT INTO artifact_revisions (run_id, step, step_index, path, revision, sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            t.run_id,
            a.step,
            to_i64(step_index as u64),
            a.path,
            revision,
            sha,
            now_text
        ])?;
        let r = ArtifactRef {
            run_id: t.run_id.clone(),
            step: a.step.clone(),
            path: a.path.clone(),
            revision: to_u32(revision, "artifact revision")?,
            sha256: sha,
            size,
            created_at: now,
        };
        events.push(audit::artifact_stored(&r));
        written.push(r);
    }

    for b in &t.blobs {
        conn.prepare_cached(
            "INSERT INTO artifacts (sha256, bytes, size) VALUES (?1, ?2, ?3) ON CONFLICT (sha256) DO NOTHING",
        )?
        .execute(params![b.sha256(), b.bytes(), to_i64(b.bytes().len() as u64)])?;
    }

    if let Some(r) = &t.step_run {
        if genflow.step_index(&r.step).is_none() {
            return Err(StoreError::Invalid(format!(
                "step run for unknown step `{}` of run {}",
                r.step, t.run_id
            )));
        }
        conn.prepare_cached(
            "INSERT INTO step_runs (run_id, step, attempt, model, prompt, settings_json, manifest_json, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (run_id, step, attempt) DO UPDATE SET
               model = excluded.model, prompt = excluded.prompt, settings_json = excluded.settings_json,
               manifest_json = excluded.manifest_json, input_tokens = excluded.input_tokens,
               output_tokens = excluded.output_tokens, cost_usd = excluded.cost_usd, cached = excluded.cached,
               started_at = excluded.started_at, finished_at = excluded.finished_at, error = excluded.error",
        )?
        .execute(params![
            t.run_id,
            r.step,
            i64::from(r.attempt),
            r.model,
            r.prompt,
            to_json("step run settings", &r.settings)?,
            r.manifest
                .as_ref()
                .map(|m| to_json("step run manifest", m))
                .transpose()?,
            to_i64(r.input_tokens),
            to_i64(r.output_tokens),
            r.cost_usd,
            r.cached,
            audit::format_time(r.started_at),
            r.finished_at.map(audit::format_time),
            r.error
        ])?;
        events.push(audit::step_run_recorded(r));
    }

    if let Some(d) = &t.decision {
        let record = crate::decision_record(&genflow, &t, d, &genflow_name, &definition_hash, now)?;
        let inserted = conn
            .prepare_cached(
                "INSERT INTO decisions (run_id, step, gate_round, approver, approver_key, verdict, reason, channel, decided_at, genflow_name, definition_hash, shown_json, is_final)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                record.run_id,
                record.step,
                i64::from(record.gate_round),
                record.approver,
                record.approver.trim().to_lowercase(),
                record.verdict.as_str(),
                record.reason,
                record.channel,
                now_text,
                record.genflow_name,
                record.definition_hash,
                to_json("decision shown", &record.shown)?,
                record.is_final
            ]);
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::DuplicateDecision {
                    run_id: record.run_id,
                    step: record.step,
                    approver: record.approver,
                });
            }
            Err(e) => return Err(e.into()),
        }
        events.push(audit::decision_recorded(&record)?);
    }

    for d in &t.outbox {
        if d.run_id != t.run_id || genflow.step_index(&d.step).is_none() {
            return Err(StoreError::Invalid(format!(
                "delivery for step `{}` of run {} does not belong to run {}",
                d.step, d.run_id, t.run_id
            )));
        }
        if let Some(e) = enqueue_in(conn, d, &now_text)? {
            events.push(e);
        }
    }

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
        match change {
            LeaseChange::Take { step, owner, ttl } => {
                let expires = audit::format_time(lease_expiry(now, *ttl)?);
                conn.prepare_cached(
                    "INSERT INTO leases (run_id, step, owner, expires_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
                )?
                .execute(params![t.run_id, step, owner, expires])?;
            }
            LeaseChange::Release { step, owner } => {
                // The queue row is brought up to date below.
                conn.prepare_cached(
                    "DELETE FROM leases WHERE run_id = ?1 AND step = ?2 AND owner = ?3",
                )?
                .execute(params![t.run_id, step, owner])?;
            }
        }
    }

    let work = queue::sync(
        conn,
        &genflow,
        &t.run_id,
        Some(&before),
        &t.state,
        &t.leases,
        now,
    )?;
    events.extend(audit::state_changes(&genflow, &before, &t.state));
    events.extend(t.events.iter().map(|e| Pending {
        kind: e.kind.clone(),
        payload: e.payload.clone(),
    }));
    append_events(conn, Some(&t.run_id), &events)?;

    let record = Committed {
        id: t.run_id,
        genflow_name,
        definition: genflow,
        definition_hash,
        state: t.state,
        version,
        triggered_by,
        created_at: time(&created_at)?,
        updated_at: now,
        work,
    };
    Ok((record, written))
}

/// Gives the lease back; true when we held it and the step is queued
/// (claimable again at once).
pub(super) fn release_in(
    conn: &Connection,
    run_id: &str,
    step: &str,
    owner: &str,
) -> Result<bool, StoreError> {
    let released = conn
        .prepare_cached("DELETE FROM leases WHERE run_id = ?1 AND step = ?2 AND owner = ?3")?
        .execute(params![run_id, step, owner])?;
    if released == 0 {
        return Ok(false);
    }
    queue::set_claimable(conn, run_id, step, &audit::format_time(audit::now()))
}

pub(super) fn create_in(
    conn: &Connection,
    run: &NewRun,
    definition_json: &str,
    definition_hash: &str,
) -> Result<Timestamp, StoreError> {
    let now = audit::now();
    let now_text = audit::format_time(now);
    conn.prepare_cached("INSERT OR IGNORE INTO definitions (hash, json) VALUES (?1, ?2)")?
        .execute(params![definition_hash, definition_json])?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO runs (id, genflow_name, definition_hash, state_json, status, version, triggered_by, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?7)",
        )?
        .execute(params![
            run.id,
            run.genflow.name,
            definition_hash,
            to_json("run state", &run.state)?,
            run.state.status.as_str(),
            run.triggered_by,
            now_text
        ]);
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists(run.id.clone())),
        Err(e) => return Err(e.into()),
    }
    queue::sync(conn, &run.genflow, &run.id, None, &run.state, &[], now)?;
    let event = audit::run_created(&run.id, &run.genflow, definition_hash, &run.state);
    append_events(conn, Some(&run.id), &[event])?;
    Ok(now)
}
