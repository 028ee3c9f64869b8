//! The release-gate example with real LLM providers: `readiness` on an
//! OpenAI-compatible server and `risk-review` on an Anthropic one (two
//! wiremock servers on loopback), through the real binary to the gate, with
//! tokens and cost recorded, a rerun served from the cache, and `--no-cache`.

mod common;

use common::json_of;

use assert_cmd::Command;
use serde_json::{Value, json};
use std::path::Path;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPENAI_KEY: &str = "sk-e2e-openai-key-000111";
const ANTHROPIC_KEY: &str = "sk-ant-e2e-key-222333";

const READINESS: &str = "# Release readiness: 2.4.0\n\n\
Migration 0043 drops `legacy_tax_rate` and has no down migration \
(migrations/0043_drop_legacy_tax_rate.up.sql:3).\n";

const REVIEW: &str = "## F1: the column drop is one-way\n\n\
The report mentions it but not that there is no way back \
(migrations/0043_drop_legacy_tax_rate.up.sql:3).\n\n\
```json\n{\"flags\": [{\"id\": \"F1\", \"severity\": \"high\", \
\"claim\": \"Migration 0043 cannot be rolled back\", \
\"evidence\": [{\"path\": \"migrations/0043_drop_legacy_tax_rate.up.sql\", \"line\": 3}]}]}\n```\n";

fn fleet(dir: &Path) -> Command {
    let mut cmd = common::fleet(dir);
    cmd.env("FLEET_E2E_OPENAI_KEY", OPENAI_KEY)
        .env("FLEET_E2E_ANTHROPIC_KEY", ANTHROPIC_KEY);
    cmd
}

fn step<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no step {name} in {run}"))
}

async fn openai_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {OPENAI_KEY}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": READINESS}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4000, "completion_tokens": 500, "total_tokens": 4500}
        })))
        .mount(&server)
        .await;
    server
}

async fn anthropic_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", ANTHROPIC_KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": REVIEW}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5000, "output_tokens": 800}
        })))
        .mount(&server)
        .await;
    server
}

/// `fleet init`, then point the two analysis steps at the two servers.
fn project(openai: &MockServer, anthropic: &MockServer) -> tempfile::TempDir {
    let tmp = common::initialized();
    let config_path = tmp.path().join(".fleet/config.yaml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    let edited = config
        .replace(
            "kind: report, out: readiness.md}",
            "kind: report, out: readiness.md, model: writer}",
        )
        .replace(
            "kind: review, out: risks.md}",
            "kind: review, out: risks.md, model: critic}",
        );
    assert_ne!(edited, config, "the example's steps were found");
    let models = format!(
        "\nmodels:\n  writer:\n    provider: openai\n    model: gpt-4o-mini\n    \
         base_url: {}/v1\n    api_key_env: FLEET_E2E_OPENAI_KEY\n    \
         prices: {{input: 0.15, output: 0.6}}\n  critic:\n    provider: anthropic\n    \
         model: claude-sonnet-4-5\n    base_url: {}\n    api_key_env: FLEET_E2E_ANTHROPIC_KEY\n    \
         prices: {{input: 3, output: 15}}\n",
        openai.uri(),
        anthropic.uri()
    );
    std::fs::write(&config_path, edited + &models).expect("write config");
    tmp
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

fn approx(v: &Value, expected: f64) -> bool {
    v.as_f64().is_some_and(|x| (x - expected).abs() < 1e-9)
}

#[tokio::test]
async fn llm_steps_reach_the_gate_record_usage_and_rerun_from_the_cache() {
    let openai = openai_server().await;
    let anthropic = anthropic_server().await;
    let tmp = project(&openai, &anthropic);
    let dir = tmp.path();

    // First run: both servers called once; the run waits at the gate.
    let run = json_of(fleet(dir).args(["run", "release-gate", "--json"]));
    assert_eq!(run["status"], "waiting", "{run:#}");
    let id = run["run_id"].as_str().expect("run id").to_owned();
    assert_eq!(step(&run, "go-no-go")["status"], "waiting");
    assert_eq!((calls(&openai).await, calls(&anthropic).await), (1, 1));

    let shown = json_of(fleet(dir).args(["show", &id, "--json"]));
    let readiness = step(&shown, "readiness");
    assert_eq!(readiness["status"], "succeeded");
    assert_eq!(readiness["model"], "writer");
    assert_eq!(readiness["tokens"], json!({"input": 4000, "output": 500}));
    assert!(
        approx(&readiness["cost_usd"], (4000.0 * 0.15 + 500.0 * 0.6) / 1e6),
        "{readiness}"
    );
    assert_eq!(readiness["cached"], false);
    let review = step(&shown, "risk-review");
    assert_eq!(review["status"], "succeeded");
    assert_eq!(review["model"], "critic");
    assert_eq!(review["tokens"], json!({"input": 5000, "output": 800}));
    assert!(
        approx(&review["cost_usd"], (5000.0 * 3.0 + 800.0 * 15.0) / 1e6),
        "{review}"
    );

    // The documents are the models' answers, and the review's flags were parsed.
    let run_dir = dir.join(".fleet/runs").join(&id);
    let written = std::fs::read_to_string(run_dir.join("readiness.md")).expect("readiness.md");
    assert!(
        written.starts_with("# Release readiness: 2.4.0"),
        "{written}"
    );
    let flags: Value = serde_json::from_slice(
        &std::fs::read(run_dir.join("risks.flags.json")).expect("flags sidecar"),
    )
    .expect("flags JSON");
    assert_eq!(flags["flags"][0]["id"], "F1");
    assert_eq!(flags["flags"][0]["severity"], "high");
    assert_eq!(
        flags["flags"][0]["evidence"][0]["quote"],
        "ALTER TABLE invoices DROP COLUMN legacy_tax_rate;"
    );

    // Second run with unchanged inputs: served from the cache, zero tokens.
    let again = json_of(fleet(dir).args(["run", "release-gate", "--json"]));
    assert_eq!(again["status"], "waiting");
    let again_id = again["run_id"].as_str().expect("run id").to_owned();
    let shown = json_of(fleet(dir).args(["show", &again_id, "--json"]));
    for name in ["readiness", "risk-review"] {
        let s = step(&shown, name);
        assert_eq!(s["cached"], true, "{name}: {s}");
        assert_eq!(s["tokens"], json!({"input": 0, "output": 0}), "{name}");
    }
    assert_eq!((calls(&openai).await, calls(&anthropic).await), (1, 1));

    // --no-cache calls both servers again.
    let fresh = json_of(fleet(dir).args(["run", "release-gate", "--json", "--no-cache"]));
    assert_eq!(fresh["status"], "waiting");
    assert_eq!(step(&fresh, "readiness")["cached"], false);
    assert_eq!(step(&fresh, "risk-review")["tokens"]["input"], 5000);
    assert_eq!((calls(&openai).await, calls(&anthropic).await), (2, 2));

    // The keys are nowhere in what Fleet stored.
    for file in files(&dir.join(".fleet")) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        for key in [OPENAI_KEY, ANTHROPIC_KEY] {
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "{key} found in {}",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn an_unset_key_fails_the_step_naming_the_variable() {
    let openai = openai_server().await;
    let anthropic = anthropic_server().await;
    let tmp = project(&openai, &anthropic);
    let out = fleet(tmp.path())
        .env_remove("FLEET_E2E_OPENAI_KEY")
        .args(["run", "release-gate", "--json"])
        .output()
        .expect("runs");
    let run: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(run["status"], "failed", "{run:#}");
    let error = step(&run, "readiness")["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("`FLEET_E2E_OPENAI_KEY`"), "{error}");
    assert_eq!(calls(&openai).await, 0);
}

#[tokio::test]
async fn the_run_budget_stops_a_step_before_a_call_that_could_exceed_it() {
    let openai = openai_server().await;
    let anthropic = anthropic_server().await;
    let tmp = project(&openai, &anthropic);
    let config_path = tmp.path().join(".fleet/config.yaml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    // The report fits (about $0.003 at most, $0.0009 spent); the review, which
    // may write 4096 tokens at $15 per million, cannot fit in what is left.
    let with_budget = config.replace(
        "  - name: release-gate\n",
        "  - name: release-gate\n    budget: {cost_usd: 0.01}\n",
    );
    assert_ne!(with_budget, config);
    std::fs::write(&config_path, with_budget).expect("write config");
    let out = fleet(tmp.path())
        .args(["run", "release-gate", "--json"])
        .output()
        .expect("runs");
    let run: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(run["status"], "failed", "{run:#}");
    assert_eq!(step(&run, "readiness")["status"], "succeeded");
    let error = step(&run, "risk-review")["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("over budget"), "{error}");
    assert!(error.contains("$0.0091 left"), "{error}");
    assert_eq!((calls(&openai).await, calls(&anthropic).await), (1, 0));
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
