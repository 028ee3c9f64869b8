//! Calling an HTTP model API: timeouts, retries with backoff that honour
//! `Retry-After`, and errors that quote what the server said. The API key is
//! read from its environment variable for each call and lives only in the
//! request's headers, marked sensitive so no Debug output shows it.

use super::retry::{RetryPolicy, is_retryable, retry_after};
use super::wire::{self, Api, Params};
use super::{Answer, Prompt};
use crate::ModelError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// Sent when the config sets no `max_tokens` and the API requires one (Anthropic).
pub(crate) const DEFAULT_MAX_TOKENS: u32 = 4096;
const ANTHROPIC_VERSION: &str = "2023-06-01";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct HttpApi {
    api: Api,
    /// Built on the first call: loading the system's root certificates
    /// takes milliseconds, and most commands that set up the engine
    /// (`fleet show`, `fleet runs`) never call a model.
    client: OnceLock<reqwest::Client>,
    url: String,
    model: String,
    key_env: Option<String>,
    headers: HeaderMap,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    timeout: Duration,
    retry: RetryPolicy,
}

pub(crate) struct HttpSettings<'a> {
    pub api: Api,
    pub base_url: &'a str,
    pub model: &'a str,
    pub key_env: Option<&'a str>,
    pub headers: &'a BTreeMap<String, String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl HttpApi {
    pub(crate) fn new(s: HttpSettings<'_>) -> Result<HttpApi, ModelError> {
        // reqwest is built without a bundled crypto provider (no aws-lc C
        // build); ring is installed as the process default. Err only means a
        // provider is already installed, which is as good.
        let base = s.base_url.trim_end_matches('/');
        let url = match s.api {
            Api::OpenAi => format!("{base}/chat/completions"),
            Api::Anthropic if base.ends_with("/v1") => format!("{base}/messages"),
            Api::Anthropic => format!("{base}/v1/messages"),
        };
        let mut headers = HeaderMap::new();
        for (name, value) in s.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ModelError::Config(format!("header `{name}`: {e}")))?;
            let mut value = HeaderValue::from_str(value).map_err(|e| {
                ModelError::Config(format!("the value of header `{name}` is not valid: {e}"))
            })?;
            // Extra headers often carry tokens (OpenRouter, gateways).
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if s.api == Api::Anthropic {
            headers.insert(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        Ok(HttpApi {
            api: s.api,
            client: OnceLock::new(),
            url,
            model: s.model.to_owned(),
            key_env: s.key_env.map(str::to_owned),
            headers,
            temperature: s.temperature,
            max_tokens: s.max_tokens,
            timeout: s.timeout,
            retry: s.retry,
        })
    }

    fn client(&self) -> Result<&reqwest::Client, ModelError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        // reqwest is built without a bundled crypto provider (no aws-lc C
        // build); ring is installed as the process default. Err only means a
        // provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let built = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(self.timeout)
            .user_agent(concat!("fleet/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ModelError::Config(format!("cannot set up the HTTP client: {e}")))?;
        // Two first calls at once may both build one; either will do.
        Ok(self.client.get_or_init(|| built))
    }

    /// Most tokens the answer may take: what the budget check reserves.
    pub(crate) fn answer_tokens(&self) -> u32 {
        self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)
    }

    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The key from its environment variable; `None` when the model needs
    /// none (a local server with no `api_key_env`).
    fn api_key(&self) -> Result<Option<String>, ModelError> {
        let Some(var) = &self.key_env else {
            return Ok(None);
        };
        match std::env::var(var) {
            Ok(key) if !key.trim().is_empty() => Ok(Some(key.trim().to_owned())),
            _ => Err(ModelError::MissingApiKey { var: var.clone() }),
        }
    }

    fn auth_headers(&self, key: Option<&str>) -> Result<HeaderMap, ModelError> {
        let mut headers = self.headers.clone();
        if let Some(key) = key {
            let (name, value) = match self.api {
                Api::OpenAi => (
                    reqwest::header::AUTHORIZATION,
                    HeaderValue::from_str(&format!("Bearer {key}")),
                ),
                Api::Anthropic => (
                    HeaderName::from_static("x-api-key"),
                    HeaderValue::from_str(key),
                ),
            };
            // The error of from_str does not contain the value.
            let mut value = value.map_err(|_| {
                ModelError::Config(format!(
                    "the key in `{}` is not a valid HTTP header value",
                    self.key_env.as_deref().unwrap_or("")
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }

    pub(crate) async fn call(&self, prompt: &Prompt) -> Result<Answer, ModelError> {
        let key = self.api_key()?;
        let client = self.client()?;
        let headers = self.auth_headers(key.as_deref())?;
        let params = Params {
            model: &self.model,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
        };
        let body = match self.api {
            Api::OpenAi => wire::openai_body(&params, prompt.system, &prompt.user),
            Api::Anthropic => {
                wire::anthropic_body(&params, prompt.system, &prompt.user, self.answer_tokens())
            }
        };
        let redact = |text: String| match key.as_deref() {
            // A server may echo the key it rejected; never pass it on.
            Some(k) if k.len() >= 8 => text.replace(k, "[redacted]"),
            _ => text,
        };
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = client
                .post(&self.url)
                .headers(headers.clone())
                .json(&body)
                .send()
                .await;
            let (failure, asked_wait) = match sent {
                Ok(response) => {
                    let status = response.status();
                    let wait = retry_after(response.headers(), SystemTime::now());
                    let bytes = match response.bytes().await {
                        Ok(b) => b,
                        Err(e) if e.is_timeout() => return Err(self.timed_out()),
                        Err(e) => {
                            let failure = ModelError::Connection {
                                url: self.url.clone(),
                                message: redact(describe(&e)),
                                attempts: attempt,
                            };
                            self.pause(&mut waited, attempt, None, failure).await?;
                            continue;
                        }
                    };
                    if status.is_success() {
                        return wire::parse_answer(self.api, &bytes).map_err(|message| {
                            ModelError::BadResponse {
                                url: self.url.clone(),
                                message: redact(format!(
                                    "{message}; the body starts: {}",
                                    wire::cut(&String::from_utf8_lossy(&bytes), 200)
                                )),
                            }
                        });
                    }
                    let failure = ModelError::Http {
                        url: self.url.clone(),
                        status: status.as_u16(),
                        message: redact(wire::error_message(&bytes)),
                        attempts: attempt,
                    };
                    if !is_retryable(status) {
                        return Err(failure);
                    }
                    (failure, wait)
                }
                // A request that used its whole time is not retried: the
                // step's own `retries` decide whether to spend that again.
                Err(e) if e.is_timeout() => return Err(self.timed_out()),
                Err(e) if e.is_builder() => {
                    return Err(ModelError::Config(redact(describe(&e))));
                }
                Err(e) => (
                    ModelError::Connection {
                        url: self.url.clone(),
                        message: redact(describe(&e)),
                        attempts: attempt,
                    },
                    None,
                ),
            };
            self.pause(&mut waited, attempt, asked_wait, failure)
                .await?;
        }
    }

    /// Waits before the next attempt, or gives up with `failure` when the
    /// attempts or the total wait are spent.
    async fn pause(
        &self,
        waited: &mut Duration,
        attempt: u32,
        asked: Option<Duration>,
        failure: ModelError,
    ) -> Result<(), ModelError> {
        if attempt >= self.retry.max_attempts {
            return Err(failure);
        }
        let delay = asked.unwrap_or_else(|| self.retry.backoff(attempt));
        if *waited + delay > self.retry.max_total_wait {
            return Err(failure);
        }
        tokio::time::sleep(delay).await;
        *waited += delay;
        Ok(())
    }

    fn timed_out(&self) -> ModelError {
        ModelError::Timeout {
            url: self.url.clone(),
            after: self.timeout,
        }
    }
}

/// A reqwest error with its causes ("connection refused" sits a few levels down).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}
