//! Label triggers: `POST /hooks/github` and `POST /hooks/gitlab`.
//!
//! A delivery is authenticated first (GitHub: HMAC-SHA256 of the raw body;
//! GitLab: the secret token), then read; a label added to an issue or a
//! pull/merge request starts every genflow whose `trigger` names that label,
//! with the ticket as its `ticket_*` params. The run id is derived from
//! (provider, delivery id, genflow), so a repeated delivery finds the run
//! the first one started instead of starting another (the store refuses a
//! second run with one id), and no table of deliveries is needed.

mod github;
mod gitlab;
mod ticket;

pub use ticket::{Ticket, ticket_link};

use crate::views::Failure;
use crate::{AppState, ServerError};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use fleet_core::config::{Genflow, ServerConfig, TICKET_PARAMS, Trigger};
use fleet_engine::EngineError;
use fleet_store::StoreError;
use hmac::Mac;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Largest payload read; GitHub caps its own at 25 MB, but an issue event
/// is a few KB and the ticket's body is all of it that a run keeps.
pub const MAX_BODY: usize = 1024 * 1024;

/// The hook secrets, read from the environment variables `server.github`
/// and `server.gitlab` name when the server starts. Never logged.
#[derive(Clone, Default)]
pub struct HookSecrets {
    github: Option<github::HmacSha256>,
    /// sha256 of the token (see `gitlab::verify`).
    gitlab: Option<[u8; 32]>,
}

impl std::fmt::Debug for HookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookSecrets")
            .field("github", &self.github.is_some())
            .field("gitlab", &self.gitlab.is_some())
            .finish()
    }
}

impl HookSecrets {
    /// The secrets the config names, looked up with `var` (the process
    /// environment in `fleet serve`). A named variable that is unset or
    /// empty is an error: the endpoint must never run without its secret.
    pub fn from_config(
        server: &ServerConfig,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<HookSecrets, ServerError> {
        let read = |setting: &str, name: &str| {
            var(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                ServerError::Config(format!(
                    "`{setting}` names the environment variable {name}, which is not set (or empty); \
                     set it to the webhook's secret, or remove `{setting}`"
                ))
            })
        };
        let mut secrets = HookSecrets::default();
        if let Some(g) = &server.github {
            secrets = secrets.with_github(&read("server.github.secret_env", &g.secret_env)?);
        }
        if let Some(g) = &server.gitlab {
            secrets = secrets.with_gitlab(&read("server.gitlab.token_env", &g.token_env)?);
        }
        Ok(secrets)
    }

    pub fn with_github(mut self, secret: &str) -> HookSecrets {
        // HMAC takes a key of any length.
        self.github = github::HmacSha256::new_from_slice(secret.as_bytes()).ok();
        self
    }

    pub fn with_gitlab(mut self, token: &str) -> HookSecrets {
        self.gitlab = Some(Sha256::digest(token.as_bytes()).into());
        self
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hooks/github", post(github_hook))
        .route("/hooks/gitlab", post(gitlab_hook))
}

/// What a delivery is about.
pub(crate) enum Event {
    Ping,
    Ignored(String),
    Labeled(Ticket),
}

/// Why a delivery is refused before anything starts.
pub(crate) enum Refused {
    Unauthorized(&'static str),
    BadRequest(String),
}

pub(crate) fn not_json(e: serde_json::Error) -> Refused {
    Refused::BadRequest(format!(
        "the payload is not the expected JSON ({e}); set the webhook's content type to application/json"
    ))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The delivery id as it may be logged: it arrives before anything is
/// verified, so only a short id-like text is printed.
fn loggable(id: Option<&str>) -> &str {
    match id {
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') =>
        {
            id
        }
        Some(_) => "(malformed id)",
        None => "(no id)",
    }
}

fn failure(status: StatusCode, message: impl Into<String>) -> Response {
    Failure::new(status, message).json().into_response()
}

fn refuse(provider: &str, delivery: Option<&str>, refused: Refused) -> Response {
    match refused {
        Refused::Unauthorized(why) => {
            // The delivery and the reason only: never the body or a secret.
            eprintln!(
                "hooks: {provider} delivery {} refused: {why}",
                loggable(delivery)
            );
            failure(StatusCode::UNAUTHORIZED, why)
        }
        Refused::BadRequest(why) => failure(StatusCode::BAD_REQUEST, why),
    }
}

/// The body, at most [`MAX_BODY`] bytes.
async fn read_body(body: Body) -> Result<axum::body::Bytes, Response> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        failure(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the payload is over {MAX_BODY} bytes (1 MiB) or could not be read"),
        )
    })
}

fn not_enabled(setting: &str) -> Response {
    failure(
        StatusCode::NOT_FOUND,
        format!(
            "this hook is not enabled: set `{setting}` in the config and the variable it names"
        ),
    )
}

async fn github_hook(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(keyed) = state.hooks.github.as_ref() else {
        return not_enabled("server.github.secret_env");
    };
    let delivery = header(&headers, "x-github-delivery");
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Err(r) = github::verify(keyed, header(&headers, "x-hub-signature-256"), &body) {
        return refuse("github", delivery, r);
    }
    let kind = header(&headers, "x-github-event").unwrap_or_default();
    match github::event(kind, &body) {
        Ok(event) => handle(&state, "github", delivery, event).await,
        Err(r) => refuse("github", delivery, r),
    }
}

async fn gitlab_hook(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(digest) = state.hooks.gitlab.as_ref() else {
        return not_enabled("server.gitlab.token_env");
    };
    // GitLab keeps `Idempotency-Key` across retries of one event (17.4+);
    // older versions send only `X-Gitlab-Event-UUID`.
    let delivery =
        header(&headers, "idempotency-key").or_else(|| header(&headers, "x-gitlab-event-uuid"));
    // The token is a header: checked before the body is read at all.
    if let Err(r) = gitlab::verify(digest, header(&headers, "x-gitlab-token")) {
        return refuse("gitlab", delivery, r);
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let kind = header(&headers, "x-gitlab-event").unwrap_or_default();
    match gitlab::event(kind, &body) {
        Ok(event) => handle(&state, "gitlab", delivery, event).await,
        Err(r) => refuse("gitlab", delivery, r),
    }
}

fn label_of<'t>(trigger: &'t Trigger, provider: &str) -> Option<&'t str> {
    let t = if provider == "github" {
        trigger.github.as_ref()
    } else {
        trigger.gitlab.as_ref()
    };
    t.map(|t| t.label.as_str())
}

/// The genflows a label this event added triggers.
fn triggered<'c>(flows: &'c [Genflow], provider: &str, ticket: &Ticket) -> Vec<&'c Genflow> {
    flows
        .iter()
        .filter(|g| {
            g.trigger
                .as_ref()
                .and_then(|t| label_of(t, provider))
                .is_some_and(|label| ticket.added.iter().any(|a| a == label))
        })
        .collect()
}

/// The run id for one (provider, delivery, genflow): a UUID (version 8,
/// from a sha256), the same for every repeat of the delivery.
pub fn run_id(provider: &str, delivery: &str, genflow: &str) -> String {
    let mut h = Sha256::new();
    for part in ["fleet hook run v1", provider, delivery, genflow] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

async fn handle(
    state: &AppState,
    provider: &'static str,
    delivery: Option<&str>,
    event: Event,
) -> Response {
    let ticket = match event {
        Event::Ping => return (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response(),
        Event::Ignored(why) => {
            return (StatusCode::OK, axum::Json(json!({"ignored": why}))).into_response();
        }
        Event::Labeled(t) => t,
    };
    let config = state.engine.config().clone();
    let flows = triggered(&config.genflows, provider, &ticket);
    if flows.is_empty() {
        let why = format!(
            "no genflow is triggered by the label{} {} on {provider}",
            if ticket.added.len() == 1 { "" } else { "s" },
            ticket
                .added
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return (StatusCode::OK, axum::Json(json!({"ignored": why}))).into_response();
    }
    let Some(delivery) = delivery.filter(|d| !d.trim().is_empty()) else {
        let header = if provider == "github" {
            "X-GitHub-Delivery"
        } else {
            "X-Gitlab-Event-UUID or Idempotency-Key"
        };
        return failure(
            StatusCode::BAD_REQUEST,
            format!("missing {header}: a run is started once per delivery id"),
        );
    };
    let mut runs = Vec::new();
    let mut refused = Vec::new();
    let mut started = false;
    for flow in flows {
        match start(state, provider, delivery, &ticket, flow).await {
            Ok((id, new)) => {
                started |= new;
                runs.push(json!({
                    "genflow": flow.name,
                    "id": id,
                    "status": if new { "started" } else { "existing" },
                }));
            }
            Err(e) => {
                let why = reason(&e);
                eprintln!(
                    "hooks: {provider} delivery {} for genflow {}: refused: {why}",
                    loggable(Some(delivery)),
                    flow.name
                );
                let param = match &e {
                    EngineError::Params(p) => p.param().map(str::to_owned),
                    _ => None,
                };
                refused.push(json!({"genflow": flow.name, "error": why, "param": param}));
            }
        }
    }
    let status = if !refused.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else if started {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut body = json!({"delivery": delivery, "runs": runs});
    if !refused.is_empty() {
        body["refused"] = Value::Array(refused);
    }
    (status, axum::Json(body)).into_response()
}

/// Why a run was refused, without the value a pattern refused (a ticket's
/// body can be a megabyte; the param's name says enough).
fn reason(e: &EngineError) -> String {
    match e {
        EngineError::Params(fleet_core::config::ParamError::Pattern { name, pattern, .. }) => {
            format!("the ticket's `{name}` does not match the parameter's pattern `{pattern}`")
        }
        other => other.to_string(),
    }
}

/// Starts `flow` for the ticket, or finds the run this delivery already
/// started: `(run id, whether it is new)`.
async fn start(
    state: &AppState,
    provider: &str,
    delivery: &str,
    ticket: &Ticket,
    flow: &Genflow,
) -> Result<(String, bool), EngineError> {
    let id = run_id(provider, delivery, &flow.name);
    match state.engine.store().get_run(&id).await {
        Ok(run) => return Ok((run.id, false)),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let params: BTreeMap<String, String> = ticket
        .params()
        .into_iter()
        .filter(|(name, _)| flow.params.iter().any(|p| p.name == *name))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    debug_assert!(params.keys().all(|k| TICKET_PARAMS.contains(&k.as_str())));
    match state
        .engine
        .start_run_with_params(&flow.name, Some(ticket.triggered_by()), &params, id.clone())
        .await
    {
        Ok(run) => {
            state.kick(&run.id);
            eprintln!(
                "hooks: {provider} delivery {} started run {} of {}",
                loggable(Some(delivery)),
                run.id,
                flow.name
            );
            Ok((run.id, true))
        }
        // The same delivery, at the same moment, on another request.
        Err(EngineError::Store(StoreError::AlreadyExists(_))) => Ok((id, false)),
        Err(e) => Err(e),
    }
}
