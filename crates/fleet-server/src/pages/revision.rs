//! Any revision of a document the decision page shows, for the approver
//! holding the link: the rounds of a redraft link here, since an approver
//! need not be an operator who may open the run's artifact pages.

use super::*;

#[derive(Template)]
#[template(path = "gate_revision.html")]
pub(super) struct RevisionPage {
    pub(super) title: String,
    pub(super) nav: bool,
    pub(super) back: String,
    pub(super) path: String,
    pub(super) revision: u32,
    pub(super) latest: u32,
    pub(super) step: String,
    pub(super) sha256: String,
    pub(super) created: String,
    pub(super) html: Arc<str>,
}

#[derive(Deserialize)]
pub(super) struct RevisionQuery {
    pub(super) t: Option<String>,
    pub(super) path: String,
    pub(super) rev: Option<u32>,
}

/// Only documents written by steps upstream of the gate are served.
pub(super) async fn gate_revision(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    Query(q): Query<RevisionQuery>,
) -> Result<Html<String>, Failure> {
    let claims = verify_link(&state, q.t.as_deref(), &id, &step)?;
    let store = state.engine.store();
    let run = store
        .get_run(&claims.run)
        .await
        .map_err(Failure::from_store)?;
    let gate = run
        .definition
        .step_index(&step)
        .ok_or_else(|| Failure::not_found(format!("gate `{step}` of run {}", run.id)))?;
    let deps = run.definition.dependency_indices();
    let upstream: Vec<&str> = fleet_core::dag::ancestors(&deps, gate)
        .into_iter()
        .map(|i| run.definition.steps[i].name.as_str())
        .collect();
    let refs = store
        .artifacts(&run.id)
        .await
        .map_err(Failure::from_store)?;
    let revs: Vec<&ArtifactRef> = refs
        .iter()
        .filter(|r| r.path == q.path && upstream.contains(&r.step.as_str()))
        .collect();
    let latest = revs.iter().map(|r| r.revision).max().unwrap_or(0);
    let wanted = q.rev.unwrap_or(latest);
    let Some(chosen) = revs.iter().find(|r| r.revision == wanted) else {
        return Err(Failure::not_found(format!(
            "revision {wanted} of `{}` among the documents this gate shows",
            q.path
        )));
    };
    let html = state
        .cache
        .html(store.as_ref(), &chosen.path, &chosen.sha256)
        .await?;
    let extra = html.len();
    render_sized(
        &RevisionPage {
            title: format!("{} r{}", chosen.path, chosen.revision),
            nav: false,
            back: format!(
                "/runs/{}/gates/{}?t={}",
                url_segment(&claims.run),
                url_segment(&step),
                url_segment(q.t.as_deref().unwrap_or_default())
            ),
            path: chosen.path.clone(),
            revision: chosen.revision,
            latest,
            step: chosen.step.clone(),
            sha256: chosen.sha256.clone(),
            created: fmt_time(chosen.created_at),
            html,
        },
        extra,
    )
}
