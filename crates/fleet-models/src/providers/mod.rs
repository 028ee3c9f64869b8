//! The LLM providers behind [`Model`]: `openai` (any OpenAI-compatible Chat
//! Completions server), `anthropic` (Messages API) and `command` (an agent
//! CLI). They share one pipeline:
//!
//! prompt (system prompt per kind + packed, line-numbered corpus) -> cache
//! lookup -> budget check -> concurrency permit -> call (retries inside) ->
//! cache write -> flags / citation check -> [`Completion`] with usage and cost.

mod agent;
mod cache;
mod http;
mod prompt;
mod retry;
mod review_flags;
#[cfg(feature = "fuzzing")]
pub(crate) use review_flags::parse_flags;
mod wire;

pub use retry::RetryPolicy;

use crate::{BoxFuture, Builtin, Completion, Model, ModelError, ModelRequest, Usage};
use fleet_core::config::{Budget, ModelConfig, Prices, Provider, StepKind};
use fleet_corpus::Tokenizer;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
const OPENAI_KEY_ENV: &str = "OPENAI_API_KEY";
const ANTHROPIC_KEY_ENV: &str = "ANTHROPIC_API_KEY";
/// One request (or one agent run) when the config sets no `timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
/// Parallel calls to one model when the config sets no `concurrency`.
const DEFAULT_CONCURRENCY: u32 = 4;

/// How providers are set up for one engine.
#[derive(Debug, Clone, Default)]
pub struct ProviderOptions {
    /// Where responses are cached (`<state_dir>/cache/models/`); `None` turns the cache off.
    pub cache_dir: Option<PathBuf>,
    /// Do not read the cache (`fleet run --no-cache`); answers are still written to it.
    pub no_cache: bool,
    /// The directory agent CLIs run in (the workspace root).
    pub work_dir: Option<PathBuf>,
    pub retry: RetryPolicy,
}

/// The model named `name` in the config, ready to call. Fails only on a
/// config that cannot work (e.g. an empty `command`, an invalid header);
/// a missing API key is reported when a step calls the model, naming the
/// variable.
pub fn from_config(
    name: &str,
    config: &ModelConfig,
    options: &ProviderOptions,
) -> Result<Arc<dyn Model>, ModelError> {
    let timeout = config.timeout.map_or(DEFAULT_TIMEOUT, |t| t.as_std());
    let backend = match config.provider {
        Provider::Builtin => return Ok(Arc::new(Builtin)),
        Provider::Openai | Provider::Anthropic => {
            let (api, default_base, default_key) = if config.provider == Provider::Openai {
                (wire::Api::OpenAi, OPENAI_BASE_URL, OPENAI_KEY_ENV)
            } else {
                (wire::Api::Anthropic, ANTHROPIC_BASE_URL, ANTHROPIC_KEY_ENV)
            };
            let model = config.model.as_deref().ok_or_else(|| {
                ModelError::Config(format!(
                    "model `{name}` ({}) has no `model` id",
                    config.provider.as_str()
                ))
            })?;
            // The public APIs always need a key; a server at a configured
            // `base_url` (Ollama, vLLM) only when `api_key_env` names one.
            let key_env = match (&config.api_key_env, &config.base_url) {
                (Some(var), _) => Some(var.as_str()),
                (None, None) => Some(default_key),
                (None, Some(_)) => None,
            };
            Backend::Http(Box::new(http::HttpApi::new(http::HttpSettings {
                api,
                base_url: config.base_url.as_deref().unwrap_or(default_base),
                model,
                key_env,
                headers: &config.headers,
                temperature: config.temperature,
                max_tokens: config.max_tokens,
                timeout,
                retry: options.retry.clone(),
            })?))
        }
        Provider::Command => {
            if config.command.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(ModelError::Config(format!(
                    "model `{name}` (command) has an empty `command`; give the agent CLI's argv, \
                     e.g. [\"claude\", \"-p\"]"
                )));
            }
            Backend::Agent(agent::Agent {
                argv: config.command.clone(),
                timeout,
                work_dir: options.work_dir.clone(),
            })
        }
    };
    let permits = config.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1) as usize;
    Ok(Arc::new(LlmModel {
        name: name.to_owned(),
        identity: identity(config),
        prices: config.prices,
        context_tokens: config
            .context_tokens
            .map_or_else(|| default_context(config.provider), |c| c as usize),
        tokenizer: Tokenizer::for_model(Some(config)),
        backend,
        permits: Semaphore::new(permits),
        cache: options.cache_dir.clone().map(cache::Cache::new),
        read_cache: !options.no_cache,
    }))
}

/// The context window assumed when the config gives none. Local servers
/// often have much smaller ones: set `context_tokens` for them.
fn default_context(provider: Provider) -> usize {
    match provider {
        Provider::Anthropic => 200_000,
        _ => 128_000,
    }
}

/// What about a model changes its answer: part of the cache key. Keys,
/// prices, timeouts and concurrency do not.
fn identity(config: &ModelConfig) -> Value {
    json!({
        "provider": config.provider.as_str(),
        "model": config.model,
        "base_url": config.base_url,
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "context_tokens": config.context_tokens,
        "headers": config.headers,
        "command": config.command,
    })
}

/// What one call produced, before flags and accounting.
pub(crate) struct Answer {
    pub text: String,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The model as the API names it (e.g. a dated snapshot), if it says.
    pub model: Option<String>,
    /// Stopped at `max_tokens`.
    pub cut_short: bool,
}

enum Backend {
    // Boxed: the HTTP client and its settings are much larger than an argv.
    Http(Box<http::HttpApi>),
    Agent(agent::Agent),
}

struct LlmModel {
    name: String,
    identity: Value,
    prices: Option<Prices>,
    context_tokens: usize,
    tokenizer: Tokenizer,
    backend: Backend,
    permits: Semaphore,
    cache: Option<cache::Cache>,
    read_cache: bool,
}

use prompt::Prompt;

impl LlmModel {
    /// Tokens kept free for the answer; agents manage their own output.
    fn answer_tokens(&self) -> usize {
        match &self.backend {
            Backend::Http(h) => h.answer_tokens() as usize,
            Backend::Agent(_) => http::DEFAULT_MAX_TOKENS as usize,
        }
    }

    fn describe(&self) -> String {
        match &self.backend {
            Backend::Http(h) => h.url().to_owned(),
            Backend::Agent(a) => a.argv.join(" "),
        }
    }

    async fn complete_now(&self, req: &ModelRequest) -> Result<Completion, ModelError> {
        if !matches!(req.kind, StepKind::Report | StepKind::Review) {
            return Err(ModelError::UnsupportedKind {
                model: self.name.clone(),
                kind: req.kind,
            });
        }
        let fit = prompt::Fit {
            context_tokens: self.context_tokens,
            answer_tokens: self.answer_tokens(),
            tokenizer: self.tokenizer,
        };
        let prompt = prompt::build(req, &fit)?;
        let key = cache::key(&self.identity, &prompt, req);
        if self.read_cache
            && let Some(hit) = self.cache.as_ref().and_then(|c| c.get(&key))
        {
            return Ok(self.finish(req, hit, Usage::default(), true));
        }
        self.check_budget(req.budget.as_ref(), &prompt)?;
        let _permit =
            self.permits.acquire().await.map_err(|_| {
                ModelError::Config("the model's concurrency limit was closed".into())
            })?;
        let started = Instant::now();
        let answer = match &self.backend {
            Backend::Http(h) => h.call(&prompt).await?,
            Backend::Agent(a) => a.call(&prompt).await?,
        };
        let latency = started.elapsed();
        if answer.text.trim().is_empty() {
            return Err(ModelError::BadResponse {
                url: self.describe(),
                message: "the model returned an empty document".into(),
            });
        }
        if let Some(cache) = &self.cache {
            // A cache that cannot be written costs a later rerun tokens, not
            // this step its (already paid for) answer.
            let _ = cache.put(&key, &answer);
        }
        let usage = Usage {
            input_tokens: answer.input_tokens,
            output_tokens: answer.output_tokens,
            cost_usd: self
                .prices
                .map(|p| cost(p, answer.input_tokens, answer.output_tokens)),
            latency_ms: Some(u64::try_from(latency.as_millis()).unwrap_or(u64::MAX)),
        };
        Ok(self.finish(req, answer, usage, false))
    }

    /// Fails before a call that could take the run past its budget: the
    /// prompt as counted plus the most the answer may use.
    fn check_budget(&self, left: Option<&Budget>, prompt: &Prompt) -> Result<(), ModelError> {
        let Some(left) = left else {
            return Ok(());
        };
        let input = prompt.tokens as u64;
        let output = self.answer_tokens() as u64;
        if let Some(tokens) = left.tokens
            && input + output > tokens
        {
            return Err(ModelError::Budget(format!(
                "this call may use up to {} tokens ({input} prompt + up to {output} answer) but \
                 the run's budget has {tokens} left",
                input + output
            )));
        }
        // A model without prices is treated as free (local servers).
        if let (Some(usd), Some(prices)) = (left.cost_usd, self.prices) {
            let most = cost(prices, input, output);
            if most > usd {
                return Err(ModelError::Budget(format!(
                    "this call may cost up to ${most:.4} ({input} prompt + up to {output} answer \
                     tokens) but the run's budget has ${usd:.4} left"
                )));
            }
        }
        Ok(())
    }

    fn finish(&self, req: &ModelRequest, answer: Answer, usage: Usage, cached: bool) -> Completion {
        let mut text = answer.text;
        if answer.cut_short {
            text.push_str(
                "\n\n> Note (added by Fleet): the model stopped at its `max_tokens` limit; this \
                 document may be cut short.\n",
            );
        }
        let flags = match req.kind {
            StepKind::Review => Some(review_flags::review_flags(&text, req)),
            _ => {
                let bad = review_flags::citation_flags(&text, req, &[]);
                text.push_str(&review_flags::citation_section(&bad));
                None
            }
        };
        Completion {
            text,
            flags,
            usage,
            model: answer.model.unwrap_or_else(|| self.name.clone()),
            cached,
        }
    }
}

fn cost(prices: Prices, input: u64, output: u64) -> f64 {
    (input as f64 * prices.input + output as f64 * prices.output) / 1e6
}

impl Model for LlmModel {
    fn name(&self) -> &str {
        &self.name
    }

    fn complete<'a>(
        &'a self,
        req: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<Completion, ModelError>> {
        Box::pin(self.complete_now(req))
    }
}
