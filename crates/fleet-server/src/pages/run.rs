//! A run's page: steps, artifacts, gates and decisions.

use super::*;

pub(super) struct Link {
    pub(super) label: String,
    pub(super) href: String,
}

pub(super) struct StepRow {
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) status: &'static str,
    pub(super) error: String,
    pub(super) attempt: u32,
    pub(super) started: String,
    pub(super) took: String,
    pub(super) tokens: String,
    pub(super) cost: String,
    pub(super) model: String,
    pub(super) artifacts: Vec<Link>,
}

pub(super) struct ApproverLink {
    pub(super) approver: String,
    pub(super) url: String,
}

pub(super) struct GateBox {
    pub(super) name: String,
    pub(super) question: String,
    pub(super) links: Vec<ApproverLink>,
}

pub(super) struct RunDecision {
    pub(super) gate: String,
    pub(super) view: DecisionView,
}

#[derive(Template)]
#[template(path = "run.html")]
pub(super) struct RunPage {
    pub(super) title: String,
    pub(super) nav: bool,
    pub(super) id: String,
    pub(super) short: String,
    pub(super) status: &'static str,
    pub(super) genflow: String,
    pub(super) genflow_href: String,
    pub(super) triggered_by: String,
    pub(super) created: String,
    pub(super) updated: String,
    pub(super) definition_hash: String,
    /// The values the run was started with (name, value), in name order.
    pub(super) params: Vec<(String, String)>,
    pub(super) svg: String,
    pub(super) gates: Vec<GateBox>,
    pub(super) link_ttl: String,
    pub(super) steps: Vec<StepRow>,
    pub(super) decisions: Vec<RunDecision>,
}

pub(super) fn latest_by_path(refs: &[ArtifactRef]) -> BTreeMap<String, &ArtifactRef> {
    let mut out: BTreeMap<String, &ArtifactRef> = BTreeMap::new();
    for r in refs {
        if out.get(&r.path).is_none_or(|p| p.revision < r.revision) {
            out.insert(r.path.clone(), r);
        }
    }
    out
}

pub(super) async fn run_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, Failure> {
    let store = state.engine.store();
    let run = store.get_run(&id).await.map_err(Failure::from_store)?;
    let refs = store
        .artifacts(&run.id)
        .await
        .map_err(Failure::from_store)?;
    let step_runs = store
        .step_runs(&run.id)
        .await
        .map_err(Failure::from_store)?;
    let decisions = store
        .decisions(&run.id)
        .await
        .map_err(Failure::from_store)?;
    let latest = latest_by_path(&refs);
    let mut steps = Vec::new();
    for (i, def) in run.definition.steps.iter().enumerate() {
        let st = &run.state.steps[i];
        let last = step_runs.iter().rev().find(|s| s.step == def.name);
        let artifacts: Vec<Link> = latest
            .values()
            .filter(|r| r.step == def.name)
            .map(|r| Link {
                label: if r.revision > 1 {
                    format!("{} (r{})", r.path, r.revision)
                } else {
                    r.path.clone()
                },
                href: artifact_href(&run.id, &r.path, None),
            })
            .collect();
        steps.push(StepRow {
            name: def.name.clone(),
            kind: def.kind.as_str(),
            status: st.status.as_str(),
            error: st.error.clone().unwrap_or_default(),
            attempt: st.attempt,
            started: last.map(|s| fmt_time(s.started_at)).unwrap_or_default(),
            took: last
                .and_then(|s| {
                    s.finished_at
                        .map(|f| fmt_ms(f.as_millisecond() - s.started_at.as_millisecond()))
                })
                .unwrap_or_default(),
            tokens: last
                .map(|s| {
                    format!(
                        "{} / {}{}",
                        s.input_tokens,
                        s.output_tokens,
                        if s.cached { " (cached)" } else { "" }
                    )
                })
                .unwrap_or_default(),
            cost: last
                .and_then(|s| s.cost_usd)
                .map(|c| format!("${c:.4}"))
                .unwrap_or_default(),
            model: last.and_then(|s| s.model.clone()).unwrap_or_default(),
            artifacts,
        });
    }
    let svg = crate::dag_svg::render(&run.definition, &run.state, |i| {
        let name = &run.definition.steps[i].name;
        latest
            .values()
            .find(|r| &r.step == name && !r.path.ends_with(".flags.json"))
            .map(|r| artifact_href(&run.id, &r.path, None))
    });
    let gates = run
        .definition
        .steps
        .iter()
        .enumerate()
        .filter(|(i, _)| run.state.steps[*i].status == StepStatus::Waiting)
        .map(|(_, s)| GateBox {
            name: s.name.clone(),
            question: s.question.clone().unwrap_or_default(),
            links: s
                .approvers
                .iter()
                .map(|a| ApproverLink {
                    approver: a.clone(),
                    url: state.approver_link(&run.id, &s.name, a, state.link_ttl),
                })
                .collect(),
        })
        .collect();
    render(&RunPage {
        title: format!("Run {}", short(&run.id)),
        nav: true,
        short: short(&run.id),
        status: run.state.status.as_str(),
        genflow_href: format!("/genflows/{}", url_segment(&run.genflow_name)),
        genflow: run.genflow_name.clone(),
        triggered_by: run.triggered_by.clone().unwrap_or_else(|| "—".into()),
        created: fmt_time(run.created_at),
        updated: fmt_time(run.updated_at),
        definition_hash: run.definition_hash.clone(),
        params: run
            .definition
            .param_values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        svg,
        gates,
        link_ttl: fleet_core::config::Duration(
            u64::try_from(state.link_ttl.as_millis()).unwrap_or(u64::MAX),
        )
        .to_string(),
        steps,
        decisions: decisions
            .iter()
            .map(|d| RunDecision {
                gate: d.step.clone(),
                view: DecisionView::from_record(d),
            })
            .collect(),
        id: run.id,
    })
}

// ---------------------------------------------------------------- artifacts
