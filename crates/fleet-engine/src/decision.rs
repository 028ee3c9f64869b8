//! Recording a go/no-go decision, and the decision record (`decision.md`).

use crate::{Engine, EngineError, Extras, files};
use fleet_core::config::StepKind;
use fleet_core::run::{Event, Refusal, RunState, StepStatus, Verdict};
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
    let run = engine.store.get_run(&req.run).await?;
    let gate = gate_index(&run, req.step.as_deref())?;
    let gate_name = run.definition.steps[gate].name.clone();
    let event = Event::Decision {
        step: gate,
        approver: req.approver.clone(),
        verdict: req.verdict,
        reason: req.reason.clone().filter(|r| !r.trim().is_empty()),
    };
    let store = engine.store.clone();
    let decided_at = fleet_store::audit::now();

    // Revisions are read outside the CAS loop, then re-checked inside it via
    // the version: a new revision of an upstream document is always a new
    // run version, so a decision can never bind to a stale set.
    let mut refs_version = -1;
    let mut refs: Vec<ArtifactRef> = Vec::new();
    let mut earlier: Vec<DecisionRecord> = Vec::new();
    let applied = loop {
        let current = store.get_run(&run.id).await?;
        if current.version != refs_version {
            refs = store.artifacts(&run.id).await?;
            earlier = store.decisions(&run.id).await?;
            refs_version = current.version;
        }
        let shown = shown_revisions(&current, gate, &refs);
        if let Some(page) = &req.shown {
            check_not_stale(page, &shown)?;
        }
        let result = engine
            .apply_with(
                &run.id,
                Some(&current),
                &event,
                |loaded: &RunRecord, next: &RunState| {
                    if loaded.version != refs_version {
                        // Changed since we read the revisions: go round again.
                        return Err(EngineError::Contended {
                            run: loaded.id.clone(),
                            attempts: 0,
                        });
                    }
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
                    if is_final {
                        let this = DecisionRecord {
                            run_id: loaded.id.clone(),
                            step: gate_name.clone(),
                            gate_round: next.steps[gate].attempt,
                            approver: req.approver.clone(),
                            verdict: req.verdict,
                            reason: req.reason.clone(),
                            channel: req.channel.clone(),
                            decided_at,
                            genflow_name: loaded.genflow_name.clone(),
                            definition_hash: loaded.definition_hash.clone(),
                            shown: shown.clone(),
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
                        let text = render_decision(loaded, gate, status, &votes, &this);
                        extras.artifacts.push(NewArtifact {
                            step: gate_name.clone(),
                            path: loaded.definition.steps[gate].out_path(),
                            bytes: text.into_bytes(),
                        });
                    }
                    Ok(extras)
                },
            )
            .await;
        match result {
            Err(EngineError::Contended { attempts: 0, .. }) => continue,
            // The run may have finished because this gate was decided; say
            // that, which is what the person needs to hear.
            Err(EngineError::Refused(Refusal::RunFinished { status: run_status })) => {
                let now = store.get_run(&run.id).await?;
                let gate_status = now.state.steps[gate].status;
                return Err(EngineError::Refused(match gate_status {
                    StepStatus::Approved | StepStatus::Rejected => Refusal::AlreadyDecided {
                        step: gate_name,
                        status: gate_status,
                    },
                    _ => Refusal::RunFinished { status: run_status },
                }));
            }
            other => break other?,
        }
    };
    if engine.settings.write_files {
        files::write_artifacts(&applied.run, &applied.files, &engine.settings.state_dir)?;
    }
    Ok(applied.run)
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
