//! What the tools return: runs, documents, flags and gates as JSON an agent
//! can read.

use fleet_core::config::{Config, StepKind, fan_out::step_groups};
use fleet_core::flags::{FlagSet, sidecar_path};
use fleet_core::run::StepStatus;
use fleet_engine::Engine;
use fleet_store::{ArtifactRef, RunRecord, StoreError, latest_revisions, upstream_documents};
use serde_json::{Value, json};

/// Why a view could not be built: the store failed, or the caller named
/// something the run does not have.
pub(crate) enum ViewError {
    Store(StoreError),
    Usage(String),
}

impl From<StoreError> for ViewError {
    fn from(e: StoreError) -> Self {
        ViewError::Store(e)
    }
}

pub(crate) fn genflows(config: &Config) -> Value {
    Value::Array(
        config
            .genflows
            .iter()
            .map(|g| {
                json!({
                    "name": g.name,
                    "description": g.description,
                    "params": g.params,
                    "schedule": g.schedule,
                    "steps": g.steps.iter().map(|s| json!({
                        "name": s.name,
                        "kind": s.kind,
                        "depends_on": s.depends_on,
                        "for_each": s.for_each,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

pub(crate) fn validation(path: &str, text: &str) -> Value {
    let checked = fleet_core::config::check_str(text);
    let lines = |errors: bool| -> Vec<String> {
        checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error() == errors)
            .map(|d| {
                let mut line = d.headline(path);
                if let Some(help) = &d.help {
                    line.push_str(&format!(" (help: {help})"));
                }
                line
            })
            .collect()
    };
    json!({
        "ok": checked.config.is_some(),
        "errors": lines(true),
        "warnings": lines(false),
    })
}

/// One line of a run listing.
pub(crate) fn run_line(run: &RunRecord) -> Value {
    json!({
        "run_id": run.id,
        "genflow": run.genflow_name,
        "status": run.state.status,
        "triggered_by": run.triggered_by,
        "params": run.definition.param_values,
        "created_at": run.created_at.to_string(),
        "waiting_gates": waiting_gates(run),
    })
}

fn waiting_gates(run: &RunRecord) -> Vec<&str> {
    run.definition
        .steps
        .iter()
        .zip(&run.state.steps)
        .filter(|(_, s)| s.status == StepStatus::Waiting)
        .map(|(d, _)| d.name.as_str())
        .collect()
}

/// A run in full: steps with their cost, documents, decisions.
pub(crate) async fn run(engine: &Engine, run: &RunRecord) -> Result<Value, StoreError> {
    let store = engine.store();
    let step_runs = store.step_runs(&run.id).await?;
    let refs = store.artifacts(&run.id).await?;
    let decisions = store.decisions(&run.id).await?;
    let steps: Vec<Value> = run
        .definition
        .steps
        .iter()
        .zip(&run.state.steps)
        .map(|(def, st)| {
            let attempts: Vec<_> = step_runs.iter().filter(|s| s.step == def.name).collect();
            let cost: Option<f64> = attempts
                .iter()
                .filter_map(|s| s.cost_usd)
                .reduce(|a, b| a + b);
            json!({
                "name": def.name,
                "kind": def.kind,
                "status": st.status,
                "attempt": st.attempt,
                "error": st.error,
                "instance": def.instance,
                "model": attempts.last().and_then(|s| s.model.clone()),
                "tokens": {
                    "input": attempts.iter().map(|s| s.input_tokens).sum::<u64>(),
                    "output": attempts.iter().map(|s| s.output_tokens).sum::<u64>(),
                },
                "cost_usd": cost,
            })
        })
        .collect();
    let documents: Vec<Value> = latest_revisions(&refs).values().map(document_ref).collect();
    let fan_outs: Vec<Value> = step_groups(&run.definition)
        .into_iter()
        .filter_map(|g| match g {
            fleet_core::config::fan_out::StepGroup::FanOut { of, members } => Some(json!({
                "step": of,
                "instances": members.iter().map(|&i| &run.definition.steps[i].name).collect::<Vec<_>>(),
            })),
            _ => None,
        })
        .collect();
    let mut out = run_line(run);
    out["definition_hash"] = json!(run.definition_hash);
    out["steps"] = json!(steps);
    if !fan_outs.is_empty() {
        out["fan_outs"] = json!(fan_outs);
    }
    out["documents"] = json!(documents);
    out["decisions"] = json!(
        decisions
            .iter()
            .map(|d| json!({
                "gate": d.step,
                "approver": d.approver,
                "verdict": d.verdict,
                "reason": d.reason,
                "channel": d.channel,
                "decided_at": d.decided_at.to_string(),
                "final": d.is_final,
            }))
            .collect::<Vec<_>>()
    );
    Ok(out)
}

fn document_ref(r: &ArtifactRef) -> Value {
    json!({
        "path": r.path,
        "step": r.step,
        "revision": r.revision,
        "sha256": r.sha256,
        "size": r.size,
    })
}

/// A document's text (at most `max` bytes of it, cut at a character).
pub(crate) fn document(r: &ArtifactRef, bytes: &[u8], max: usize) -> Value {
    let text = String::from_utf8_lossy(bytes);
    let truncated = text.len() > max;
    let shown = if truncated {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        &text[..end]
    } else {
        &text[..]
    };
    let mut out = document_ref(r);
    out["text"] = json!(shown);
    if truncated {
        out["truncated"] = json!(format!(
            "only the first {} of {} bytes are shown",
            shown.len(),
            text.len()
        ));
    }
    out
}

/// The latest flags of each review step (or of `only`).
pub(crate) async fn flags(
    engine: &Engine,
    run: &RunRecord,
    only: Option<&str>,
) -> Result<Value, ViewError> {
    let reviews: Vec<_> = run
        .definition
        .steps
        .iter()
        .filter(|s| s.kind == StepKind::Review)
        .collect();
    if let Some(step) = only
        && !reviews.iter().any(|s| s.name == step)
    {
        let names: Vec<&str> = reviews.iter().map(|s| s.name.as_str()).collect();
        return Err(ViewError::Usage(format!(
            "run {} has no review step `{step}` (review steps: {})",
            run.id,
            names.join(", ")
        )));
    }
    let refs = engine.store().artifacts(&run.id).await?;
    let latest = latest_revisions(&refs);
    let mut out = Vec::new();
    for step in reviews.iter().filter(|s| only.is_none_or(|o| o == s.name)) {
        let path = sidecar_path(&step.out_path());
        let Some(r) = latest.get(&path) else {
            out.push(json!({"step": step.name, "status": "not reviewed yet", "flags": []}));
            continue;
        };
        let bytes = engine.store().artifact_bytes(&r.sha256).await?;
        let set: Option<FlagSet> = bytes.and_then(|b| serde_json::from_slice(&b).ok());
        out.push(json!({
            "step": step.name,
            "path": r.path,
            "revision": r.revision,
            "sha256": r.sha256,
            "flags": set.map(|s| s.flags).unwrap_or_default(),
        }));
    }
    Ok(Value::Array(out))
}

/// What each approval gate (or `only`) waits for.
pub(crate) async fn gates(
    engine: &Engine,
    run: &RunRecord,
    only: Option<&str>,
) -> Result<Value, ViewError> {
    let gates: Vec<usize> = (0..run.definition.steps.len())
        .filter(|&i| run.definition.steps[i].kind == StepKind::Approval)
        .collect();
    if let Some(gate) = only
        && !gates.iter().any(|&i| run.definition.steps[i].name == gate)
    {
        let names: Vec<&str> = gates
            .iter()
            .map(|&i| run.definition.steps[i].name.as_str())
            .collect();
        return Err(ViewError::Usage(format!(
            "run {} has no approval gate `{gate}` (gates: {})",
            run.id,
            names.join(", ")
        )));
    }
    let refs = engine.store().artifacts(&run.id).await?;
    let mut out = Vec::new();
    for i in gates {
        let step = &run.definition.steps[i];
        if only.is_some_and(|o| o != step.name) {
            continue;
        }
        let state = &run.state.steps[i];
        let waiting = state.status == StepStatus::Waiting;
        out.push(json!({
            "gate": step.name,
            "status": state.status,
            "round": state.attempt,
            "question": step.question,
            "approvers": step.approvers,
            "required": step.required,
            "go_votes": state.go_votes,
            "self_approval_allowed": step.allow_self_approval,
            "shown_documents": if waiting {
                upstream_documents(run, i, &refs).iter().map(document_ref).collect::<Vec<_>>()
            } else {
                Vec::new()
            },
            "how_to_decide": if waiting {
                "an approver decides on the decision page their email links to, or with `fleet approve`/`fleet reject`; use send_decision_link to email one of them a fresh link"
            } else {
                "this gate is not waiting for a decision"
            },
        }));
    }
    Ok(Value::Array(out))
}
