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

mod artifact;
mod attestation;
mod dashboard;
mod gate;
mod genflow;
mod login;
mod revision;
mod run;

use artifact::*;
use dashboard::*;
use gate::*;
use login::*;
use run::*;

pub(crate) use dashboard::RunsQuery;
pub(crate) use gate::{GatePage, verify_link};

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
        .route(
            "/runs/{id}/gates/{step}/revision",
            get(revision::gate_revision),
        )
        .route(
            "/runs/{id}/attestations/{gate}",
            get(attestation::attestation_envelope),
        )
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
