//! The JSON API under `/api/v1`. Operators authenticate like on the pages;
//! the decision endpoint takes an approver token instead.

use crate::AppState;
use crate::body;
use crate::pages::{RunsQuery, verify_link};
use crate::views::{self, Failure};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fleet_core::config::fan_out::{FanOutSummary, fan_out_summaries};
use fleet_core::run::{StepStatus, Verdict};
use fleet_engine::DecisionRequest;
use fleet_store::{RunFilter, RunRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

type ApiResult<T> = Result<T, Failure>;

fn api<T>(r: Result<T, Failure>) -> ApiResult<T> {
    r.map_err(Failure::json)
}

pub fn operator_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/genflows", get(list_genflows))
        .route("/api/v1/genflows/{name}", get(get_genflow))
        .route(
            "/api/v1/genflows/{name}/runs",
            get(genflow_runs).post(start_run),
        )
        .route("/api/v1/runs", get(list_runs))
        .route("/api/v1/runs/{id}", get(get_run))
        .route("/api/v1/runs/{id}/steps", get(run_steps))
        .route("/api/v1/runs/{id}/artifacts", get(run_artifacts))
        .route("/api/v1/runs/{id}/artifacts/{*path}", get(artifact_content))
        .route("/api/v1/runs/{id}/decisions", get(run_decisions))
        .route("/api/v1/runs/{id}/gates/{step}/links", post(issue_link))
}

pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi_json))
        .route("/api/v1/runs/{id}/gates/{step}/decisions", post(api_decide))
}

#[derive(Serialize)]
pub struct StepSummary<'a> {
    name: &'a str,
    kind: &'static str,
    status: StepStatus,
    attempt: u32,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    go_votes: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    /// Set on an instance of a fanned-out step: the step and the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<&'a fleet_core::config::Instance>,
}

/// A run as the API shows it; borrows from the record, so listing runs
/// copies no strings before serializing.
#[derive(Serialize)]
pub struct RunSummary<'a> {
    id: &'a str,
    genflow: &'a str,
    status: fleet_core::run::RunStatus,
    triggered_by: Option<&'a str>,
    created_at: jiff::Timestamp,
    updated_at: jiff::Timestamp,
    definition_hash: &'a str,
    /// The values the run was started with (left out when none).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    params: &'a std::collections::BTreeMap<String, String>,
    version: i64,
    steps: Vec<StepSummary<'a>>,
    /// The steps that run once per file, grouped (left out when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fan_outs: Vec<FanOutSummary<'a>>,
    waiting_gates: Vec<&'a str>,
}

fn summary(r: &RunRecord) -> RunSummary<'_> {
    let steps: Vec<StepSummary<'_>> = r
        .definition
        .steps
        .iter()
        .zip(&r.state.steps)
        .map(|(d, s)| StepSummary {
            name: &d.name,
            kind: d.kind.as_str(),
            status: s.status,
            attempt: s.attempt,
            go_votes: &s.go_votes,
            error: s.error.as_deref(),
            instance: d.instance.as_ref(),
        })
        .collect();
    let fan_outs = fan_out_summaries(&r.definition, &r.state);
    RunSummary {
        id: &r.id,
        genflow: &r.genflow_name,
        status: r.state.status,
        triggered_by: r.triggered_by.as_deref(),
        created_at: r.created_at,
        updated_at: r.updated_at,
        definition_hash: &r.definition_hash,
        params: &r.definition.param_values,
        version: r.version,
        waiting_gates: steps
            .iter()
            .filter(|s| s.status == StepStatus::Waiting)
            .map(|s| s.name)
            .collect(),
        steps,
        fan_outs,
    }
}

/// About how many bytes a run's summary takes as JSON, so a list is
/// serialized into one buffer instead of a doubling series of copies.
fn summary_size(r: &RunRecord) -> usize {
    320 + 96 * r.state.steps.len()
}

/// A run's summary as JSON, for the version of the run it was made from.
pub(crate) struct SummaryJson {
    version: i64,
    json: Box<str>,
}

/// The JSON of `run`'s summary, kept for its version.
fn summary_json(state: &AppState, run: &RunRecord) -> Result<Arc<SummaryJson>, Failure> {
    let json = serde_json::to_string(&summary(run)).map_err(serialize_failure)?;
    let weight = 96 + run.id.len() + json.len();
    let version = run.version;
    let made = Arc::new(SummaryJson {
        version,
        json: json.into_boxed_str(),
    });
    state
        .cache
        .summaries
        .insert_unless(&run.id, made.clone(), weight, |old| old.version > version);
    Ok(made)
}

/// A run listing's response, for the ids and versions it lists.
pub(crate) struct Listing {
    runs: Vec<(String, i64)>,
    body: body::Cached,
    /// The store's change stamp read before `runs` was listed.
    stamp: Option<u64>,
}

impl Listing {
    fn new(summaries: &[(String, Arc<SummaryJson>)]) -> Listing {
        let size = summaries
            .iter()
            .map(|(_, s)| s.json.len() + 1)
            .sum::<usize>();
        let mut out = Vec::with_capacity(2 + size);
        out.push(b'[');
        for (i, (_, s)) in summaries.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(s.json.as_bytes());
        }
        out.push(b']');
        Listing {
            runs: summaries
                .iter()
                .map(|(id, s)| (id.clone(), s.version))
                .collect(),
            body: body::Cached::new(out),
            stamp: None,
        }
    }

    pub(crate) fn weight(&self) -> usize {
        self.body.weight() + self.runs.iter().map(|(id, _)| 32 + id.len()).sum::<usize>()
    }
}

/// Missing summaries up to this many are read run by run; more, in one listing.
const SINGLE_READS: usize = 8;

/// The listing of `runs` (ids and versions as just listed for `filter`).
/// Summaries cached for those versions are reused and the other runs read;
/// a run read at another version than listed (committed meanwhile) or gone
/// makes it read the whole listing again, so the body is always one
/// consistent snapshot.
async fn listing(
    state: &AppState,
    filter: &RunFilter,
    runs: Vec<(String, i64)>,
) -> Result<Listing, Failure> {
    let store = state.engine.store();
    let cached: Vec<Option<Arc<SummaryJson>>> = runs
        .iter()
        .map(|(id, version)| {
            state
                .cache
                .summaries
                .get(id)
                .filter(|s| s.version == *version)
        })
        .collect();
    if cached.iter().filter(|s| s.is_none()).count() <= SINGLE_READS {
        let mut summaries = Vec::with_capacity(runs.len());
        let mut consistent = true;
        for ((id, version), hit) in runs.into_iter().zip(cached) {
            let summary = match hit {
                Some(s) => s,
                None => match store.get_run(&id).await {
                    Ok(run) if run.version == version => summary_json(state, &run)?,
                    Ok(_) | Err(StoreError::NotFound(_)) => {
                        consistent = false;
                        break;
                    }
                    Err(e) => return Err(Failure::from_store(e)),
                },
            };
            summaries.push((id, summary));
        }
        if consistent {
            return Ok(Listing::new(&summaries));
        }
    }
    let records = store.list_runs(filter).await.map_err(Failure::from_store)?;
    let mut summaries = Vec::with_capacity(records.len());
    for r in &records {
        let summary = match state.cache.summaries.get(&r.id) {
            Some(s) if s.version == r.version => s,
            _ => summary_json(state, r)?,
        };
        summaries.push((r.id.clone(), summary));
    }
    Ok(Listing::new(&summaries))
}

fn json_bytes_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn serialize_failure(e: serde_json::Error) -> Failure {
    Failure::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("response could not be serialized: {e}"),
    )
    .json()
}

/// `value` as an `application/json` response, serialized into a buffer of
/// `capacity` bytes.
fn json_response(status: StatusCode, value: &impl Serialize, capacity: usize) -> Response {
    let mut body = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => json_bytes_response(status, body),
        Err(e) => serialize_failure(e).into_response(),
    }
}

fn run_response(status: StatusCode, run: &RunRecord) -> Response {
    json_response(status, &summary(run), summary_size(run))
}

async fn list_genflows(State(state): State<AppState>) -> Json<Value> {
    let config = state.engine.config();
    Json(Value::Array(
        config
            .genflows
            .iter()
            .map(|g| {
                let resolved = config.resolved_genflow(g);
                json!({
                    "name": g.name,
                    "description": g.description,
                    "schedule": g.schedule,
                    "params": g.params,
                    "definition_hash": resolved.definition_hash(),
                    "steps": g.steps.iter().map(|s| json!({
                        "name": s.name, "kind": s.kind.as_str(), "depends_on": s.depends_on,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    ))
}

async fn get_genflow(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let config = state.engine.config();
    let g = config
        .genflow(&name)
        .ok_or_else(|| Failure::not_found(format!("genflow `{name}`")).json())?;
    let resolved = config.resolved_genflow(g);
    Ok(Json(json!({
        "name": resolved.name,
        "definition_hash": resolved.definition_hash(),
        "definition": resolved,
    })))
}

/// The runs `filter` lists. The whole body is reused while nothing was
/// committed since it was made (the store's change stamp, checked on every
/// request), or else while the store lists the same runs at the same
/// versions; so any commit to a listed run, a new run, or a run leaving the
/// filter shows on the next request.
async fn runs_matching(
    state: &AppState,
    filter: RunFilter,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let store = state.engine.store();
    let key = format!(
        "{}\n{}\n{}\n{}",
        filter.genflow.as_deref().unwrap_or_default(),
        filter.status.map_or("", |s| s.as_str()),
        filter.limit.map_or(-1, i64::from),
        filter.before.as_ref().map_or("", |c| c.id.as_str())
    );
    // Read before anything else: a listing made after it is at least as new.
    let stamp = store
        .change_stamp()
        .await
        .map_err(|e| Failure::from_store(e).json())?;
    let cached = state.cache.listings.get(&key);
    if let Some(hit) = &cached
        && stamp.is_some()
        && hit.stamp == stamp
    {
        return Ok(hit
            .body
            .response(StatusCode::OK, "application/json", headers));
    }
    let runs = store
        .run_versions(&filter)
        .await
        .map_err(|e| Failure::from_store(e).json())?;
    let listing = match cached {
        // Something else changed: the same body, now known current at `stamp`.
        Some(hit) if hit.runs == runs => Listing {
            runs,
            body: hit.body.clone(),
            stamp,
        },
        _ => Listing {
            stamp,
            ..listing(state, &filter, runs).await.map_err(Failure::json)?
        },
    };
    let listing = Arc::new(listing);
    state
        .cache
        .listings
        .insert(&key, listing.clone(), listing.weight());
    Ok(listing
        .body
        .response(StatusCode::OK, "application/json", headers))
}

async fn list_runs(
    State(state): State<AppState>,
    Query(q): Query<RunsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let filter = api(q.filter_in(state.engine.store().as_ref()).await)?;
    runs_matching(&state, filter, &headers).await
}

async fn genflow_runs(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<RunsQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if state.engine.config().genflow(&name).is_none() {
        return Err(Failure::not_found(format!("genflow `{name}`")).json());
    }
    let mut filter = api(q.filter_in(state.engine.store().as_ref()).await)?;
    filter.genflow = Some(name);
    runs_matching(&state, filter, &headers).await
}

#[derive(Deserialize, Default)]
struct StartBody {
    triggered_by: Option<String>,
    /// Values for the genflow's params; the others get their defaults.
    #[serde(default)]
    params: std::collections::BTreeMap<String, String>,
    /// Answer only once the run waits at a gate or ends (whichever process
    /// executes it), at most `MAX_WAIT`; also `?wait=true`.
    #[serde(default)]
    wait: bool,
}

#[derive(Deserialize, Default)]
struct StartQuery {
    #[serde(default)]
    wait: bool,
}

/// How long a run start with `wait` follows the run before answering with
/// the run as it is (still running).
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

async fn start_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<StartQuery>,
    body: Option<Json<StartBody>>,
) -> ApiResult<Response> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let triggered_by = body
        .triggered_by
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "api".into());
    let run = state
        .engine
        .start_run_with_params(
            &name,
            Some(triggered_by),
            &body.params,
            fleet_store::new_run_id(),
        )
        .await
        .map_err(|e| Failure::from_engine(e).json())?;
    state.kick(&run.id);
    let run = if query.wait || body.wait {
        // The worker (this server's, or a `fleet worker`) executes it.
        let follow = state.engine.follow(
            &run.id,
            &fleet_engine::Quiet,
            false,
            fleet_engine::Until::GateOrEnd,
        );
        match tokio::time::timeout(MAX_WAIT, follow).await {
            Ok(followed) => followed.map_err(|e| Failure::from_engine(e).json())?,
            Err(_) => load(&state, &run.id).await?,
        }
    } else {
        run
    };
    let location = format!("/api/v1/runs/{}", views::url_segment(&run.id));
    Ok((
        [(header::LOCATION, location)],
        run_response(StatusCode::CREATED, &run),
    )
        .into_response())
}

async fn load(state: &AppState, id: &str) -> ApiResult<RunRecord> {
    state
        .engine
        .store()
        .get_run(id)
        .await
        .map_err(|e| Failure::from_store(e).json())
}

async fn get_run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(run_response(StatusCode::OK, &load(&state, &id).await?))
}

async fn run_steps(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let run = load(&state, &id).await?;
    let steps = state
        .engine
        .store()
        .step_runs(&run.id)
        .await
        .map_err(|e| Failure::from_store(e).json())?;
    Ok(Json(steps).into_response())
}

async fn run_artifacts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let run = load(&state, &id).await?;
    let refs = state
        .engine
        .store()
        .artifacts(&run.id)
        .await
        .map_err(|e| Failure::from_store(e).json())?;
    Ok(Json(refs).into_response())
}

#[derive(Deserialize)]
struct RevQuery {
    rev: Option<u32>,
}

/// The stored bytes. Served as text (never as HTML), so a browser opening
/// this URL cannot run anything a model wrote.
async fn artifact_content(
    State(state): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    Query(q): Query<RevQuery>,
) -> ApiResult<Response> {
    let run = load(&state, &id).await?;
    let store = state.engine.store();
    let refs = store
        .artifacts(&run.id)
        .await
        .map_err(|e| Failure::from_store(e).json())?;
    let chosen = refs
        .iter()
        .filter(|r| r.path == path && q.rev.is_none_or(|n| r.revision == n))
        .max_by_key(|r| r.revision)
        .ok_or_else(|| Failure::not_found(format!("document `{path}`")).json())?;
    let bytes = store
        .artifact_bytes(&chosen.sha256)
        .await
        .map_err(|e| Failure::from_store(e).json())?
        .unwrap_or_default();
    let content_type = if path.ends_with(".json") {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::HeaderName::from_static("x-fleet-sha256"),
                chosen.sha256.clone(),
            ),
            (
                header::HeaderName::from_static("x-fleet-revision"),
                chosen.revision.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

async fn run_decisions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let run = load(&state, &id).await?;
    let decisions = state
        .engine
        .store()
        .decisions(&run.id)
        .await
        .map_err(|e| Failure::from_store(e).json())?;
    Ok(Json(decisions).into_response())
}

#[derive(Deserialize)]
struct LinkBody {
    approver: String,
    /// Seconds; defaults to the server's link lifetime.
    ttl_seconds: Option<u64>,
}

async fn issue_link(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    Json(body): Json<LinkBody>,
) -> ApiResult<Json<Value>> {
    let run = load(&state, &id).await?;
    let def = run
        .definition
        .step(&step)
        .filter(|s| s.kind == fleet_core::config::StepKind::Approval)
        .ok_or_else(|| Failure::not_found(format!("gate `{step}`")).json())?;
    if !def
        .approvers
        .iter()
        .any(|a| a.eq_ignore_ascii_case(body.approver.trim()))
    {
        return Err(Failure::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "`{}` is not an approver of gate `{step}` (approvers: {})",
                body.approver,
                def.approvers.join(", ")
            ),
        )
        .json());
    }
    let ttl = body
        .ttl_seconds
        .map(std::time::Duration::from_secs)
        .unwrap_or(state.link_ttl);
    let url = state.approver_link(&run.id, &step, body.approver.trim(), ttl);
    Ok(Json(
        json!({ "url": url, "approver": body.approver.trim(), "ttl_seconds": ttl.as_secs() }),
    ))
}

#[derive(Deserialize)]
struct ShownDoc {
    path: String,
    sha256: String,
}

#[derive(Deserialize)]
struct DecideBody {
    token: String,
    verdict: Verdict,
    reason: Option<String>,
    /// The revisions the deciding client showed; omitted = the current ones.
    shown: Option<Vec<ShownDoc>>,
}

async fn api_decide(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    Json(body): Json<DecideBody>,
) -> ApiResult<Response> {
    let claims = api(verify_link(&state, Some(&body.token), &id, &step))?;
    let run = state
        .engine
        .decide(DecisionRequest {
            run: claims.run.clone(),
            step: Some(step),
            approver: claims.approver,
            verdict: body.verdict,
            reason: body.reason.filter(|r| !r.trim().is_empty()),
            channel: "api".into(),
            shown: body
                .shown
                .map(|v| v.into_iter().map(|d| (d.path, d.sha256)).collect()),
        })
        .await
        .map_err(|e| Failure::from_engine(e).json())?;
    state.kick(&run.id);
    Ok(run_response(StatusCode::OK, &run))
}

async fn openapi_json() -> Json<Value> {
    Json(openapi())
}

/// The OpenAPI 3.1 document of `/api/v1` (tested against the router).
pub fn openapi() -> Value {
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string"}, "description": "Run id or a unique prefix (4+ characters)."});
    let name =
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
    let step =
        json!({"name": "step", "in": "path", "required": true, "schema": {"type": "string"}});
    let path = json!({"name": "path", "in": "path", "required": true, "schema": {"type": "string"}, "description": "Document path within the run, e.g. readiness.md"});
    let filters = [
        json!({"name": "genflow", "in": "query", "schema": {"type": "string"}}),
        json!({"name": "status", "in": "query", "schema": {"type": "string", "enum": ["running", "waiting", "succeeded", "rejected", "failed", "cancelled"]}}),
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 1000, "default": 100}}),
    ];
    let ok = |d: &str, schema: Value| json!({"200": {"description": d, "content": {"application/json": {"schema": schema}}}, "default": {"$ref": "#/components/responses/Error"}});
    let run_ref = json!({"$ref": "#/components/schemas/Run"});
    let runs = json!({"type": "array", "items": run_ref});
    let any_array = json!({"type": "array", "items": {"type": "object"}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Fleet API", "version": "1", "description": "Genflow runs, documents and go/no-go decisions. Operator endpoints need `Authorization: Bearer <FLEET_API_TOKEN>`; deciding needs an approver token (the `t` of a decision link)."},
        "security": [{"operator": []}],
        "paths": {
            "/api/v1/genflows": {"get": {"summary": "List genflows", "operationId": "listGenflows", "responses": ok("Genflows", any_array.clone())}},
            "/api/v1/genflows/{name}": {"get": {"summary": "A genflow's resolved definition", "operationId": "getGenflow", "parameters": [name], "responses": ok("Genflow", json!({"type": "object"}))}},
            "/api/v1/genflows/{name}/runs": {
                "get": {"summary": "Runs of a genflow, newest first", "operationId": "listGenflowRuns", "parameters": [name, filters[1], filters[2]], "responses": ok("Runs", runs.clone())},
                "post": {"summary": "Start a run (CI, ticket webhooks)", "operationId": "startRun", "parameters": [name],
                    "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"triggered_by": {"type": "string"}, "params": {"type": "object", "description": "Values for the genflow's params (the others get their defaults); an undeclared, missing or pattern-failing one is refused with 422, whose `param` names it", "additionalProperties": {"type": "string"}}, "wait": {"type": "boolean"}}}}}},
                    "responses": {"201": {"description": "Started", "content": {"application/json": {"schema": run_ref}}}, "422": {"$ref": "#/components/responses/Error"}, "default": {"$ref": "#/components/responses/Error"}}}
            },
            "/api/v1/runs": {"get": {"summary": "List runs, newest first", "operationId": "listRuns", "parameters": filters, "responses": ok("Runs", runs)}},
            "/api/v1/runs/{id}": {"get": {"summary": "A run", "operationId": "getRun", "parameters": [id], "responses": ok("Run", run_ref.clone())}},
            "/api/v1/runs/{id}/steps": {"get": {"summary": "Every step attempt: model, tokens, cost, timing", "operationId": "listStepRuns", "parameters": [id], "responses": ok("Step runs", any_array.clone())}},
            "/api/v1/runs/{id}/artifacts": {"get": {"summary": "Every document revision with its sha256", "operationId": "listArtifacts", "parameters": [id], "responses": ok("Artifacts", any_array.clone())}},
            "/api/v1/runs/{id}/artifacts/{path}": {"get": {"summary": "A document's bytes (latest revision unless rev is given)", "operationId": "getArtifact",
                "parameters": [id, path, {"name": "rev", "in": "query", "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "Document bytes", "content": {"text/plain": {}, "application/json": {}}}, "default": {"$ref": "#/components/responses/Error"}}}},
            "/api/v1/runs/{id}/decisions": {"get": {"summary": "Decisions recorded for the run", "operationId": "listDecisions", "parameters": [id], "responses": ok("Decisions", any_array)}},
            "/api/v1/runs/{id}/gates/{step}/links": {"post": {"summary": "Issue a signed decision link for an approver", "operationId": "issueLink", "parameters": [id, step],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["approver"], "properties": {"approver": {"type": "string"}, "ttl_seconds": {"type": "integer"}}}}}},
                "responses": ok("Link", json!({"type": "object", "properties": {"url": {"type": "string"}}}))}},
            "/api/v1/runs/{id}/gates/{step}/decisions": {"post": {"summary": "Decide Go or No-go with an approver token", "operationId": "decide", "security": [], "parameters": [id, step],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["token", "verdict"], "properties": {
                    "token": {"type": "string"}, "verdict": {"type": "string", "enum": ["go", "no_go"]}, "reason": {"type": "string", "description": "Required for no_go"},
                    "shown": {"type": "array", "description": "The revisions the approver saw; a changed one is refused with 409", "items": {"type": "object", "required": ["path", "sha256"], "properties": {"path": {"type": "string"}, "sha256": {"type": "string"}}}}}}}}},
                "responses": {"200": {"description": "Recorded", "content": {"application/json": {"schema": run_ref}}},
                    "403": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "422": {"$ref": "#/components/responses/Error"}, "default": {"$ref": "#/components/responses/Error"}}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi", "security": [], "responses": {"200": {"description": "OpenAPI document"}}}}
        },
        "components": {
            "securitySchemes": {"operator": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "What went wrong", "content": {"application/json": {"schema": {"type": "object", "required": ["error", "status"], "properties": {"error": {"type": "string", "description": "What went wrong, in a sentence a person can act on"}, "status": {"type": "integer"}, "param": {"type": "string", "description": "The run parameter a refusal is about (undeclared, missing or failing its pattern), when there is one"}}}}}}},
            "schemas": {"Run": {"type": "object", "properties": {
                "id": {"type": "string"}, "genflow": {"type": "string"}, "status": {"type": "string"}, "triggered_by": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"}, "updated_at": {"type": "string", "format": "date-time"},
                "definition_hash": {"type": "string"}, "params": {"type": "object", "additionalProperties": {"type": "string"}}, "version": {"type": "integer"},
                "steps": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "kind": {"type": "string"}, "status": {"type": "string"}, "attempt": {"type": "integer"},
                    "instance": {"type": "object", "description": "Set on one instance of a step with `for_each`", "properties": {"of": {"type": "string", "description": "The step as written in the config"}, "key": {"type": "string", "description": "The file, relative to the workspace"}}}}}},
                "fan_outs": {"type": "array", "description": "Steps that run once per file, with their instances (absent when none)", "items": {"type": "object", "properties": {
                    "step": {"type": "string"}, "kind": {"type": "string"}, "instances": {"type": "array", "items": {"type": "string"}}, "statuses": {"type": "string"}}}},
                "waiting_gates": {"type": "array", "items": {"type": "string"}}}}}
        }
    })
}
