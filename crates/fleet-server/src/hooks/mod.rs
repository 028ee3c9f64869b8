//! Label triggers: `POST /hooks/github` and `POST /hooks/gitlab`.
//!
//! A delivery is authenticated first (GitHub: HMAC-SHA256 of the raw body;
//! GitLab: the secret token), then read; a label added to an issue or a
//! pull/merge request starts every genflow whose `trigger` names that label,
//! with the ticket as its `ticket_*` params. The run id is derived from
//! (provider, delivery id, genflow), so a repeated delivery finds the run
//! the first one started instead of starting another (the store refuses a
//! second run with one id), and no table of deliveries is needed.

pub(crate) mod github;
pub(crate) mod gitlab;
mod secrets;
mod start;
mod ticket;

pub use secrets::HookSecrets;
pub use start::run_id;
pub use ticket::{Ticket, ticket_link};

use crate::AppState;
use crate::views::Failure;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// Largest payload read. An issue or pull request event is tens of KB
/// (GitHub caps descriptions at 65,536 characters); the bound is what an
/// unauthenticated request can make the server read before the signature
/// is checked.
pub const MAX_BODY: usize = 1024 * 1024;

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
        Ok(event) => start::handle(&state, "github", delivery, event).await,
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
        Ok(event) => start::handle(&state, "gitlab", delivery, event).await,
        Err(r) => refuse("gitlab", delivery, r),
    }
}
