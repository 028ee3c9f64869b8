//! Shared helpers for pages and the API: failures mapped to HTTP statuses,
//! formatting, URL building, and loading what a gate shows.

use crate::markdown;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use fleet_core::flags::FlagSet;
use fleet_core::run::{Refusal, StepStatus};
use fleet_engine::EngineError;
use fleet_store::{ArtifactRef, DecisionRecord, RunRecord, Store, StoreError};
use jiff::Timestamp;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A request that could not be served: the status and a sentence a person
/// can act on. Renders as an HTML page, or as `{"error": ...}` for the API.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    pub json: bool,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            json: false,
        }
    }

    pub fn json(mut self) -> Failure {
        self.json = true;
        self
    }

    pub fn from_store(e: StoreError) -> Failure {
        let status = match &e {
            StoreError::NotFound(_) => StatusCode::NOT_FOUND,
            StoreError::AmbiguousId(_) | StoreError::Invalid(_) => StatusCode::BAD_REQUEST,
            StoreError::DuplicateDecision { .. } | StoreError::Conflict { .. } => {
                StatusCode::CONFLICT
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(status, e.to_string())
    }

    pub fn from_engine(e: EngineError) -> Failure {
        let status = match &e {
            EngineError::UnknownGenflow { .. } | EngineError::Usage { .. } => StatusCode::NOT_FOUND,
            EngineError::Refused(r) => match r {
                Refusal::NotAnApprover { .. } | Refusal::SelfApproval { .. } => {
                    StatusCode::FORBIDDEN
                }
                Refusal::ReasonRequired => StatusCode::UNPROCESSABLE_ENTITY,
                Refusal::NotAGate { .. } => StatusCode::NOT_FOUND,
                _ => StatusCode::CONFLICT,
            },
            EngineError::StaleRevision { .. } => StatusCode::CONFLICT,
            EngineError::Contended { .. } => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Store(_) | EngineError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let EngineError::Store(s) = e {
            return Failure::from_store(s);
        }
        Failure::new(status, e.to_string())
    }

    pub fn not_found(what: impl std::fmt::Display) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    status: u16,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.json {
            return (
                self.status,
                Json(ErrorBody {
                    error: &self.message,
                    status: self.status.as_u16(),
                }),
            )
                .into_response();
        }
        let page = crate::pages::error_page(self.status, &self.message);
        (self.status, Html(page)).into_response()
    }
}

pub fn fmt_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn fmt_ms(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{}m {:02}s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// Percent-encodes one URL path segment (or a query value).
pub fn url_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path of segments joined by `/`, each encoded.
pub fn url_path(path: &str) -> String {
    path.split('/')
        .map(url_segment)
        .collect::<Vec<_>>()
        .join("/")
}

pub fn artifact_href(run: &str, path: &str, revision: Option<u32>) -> String {
    let base = format!("/runs/{}/artifacts/{}", url_segment(run), url_path(path));
    match revision {
        Some(r) => format!("{base}?rev={r}"),
        None => base,
    }
}

/// One document as a page shows it.
pub struct DocView {
    pub path: String,
    pub step: String,
    pub revision: u32,
    pub sha256: String,
    pub anchor: String,
    /// Sanitized HTML (markdown) or escaped text.
    pub html: Arc<str>,
    pub is_flags: bool,
}

#[derive(Clone)]
pub struct EvidenceView {
    pub label: String,
    pub quote: String,
    /// The cited path, URL-encoded for the source view's query.
    pub path_q: String,
    pub line: u64,
}

#[derive(Clone)]
pub struct FlagView {
    pub id: String,
    pub severity: &'static str,
    pub claim: String,
    pub evidence: Vec<EvidenceView>,
    /// Which review raised it.
    pub step: String,
}

pub struct DecisionView {
    pub approver: String,
    pub verdict: &'static str,
    pub reason: String,
    pub at: String,
    pub channel: String,
    pub round: u32,
    pub is_final: bool,
}

impl DecisionView {
    pub fn from_record(d: &DecisionRecord) -> DecisionView {
        DecisionView {
            approver: d.approver.clone(),
            verdict: match d.verdict {
                fleet_core::run::Verdict::Go => "Go",
                fleet_core::run::Verdict::NoGo => "No-go",
            },
            reason: d.reason.clone().unwrap_or_default(),
            at: fmt_time(d.decided_at),
            channel: d.channel.clone(),
            round: d.gate_round,
            is_final: d.is_final,
        }
    }
}

/// Escaped text in a `<pre>`.
pub fn pre(text: &str) -> String {
    format!(
        "<pre class=\"doc-text\">{}</pre>",
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    )
}

/// HTML for a stored document: markdown rendered and sanitized, anything
/// else as escaped text.
pub fn document_html(path: &str, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if path.ends_with(".md") || path.ends_with(".markdown") {
        markdown::render(&text)
    } else if path.ends_with(".json") {
        match serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
        {
            Some(pretty) => pre(&pretty),
            None => pre(&text),
        }
    } else {
        pre(&text)
    }
}

/// What the decision page shows for one gate.
pub struct GateData {
    pub run: RunRecord,
    pub gate: usize,
    pub shown: Vec<ArtifactRef>,
    pub docs: Vec<DocView>,
    pub flags: Vec<FlagView>,
    pub decisions: Vec<DecisionView>,
}

impl GateData {
    pub fn status(&self) -> StepStatus {
        self.run.state.steps[self.gate].status
    }

    /// The revisions shown, as the JSON `[[path, sha256], ...]` the form
    /// posts back (JSON, not lines: a hidden input may not keep newlines).
    pub fn shown_field(&self) -> String {
        let pairs: Vec<(&str, &str)> = self
            .shown
            .iter()
            .map(|r| (r.path.as_str(), r.sha256.as_str()))
            .collect();
        serde_json::to_string(&pairs).unwrap_or_default()
    }
}

/// Parses the form's `shown` field back into (path, sha256) pairs.
pub fn parse_shown(field: &str) -> Option<Vec<(String, String)>> {
    serde_json::from_str(field).ok()
}

pub async fn load_gate(
    store: &dyn Store,
    cache: &DocCache,
    run_id: &str,
    step: &str,
) -> Result<GateData, Failure> {
    let run = store.get_run(run_id).await.map_err(Failure::from_store)?;
    let Some(gate) = run.definition.step_index(step) else {
        return Err(Failure::not_found(format!(
            "gate `{step}` of run {}",
            run.id
        )));
    };
    if run.definition.steps[gate].kind != fleet_core::config::StepKind::Approval {
        return Err(Failure::not_found(format!(
            "`{step}` is not an approval gate; gate"
        )));
    }
    let refs = store
        .artifacts(&run.id)
        .await
        .map_err(Failure::from_store)?;
    let shown = fleet_engine::shown_revisions(&run, gate, &refs);
    let mut docs = Vec::new();
    let mut flags = Vec::new();
    for (i, r) in shown.iter().enumerate() {
        let is_flags = r.path.ends_with(".flags.json");
        if is_flags {
            flags.extend(cache.flags(store, r).await?.iter().cloned());
        }
        docs.push(DocView {
            path: r.path.clone(),
            step: r.step.clone(),
            revision: r.revision,
            sha256: r.sha256.clone(),
            anchor: format!("doc-{i}"),
            html: if is_flags {
                Arc::from("")
            } else {
                cache.html(store, &r.path, &r.sha256).await?
            },
            is_flags,
        });
    }
    let decisions = store
        .decisions(&run.id)
        .await
        .map_err(Failure::from_store)?
        .iter()
        .filter(|d| d.step == step)
        .map(DecisionView::from_record)
        .collect();
    Ok(GateData {
        run,
        gate,
        shown,
        docs,
        flags,
        decisions,
    })
}

/// Entries kept before the cache starts over (documents are small; this
/// bounds memory, not correctness).
const CACHE_ENTRIES: usize = 512;

/// Rendered documents and parsed flags by sha256. Artifacts are
/// content-addressed, so an entry can never go stale; rendering (markdown
/// plus sanitizing) is the expensive part of the decision page.
#[derive(Default)]
pub struct DocCache {
    html: Mutex<HashMap<String, Arc<str>>>,
    flags: Mutex<HashMap<String, Arc<Vec<FlagView>>>>,
}

fn bounded_insert<V>(map: &Mutex<HashMap<String, V>>, key: String, value: V) {
    // A poisoned lock only means another request panicked mid-insert; the
    // map is still a valid cache.
    let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
    if m.len() >= CACHE_ENTRIES {
        m.clear();
    }
    m.insert(key, value);
}

async fn bytes_of(store: &dyn Store, sha256: &str) -> Result<Vec<u8>, Failure> {
    Ok(store
        .artifact_bytes(sha256)
        .await
        .map_err(Failure::from_store)?
        .unwrap_or_default())
}

impl DocCache {
    /// [`document_html`] of the stored bytes, rendered once per (kind, sha256).
    pub async fn html(
        &self,
        store: &dyn Store,
        path: &str,
        sha256: &str,
    ) -> Result<Arc<str>, Failure> {
        let kind = if path.ends_with(".md") || path.ends_with(".markdown") {
            "md"
        } else if path.ends_with(".json") {
            "json"
        } else {
            "text"
        };
        let key = format!("{kind}:{sha256}");
        if let Some(hit) = self
            .html
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        let bytes = bytes_of(store, sha256).await?;
        let html: Arc<str> = Arc::from(document_html(path, &bytes));
        bounded_insert(&self.html, key, html.clone());
        Ok(html)
    }

    /// The flags of a review's sidecar, high severity first.
    pub async fn flags(
        &self,
        store: &dyn Store,
        r: &ArtifactRef,
    ) -> Result<Arc<Vec<FlagView>>, Failure> {
        if let Some(hit) = self
            .flags
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&r.sha256)
        {
            return Ok(hit.clone());
        }
        let bytes = bytes_of(store, &r.sha256).await?;
        // A sidecar that does not parse shows no flags; the document itself
        // is still listed with its hash, and the review's markdown is shown.
        let set: FlagSet = serde_json::from_slice(&bytes).unwrap_or_default();
        let mut sorted = set.flags;
        sorted.sort_by_key(|f| f.severity);
        let views: Arc<Vec<FlagView>> = Arc::new(
            sorted
                .into_iter()
                .map(|f| FlagView {
                    id: f.id,
                    severity: f.severity.as_str(),
                    claim: f.claim,
                    evidence: f
                        .evidence
                        .into_iter()
                        .map(|c| EvidenceView {
                            label: format!("{}:{}", c.path, c.line),
                            path_q: url_segment(&c.path),
                            line: c.line,
                            quote: c.quote,
                        })
                        .collect(),
                    step: set.step.clone(),
                })
                .collect(),
        );
        bounded_insert(&self.flags, r.sha256.clone(), views.clone());
        Ok(views)
    }
}
