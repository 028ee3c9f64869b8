//! The `openai` and `anthropic` providers against wiremock servers on
//! loopback: the requests are what the published APIs expect, usage and cost
//! are read back, and retries, timeouts, bad bodies, auth failures, budgets
//! and the response cache behave as documented.

use fleet_core::config::{
    Budget, Duration as CfgDuration, ModelConfig, Prices, Provider, StepKind,
};
use fleet_core::flags::FlagSeverity;
use fleet_corpus::{Corpus, Document, Inclusion, Manifest, ManifestEntry};
use fleet_models::{
    Completion, ModelError, ModelRequest, ProviderOptions, RetryPolicy, UpstreamDoc, from_config,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Once;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const OPENAI_KEY: &str = "sk-test-openai-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789";
const OPENAI_KEY_ENV: &str = "FLEET_TEST_OPENAI_KEY";
const ANTHROPIC_KEY_ENV: &str = "FLEET_TEST_ANTHROPIC_KEY";

/// Every test calls this first, so the variables are set before any test
/// of this binary does anything that reads the environment.
fn init_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once, at the start of the first test, while every
        // other test of this binary waits on the same Once before doing
        // anything, so nothing reads the environment concurrently.
        unsafe {
            std::env::set_var(OPENAI_KEY_ENV, OPENAI_KEY);
            std::env::set_var(ANTHROPIC_KEY_ENV, ANTHROPIC_KEY);
        }
    });
}

const DEPLOY_MD: &str = "# Deploy runbook\n\nRun `make deploy`.\nRollback: TBD\n";
const MIGRATION_SQL: &str = "ALTER TABLE invoices DROP COLUMN legacy_tax_rate;\n";

fn corpus() -> Corpus {
    let docs = [
        ("docs/runbooks/deploy.md", DEPLOY_MD),
        ("migrations/0043_drop_legacy_tax_rate.up.sql", MIGRATION_SQL),
    ];
    Corpus {
        documents: docs
            .iter()
            .map(|(p, t)| Document {
                path: (*p).to_owned(),
                text: (*t).to_owned(),
            })
            .collect(),
        manifest: Manifest {
            entries: docs
                .iter()
                .map(|(p, t)| ManifestEntry {
                    path: (*p).to_owned(),
                    size: t.len() as u64,
                    blake3: format!("{:x}", t.len() * 7919),
                    lines: t.lines().count() as u64,
                    inclusion: Inclusion::Whole,
                    note: None,
                    sha256: None,
                })
                .collect(),
            ..Manifest::default()
        },
    }
}

fn report_request() -> ModelRequest {
    ModelRequest {
        genflow: "release-gate".into(),
        step: "readiness".into(),
        kind: StepKind::Report,
        prompt: "Assemble the release readiness report.".into(),
        corpus: corpus(),
        upstream: Vec::new(),
        feedback: None,
        budget: None,
        release: None,
    }
}

const DRAFT: &str =
    "# Readiness\n\nAll clear: rollback is documented (docs/runbooks/deploy.md:4).\n";

fn review_request() -> ModelRequest {
    ModelRequest {
        genflow: "release-gate".into(),
        step: "risk-review".into(),
        kind: StepKind::Review,
        prompt: "Adversarially review the readiness report.".into(),
        corpus: corpus(),
        upstream: vec![UpstreamDoc {
            step: "readiness".into(),
            kind: StepKind::Report,
            path: "readiness.md".into(),
            text: DRAFT.into(),
            flags: None,
        }],
        feedback: None,
        budget: None,
        release: None,
    }
}

fn model_config(provider: Provider, server: &MockServer) -> ModelConfig {
    let (model, base, key_env) = match provider {
        Provider::Openai => (
            "gpt-4o-mini",
            format!("{}/v1", server.uri()),
            OPENAI_KEY_ENV,
        ),
        _ => ("claude-sonnet-4-5", server.uri(), ANTHROPIC_KEY_ENV),
    };
    ModelConfig {
        provider,
        model: Some(model.into()),
        base_url: Some(base),
        api_key_env: Some(key_env.into()),
        temperature: Some(0.2),
        max_tokens: Some(800),
        context_tokens: Some(16_000),
        headers: BTreeMap::from([("X-Team".to_owned(), "release".to_owned())]),
        prices: Some(Prices {
            input: 3.0,
            output: 15.0,
        }),
        command: Vec::new(),
        timeout: Some(CfgDuration(5_000)),
        concurrency: Some(2),
    }
}

fn fast_retries(max_attempts: u32) -> ProviderOptions {
    ProviderOptions {
        retry: RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_total_wait: Duration::from_secs(10),
        },
        ..ProviderOptions::default()
    }
}

fn endpoint(provider: Provider) -> &'static str {
    match provider {
        Provider::Openai => "/v1/chat/completions",
        _ => "/v1/messages",
    }
}

/// A successful response body in each API's published shape.
fn ok_body(provider: Provider, text: &str, input: u64, output: u64) -> Value {
    match provider {
        Provider::Openai => json!({
            "id": "chatcmpl-123", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}
        }),
        _ => json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": output}
        }),
    }
}

async fn complete(
    config: &ModelConfig,
    options: &ProviderOptions,
    req: &ModelRequest,
) -> Result<Completion, ModelError> {
    let model = from_config("test-model", config, options).expect("model builds");
    model.complete(req).await
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

fn body_of(r: &Request) -> Value {
    serde_json::from_slice(&r.body).expect("request body is JSON")
}

#[tokio::test]
async fn openai_request_has_the_published_shape_and_usage_is_parsed() {
    init_env();
    let server = MockServer::start().await;
    let answer = "# Readiness\n\nRollback is TBD (docs/runbooks/deploy.md:4). \
                  Column drop in migrations/0043_drop_legacy_tax_rate.up.sql:1. \
                  Capacity is fine (docs/runbooks/deploy.md:99).";
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header(
            "authorization",
            format!("Bearer {OPENAI_KEY}").as_str(),
        ))
        .and(header("content-type", "application/json"))
        .and(header("x-team", "release"))
        .and(body_partial_json(json!({
            "model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 800
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Openai,
            answer,
            1200,
            300,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let config = model_config(Provider::Openai, &server);
    let c = complete(&config, &ProviderOptions::default(), &report_request())
        .await
        .expect("completes");

    let sent = requests(&server).await;
    let body = body_of(&sent[0]);
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .is_some_and(|s| s.contains("path:line")),
        "the report system prompt asks for citations"
    );
    assert_eq!(messages[1]["role"], "user");
    let user = messages[1]["content"].as_str().expect("user content");
    assert!(user.contains("Assemble the release readiness report."));
    assert!(
        user.contains("=== docs/runbooks/deploy.md (lines 1-4) ==="),
        "{user}"
    );
    assert!(
        user.contains("    4| Rollback: TBD"),
        "lines are numbered: {user}"
    );

    assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (1200, 300));
    let expected_cost = (1200.0 * 3.0 + 300.0 * 15.0) / 1e6;
    assert!((c.usage.cost_usd.expect("priced") - expected_cost).abs() < 1e-12);
    assert!(c.usage.latency_ms.is_some());
    assert_eq!(c.model, "gpt-4o-mini-2024-07-18");
    assert!(!c.cached);
    assert!(c.flags.is_none(), "reports carry no flags");
    // The citation check ran: the bad reference is listed, the good ones are not.
    let check = c
        .text
        .split("## Citation check")
        .nth(1)
        .expect("citation section appended");
    assert!(check.contains("docs/runbooks/deploy.md:99"), "{check}");
    assert!(!check.contains("deploy.md:4"), "{check}");
}

#[tokio::test]
async fn anthropic_request_has_the_published_shape_and_usage_is_parsed() {
    init_env();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", ANTHROPIC_KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .and(body_partial_json(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 800, "temperature": 0.2
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Anthropic,
            "# Readiness\n\nRollback: TBD (docs/runbooks/deploy.md:4).",
            2000,
            150,
        )))
        .expect(1)
        .mount(&server)
        .await;
    let config = model_config(Provider::Anthropic, &server);
    let c = complete(&config, &ProviderOptions::default(), &report_request())
        .await
        .expect("completes");
    let sent = requests(&server).await;
    assert!(
        sent[0].headers.get("authorization").is_none(),
        "anthropic uses x-api-key"
    );
    let body = body_of(&sent[0]);
    assert!(
        body["system"]
            .as_str()
            .is_some_and(|s| s.contains("path:line"))
    );
    let messages = body["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0]["role"], "user");
    assert!(
        messages[0]["content"]
            .as_str()
            .is_some_and(|s| s.contains("0043_drop_legacy_tax_rate.up.sql"))
    );
    assert_eq!((c.usage.input_tokens, c.usage.output_tokens), (2000, 150));
    let expected_cost = (2000.0 * 3.0 + 150.0 * 15.0) / 1e6;
    assert!((c.usage.cost_usd.expect("priced") - expected_cost).abs() < 1e-12);
    assert_eq!(c.model, "claude-sonnet-4-5-20250929");
    assert!(!c.text.contains("Citation check"), "every citation holds");
}

#[tokio::test]
async fn rate_limited_429_is_retried_after_the_servers_retry_after() {
    init_env();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(
                    json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Openai,
            "# Report",
            10,
            5,
        )))
        .mount(&server)
        .await;
    let config = model_config(Provider::Openai, &server);
    let started = Instant::now();
    // Backoff alone would wait milliseconds; only Retry-After makes it a second.
    let c = complete(&config, &fast_retries(4), &report_request())
        .await
        .expect("succeeds on the second attempt");
    let waited = started.elapsed();
    assert_eq!(requests(&server).await.len(), 2);
    assert!(
        waited >= Duration::from_millis(950),
        "waited {waited:?}, Retry-After asked for 1s"
    );
    assert_eq!(c.usage.output_tokens, 5);
}

#[tokio::test]
async fn anthropic_overloaded_529_is_retried_with_backoff() {
    init_env();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(529).set_body_json(
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        ))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Anthropic,
            "# Report",
            10,
            5,
        )))
        .mount(&server)
        .await;
    let config = model_config(Provider::Anthropic, &server);
    complete(&config, &fast_retries(4), &report_request())
        .await
        .expect("third attempt succeeds");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn server_errors_three_times_then_failure_quoting_the_server() {
    init_env();
    for provider in [Provider::Openai, Provider::Anthropic] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path(endpoint(provider)))
            .respond_with(ResponseTemplate::new(500).set_body_json(
                json!({"error": {"message": "The server had an error processing your request", "type": "server_error"}}),
            ))
            .mount(&server)
            .await;
        let config = model_config(provider, &server);
        let err = complete(&config, &fast_retries(3), &report_request())
            .await
            .expect_err("fails after the attempts");
        assert_eq!(requests(&server).await.len(), 3, "{provider:?}");
        match &err {
            ModelError::Http {
                status, attempts, ..
            } => assert_eq!((*status, *attempts), (500, 3)),
            other => panic!("{provider:?}: expected an HTTP error, got {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("HTTP 500 after 3 attempts"), "{text}");
        assert!(text.contains("The server had an error"), "{text}");
    }
}

#[tokio::test]
async fn unauthorized_401_is_not_retried_and_the_key_is_not_repeated() {
    init_env();
    for provider in [Provider::Openai, Provider::Anthropic] {
        let server = MockServer::start().await;
        let key = if provider == Provider::Openai {
            OPENAI_KEY
        } else {
            ANTHROPIC_KEY
        };
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({
                "error": {"message": format!("Incorrect API key provided: {key}."), "type": "invalid_request_error"}
            })))
            .mount(&server)
            .await;
        let config = model_config(provider, &server);
        let err = complete(&config, &fast_retries(4), &report_request())
            .await
            .expect_err("401 fails");
        assert_eq!(requests(&server).await.len(), 1, "{provider:?}: no retry");
        let text = err.to_string();
        assert!(text.contains("HTTP 401"), "{text}");
        assert!(text.contains("Incorrect API key provided"), "{text}");
        assert!(!text.contains(key), "the key leaked into: {text}");
        assert!(!format!("{err:?}").contains(key));
    }
}

#[tokio::test]
async fn a_request_over_the_timeout_fails_without_retry() {
    init_env();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(ok_body(Provider::Openai, "late", 1, 1))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut config = model_config(Provider::Openai, &server);
    config.timeout = Some(CfgDuration(300));
    let err = complete(&config, &fast_retries(4), &report_request())
        .await
        .expect_err("times out");
    assert!(
        matches!(err, ModelError::Timeout { .. }),
        "expected a timeout, got {err:?}"
    );
    assert!(err.to_string().contains("within 0.3s"), "{err}");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn malformed_json_in_a_success_response_is_an_error() {
    init_env();
    for provider in [Provider::Openai, Provider::Anthropic] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw("{\"choices\": [ oops", "application/json"),
            )
            .mount(&server)
            .await;
        let config = model_config(provider, &server);
        let err = complete(&config, &fast_retries(4), &report_request())
            .await
            .expect_err("unreadable body");
        assert!(
            matches!(err, ModelError::BadResponse { .. }),
            "{provider:?}: {err:?}"
        );
        assert!(err.to_string().contains("oops"), "quotes the body: {err}");
        assert_eq!(requests(&server).await.len(), 1);
    }
}

#[tokio::test]
async fn connection_errors_are_retried_then_reported() {
    init_env();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let server = MockServer::start().await;
    let mut config = model_config(Provider::Openai, &server);
    config.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    let err = complete(&config, &fast_retries(3), &report_request())
        .await
        .expect_err("nothing listens");
    match &err {
        ModelError::Connection { attempts, .. } => assert_eq!(*attempts, 3),
        other => panic!("expected a connection error, got {other:?}"),
    }
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
}

#[tokio::test]
async fn an_unset_key_variable_is_named_and_nothing_is_sent() {
    init_env();
    let server = MockServer::start().await;
    let mut config = model_config(Provider::Anthropic, &server);
    config.api_key_env = Some("FLEET_TEST_KEY_THAT_IS_NEVER_SET".into());
    let err = complete(&config, &ProviderOptions::default(), &report_request())
        .await
        .expect_err("no key");
    assert!(
        err.to_string()
            .contains("`FLEET_TEST_KEY_THAT_IS_NEVER_SET`"),
        "{err}"
    );
    assert!(requests(&server).await.is_empty());
}

#[tokio::test]
async fn a_local_server_needs_no_key() {
    init_env();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Openai,
            "# Local",
            3,
            2,
        )))
        .mount(&server)
        .await;
    let mut config = model_config(Provider::Openai, &server);
    config.api_key_env = None;
    config.prices = None;
    let c = complete(&config, &ProviderOptions::default(), &report_request())
        .await
        .expect("no key needed with a base_url");
    assert!(
        requests(&server).await[0]
            .headers
            .get("authorization")
            .is_none()
    );
    assert_eq!(c.usage.cost_usd, None, "no prices, no cost");
    assert_eq!(c.usage.input_tokens, 3);
}

#[tokio::test]
async fn review_flags_are_parsed_from_the_json_block_and_checked() {
    init_env();
    let server = MockServer::start().await;
    let review = "## F1: rollback is not documented\n\nThe draft says rollback is documented \
        (readiness.md:3) but the runbook says TBD (docs/runbooks/deploy.md:4).\n\n```json\n\
        {\"flags\": [\
          {\"id\": \"F1\", \"severity\": \"high\", \"claim\": \"Rollback is TBD, not documented\", \
           \"evidence\": [{\"path\": \"docs/runbooks/deploy.md\", \"line\": 4}, \"readiness.md:3\"]},\
          {\"id\": \"F2\", \"severity\": \"medium\", \"claim\": \"Column drop is one-way\", \
           \"evidence\": [{\"path\": \"migrations/0043_drop_legacy_tax_rate.up.sql\", \"line\": 40}]}\
        ]}\n```\n";
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Anthropic,
            review,
            900,
            200,
        )))
        .mount(&server)
        .await;
    let config = model_config(Provider::Anthropic, &server);
    let c = complete(&config, &ProviderOptions::default(), &review_request())
        .await
        .expect("review completes");

    let body = body_of(&requests(&server).await[0]);
    let system = body["system"].as_str().expect("system");
    assert!(system.contains("adversarial"), "the review system prompt");
    let user = body["messages"][0]["content"].as_str().expect("user");
    assert!(
        user.contains("=== readiness.md (report `readiness`, lines 1-3) ==="),
        "{user}"
    );
    assert!(user.contains("    3| All clear"), "{user}");
    assert!(
        !user.contains("Assemble the release readiness report"),
        "the author's instructions never reach the reviewer"
    );

    let flags = c.flags.expect("a review has flags");
    assert_eq!(flags.step, "risk-review");
    let f1 = flags.flags.iter().find(|f| f.id == "F1").expect("F1");
    assert_eq!(f1.severity, FlagSeverity::High);
    assert_eq!(
        f1.evidence[0].quote, "Rollback: TBD",
        "quote filled from the corpus"
    );
    assert_eq!(f1.evidence[1].path, "readiness.md");
    // F2 cites a line that does not exist: that is flagged, not passed.
    assert!(
        flags.flags.iter().any(|f| f
            .claim
            .contains("Flag F2 cites migrations/0043_drop_legacy_tax_rate.up.sql:40")),
        "{:#?}",
        flags.flags
    );
}

#[tokio::test]
async fn a_review_without_readable_flags_raises_a_high_flag() {
    init_env();
    for output in [
        "Looks fine to me.",
        "Findings.\n```json\n{\"flags\": [{\"severity\": \"high\", \"claim\": \"x\"\n```\n",
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
                Provider::Openai,
                output,
                10,
                10,
            )))
            .mount(&server)
            .await;
        let config = model_config(Provider::Openai, &server);
        let c = complete(&config, &ProviderOptions::default(), &review_request())
            .await
            .expect("completes");
        let flags = c.flags.expect("flags");
        assert_eq!(
            flags.count(FlagSeverity::High),
            1,
            "{output}: {:?}",
            flags.flags
        );
        assert!(
            flags.flags[0]
                .claim
                .contains("review output could not be parsed"),
            "{:?}",
            flags.flags
        );
    }
}

#[tokio::test]
async fn the_budget_stops_a_call_before_it_is_made() {
    init_env();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Openai,
            "# R",
            1,
            1,
        )))
        .mount(&server)
        .await;
    let config = model_config(Provider::Openai, &server);
    let mut req = report_request();
    req.budget = Some(Budget {
        tokens: Some(500),
        cost_usd: None,
    });
    let err = complete(&config, &ProviderOptions::default(), &req)
        .await
        .expect_err("over the token budget");
    assert!(matches!(err, ModelError::Budget(_)), "{err:?}");
    assert!(err.to_string().contains("500 left"), "{err}");
    req.budget = Some(Budget {
        tokens: None,
        cost_usd: Some(0.001),
    });
    let err = complete(&config, &ProviderOptions::default(), &req)
        .await
        .expect_err("over the cost budget");
    assert!(err.to_string().contains("$0.0010 left"), "{err}");
    assert!(requests(&server).await.is_empty());
    // Enough budget: the call goes through.
    req.budget = Some(Budget {
        tokens: Some(1_000_000),
        cost_usd: Some(10.0),
    });
    complete(&config, &ProviderOptions::default(), &req)
        .await
        .expect("within budget");
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn identical_requests_are_served_from_the_cache() {
    init_env();
    let cache = tempfile::tempdir().expect("tempdir");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Openai,
            "# Cached report (docs/runbooks/deploy.md:4)",
            700,
            70,
        )))
        .mount(&server)
        .await;
    let config = model_config(Provider::Openai, &server);
    let options = ProviderOptions {
        cache_dir: Some(cache.path().join("models")),
        ..ProviderOptions::default()
    };
    let first = complete(&config, &options, &report_request())
        .await
        .expect("first");
    assert!(!first.cached);
    assert_eq!(first.usage.input_tokens, 700);

    let second = complete(&config, &options, &report_request())
        .await
        .expect("second");
    assert!(second.cached);
    assert_eq!(
        second.usage,
        fleet_models::Usage::default(),
        "a hit costs nothing"
    );
    assert_eq!(second.text, first.text);
    assert_eq!(requests(&server).await.len(), 1, "served without a call");

    // A changed corpus is a different request.
    let mut changed = report_request();
    changed.corpus.documents[0].text.push_str("Owner: alice\n");
    changed.corpus.manifest.entries[0].blake3 = "changed".into();
    let third = complete(&config, &options, &changed).await.expect("third");
    assert!(!third.cached);
    assert_eq!(requests(&server).await.len(), 2);

    // A different setting that changes the answer is a different request too.
    let mut hotter = config.clone();
    hotter.temperature = Some(0.9);
    assert!(
        !complete(&hotter, &options, &report_request())
            .await
            .expect("t")
            .cached
    );
    assert_eq!(requests(&server).await.len(), 3);

    // --no-cache: called again, and the fresh answer still written.
    let bypass = ProviderOptions {
        no_cache: true,
        ..options.clone()
    };
    let fourth = complete(&config, &bypass, &report_request())
        .await
        .expect("fourth");
    assert!(!fourth.cached);
    assert_eq!(requests(&server).await.len(), 4);
    assert!(
        complete(&config, &options, &report_request())
            .await
            .expect("fifth")
            .cached
    );
    assert_eq!(requests(&server).await.len(), 4);

    // The cache holds no key.
    for entry in walk(cache.path()) {
        let text = std::fs::read_to_string(&entry).expect("read entry");
        assert!(!text.contains(OPENAI_KEY), "{}", entry.display());
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_context_window_too_small_for_the_corpus_packs_and_says_what_was_omitted() {
    init_env();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body(
            Provider::Openai,
            "# R",
            1,
            1,
        )))
        .mount(&server)
        .await;
    let mut config = model_config(Provider::Openai, &server);
    let mut req = report_request();
    // A long document that cannot fit next to the instructions.
    let long: String = (1..=3000)
        .map(|i| format!("Line {i}: the payments cutover step number {i} is described here.\n"))
        .collect();
    req.corpus.documents.push(Document {
        path: "docs/runbooks/payments-cutover.md".into(),
        text: long,
    });
    config.context_tokens = Some(6_000);
    config.max_tokens = Some(500);
    complete(&config, &ProviderOptions::default(), &req)
        .await
        .expect("packed into the window");
    let body = body_of(&requests(&server).await[0]);
    let user = body["messages"][1]["content"].as_str().expect("user");
    assert!(user.contains("did not fit in full"), "the model is told");
    assert!(user.contains("=== omitted"), "and what was left out");
    let tokens = fleet_corpus::count_tokens(user, fleet_corpus::Tokenizer::OpenAi);
    assert!(tokens < 6_000 - 500, "{tokens} tokens sent");

    // A window that cannot even hold the instructions is a clear error.
    config.context_tokens = Some(600);
    let err = complete(&config, &ProviderOptions::default(), &req)
        .await
        .expect_err("too small");
    assert!(matches!(err, ModelError::ContextTooSmall(_)), "{err:?}");
}
