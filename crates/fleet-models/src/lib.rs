//! Model providers: what turns a step's prompt, corpus and upstream documents
//! into a document (reports) or a document plus flags (reviews).
//!
//! - [`Model`] is the one trait every provider implements; the engine only
//!   sees `&dyn Model`.
//! - [`Builtin`] is the default: an offline, deterministic, rule-based analyst
//!   that needs no network or key and says so in every document it writes.
//! - [`check_citations`] verifies `path:line` references in any document, so
//!   LLM providers hold their output to the same standard as the builtin.
//! - [`from_config`] builds any configured model: `openai` (any
//!   OpenAI-compatible server), `anthropic`, `command` (an agent CLI), with
//!   retries, a concurrency limit, cost accounting and a response cache.

mod builtin;
mod citations;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod providers;
mod text;

pub use builtin::Builtin;
pub use citations::{check_citations, check_citations_in, cited_paths};
pub use providers::{ProviderOptions, RetryPolicy, from_config};

use fleet_core::config::StepKind;
use fleet_core::flags::FlagSet;
use fleet_corpus::Corpus;
use serde::{Deserialize, Serialize};

/// A boxed, sendable future: what [`Model::complete`] returns, so the trait
/// stays object safe without an async-trait dependency.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A document written by an upstream step that this step reads.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamDoc {
    /// The upstream step's name.
    pub step: String,
    pub kind: StepKind,
    /// The step's `out`, e.g. `readiness.md`; citations into this document use this path.
    pub path: String,
    pub text: String,
    /// The flags an upstream review raised, if it is a review.
    pub flags: Option<FlagSet>,
}

/// Everything a model gets for one report or review step.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    pub genflow: String,
    pub step: String,
    /// [`StepKind::Report`] or [`StepKind::Review`].
    pub kind: StepKind,
    /// The step's prompt (`""` if none).
    pub prompt: String,
    /// What the step read; for a review, the same corpus the report read.
    pub corpus: Corpus,
    pub upstream: Vec<UpstreamDoc>,
    /// When a report is redrafted after a review: the review's flags.
    pub feedback: Option<FlagSet>,
    /// What is left of the run's `budget`, if the genflow has one: a
    /// provider fails the step rather than make a call that could exceed it.
    pub budget: Option<fleet_core::config::Budget>,
    /// The release being gated (e.g. `4.2.0`), when the config names one: the
    /// release-notes section a report summarises. `None`: the `Unreleased`
    /// section of a changelog if it has one, else its newest release.
    pub release: Option<String>,
}

/// Tokens and money one completion cost.
#[derive(Default, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `None` when the price is unknown (or there is none, as for `builtin`).
    pub cost_usd: Option<f64>,
    /// How long the model call took; `None` when no call was made (builtin, cache hit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
}

/// What a model produced for one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The markdown document (the step's `out`).
    pub text: String,
    /// `Some` for reviews: written by the engine as the JSON sidecar.
    pub flags: Option<FlagSet>,
    pub usage: Usage,
    /// Which model wrote it, e.g. `builtin`.
    pub model: String,
    /// Served from the response cache.
    pub cached: bool,
}

#[derive(thiserror::Error, Debug)]
#[non_exhaustive]
pub enum ModelError {
    /// Only report and review steps call a model.
    #[error(
        "model `{model}` cannot run a `{kind}` step (only report and review steps use a model)"
    )]
    UnsupportedKind { model: String, kind: StepKind },
    /// A model config that cannot work (an empty `command`, an invalid header).
    #[error("{0}")]
    Config(String),
    #[error(
        "the environment variable `{var}` named by `api_key_env` is not set; export it with the API key"
    )]
    MissingApiKey { var: String },
    /// The server refused or failed; `message` is what it said.
    #[error("{url} answered HTTP {status}{}: {message}", after(*.attempts))]
    Http {
        url: String,
        status: u16,
        message: String,
        attempts: u32,
    },
    #[error("could not reach {url}{}: {message}", after(*.attempts))]
    Connection {
        url: String,
        message: String,
        attempts: u32,
    },
    #[error("no answer from {url} within {}s (the model's `timeout`)", .after.as_secs_f64())]
    Timeout {
        url: String,
        after: std::time::Duration,
    },
    /// A success status with a body that is not the API's response.
    #[error("{url} sent a response Fleet cannot read: {message}")]
    BadResponse { url: String, message: String },
    /// The `command` provider's agent failed; `message` quotes its stderr.
    #[error("agent `{program}` {message}")]
    Agent { program: String, message: String },
    #[error("over budget: {0}")]
    Budget(String),
    #[error("the prompt does not fit the model's context window: {0}")]
    ContextTooSmall(String),
}

fn after(attempts: u32) -> String {
    match attempts {
        0 | 1 => String::new(),
        n => format!(" after {n} attempts"),
    }
}

/// A provider that completes report and review steps.
pub trait Model: Send + Sync {
    /// The model's name as recorded on the step, e.g. `builtin`.
    fn name(&self) -> &str;

    fn complete<'a>(
        &'a self,
        req: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<Completion, ModelError>>;
}
