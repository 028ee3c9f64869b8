//! Recording a go/no-go decision, and the decision record (`decision.md`).

use crate::{Engine, EngineError, Extras, MAX_CAS_ATTEMPTS, attest, files};
use fleet_core::config::StepKind;
use fleet_core::run::{Event, Refusal, StepStatus, Verdict, advance};
use fleet_store::{ArtifactRef, DecisionRecord, NewArtifact, NewDecision, RunRecord};

/// A decision as a person made it.
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    /// Run id or unique prefix.
    pub run: String,
    /// The gate; may be omitted when exactly one gate is open.
    pub step: Option<String>,
    pub approver: String,
    pub verdict: Verdict,
    pub reason: Option<String>,
    /// `cli` or `web`.
    pub channel: String,
    /// The document revisions the approver's page showed, as (path, sha256).
    /// `None` (the CLI) means "the current revisions", which `fleet show` prints.
    pub shown: Option<Vec<(String, String)>>,
}

/// Which gate a decision is for.
fn gate_index(run: &RunRecord, step: Option<&str>) -> Result<usize, EngineError> {
    let usage = |message: String| EngineError::Usage {
        run: run.id.clone(),
        message,
    };
    let gates: Vec<usize> = run
        .definition
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind == StepKind::Approval)
        .map(|(i, _)| i)
        .collect();
    if let Some(name) = step {
        return run.definition.step_index(name).ok_or_else(|| {
            usage(format!(
                "no step `{name}` in genflow `{}` (gates: {})",
                run.genflow_name,
                gates
                    .iter()
                    .map(|&i| run.definition.steps[i].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        });
    }
    let waiting: Vec<usize> = gates
        .iter()
        .copied()
        .filter(|&i| run.state.steps[i].status == StepStatus::Waiting)
        .collect();
    match (waiting.as_slice(), gates.as_slice()) {
        ([one], _) => Ok(*one),
        ([], [only]) => Ok(*only), // let the state machine say why it cannot be decided
        ([], []) => Err(usage(format!(
            "genflow `{}` has no approval gate",
            run.genflow_name
        ))),
        ([], _) => Err(usage(format!(
            "no gate is open (run is {}); name one with --step",
            run.state.status
        ))),
        (many, _) => Err(usage(format!(
            "several gates are open ({}); name one with --step",
            many.iter()
                .map(|&i| run.definition.steps[i].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The documents an approver at `gate` is shown and a decision binds to.
pub use fleet_store::upstream_documents as shown_revisions;

pub(crate) async fn decide(
    engine: &Engine,
    req: DecisionRequest,
) -> Result<RunRecord, EngineError> {
    let first = engine.store.get_run(&req.run).await?;
    let gate = gate_index(&first, req.step.as_deref())?;
    let gate_name = first.definition.steps[gate].name.clone();
    let event = Event::Decision {
        step: gate,
        approver: req.approver.clone(),
        verdict: req.verdict,
        reason: req.reason.clone().filter(|r| !r.trim().is_empty()),
    };
    let decided_at = fleet_store::audit::now();

    // Each attempt binds the decision to the revisions current at the run's
    // version it started from; a newer revision always comes with a newer
    // version, so the compare-and-swap refuses a decision on a stale set and
    // the next attempt re-reads them.
    let mut current = first;
    for _ in 0..MAX_CAS_ATTEMPTS {
        let refs = engine.store.artifacts(&current.id).await?;
        let earlier = engine.store.decisions(&current.id).await?;
        let step_runs = engine.store.step_runs(&current.id).await?;
        // The newest event before this decision: what its attestation and
        // checkpoint vouch for (a later commit by another run only extends it).
        let head = engine.store.chain_head().await?;
        // The key is read after the head (see `Engine::evidence_key`).
        let (key, key_event) = engine.evidence_key().await?;
        let shown = shown_revisions(&current, gate, &refs);
        if let Some(page) = &req.shown {
            check_not_stale(page, &shown)?;
        }
        let (next, actions) = match advance(&current.definition, &current.state, &event) {
            Ok(ok) => ok,
            Err(refusal) => return Err(explain_refusal(&current, gate, refusal)),
        };
        let status = next.steps[gate].status;
        let is_final = matches!(status, StepStatus::Approved | StepStatus::Rejected);
        let mut extras = Extras {
            decision: Some(NewDecision {
                step: gate_name.clone(),
                approver: req.approver.clone(),
                verdict: req.verdict,
                reason: req.reason.clone(),
                channel: req.channel.clone(),
                shown: shown.clone(),
                is_final,
                decided_at,
            }),
            durable: true,
            ..Extras::default()
        };
        if let Some(decision) = &extras.decision {
            let round = next.steps[gate].attempt;
            let statement = attest::statement(&current, gate, round, decision, &step_runs, &head);
            extras.artifacts.push(NewArtifact {
                step: gate_name.clone(),
                path: attest::attestation_path(&current.definition.steps[gate].out_path()),
                bytes: attest::envelope(&key, &statement),
            });
            extras.events.extend(key_event.clone());
            extras.events.extend(attest::checkpoint_event(&key, &head));
        }
        if is_final {
            let this = DecisionRecord {
                run_id: current.id.clone(),
                step: gate_name.clone(),
                gate_round: next.steps[gate].attempt,
                approver: req.approver.clone(),
                verdict: req.verdict,
                reason: req.reason.clone(),
                channel: req.channel.clone(),
                decided_at,
                genflow_name: current.genflow_name.clone(),
                definition_hash: current.definition_hash.clone(),
                shown,
                is_final: true,
            };
            let votes: Vec<&DecisionRecord> = earlier
                .iter()
                .filter(|d| {
                    d.step == gate_name
                        && d.verdict == Verdict::Go
                        && d.gate_round == next.steps[gate].attempt
                })
                .chain(std::iter::once(&this))
                .collect();
            let text = render_decision(&current, gate, status, &votes, &this);
            extras.artifacts.push(NewArtifact {
                step: gate_name.clone(),
                path: current.definition.steps[gate].out_path(),
                bytes: text.into_bytes(),
            });
        }
        if let Some(applied) = engine
            .commit_once(&current, &event, next, actions, extras)
            .await?
        {
            if key_event.is_some() {
                engine.key_recorded(&key.verifier());
            }
            if let Some((size, _)) = &head {
                engine.checkpoint_written(*size, 0);
            }
            // The decision is committed: a readable copy that cannot be
            // written (a full disk) must not report it as failed. The store
            // is the truth, and the next drive rewrites the copies from it.
            if engine.settings.write_files
                && let Err(e) =
                    files::write_artifacts(&applied.run, &applied.files, &engine.settings.state_dir)
            {
                tracing::warn!(run = %applied.run.id, error = %e,
                    "decision recorded; writing its readable copy failed");
            }
            return Ok(applied.run);
        }
        current = engine.store.get_run(&current.id).await?;
    }
    Err(EngineError::Contended {
        run: current.id,
        attempts: MAX_CAS_ATTEMPTS,
    })
}

/// A run that finished because this very gate was decided should say
/// "already decided", which is what the person needs to hear.
fn explain_refusal(run: &RunRecord, gate: usize, refusal: Refusal) -> EngineError {
    let gate_status = run.state.steps[gate].status;
    EngineError::Refused(match refusal {
        Refusal::RunFinished { .. }
            if matches!(gate_status, StepStatus::Approved | StepStatus::Rejected) =>
        {
            Refusal::AlreadyDecided {
                step: run.definition.steps[gate].name.clone(),
                status: gate_status,
            }
        }
        other => other,
    })
}

fn check_not_stale(page: &[(String, String)], current: &[ArtifactRef]) -> Result<(), EngineError> {
    for (path, sha) in page {
        let now = current.iter().find(|r| &r.path == path);
        match now {
            Some(r) if &r.sha256 == sha => {}
            Some(r) => {
                return Err(EngineError::StaleRevision {
                    path: path.clone(),
                    shown: sha.clone(),
                    current: r.sha256.clone(),
                });
            }
            None => {
                return Err(EngineError::StaleRevision {
                    path: path.clone(),
                    shown: sha.clone(),
                    current: "(no such document)".into(),
                });
            }
        }
    }
    Ok(())
}

/// The decision record a person reads (the gate's `out`, e.g. decision.md).
pub fn render_decision(
    run: &RunRecord,
    gate: usize,
    status: StepStatus,
    go_votes: &[&DecisionRecord],
    decisive: &DecisionRecord,
) -> String {
    let step = &run.definition.steps[gate];
    let verdict = if status == StepStatus::Approved {
        "GO"
    } else {
        "NO-GO"
    };
    let mut t = format!("# Decision: {verdict}\n\n");
    if let Some(q) = &step.question {
        t.push_str(&format!("> {q}\n\n"));
    }
    t.push_str("| field | value |\n|---|---|\n");
    t.push_str(&format!("| verdict | **{verdict}** |\n"));
    if status == StepStatus::Approved {
        for v in go_votes {
            t.push_str(&format!(
                "| approved by | {} (via {}, {} UTC) |\n",
                v.approver,
                v.channel,
                v.decided_at.strftime("%Y-%m-%d %H:%M:%S%.3f")
            ));
        }
    } else {
        t.push_str(&format!(
            "| rejected by | {} (via {}) |\n",
            decisive.approver, decisive.channel
        ));
    }
    t.push_str(&format!("| decided at | {} |\n", decisive.decided_at));
    t.push_str(&format!(
        "| reason | {} |\n",
        decisive
            .reason
            .as_deref()
            .unwrap_or("(none given)")
            .replace('|', "\\|")
            .replace('\n', " ")
    ));
    t.push_str(&format!(
        "| gate | {} (requires {} of {}) |\n",
        step.name,
        step.required,
        step.approvers.len().max(step.required as usize)
    ));
    t.push_str(&format!("| run | {} |\n", run.id));
    t.push_str(&format!("| genflow | {} |\n", run.genflow_name));
    t.push_str(&format!("| definition | {} |\n", run.definition_hash));
    // The values the run was started with, which the definition hash covers.
    for (name, value) in &run.definition.param_values {
        t.push_str(&format!(
            "| param `{name}` | {} |\n",
            value.replace('|', "\\|").replace('\n', " ")
        ));
    }
    t.push_str("\n## Documents the decision was made on\n\n");
    if decisive.shown.is_empty() {
        t.push_str("No upstream documents.\n");
    } else {
        t.push_str("| document | step | revision | sha256 |\n|---|---|---|---|\n");
        for r in &decisive.shown {
            t.push_str(&format!(
                "| {} | {} | {} | `{}` |\n",
                r.path, r.step, r.revision, r.sha256
            ));
        }
        t.push_str(&format!(
            "\nTo check a document is the one decided on: `sha256sum .fleet/runs/{}/<document>` must print the hash above.\n",
            run.id
        ));
    }
    t
}
