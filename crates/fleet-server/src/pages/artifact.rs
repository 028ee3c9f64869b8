//! An artifact's revisions, and the diff between two of them.

use super::*;

pub(super) struct RevLink {
    pub(super) revision: u32,
    pub(super) href: String,
    pub(super) current: bool,
    pub(super) diff_href: String,
    pub(super) prev: u32,
}

#[derive(Template)]
#[template(path = "artifact.html")]
pub(super) struct ArtifactPage {
    pub(super) title: String,
    pub(super) nav: bool,
    pub(super) run_href: String,
    pub(super) run_short: String,
    pub(super) path: String,
    pub(super) revision: u32,
    pub(super) step: String,
    pub(super) sha256: String,
    pub(super) size: u64,
    pub(super) created: String,
    pub(super) revisions: Vec<RevLink>,
    pub(super) html: Arc<str>,
}

#[derive(Deserialize)]
pub(super) struct RevQuery {
    pub(super) rev: Option<u32>,
}

pub(super) async fn artifact_page(
    State(state): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<RevQuery>,
) -> Result<Html<String>, Failure> {
    let store = state.engine.store();
    let run = store.get_run(&id).await.map_err(Failure::from_store)?;
    let refs = store
        .artifacts(&run.id)
        .await
        .map_err(Failure::from_store)?;
    let revs: Vec<&ArtifactRef> = refs.iter().filter(|r| r.path == path).collect();
    let chosen = match q.rev {
        Some(n) => revs.iter().find(|r| r.revision == n),
        None => revs.iter().max_by_key(|r| r.revision),
    }
    .copied()
    .ok_or_else(|| Failure::not_found(format!("document `{path}` of run {}", run.id)))?;
    let html = state
        .cache
        .html(store.as_ref(), &path, &chosen.sha256)
        .await?;
    let diff_base = format!(
        "/runs/{}/diff/{}",
        url_segment(&run.id),
        views::url_path(&path)
    );
    let extra = html.len();
    render_sized(
        &ArtifactPage {
            title: path.clone(),
            nav: true,
            run_href: format!("/runs/{}", url_segment(&run.id)),
            run_short: short(&run.id),
            revision: chosen.revision,
            step: chosen.step.clone(),
            sha256: chosen.sha256.clone(),
            size: chosen.size,
            created: fmt_time(chosen.created_at),
            revisions: revs
                .iter()
                .map(|r| RevLink {
                    revision: r.revision,
                    href: artifact_href(&run.id, &path, Some(r.revision)),
                    current: r.revision == chosen.revision,
                    diff_href: if r.revision > 1 {
                        format!("{diff_base}?from={}&to={}", r.revision - 1, r.revision)
                    } else {
                        String::new()
                    },
                    prev: r.revision.saturating_sub(1),
                })
                .collect(),
            html,
            path,
        },
        extra,
    )
}

#[derive(Template)]
#[template(path = "diff.html")]
pub(super) struct DiffPage<'a> {
    pub(super) title: String,
    pub(super) nav: bool,
    pub(super) run_href: String,
    pub(super) run_short: String,
    pub(super) path: String,
    pub(super) from: u32,
    pub(super) to: u32,
    pub(super) from_sha: &'a str,
    pub(super) to_sha: &'a str,
    pub(super) diff: &'a DiffView,
}

#[derive(Deserialize)]
pub(super) struct DiffQuery {
    pub(super) from: Option<u32>,
    pub(super) to: Option<u32>,
}

pub(super) async fn diff_page(
    State(state): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<DiffQuery>,
) -> Result<Html<String>, Failure> {
    let store = state.engine.store();
    let run = store.get_run(&id).await.map_err(Failure::from_store)?;
    let refs = store
        .artifacts(&run.id)
        .await
        .map_err(Failure::from_store)?;
    let revs: Vec<&ArtifactRef> = refs.iter().filter(|r| r.path == path).collect();
    let latest = revs.iter().map(|r| r.revision).max().unwrap_or(0);
    let to = q.to.unwrap_or(latest);
    let from = q.from.unwrap_or(to.saturating_sub(1));
    let find = |n: u32| {
        revs.iter()
            .find(|r| r.revision == n)
            .copied()
            .ok_or_else(|| {
                Failure::not_found(format!("revision {n} of `{path}` in run {}", run.id))
            })
    };
    let (a, b) = (find(from)?, find(to)?);
    let diff = state
        .cache
        .diff(store.as_ref(), &a.sha256, &b.sha256, None)
        .await?;
    let extra = diff.lines.iter().map(|l| 48 + l.text.len()).sum();
    render_sized(
        &DiffPage {
            title: format!("{path} r{from}→r{to}"),
            nav: true,
            run_href: format!("/runs/{}", url_segment(&run.id)),
            run_short: short(&run.id),
            from,
            to,
            from_sha: &a.sha256,
            to_sha: &b.sha256,
            diff: &diff,
            path,
        },
        extra,
    )
}

// ---------------------------------------------------------------- decision page
