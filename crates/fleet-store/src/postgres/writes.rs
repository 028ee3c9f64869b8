//! The rows a transition writes, computed once (`runs::plan`) and sent one
//! of two ways: as the statements of a pipeline inside an explicit
//! transaction ([`queue`], the two-round-trip path and run creation), or
//! as the arguments of one `fleet_commit` call ([`commit_call`], migration
//! 0006), which writes the same rows in the same order.

use super::pipeline::{Param, Pipeline, Slot, params};
use crate::StoreError;
use deadpool_postgres::Object;

/// One row written (all of one run).
#[derive(Debug, Clone)]
pub(super) enum Write {
    Run {
        state_json: String,
        status: String,
        version: i64,
    },
    /// Kept corpus files: content only, no revision row (`Transition::blobs`).
    Blobs {
        shas: Vec<String>,
        bytes: Vec<Vec<u8>>,
        sizes: Vec<i64>,
    },
    Artifact {
        step: String,
        step_index: i64,
        path: String,
        revision: i64,
        sha256: String,
        bytes: Vec<u8>,
        size: i64,
    },
    StepRun {
        step: String,
        attempt: i64,
        model: Option<String>,
        prompt: Option<String>,
        settings_json: String,
        manifest_json: Option<String>,
        input_tokens: i64,
        output_tokens: i64,
        cost_usd: Option<f64>,
        cached: bool,
        started_at: String,
        finished_at: Option<String>,
        error: Option<String>,
    },
    Decision {
        step: String,
        gate_round: i64,
        approver: String,
        approver_key: String,
        verdict: String,
        reason: Option<String>,
        channel: String,
        genflow_name: String,
        definition_hash: String,
        shown_json: String,
        is_final: bool,
    },
    Delivery {
        step: String,
        round: i64,
        purpose: String,
        channel: String,
        recipient: String,
        label: String,
        payload_json: String,
    },
    QueueDelete(String),
    QueueInsert(String),
    /// The step's row is claimable no earlier than `until` (a lease taken).
    QueueTake {
        step: String,
        until: String,
    },
    /// The step's row is claimable now (a lease released).
    QueueRelease(String),
    LeaseTake {
        step: String,
        owner: String,
        expires_at: String,
    },
    LeaseRelease {
        step: String,
        owner: String,
    },
}

/// Queues `writes` of run `run_id` on `p` as statements, in order; returns
/// the decision's slot (its unique violation means "already decided").
pub(super) async fn queue(
    p: &mut Pipeline<'_, Object>,
    run_id: &str,
    now: &str,
    writes: Vec<Write>,
) -> Result<Option<Slot>, StoreError> {
    let mut decision = None;
    let id = || run_id.to_owned();
    let now = || now.to_owned();
    for w in writes {
        match w {
            Write::Run {
                state_json,
                status,
                version,
            } => {
                p.exec(
                    "UPDATE runs SET state_json = $1, status = $2, version = $3, updated_at = $4 WHERE id = $5",
                    params![state_json, status, version, now(), id()],
                    "updating a run",
                )
                .await?;
            }
            Write::Artifact {
                step,
                step_index,
                path,
                revision,
                sha256,
                bytes,
                size,
            } => {
                // The content first (an FK of the revision), in the same statement.
                p.exec(
                    "WITH content AS (
                       INSERT INTO artifacts (sha256, bytes, size) VALUES ($6, $8, $9) ON CONFLICT (sha256) DO NOTHING)
                     INSERT INTO artifact_revisions (run_id, step, step_index, path, revision, sha256, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    params![id(), step, step_index, path, revision, sha256, now(), bytes, size],
                    "storing an artifact",
                )
                .await?;
            }
            Write::Blobs { shas, bytes, sizes } => {
                // One statement for all of them; a content already stored is left as is.
                p.exec(
                    "INSERT INTO artifacts (sha256, bytes, size)
                     SELECT * FROM unnest($1::TEXT[], $2::BYTEA[], $3::BIGINT[])
                     ON CONFLICT (sha256) DO NOTHING",
                    params![shas, bytes, sizes],
                    "storing kept corpus files",
                )
                .await?;
            }
            Write::StepRun {
                step,
                attempt,
                model,
                prompt,
                settings_json,
                manifest_json,
                input_tokens,
                output_tokens,
                cost_usd,
                cached,
                started_at,
                finished_at,
                error,
            } => {
                p.exec(
                    "INSERT INTO step_runs (run_id, step, attempt, model, prompt, settings_json, manifest_json, input_tokens, output_tokens, cost_usd, cached, started_at, finished_at, error)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                     ON CONFLICT (run_id, step, attempt) DO UPDATE SET
                       model = excluded.model, prompt = excluded.prompt, settings_json = excluded.settings_json,
                       manifest_json = excluded.manifest_json, input_tokens = excluded.input_tokens,
                       output_tokens = excluded.output_tokens, cost_usd = excluded.cost_usd, cached = excluded.cached,
                       started_at = excluded.started_at, finished_at = excluded.finished_at, error = excluded.error",
                    params![
                        id(),
                        step,
                        attempt,
                        model,
                        prompt,
                        settings_json,
                        manifest_json,
                        input_tokens,
                        output_tokens,
                        cost_usd,
                        cached,
                        started_at,
                        finished_at,
                        error,
                    ],
                    "recording a step run",
                )
                .await?;
            }
            Write::Decision {
                step,
                gate_round,
                approver,
                approver_key,
                verdict,
                reason,
                channel,
                genflow_name,
                definition_hash,
                shown_json,
                is_final,
            } => {
                decision = Some(
                    p.exec(
                        "INSERT INTO decisions (run_id, step, gate_round, approver, approver_key, verdict, reason, channel, decided_at, genflow_name, definition_hash, shown_json, is_final)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                        params![
                            id(),
                            step,
                            gate_round,
                            approver,
                            approver_key,
                            verdict,
                            reason,
                            channel,
                            now(),
                            genflow_name,
                            definition_hash,
                            shown_json,
                            is_final,
                        ],
                        "recording a decision",
                    )
                    .await?,
                );
            }
            Write::Delivery {
                step,
                round,
                purpose,
                channel,
                recipient,
                label,
                payload_json,
            } => {
                p.exec(
                    "INSERT INTO outbox (run_id, step, round, purpose, channel, recipient, label, payload_json, status, attempts, next_attempt_at, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9)
                     ON CONFLICT (run_id, step, round, purpose, channel, recipient) DO UPDATE SET
                       status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
                       lease_owner = NULL, lease_expires_at = NULL, finished_at = NULL
                     WHERE outbox.status = 'failed'",
                    params![id(), step, round, purpose, channel, recipient, label, payload_json, now()],
                    "queueing a delivery",
                )
                .await?;
            }
            Write::QueueDelete(step) => {
                p.exec(
                    "DELETE FROM step_queue WHERE run_id = $1 AND step = $2",
                    params![id(), step],
                    "updating the step queue",
                )
                .await?;
            }
            Write::QueueInsert(step) => {
                p.exec(
                    "INSERT INTO step_queue (run_id, step, claimable_at) VALUES ($1, $2, $3)
                     ON CONFLICT (run_id, step) DO NOTHING",
                    params![id(), step, now()],
                    "updating the step queue",
                )
                .await?;
            }
            Write::QueueTake { step, until } => {
                // A row claimable now moves to the lease's end, any later
                // time earlier (see `sqlite/queue.rs`).
                p.exec(
                    "UPDATE step_queue SET claimable_at = $3
                     WHERE run_id = $1 AND step = $2 AND (claimable_at > $3 OR claimable_at <= $4)",
                    params![id(), step, until, now()],
                    "updating the step queue",
                )
                .await?;
            }
            Write::QueueRelease(step) => {
                p.exec(
                    "UPDATE step_queue SET claimable_at = $3 WHERE run_id = $1 AND step = $2",
                    params![id(), step, now()],
                    "updating the step queue",
                )
                .await?;
            }
            Write::LeaseTake {
                step,
                owner,
                expires_at,
            } => {
                p.exec(
                    "INSERT INTO leases (run_id, step, owner, expires_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (run_id, step) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at",
                    params![id(), step, owner, expires_at],
                    "taking a lease",
                )
                .await?;
            }
            Write::LeaseRelease { step, owner } => {
                p.exec(
                    "DELETE FROM leases WHERE run_id = $1 AND step = $2 AND owner = $3",
                    params![id(), step, owner],
                    "releasing a lease",
                )
                .await?;
            }
        }
    }
    Ok(decision)
}

/// Whether `fleet_commit` writes `writes` exactly as [`queue`] would: it
/// writes each kind of row together, which keeps the order that matters
/// (queue rows before leases) unless one step's lease changes twice in a
/// transition (the engine never does that; the pipeline serves it).
pub(super) fn fits_commit_call(writes: &[Write]) -> bool {
    let mut queue = std::collections::HashSet::new();
    let mut leases = std::collections::HashSet::new();
    let mut blobs = false;
    for w in writes {
        let fresh = match w {
            Write::QueueTake { step, .. } | Write::QueueRelease(step) => {
                queue.insert(step.as_str())
            }
            Write::LeaseTake { step, .. } | Write::LeaseRelease { step, .. } => {
                leases.insert(step.as_str())
            }
            // One array argument each (migration 0006).
            Write::Blobs { .. } => !std::mem::replace(&mut blobs, true),
            _ => true,
        };
        if !fresh {
            return false;
        }
    }
    true
}

/// The arguments of `fleet_commit` (migration 0006) after the guard's and
/// before the append's: the rows of `writes`, grouped by kind.
pub(super) fn commit_call(now: &str, writes: Vec<Write>) -> Vec<Param> {
    let (mut state_json, mut status) = (String::new(), String::new());
    let (
        mut a_steps,
        mut a_indexes,
        mut a_paths,
        mut a_revisions,
        mut a_shas,
        mut a_bytes,
        mut a_sizes,
    ) = (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut b_shas, mut b_bytes, mut b_sizes) = (
        Vec::<String>::new(),
        Vec::<Vec<u8>>::new(),
        Vec::<i64>::new(),
    );
    let mut step_run: Option<Write> = None;
    let mut decision: Option<Write> = None;
    let (mut o_labels, mut o_payloads) = (Vec::<String>::new(), Vec::<String>::new());
    let (mut q_delete, mut q_insert, mut q_take, mut q_until, mut q_release) = (
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
    );
    let (mut l_take, mut l_owners, mut l_expires, mut l_release, mut l_release_owners) = (
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
        Vec::<String>::new(),
    );
    for w in writes {
        match w {
            Write::Run {
                state_json: s,
                status: st,
                ..
            } => {
                state_json = s;
                status = st;
            }
            Write::Artifact {
                step,
                step_index,
                path,
                revision,
                sha256,
                bytes,
                size,
            } => {
                a_steps.push(step);
                a_indexes.push(step_index);
                a_paths.push(path);
                a_revisions.push(revision);
                a_shas.push(sha256);
                a_bytes.push(bytes);
                a_sizes.push(size);
            }
            Write::Blobs { shas, bytes, sizes } => {
                // `fits_commit_call` lets one such write through.
                b_shas.extend(shas);
                b_bytes.extend(bytes);
                b_sizes.extend(sizes);
            }
            w @ Write::StepRun { .. } => step_run = Some(w),
            w @ Write::Decision { .. } => decision = Some(w),
            // Keys are the guard's arguments (the deliveries of the
            // transition, in the same order).
            Write::Delivery {
                label,
                payload_json,
                ..
            } => {
                o_labels.push(label);
                o_payloads.push(payload_json);
            }
            Write::QueueDelete(s) => q_delete.push(s),
            Write::QueueInsert(s) => q_insert.push(s),
            Write::QueueTake { step, until } => {
                q_take.push(step);
                q_until.push(until);
            }
            Write::QueueRelease(s) => q_release.push(s),
            Write::LeaseTake {
                step,
                owner,
                expires_at,
            } => {
                l_take.push(step);
                l_owners.push(owner);
                l_expires.push(expires_at);
            }
            Write::LeaseRelease { step, owner } => {
                l_release.push(step);
                l_release_owners.push(owner);
            }
        }
    }
    let mut out: Vec<Param> = params![
        state_json,
        status,
        now.to_owned(),
        a_steps,
        a_indexes,
        a_paths,
        a_revisions,
        a_shas,
        a_bytes,
        a_sizes,
        b_shas,
        b_bytes,
        b_sizes
    ];
    match step_run {
        Some(Write::StepRun {
            step,
            attempt,
            model,
            prompt,
            settings_json,
            manifest_json,
            input_tokens,
            output_tokens,
            cost_usd,
            cached,
            started_at,
            finished_at,
            error,
        }) => out.extend(params![
            Some(step),
            Some(attempt),
            model,
            prompt,
            Some(settings_json),
            manifest_json,
            Some(input_tokens),
            Some(output_tokens),
            cost_usd,
            Some(cached),
            Some(started_at),
            finished_at,
            error,
        ]),
        _ => out.extend(params![
            None::<String>,
            None::<i64>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<i64>,
            None::<i64>,
            None::<f64>,
            None::<bool>,
            None::<String>,
            None::<String>,
            None::<String>,
        ]),
    }
    match decision {
        Some(Write::Decision {
            step,
            gate_round,
            approver,
            approver_key,
            verdict,
            reason,
            channel,
            genflow_name,
            definition_hash,
            shown_json,
            is_final,
        }) => out.extend(params![
            Some(step),
            Some(gate_round),
            Some(approver),
            Some(approver_key),
            Some(verdict),
            reason,
            Some(channel),
            Some(genflow_name),
            Some(definition_hash),
            Some(shown_json),
            Some(is_final),
        ]),
        _ => out.extend(params![
            None::<String>,
            None::<i64>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<String>,
            None::<bool>,
        ]),
    }
    out.extend(params![
        o_labels,
        o_payloads,
        q_delete,
        q_insert,
        q_take,
        q_until,
        q_release,
        l_take,
        l_owners,
        l_expires,
        l_release,
        l_release_owners,
    ]);
    out
}
