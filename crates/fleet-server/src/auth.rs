//! Operator access: `Authorization: Bearer <FLEET_API_TOKEN>`, or the session
//! cookie the login form sets, unless the server runs `--insecure-local`.

use crate::AppState;
use crate::views::Failure;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};

pub const SESSION_COOKIE: &str = "fleet_session";
pub const CSRF_COOKIE: &str = "fleet_csrf";

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn is_operator(state: &AppState, headers: &HeaderMap) -> bool {
    if state.auth.open {
        return true;
    }
    let Some(api_token) = state.auth.api_token.as_deref() else {
        return false;
    };
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return state.is_api_token(bearer.trim());
    }
    cookie(headers, SESSION_COOKIE)
        .is_some_and(|c| state.signer.verify_operator_session(api_token, c))
}

/// A cookie-authenticated form post from another site is refused (the
/// SameSite=Strict cookie already stops most; this covers old browsers).
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site")
}

pub async fn require_operator(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let api = request.uri().path().starts_with("/api/") || request.uri().path() == "/metrics";
    if is_operator(&state, headers) {
        if request.method() != axum::http::Method::GET && cross_site(headers) {
            return Failure::new(StatusCode::FORBIDDEN, "cross-site request refused")
                .into_response();
        }
        return next.run(request).await;
    }
    if api {
        let mut r = Failure::new(
            StatusCode::UNAUTHORIZED,
            "operator authentication required: send `Authorization: Bearer <FLEET_API_TOKEN>`",
        )
        .json()
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let next_path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    Redirect::to(&format!(
        "/login?next={}",
        crate::views::url_segment(&next_path)
    ))
    .into_response()
}

/// Only local paths, so the login form cannot be used as an open redirect.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}
