//! The dashboard: runs (filtered, a keyset page at a time), gates waiting,
//! genflows.

use super::*;

pub struct RunRow {
    pub(super) href: String,
    pub(super) short: String,
    pub(super) genflow: String,
    pub(super) genflow_href: String,
    pub(super) status: &'static str,
    pub(super) triggered_by: String,
    pub(super) created: String,
    pub(super) updated: String,
}

pub(super) fn run_row(r: &RunRecord) -> RunRow {
    RunRow {
        href: format!("/runs/{}", url_segment(&r.id)),
        short: short(&r.id),
        genflow: r.genflow_name.clone(),
        genflow_href: format!("/genflows/{}", url_segment(&r.genflow_name)),
        status: r.state.status.as_str(),
        triggered_by: r.triggered_by.clone().unwrap_or_else(|| "—".into()),
        created: fmt_time(r.created_at),
        updated: fmt_time(r.updated_at),
    }
}

pub(super) struct Opt {
    pub(super) value: String,
    pub(super) selected: bool,
}

pub(super) struct WaitingRow {
    pub(super) href: String,
    pub(super) short: String,
    pub(super) genflow: String,
    pub(super) gate: String,
    pub(super) age: String,
    pub(super) approvers: String,
}

pub(super) struct GenflowRow {
    pub(super) href: String,
    pub(super) name: String,
    pub(super) steps: usize,
    pub(super) schedule: String,
    pub(super) next_due: String,
    pub(super) description: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
pub(super) struct Dashboard {
    pub(super) title: &'static str,
    pub(super) nav: bool,
    pub(super) runs: Vec<RunRow>,
    pub(super) waiting: Vec<WaitingRow>,
    pub(super) genflows: Vec<GenflowRow>,
    pub(super) genflow_options: Vec<Opt>,
    pub(super) status_options: Vec<Opt>,
    pub(super) filtered: bool,
}

#[derive(Deserialize, Default)]
pub struct RunsQuery {
    pub genflow: Option<String>,
    pub status: Option<String>,
    pub limit: Option<u32>,
    /// Keyset pagination: runs listed after this run id (the last of the
    /// previous page).
    pub before: Option<String>,
}

impl RunsQuery {
    /// [`RunsQuery::filter`] with `before` resolved to its run's position.
    pub async fn filter_in(&self, store: &dyn fleet_store::Store) -> Result<RunFilter, Failure> {
        let mut filter = self.filter()?;
        if let Some(id) = self.before.as_deref().filter(|b| !b.is_empty()) {
            let run = store.get_run(id).await.map_err(Failure::from_store)?;
            filter.before = Some(fleet_store::RunCursor::after(&run));
        }
        Ok(filter)
    }

    pub fn filter(&self) -> Result<RunFilter, Failure> {
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(RunStatus::from_name(s).ok_or_else(|| {
                Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "unknown status `{s}` (use {})",
                        RunStatus::ALL.map(|s| s.as_str()).join(", ")
                    ),
                )
            })?),
        };
        Ok(RunFilter {
            genflow: self.genflow.clone().filter(|g| !g.is_empty()),
            status,
            limit: Some(self.limit.unwrap_or(100).min(1000)),
            before: None,
        })
    }
}

pub(super) fn waiting_gates(runs: &[RunRecord], now: jiff::Timestamp) -> Vec<WaitingRow> {
    let mut out = Vec::new();
    for r in runs {
        for (i, s) in r.state.steps.iter().enumerate() {
            if s.status == StepStatus::Waiting
                && let Some(step) = r.definition.steps.get(i)
            {
                out.push(WaitingRow {
                    href: format!("/runs/{}", url_segment(&r.id)),
                    short: short(&r.id),
                    genflow: r.genflow_name.clone(),
                    gate: step.name.clone(),
                    age: fmt_ms(now.as_millisecond() - r.updated_at.as_millisecond()),
                    approvers: step.approvers.join(", "),
                });
            }
        }
    }
    out
}

pub(super) async fn dashboard(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
) -> Result<Html<String>, Failure> {
    let store = state.engine.store();
    let filter = q.filter_in(store.as_ref()).await?;
    let runs = store
        .list_runs(&filter)
        .await
        .map_err(Failure::from_store)?;
    let waiting = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Waiting),
            limit: Some(100),
            ..RunFilter::default()
        })
        .await
        .map_err(Failure::from_store)?;
    let schedules: BTreeMap<String, jiff::Timestamp> = store
        .schedules()
        .await
        .map_err(Failure::from_store)?
        .into_iter()
        .map(|s| (s.genflow, s.next_due))
        .collect();
    let config = state.engine.config();
    let genflows = config
        .genflows
        .iter()
        .map(|g| GenflowRow {
            href: format!("/genflows/{}", url_segment(&g.name)),
            name: g.name.clone(),
            steps: g.steps.len(),
            schedule: g.schedule.clone().unwrap_or_default(),
            next_due: match (&g.schedule, schedules.get(&g.name)) {
                (Some(_), Some(t)) => fmt_time(*t),
                _ => "—".into(),
            },
            description: g.description.clone().unwrap_or_default(),
        })
        .collect();
    let page = Dashboard {
        title: "Runs",
        nav: true,
        runs: runs.iter().map(run_row).collect(),
        waiting: waiting_gates(&waiting, jiff::Timestamp::now()),
        genflows,
        genflow_options: config
            .genflows
            .iter()
            .map(|g| Opt {
                selected: filter.genflow.as_deref() == Some(g.name.as_str()),
                value: g.name.clone(),
            })
            .collect(),
        status_options: RunStatus::ALL
            .iter()
            .map(|s| Opt {
                selected: filter.status == Some(*s),
                value: s.as_str().to_owned(),
            })
            .collect(),
        filtered: filter.genflow.is_some() || filter.status.is_some(),
    };
    render(&page)
}

// ---------------------------------------------------------------- run
