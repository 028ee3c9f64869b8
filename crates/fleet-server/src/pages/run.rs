//! A run's page: steps, artifacts, gates and decisions.

use super::*;
use fleet_core::config::fan_out::{StepGroup, status_summary, step_groups};

pub(super) struct Link {
    pub(super) label: String,
    pub(super) href: String,
}

pub(super) struct StepRow {
    pub(super) name: String,
    /// The file, for an instance of a fanned-out step (shown instead of the name).
    pub(super) key: String,
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

/// A step on its own (`header` empty), or a fanned-out step's instances
/// under one header row.
pub(super) struct StepGroupRows {
    pub(super) header: String,
    pub(super) rows: Vec<StepRow>,
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
    /// The issue or pull/merge request whose label started the run.
    pub(super) ticket_url: Option<String>,
    pub(super) created: String,
    pub(super) updated: String,
    pub(super) definition_hash: String,
    /// The values the run was started with (name, value), in name order.
    pub(super) params: Vec<(String, String)>,
    pub(super) svg: String,
    pub(super) gates: Vec<GateBox>,
    pub(super) link_ttl: String,
    pub(super) steps: Vec<StepGroupRows>,
    pub(super) decisions: Vec<RunDecision>,
    /// Each gate's latest signed attestation, checked.
    pub(super) attestations: Vec<super::attestation::AttestationView>,
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
    let attestations = super::attestation::attestation_views(&state, &run, &refs).await?;
    let latest = latest_by_path(&refs);
    let mut rows = Vec::new();
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
        rows.push(StepRow {
            name: def.name.clone(),
            key: def
                .instance
                .as_ref()
                .map(|i| i.key.clone())
                .unwrap_or_default(),
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
    let steps = group_rows(&run, rows);
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
    let by = run.triggered_by.clone().unwrap_or_else(|| "—".into());
    let (triggered_by, ticket_url) = match crate::hooks::ticket_link(&by) {
        Some((text, url)) => (text.to_owned(), Some(url.to_owned())),
        None => (by, None),
    };
    render(&RunPage {
        title: format!("Run {}", short(&run.id)),
        nav: true,
        short: short(&run.id),
        status: run.state.status.as_str(),
        genflow_href: format!("/genflows/{}", url_segment(&run.genflow_name)),
        genflow: run.genflow_name.clone(),
        triggered_by,
        ticket_url,
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
        attestations,
        id: run.id,
    })
}

/// The step rows grouped as `fleet_core::config::fan_out::step_groups` says,
/// each fan-out under a header: its name, kind, and its instances' statuses.
fn group_rows(run: &RunRecord, rows: Vec<StepRow>) -> Vec<StepGroupRows> {
    let mut rows: Vec<Option<StepRow>> = rows.into_iter().map(Some).collect();
    step_groups(&run.definition)
        .into_iter()
        .map(|g| match g {
            StepGroup::Single(i) => StepGroupRows {
                header: String::new(),
                rows: rows[i].take().into_iter().collect(),
            },
            StepGroup::FanOut { of, members } => {
                let kind = run.definition.steps[members[0]].kind;
                let statuses = status_summary(&run.state, &members);
                StepGroupRows {
                    header: format!(
                        "{of} ({kind}, once per file: {} file{}; {statuses})",
                        members.len(),
                        if members.len() == 1 { "" } else { "s" }
                    ),
                    rows: members.iter().filter_map(|&i| rows[i].take()).collect(),
                }
            }
        })
        .collect()
}

// ---------------------------------------------------------------- artifacts
