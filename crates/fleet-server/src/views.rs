//! Shared helpers for pages and the API: failures mapped to HTTP statuses,
//! formatting, URL building, and loading what a gate shows.

use crate::cache::Lru;
pub use crate::diff::DiffView;
use crate::markdown;
use askama::Template;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use fleet_core::flags::FlagSet;
use fleet_core::run::{Refusal, StepStatus};
use fleet_engine::EngineError;
use fleet_store::{ArtifactRef, DecisionRecord, RunRecord, Store, StoreError};
use jiff::Timestamp;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A request that could not be served: the status and a sentence a person
/// can act on. Renders as an HTML page, or as `{"error": ...}` for the API
/// (with `"param"` when a run parameter was refused).
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    pub message: String,
    pub json: bool,
    /// The run parameter a refusal is about, for clients to point at it.
    pub param: Option<String>,
}

impl Failure {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            json: false,
            param: None,
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
            EngineError::Params(_) => StatusCode::UNPROCESSABLE_ENTITY,
            EngineError::StaleRevision { .. } => StatusCode::CONFLICT,
            EngineError::Contended { .. } => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::Store(_)
            | EngineError::Io { .. }
            | EngineError::FanOut { .. }
            | EngineError::Signing(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let param = match &e {
            EngineError::Params(p) => p.param().map(str::to_owned),
            _ => None,
        };
        if let EngineError::Store(s) = e {
            return Failure::from_store(s);
        }
        Failure {
            param,
            ..Failure::new(status, e.to_string())
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Failure {
        Failure::new(StatusCode::NOT_FOUND, format!("{what} not found"))
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        if self.json {
            return (
                self.status,
                Json(ErrorBody {
                    error: &self.message,
                    status: self.status.as_u16(),
                    param: self.param.as_deref(),
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

/// What the decision page shows for one gate at one version of its run.
/// Everything here follows from the run at that version, its artifacts and
/// its decisions; every commit that adds an artifact or a decision bumps the
/// version (one transaction), so a view is reused only while the run's
/// freshly read version still matches.
pub struct GateView {
    pub version: i64,
    /// The run's full id.
    pub run_id: String,
    pub genflow: String,
    pub step: String,
    pub question: String,
    pub approvers: String,
    pub required: u32,
    /// The gate's status at this version.
    pub status: StepStatus,
    pub flags: Vec<FlagView>,
    /// The redraft loops of the reviews upstream (`on_flag`), first on the page.
    pub rounds: Vec<crate::rounds::RoundsView>,
    /// The review steps the flags come from, comma separated.
    pub flag_sources: String,
    /// The revisions shown, as the JSON `[[path, sha256], ...]` the form
    /// posts back (JSON, not lines: a hidden input may not keep newlines).
    pub shown_field: String,
    /// The parts of the page that are the same for whoever holds a link,
    /// rendered once per version: the documents, and (after the form and
    /// the flags, which carry the approver's token) the decisions so far,
    /// the revisions shown and the end of the page.
    pub documents: String,
    pub end: String,
    /// 1 + a store change stamp read before this view was last confirmed
    /// current (0: none): while the store's stamp still equals it, nothing
    /// was committed since, and the version need not be read.
    confirmed_at: AtomicU64,
}

impl GateView {
    /// Whether nothing was committed since this view was last confirmed
    /// current, by `stamp`.
    pub(crate) fn confirmed_at(&self, stamp: Option<u64>) -> bool {
        stamp.is_some_and(|s| self.confirmed_at.load(Ordering::Relaxed) == s.wrapping_add(1))
    }

    pub(crate) fn confirm(&self, stamp: Option<u64>) {
        if let Some(s) = stamp {
            self.confirmed_at
                .store(s.wrapping_add(1), Ordering::Relaxed);
        }
    }
}

impl GateView {
    /// Roughly the memory the view holds (compressed copies included).
    fn weight(&self) -> usize {
        let flags: usize = self
            .flags
            .iter()
            .map(|f| {
                128 + f.claim.len()
                    + f.evidence
                        .iter()
                        .map(|e| 64 + e.label.len() + e.quote.len() + e.path_q.len())
                        .sum::<usize>()
            })
            .sum();
        let rounds: usize = self.rounds.iter().map(|r| r.weight()).sum();
        1024 + self.documents.len() + self.end.len() + flags + rounds + self.shown_field.len()
    }
}

/// The documents of the decision page.
#[derive(Template)]
#[template(path = "gate_documents.html")]
struct GateDocuments<'a> {
    docs: &'a [DocView],
    /// What the upstream steps were asked to read and did not, first on the
    /// page: findings built on nothing must not look like a clean bill.
    gaps: &'a [String],
}

/// The decision page after the flags: decisions so far, revisions shown.
#[derive(Template)]
#[template(path = "gate_end.html")]
struct GateEnd<'a> {
    docs: &'a [DocView],
    decisions: &'a [DecisionView],
}

/// Renders into one buffer sized up front for the template's own text plus
/// `extra` bytes of content (documents), so the page is not regrown.
pub(crate) fn render_part<T: Template>(t: &T, extra: usize) -> Result<String, Failure> {
    let mut html = String::with_capacity(T::SIZE_HINT + extra);
    t.render_into(&mut html).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("page could not be rendered: {e}"),
        )
    })?;
    Ok(html)
}

/// Parses the form's `shown` field back into (path, sha256) pairs.
pub fn parse_shown(field: &str) -> Option<Vec<(String, String)>> {
    serde_json::from_str(field).ok()
}

/// The view of gate `step` of run `run_id`. A cached view is served while
/// nothing was committed since it was last confirmed (the store's change
/// stamp), or else while the run's version, read fresh, still matches;
/// otherwise the run, documents, flags and decisions are read and the view
/// built again.
pub async fn load_gate(
    store: &dyn Store,
    cache: &ViewCache,
    run_id: &str,
    step: &str,
) -> Result<Arc<GateView>, Failure> {
    // Read before anything else: whatever is read after it is at least as new.
    let stamp = store.change_stamp().await.map_err(Failure::from_store)?;
    load_gate_at(store, cache, run_id, step, stamp).await
}

/// `load_gate` with the store's change stamp already read (before anything
/// the caller read).
pub async fn load_gate_at(
    store: &dyn Store,
    cache: &ViewCache,
    run_id: &str,
    step: &str,
    stamp: Option<u64>,
) -> Result<Arc<GateView>, Failure> {
    // A run id (a UUID) has no newline, so the key splits one way only.
    let key = format!("{run_id}\n{step}");
    // Only under the full id: a prefix is resolved by `get_run` below.
    if let Some(view) = cache.gates.get(&key).filter(|v| v.run_id == run_id) {
        if view.confirmed_at(stamp) {
            return Ok(view);
        }
        match store.run_version(run_id).await {
            Ok(version) if version == view.version => {
                view.confirm(stamp);
                return Ok(view);
            }
            // Changed, or gone (then `get_run` says so).
            Ok(_) | Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(Failure::from_store(e)),
        }
    }
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
    let view = Arc::new(gate_view(store, cache, &run, gate).await?);
    view.confirm(stamp);
    let version = view.version;
    cache
        .gates
        .insert_unless(&key, view.clone(), view.weight(), |old| {
            old.version > version
        });
    Ok(view)
}

async fn gate_view(
    store: &dyn Store,
    cache: &ViewCache,
    run: &RunRecord,
    gate: usize,
) -> Result<GateView, Failure> {
    let def = &run.definition.steps[gate];
    let refs = store
        .artifacts(&run.id)
        .await
        .map_err(Failure::from_store)?;
    let shown = fleet_engine::shown_revisions(run, gate, &refs);
    let mut docs = Vec::with_capacity(shown.len());
    let mut flags = Vec::new();
    let mut flag_sources: Vec<&str> = Vec::new();
    for (i, r) in shown.iter().enumerate() {
        let is_flags = r.path.ends_with(".flags.json");
        if is_flags {
            let set = cache.flags(store, r).await?;
            flags.extend(set.iter().cloned());
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
    for f in &flags {
        if flag_sources.last() != Some(&f.step.as_str()) {
            flag_sources.push(&f.step);
        }
    }
    let flag_sources = flag_sources.join(", ");
    let decisions: Vec<DecisionView> = store
        .decisions(&run.id)
        .await
        .map_err(Failure::from_store)?
        .iter()
        .filter(|d| d.step == def.name)
        .map(DecisionView::from_record)
        .collect();
    let pairs: Vec<(&str, &str)> = shown
        .iter()
        .map(|r| (r.path.as_str(), r.sha256.as_str()))
        .collect();
    let shown_field = serde_json::to_string(&pairs).unwrap_or_default();
    let gaps = not_read(store, run, gate).await?;
    let rounds = crate::rounds::rounds_views(store, cache, run, gate, &refs).await?;
    let html_len: usize = docs.iter().map(|d| 256 + d.html.len()).sum();
    let documents = render_part(
        &GateDocuments {
            docs: &docs,
            gaps: &gaps,
        },
        html_len + gaps.iter().map(|g| 64 + g.len()).sum::<usize>(),
    )?;
    let end = render_part(
        &GateEnd {
            docs: &docs,
            decisions: &decisions,
        },
        256 * (docs.len() + decisions.len()),
    )?;
    Ok(GateView {
        version: run.version,
        run_id: run.id.clone(),
        genflow: run.genflow_name.clone(),
        step: def.name.clone(),
        question: def.question.clone().unwrap_or_default(),
        approvers: def.approvers.join(", "),
        required: def.required,
        status: run.state.steps[gate].status,
        flags,
        rounds,
        flag_sources,
        shown_field,
        documents,
        end,
        confirmed_at: AtomicU64::new(0),
    })
}

/// One line per corpus gap of the report and review steps upstream of the
/// gate (see `fleet_engine::recorded_gaps`).
async fn not_read(store: &dyn Store, run: &RunRecord, gate: usize) -> Result<Vec<String>, Failure> {
    let deps = run.definition.dependency_indices();
    let mut upstream: Vec<usize> = fleet_core::dag::ancestors(&deps, gate)
        .into_iter()
        .filter(|&u| run.definition.steps[u].kind.uses_model())
        .collect();
    if upstream.is_empty() {
        return Ok(Vec::new());
    }
    upstream.sort_unstable();
    let records = store
        .step_runs(&run.id)
        .await
        .map_err(Failure::from_store)?;
    Ok(fleet_engine::recorded_gaps(run, &upstream, &records)
        .into_iter()
        .map(|(step, gap)| format!("step `{step}`: {}", gap.describe()))
        .collect())
}

// Budgets in bytes: bounds memory, not correctness.
const HTML_BUDGET: usize = 32 << 20;
const FLAGS_BUDGET: usize = 8 << 20;
const DIFF_BUDGET: usize = 16 << 20;
const GATE_BUDGET: usize = 16 << 20;
const SUMMARY_BUDGET: usize = 8 << 20;
const LISTING_BUDGET: usize = 8 << 20;
const GATE_PAGES_BUDGET: usize = 32 << 20;

/// What the pages can reuse between requests, each keyed so that an entry
/// cannot go stale: rendered documents and parsed flags by sha256 (artifacts
/// are content-addressed), diffs by the pair of hashes, gate views and run
/// summaries by run version. Rendering markdown and sanitizing it is the expensive part
/// of a document page; the store round trips are that of the decision page.
pub struct ViewCache {
    html: Lru<Arc<str>>,
    flags: Lru<Arc<Vec<FlagView>>>,
    diffs: Lru<Arc<DiffView>>,
    gates: Lru<Arc<GateView>>,
    /// Run summaries of the JSON API, by run id (checked against the version).
    pub(crate) summaries: Lru<Arc<crate::api::SummaryJson>>,
    /// Decision pages as a GET answers them, by run, gate, link, form
    /// nonce and notice (checked against the gate's version).
    pub(crate) gate_pages: Lru<Arc<crate::pages::GatePage>>,
    /// Run listings of the JSON API, by filter (checked against the ids and
    /// versions the store lists).
    pub(crate) listings: Lru<Arc<crate::api::Listing>>,
}

impl Default for ViewCache {
    fn default() -> ViewCache {
        ViewCache {
            html: Lru::new(HTML_BUDGET),
            flags: Lru::new(FLAGS_BUDGET),
            diffs: Lru::new(DIFF_BUDGET),
            gates: Lru::new(GATE_BUDGET),
            summaries: Lru::new(SUMMARY_BUDGET),
            gate_pages: Lru::new(GATE_PAGES_BUDGET),
            listings: Lru::new(LISTING_BUDGET),
        }
    }
}

async fn bytes_of(store: &dyn Store, sha256: &str) -> Result<Vec<u8>, Failure> {
    Ok(store
        .artifact_bytes(sha256)
        .await
        .map_err(Failure::from_store)?
        .unwrap_or_default())
}

/// How [`document_html`] treats a path: the cache key includes it, since
/// the same bytes render differently as markdown, JSON or text.
fn doc_kind(path: &str) -> &'static str {
    if path.ends_with(".md") || path.ends_with(".markdown") {
        "md"
    } else if path.ends_with(".json") {
        "json"
    } else {
        "text"
    }
}

impl ViewCache {
    /// [`document_html`] of the stored bytes, rendered once per (kind, sha256).
    pub async fn html(
        &self,
        store: &dyn Store,
        path: &str,
        sha256: &str,
    ) -> Result<Arc<str>, Failure> {
        let key = format!("{}:{sha256}", doc_kind(path));
        if let Some(hit) = self.html.get(&key) {
            return Ok(hit);
        }
        let bytes = bytes_of(store, sha256).await?;
        let html: Arc<str> = Arc::from(document_html(path, &bytes));
        self.html
            .insert(&key, html.clone(), 64 + key.len() + html.len());
        Ok(html)
    }

    /// The flags of a review's sidecar, high severity first.
    pub async fn flags(
        &self,
        store: &dyn Store,
        r: &ArtifactRef,
    ) -> Result<Arc<Vec<FlagView>>, Failure> {
        if let Some(hit) = self.flags.get(&r.sha256) {
            return Ok(hit);
        }
        let bytes = bytes_of(store, &r.sha256).await?;
        let views = Arc::new(flag_views(&bytes));
        // The parsed form is about as large as the JSON it came from.
        self.flags
            .insert(&r.sha256, views.clone(), 256 + 2 * bytes.len());
        Ok(views)
    }

    /// The line diff from one stored revision to another, by their hashes:
    /// every line, or (`context: Some(n)`) unified with `n` lines of context.
    pub async fn diff(
        &self,
        store: &dyn Store,
        from_sha: &str,
        to_sha: &str,
        context: Option<usize>,
    ) -> Result<Arc<DiffView>, Failure> {
        let key = match context {
            None => format!("{from_sha}..{to_sha}"),
            Some(n) => format!("u{n}:{from_sha}..{to_sha}"),
        };
        if let Some(hit) = self.diffs.get(&key) {
            return Ok(hit);
        }
        let old = bytes_of(store, from_sha).await?;
        let new = bytes_of(store, to_sha).await?;
        let (old, new) = (String::from_utf8_lossy(&old), String::from_utf8_lossy(&new));
        let view = Arc::new(match context {
            None => DiffView::new(&old, &new),
            Some(n) => DiffView::unified(&old, &new, n),
        });
        self.diffs.insert(&key, view.clone(), view.weight());
        Ok(view)
    }
}

/// The flags of a review's sidecar JSON, high severity first. A sidecar that
/// does not parse shows no flags; the document itself is still listed with
/// its hash, and the review's markdown is shown.
fn flag_views(bytes: &[u8]) -> Vec<FlagView> {
    let set: FlagSet = serde_json::from_slice(bytes).unwrap_or_default();
    let mut sorted = set.flags;
    sorted.sort_by_key(|f| f.severity);
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
        .collect()
}
