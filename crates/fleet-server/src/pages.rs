//! Server-rendered pages. No JavaScript: every action is a link or a form.

use crate::auth::{self, CSRF_COOKIE, SESSION_COOKIE};
use crate::body;
use crate::views::{
    self, DecisionView, DiffView, Failure, GateView, artifact_href, fmt_ms, fmt_time, url_segment,
};
use crate::{AppState, TokenError};
use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use fleet_core::run::{RunStatus, StepStatus, Verdict};
use fleet_engine::{DecisionRequest, EngineError};
use fleet_store::{ArtifactRef, RunFilter, RunRecord};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

mod genflow;

const CSS: &str = include_str!("../assets/fleet.css");

pub fn operator_routes() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard))
        .route("/genflows/{name}", get(genflow::genflow_page))
        .route("/genflows/{name}/runs", post(genflow::start_run))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/artifacts/{*path}", get(artifact_page))
        .route("/runs/{id}/diff/{*path}", get(diff_page))
}

pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/runs/{id}/gates/{step}", get(gate_page).post(gate_decide))
        .route("/runs/{id}/gates/{step}/source", get(gate_source))
        .route("/assets/fleet.css", get(css))
}

fn render(t: &impl Template) -> Result<Html<String>, Failure> {
    render_sized(t, 0)
}

/// See `views::render_part`.
fn render_sized<T: Template>(t: &T, extra: usize) -> Result<Html<String>, Failure> {
    views::render_part(t, extra).map(Html)
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    nav: bool,
    heading: &'a str,
    message: &'a str,
}

pub fn error_page(status: StatusCode, message: &str) -> String {
    let heading = status.canonical_reason().unwrap_or("Error");
    let page = ErrorPage {
        title: heading,
        nav: false,
        heading,
        message,
    };
    page.render()
        .unwrap_or_else(|_| format!("{heading}: {}", views::pre(message)))
}

pub async fn not_found() -> Failure {
    Failure::not_found("page")
}

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

// ---------------------------------------------------------------- login

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    title: &'static str,
    nav: bool,
    next: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(Query(q): Query<NextQuery>) -> Result<Html<String>, Failure> {
    render(&LoginPage {
        title: "Sign in",
        nav: false,
        next: auth::safe_next(q.next.as_deref()),
        error: None,
    })
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

async fn login(State(state): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    let next = auth::safe_next(f.next.as_deref());
    let ok = state.is_api_token(f.token.trim());
    if !ok {
        let page = render(&LoginPage {
            title: "Sign in",
            nav: false,
            next,
            error: Some("That is not the API token.".into()),
        });
        return match page {
            Ok(p) => (StatusCode::UNAUTHORIZED, p).into_response(),
            Err(e) => e.into_response(),
        };
    }
    let session = state
        .signer
        .operator_session(state.auth.api_token.as_deref().unwrap_or_default());
    let cookie =
        format!("{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200");
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn logout() -> Response {
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("fleet_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

// ---------------------------------------------------------------- dashboard

pub struct RunRow {
    href: String,
    short: String,
    genflow: String,
    genflow_href: String,
    status: &'static str,
    triggered_by: String,
    created: String,
    updated: String,
}

fn run_row(r: &RunRecord) -> RunRow {
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

struct Opt {
    value: String,
    selected: bool,
}

struct WaitingRow {
    href: String,
    short: String,
    genflow: String,
    gate: String,
    age: String,
    approvers: String,
}

struct GenflowRow {
    href: String,
    name: String,
    steps: usize,
    schedule: String,
    next_due: String,
    description: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    title: &'static str,
    nav: bool,
    runs: Vec<RunRow>,
    waiting: Vec<WaitingRow>,
    genflows: Vec<GenflowRow>,
    genflow_options: Vec<Opt>,
    status_options: Vec<Opt>,
    filtered: bool,
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

fn waiting_gates(runs: &[RunRecord], now: jiff::Timestamp) -> Vec<WaitingRow> {
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

async fn dashboard(
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

struct Link {
    label: String,
    href: String,
}

struct StepRow {
    name: String,
    kind: &'static str,
    status: &'static str,
    error: String,
    attempt: u32,
    started: String,
    took: String,
    tokens: String,
    cost: String,
    model: String,
    artifacts: Vec<Link>,
}

struct ApproverLink {
    approver: String,
    url: String,
}

struct GateBox {
    name: String,
    question: String,
    links: Vec<ApproverLink>,
}

struct RunDecision {
    gate: String,
    view: DecisionView,
}

#[derive(Template)]
#[template(path = "run.html")]
struct RunPage {
    title: String,
    nav: bool,
    id: String,
    short: String,
    status: &'static str,
    genflow: String,
    genflow_href: String,
    triggered_by: String,
    created: String,
    updated: String,
    definition_hash: String,
    /// The values the run was started with (name, value), in name order.
    params: Vec<(String, String)>,
    svg: String,
    gates: Vec<GateBox>,
    link_ttl: String,
    steps: Vec<StepRow>,
    decisions: Vec<RunDecision>,
}

fn latest_by_path(refs: &[ArtifactRef]) -> BTreeMap<String, &ArtifactRef> {
    let mut out: BTreeMap<String, &ArtifactRef> = BTreeMap::new();
    for r in refs {
        if out.get(&r.path).is_none_or(|p| p.revision < r.revision) {
            out.insert(r.path.clone(), r);
        }
    }
    out
}

async fn run_page(
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

struct RevLink {
    revision: u32,
    href: String,
    current: bool,
    diff_href: String,
    prev: u32,
}

#[derive(Template)]
#[template(path = "artifact.html")]
struct ArtifactPage {
    title: String,
    nav: bool,
    run_href: String,
    run_short: String,
    path: String,
    revision: u32,
    step: String,
    sha256: String,
    size: u64,
    created: String,
    revisions: Vec<RevLink>,
    html: Arc<str>,
}

#[derive(Deserialize)]
struct RevQuery {
    rev: Option<u32>,
}

async fn artifact_page(
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
struct DiffPage<'a> {
    title: String,
    nav: bool,
    run_href: String,
    run_short: String,
    path: String,
    from: u32,
    to: u32,
    from_sha: &'a str,
    to_sha: &'a str,
    diff: &'a DiffView,
}

#[derive(Deserialize)]
struct DiffQuery {
    from: Option<u32>,
    to: Option<u32>,
}

async fn diff_page(
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
        .diff(store.as_ref(), &a.sha256, &b.sha256)
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

struct Notice {
    class: &'static str,
    text: String,
}

/// The decision page before the documents (see `gate_top.html`).
#[derive(Template)]
#[template(path = "gate_top.html")]
struct GateTop<'a> {
    title: String,
    nav: bool,
    genflow: &'a str,
    run_short: String,
    step: &'a str,
    status: &'static str,
    question: &'a str,
    approver: &'a str,
    approvers: &'a str,
    required: u32,
    notice: Option<Notice>,
}

/// The decision form, after the documents.
#[derive(Template)]
#[template(path = "gate_form.html")]
struct GateForm<'a> {
    view: &'a GateView,
    open: bool,
    action: String,
    token: &'a str,
    nonce: &'a str,
    csrf: String,
    reason: &'a str,
}

/// The review flags, each piece of evidence linking to its cited source.
#[derive(Template)]
#[template(path = "gate_flags.html")]
struct GateFlags<'a> {
    flags: &'a [views::FlagView],
    flag_sources: &'a str,
    /// Built only of percent-encoded segments and fixed ASCII, so it holds
    /// nothing HTML would interpret; the template writes it unescaped once
    /// per piece of evidence.
    source_base: String,
}

/// The claims of the link, checked against the gate in the URL.
pub fn verify_link(
    state: &AppState,
    token: Option<&str>,
    run: &str,
    step: &str,
) -> Result<crate::ApproverClaims, Failure> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "this page needs the signed link from your invitation (it ends in ?t=...)",
        ));
    };
    let claims = state
        .signer
        .verify_approver(token, jiff::Timestamp::now().as_second())
        .map_err(|e| Failure::new(StatusCode::FORBIDDEN, e.to_string()))?;
    if claims.run != run || claims.step != step {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            TokenError::WrongGate.to_string(),
        ));
    }
    Ok(claims)
}

/// Where the form nonce of a decision page comes from.
enum Nonce<'a> {
    /// The browser's cookie from an earlier visit.
    Cookie(&'a str),
    /// None yet: the link's own (`Signer::form_nonce`), set as the cookie.
    OfLink,
}

impl<'a> Nonce<'a> {
    fn of(headers: &'a HeaderMap) -> Nonce<'a> {
        match auth::cookie(headers, CSRF_COOKIE) {
            Some(n) if n.len() == 32 && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Nonce::Cookie(n)
            }
            _ => Nonce::OfLink,
        }
    }

    fn value(&self, state: &AppState, token: &str) -> String {
        match self {
            Nonce::Cookie(n) => (*n).to_owned(),
            Nonce::OfLink => state.signer.form_nonce(token),
        }
    }
}

fn csrf_cookie(nonce: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{CSRF_COOKIE}={nonce}; Path=/runs/; HttpOnly; SameSite=Strict; Max-Age=604800"
    ))
    .ok()
}

const HTML: &str = "text/html; charset=utf-8";

/// The parts of a decision page made for one link, nonce and notice; the
/// documents and the end of the page come with the view.
struct GateParts {
    top: String,
    form: String,
    flags: String,
}

impl GateParts {
    fn render(
        state: &AppState,
        view: &GateView,
        claims: &crate::ApproverClaims,
        token: &str,
        nonce: &str,
        notice: Option<Notice>,
        reason: &str,
    ) -> Result<GateParts, Failure> {
        let run_seg = url_segment(&view.run_id);
        let step_seg = url_segment(&view.step);
        let top = GateTop {
            title: format!("Decide: {}", view.step),
            nav: false,
            genflow: &view.genflow,
            run_short: short(&view.run_id),
            step: &view.step,
            status: view.status.as_str(),
            question: &view.question,
            approver: &claims.approver,
            approvers: &view.approvers,
            required: view.required,
            notice,
        };
        let form = GateForm {
            view,
            open: view.status == StepStatus::Waiting,
            action: format!("/runs/{run_seg}/gates/{step_seg}"),
            token,
            csrf: state.signer.csrf(token, nonce),
            nonce,
            reason,
        };
        let source_base = format!(
            "/runs/{run_seg}/gates/{step_seg}/source?t={}",
            url_segment(token)
        );
        // Each piece of evidence with its link: what the flags add to the
        // template's own text.
        let extra: usize = view
            .flags
            .iter()
            .map(|f| 256 + f.claim.len() + f.evidence.len() * (384 + source_base.len()))
            .sum();
        let flags = render_sized(
            &GateFlags {
                flags: &view.flags,
                flag_sources: &view.flag_sources,
                source_base,
            },
            extra,
        )?
        .0;
        Ok(GateParts {
            top: render_sized(&top, 0)?.0,
            form: render_sized(&form, 2 * (token.len() + view.shown_field.len()))?.0,
            flags,
        })
    }

    /// The whole page: these parts around the view's.
    fn page(&self, view: &GateView) -> Vec<u8> {
        let parts = [
            self.top.as_str(),
            &view.documents,
            &self.form,
            &self.flags,
            &view.end,
        ];
        let mut page = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for p in parts {
            page.extend_from_slice(p.as_bytes());
        }
        page
    }
}

/// The decision page answering a post that was not recorded: its notice
/// says why, and the form keeps the reason typed. Not cached.
#[allow(clippy::too_many_arguments)]
fn gate_response(
    state: &AppState,
    view: &GateView,
    claims: &crate::ApproverClaims,
    token: &str,
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<Notice>,
    reason: &str,
) -> Result<Response, Failure> {
    let source = Nonce::of(headers);
    let nonce = source.value(state, token);
    let parts = GateParts::render(state, view, claims, token, &nonce, notice, reason)?;
    let mut r = body::Cached::new(parts.page(view)).response(status, HTML, headers);
    if let (Nonce::OfLink, Some(cookie)) = (source, csrf_cookie(&nonce)) {
        r.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(r)
}

/// A decision page as a GET answers it: a function of the gate's view (its
/// version), the link, the form nonce and whether the decision was just
/// recorded, so it is rendered and compressed once per such tuple, not per
/// request. Compressed whole, it is about a third smaller than joined from
/// parts compressed apart.
pub(crate) struct GatePage {
    view: Arc<GateView>,
    body: body::Cached,
    /// Sets the page's nonce as the cookie, for a browser that had none.
    cookie: Option<HeaderValue>,
}

/// The `t` and `done` parameters of the decision page's query, decoded
/// only where they need it (a link's token never does).
fn gate_query(query: Option<&str>) -> (Option<Cow<'_, str>>, bool) {
    let mut token = None;
    let mut done = false;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match &*form_decode(key) {
            "t" if token.is_none() => token = Some(form_decode(value)),
            "done" => done = true,
            _ => {}
        }
    }
    (token, done)
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
fn form_decode(text: &str) -> Cow<'_, str> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(text);
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// GET never decides: mail scanners and link previews fetch it.
async fn gate_page(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    request: Request,
) -> Result<Response, Failure> {
    let headers = request.headers();
    let (token, done) = gate_query(request.uri().query());
    // Checked on every request, cached page or not.
    let claims = verify_link(&state, token.as_deref(), &id, &step)?;
    let token = token.unwrap_or_default();
    let store = state.engine.store();
    // Read before anything else: whatever is read after it is at least as new.
    let stamp = store.change_stamp().await.map_err(Failure::from_store)?;
    let source = Nonce::of(headers);
    // The run id is the full one (the link's), a step name holds no
    // newline, and the token and nonce are URL-safe: the key splits one
    // way only.
    let key = [
        claims.run.as_str(),
        &step,
        &token,
        match source {
            Nonce::Cookie(n) => n,
            Nonce::OfLink => "",
        },
        if done { "1" } else { "0" },
    ]
    .join("\n");
    let cached = state.cache.gate_pages.get(&key);
    let page = match cached {
        // Nothing committed since its view was confirmed current.
        Some(page) if page.view.confirmed_at(stamp) => page,
        cached => {
            let view = views::load_gate_at(store.as_ref(), &state.cache, &claims.run, &step, stamp)
                .await?;
            match cached.filter(|p| p.view.version == view.version) {
                Some(page) => {
                    // The same version: its view is as current as this one.
                    page.view.confirm(stamp);
                    page
                }
                None => {
                    let page = Arc::new(render_gate_page(
                        &state, view, &claims, &token, &source, done,
                    )?);
                    state.cache.gate_pages.insert_unless(
                        &key,
                        page.clone(),
                        key.len() + page.body.weight(),
                        |old| old.view.version > page.view.version,
                    );
                    page
                }
            }
        }
    };
    let mut r = page.body.response(StatusCode::OK, HTML, headers);
    if let (Nonce::OfLink, Some(cookie)) = (source, &page.cookie) {
        r.headers_mut().insert(header::SET_COOKIE, cookie.clone());
    }
    Ok(r)
}

fn render_gate_page(
    state: &AppState,
    view: Arc<GateView>,
    claims: &crate::ApproverClaims,
    token: &str,
    source: &Nonce<'_>,
    done: bool,
) -> Result<GatePage, Failure> {
    let notice = if done {
        Some(Notice {
            class: "ok",
            text: "Your decision was recorded.".into(),
        })
    } else if view.status != StepStatus::Waiting {
        Some(Notice {
            class: "",
            text: format!(
                "This gate is {}; there is nothing left to decide.",
                view.status
            ),
        })
    } else {
        None
    };
    let nonce = source.value(state, token);
    let parts = GateParts::render(state, &view, claims, token, &nonce, notice, "")?;
    Ok(GatePage {
        body: body::Cached::new(parts.page(&view)),
        cookie: csrf_cookie(&nonce),
        view,
    })
}

#[derive(Deserialize)]
struct DecideForm {
    t: String,
    nonce: String,
    csrf: String,
    #[serde(default)]
    shown: String,
    verdict: String,
    #[serde(default)]
    reason: String,
}

async fn gate_decide(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    Form(f): Form<DecideForm>,
) -> Result<Response, Failure> {
    let claims = verify_link(&state, Some(&f.t), &id, &step)?;
    let cookie_nonce = auth::cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    if cookie_nonce.is_empty()
        || cookie_nonce != f.nonce
        || !state.signer.verify_csrf(&f.t, &f.nonce, &f.csrf)
    {
        return Err(Failure::new(
            StatusCode::FORBIDDEN,
            "the form could not be verified (it expired, or was not sent from the decision page); open your link again and decide there",
        ));
    }
    let verdict = match f.verdict.as_str() {
        "go" => Verdict::Go,
        "no_go" => Verdict::NoGo,
        other => {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                format!("unknown verdict `{other}` (go or no_go)"),
            ));
        }
    };
    // Without the list the engine could not tell a stale page from a fresh one.
    let Some(shown) = views::parse_shown(&f.shown) else {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "the form did not say which document revisions it showed; open your link again and decide there",
        ));
    };
    let reason = f.reason.trim().to_owned();
    let request = DecisionRequest {
        run: claims.run.clone(),
        step: Some(step.clone()),
        approver: claims.approver.clone(),
        verdict,
        reason: (!reason.is_empty()).then(|| reason.clone()),
        channel: "web".into(),
        shown: Some(shown),
    };
    match state.engine.decide(request).await {
        Ok(run) => {
            state.kick(&run.id);
            Ok(Redirect::to(&format!(
                "/runs/{}/gates/{}?t={}&done=1",
                url_segment(&run.id),
                url_segment(&step),
                url_segment(&f.t)
            ))
            .into_response())
        }
        Err(e) => {
            let text = match &e {
                EngineError::StaleRevision { path, .. } => format!(
                    "Not recorded: {path} changed after this page was loaded. The page now shows the current revision; read it and decide again. ({e})"
                ),
                _ => format!("Not recorded: {e}"),
            };
            let status = Failure::from_engine(e).status;
            let view = views::load_gate(
                state.engine.store().as_ref(),
                &state.cache,
                &claims.run,
                &step,
            )
            .await?;
            gate_response(
                &state,
                &view,
                &claims,
                &f.t,
                &headers,
                status,
                Some(Notice { class: "bad", text }),
                &reason,
            )
        }
    }
}

// ---------------------------------------------------------------- cited sources

#[derive(Template)]
#[template(path = "source.html")]
struct SourcePage {
    title: String,
    nav: bool,
    back: String,
    path: String,
    step: String,
    blake3: String,
    changed: bool,
    lines: Vec<(usize, String)>,
}

#[derive(Deserialize)]
struct SourceQuery {
    t: Option<String>,
    path: String,
}

/// A corpus file a flag cites, with line anchors, for the approver holding
/// the link. Only files the run's steps read (listed in their manifests)
/// are served, never anything else under the workspace.
async fn gate_source(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    Query(q): Query<SourceQuery>,
) -> Result<Html<String>, Failure> {
    let claims = verify_link(&state, q.t.as_deref(), &id, &step)?;
    let store = state.engine.store();
    let step_runs = store
        .step_runs(&claims.run)
        .await
        .map_err(Failure::from_store)?;
    let listed = step_runs.iter().rev().find_map(|sr| {
        let entries = sr.manifest.as_ref()?.get("entries")?.as_array()?;
        entries.iter().find_map(|e| {
            (e.get("path")?.as_str()? == q.path).then(|| {
                (
                    sr.step.clone(),
                    e.get("blake3")
                        .and_then(|b| b.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
        })
    });
    let not_served = || Failure::not_found(format!("`{}` among the files this run read", q.path));
    let Some((read_by, blake3)) = listed else {
        return Err(not_served());
    };
    // Manifest paths are workspace-relative; refuse anything that is not.
    let relative = std::path::Path::new(&q.path);
    if q.path.starts_with("source:")
        || relative.is_absolute()
        || relative
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(not_served());
    }
    let file = state.engine.settings().root.join(relative);
    let bytes = tokio::fs::read(&file).await.map_err(|e| {
        Failure::new(
            StatusCode::NOT_FOUND,
            format!("`{}` cannot be read now: {e}", q.path),
        )
    })?;
    let changed = !blake3.is_empty() && blake3::hash(&bytes).to_hex().as_str() != blake3;
    let text = String::from_utf8_lossy(&bytes);
    render(&SourcePage {
        title: q.path.clone(),
        nav: false,
        back: format!(
            "/runs/{}/gates/{}?t={}",
            url_segment(&claims.run),
            url_segment(&step),
            url_segment(q.t.as_deref().unwrap_or_default())
        ),
        step: read_by,
        blake3,
        changed,
        lines: text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_owned()))
            .collect(),
        path: q.path,
    })
}
