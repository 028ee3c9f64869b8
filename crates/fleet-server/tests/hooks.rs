//! Label triggers over HTTP: `/hooks/github` and `/hooks/gitlab` with the
//! shapes of the forges' documented example payloads (`fixtures/hooks/`),
//! through the real router, store and engine.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use fleet_server::{AppState, HookSecrets, OperatorAuth};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::time::Duration;

const GH_SECRET: &str = "It's a Secret to Everybody";
const GL_TOKEN: &str = "gitlab-token-for-tests";

/// Two triggered genflows beside the example's release gate: `triage`
/// takes every ticket param (and one with a default), `summary` only the
/// URL and a title no longer than 60 printable ASCII characters.
fn with_triggers(text: String) -> String {
    format!("{text}{TRIGGERED}")
}

const TRIGGERED: &str = r#"  - name: triage
    params:
      - {name: ticket_number, pattern: '\d+'}
      - {name: ticket_title}
      - {name: ticket_body}
      - {name: ticket_url}
      - {name: ticket_author}
      - {name: ticket_labels}
      - {name: depth, default: quick}
    trigger:
      github: {label: fleet-review}
      gitlab: {label: fleet-review}
    steps:
      - {name: look, kind: report, prompt: "Triage ticket {{ params.ticket_number }}.", corpus: ["docs/runbooks/*.md"]}
  - name: summary
    params:
      - {name: ticket_url}
      - {name: ticket_title, pattern: '[ -~]{1,60}'}
    trigger:
      github: {label: fleet-summary}
      gitlab: {label: fleet-summary}
    steps:
      - {name: sum, kind: report, prompt: "Summarize.", corpus: ["docs/runbooks/*.md"]}
server:
  github: {secret_env: FLEET_TEST_GITHUB_SECRET}
  gitlab: {token_env: FLEET_TEST_GITLAB_TOKEN}
"#;

/// The example with the triggers, served with both hook secrets (or none).
async fn hooks_env(secrets: bool) -> (Env, axum::Router) {
    let env = env_with(false, with_triggers).await;
    let hooks = if secrets {
        HookSecrets::default()
            .with_github(GH_SECRET)
            .with_gitlab(GL_TOKEN)
    } else {
        HookSecrets::default()
    };
    let (state, _) = AppState::with_hooks(
        env.engine.clone(),
        env.signer.clone(),
        OperatorAuth {
            api_token: Some(API_TOKEN.into()),
            open: false,
        },
        "http://fleet.test".into(),
        Duration::from_secs(86_400),
        hooks,
    );
    let app = fleet_server::router(state);
    (env, app)
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/hooks/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A GitHub delivery of `event`, signed with `sig` (None: no header).
fn github_raw(event: &str, delivery: &str, body: Vec<u8>, sig: Option<String>) -> Request<Body> {
    let mut b = Request::post("/hooks/github")
        .header("content-type", "application/json")
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("user-agent", "GitHub-Hookshot/044aadd");
    if let Some(s) = sig {
        b = b.header("x-hub-signature-256", s);
    }
    b.body(Body::from(body))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

fn github(event: &str, delivery: &str, payload: &Value) -> Request<Body> {
    let body = payload.to_string().into_bytes();
    let sig = signature(GH_SECRET, &body);
    github_raw(event, delivery, body, Some(sig))
}

fn gitlab_raw(event: &str, uuid: &str, token: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut b = Request::post("/hooks/gitlab")
        .header("content-type", "application/json")
        .header("x-gitlab-event", event)
        .header("x-gitlab-event-uuid", uuid)
        .header("x-gitlab-instance", "https://gitlab.example.com");
    if let Some(t) = token {
        b = b.header("x-gitlab-token", t);
    }
    b.body(Body::from(body))
        .unwrap_or_else(|e| panic!("request: {e}"))
}

fn gitlab(event: &str, uuid: &str, payload: &Value) -> Request<Body> {
    gitlab_raw(
        event,
        uuid,
        Some(GL_TOKEN),
        payload.to_string().into_bytes(),
    )
}

async fn runs(env: &Env) -> Vec<fleet_store::RunRecord> {
    env.store()
        .list_runs(&fleet_store::RunFilter::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The only run id an answer names.
fn only_run(reply: &Reply) -> String {
    let json = reply.json();
    let runs = json["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 1, "{json}");
    runs[0]["id"].as_str().unwrap_or_default().to_owned()
}

const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
const UUID: &str = "a1b2c3d4-0000-4000-8000-000000000001";

#[tokio::test]
async fn a_github_issue_labeled_starts_one_run_with_the_ticket_fields_once_per_delivery() {
    let (env, app) = hooks_env(true).await;
    let payload = fixture("github_issues_labeled");
    let first = send(&app, github("issues", DELIVERY, &payload)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.json()["runs"][0]["status"], "started");
    assert_eq!(first.json()["runs"][0]["genflow"], "triage");
    let id = only_run(&first);
    assert_eq!(
        id,
        fleet_server::hooks::run_id("github", DELIVERY, "triage")
    );

    let run = env
        .store()
        .get_run(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(run.genflow_name, "triage");
    assert_eq!(
        run.definition.param_values,
        values(&[
            ("depth", "quick"),
            ("ticket_author", "Codertocat"),
            (
                "ticket_body",
                "It looks like you accidently spelled 'commit' with two 't's."
            ),
            ("ticket_labels", "bug,fleet-review"),
            ("ticket_number", "1"),
            ("ticket_title", "Spelling error in the README file"),
            (
                "ticket_url",
                "https://github.com/Codertocat/Hello-World/issues/1"
            ),
        ])
    );
    assert_eq!(
        run.triggered_by.as_deref(),
        Some(
            "github:Codertocat/Hello-World#1 (@Octocat) https://github.com/Codertocat/Hello-World/issues/1"
        )
    );
    assert_eq!(
        run.definition.steps[0].prompt.as_deref(),
        Some("Triage ticket 1.")
    );

    // GitHub redelivers with the same X-GitHub-Delivery.
    let again = send(&app, github("issues", DELIVERY, &payload)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(only_run(&again), id);
    assert_eq!(again.json()["runs"][0]["status"], "existing");
    assert_eq!(runs(&env).await.len(), 1, "the repeat started nothing");

    // Another delivery of the same event is another run.
    let other = send(&app, github("issues", "another-delivery", &payload)).await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    assert_ne!(only_run(&other), id);
    assert_eq!(runs(&env).await.len(), 2);
}

#[tokio::test]
async fn a_github_pull_request_labeled_starts_a_run_for_the_pull_request() {
    let (env, app) = hooks_env(true).await;
    let reply = send(
        &app,
        github(
            "pull_request",
            DELIVERY,
            &fixture("github_pull_request_labeled"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let run = env
        .store()
        .get_run(&only_run(&reply))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = &run.definition.param_values;
    assert_eq!(p["ticket_number"], "2");
    assert_eq!(p["ticket_title"], "Update the README with new information.");
    assert_eq!(
        p["ticket_url"],
        "https://github.com/Codertocat/Hello-World/pull/2"
    );
    assert_eq!(p["ticket_labels"], "fleet-review");
    assert_eq!(
        run.triggered_by.as_deref(),
        Some(
            "github:Codertocat/Hello-World#2 (@Codertocat) https://github.com/Codertocat/Hello-World/pull/2"
        )
    );
}

#[tokio::test]
async fn github_events_that_add_no_trigger_label_start_nothing() {
    let (env, app) = hooks_env(true).await;
    let labeled = fixture("github_issues_labeled");
    let mut unlabeled = labeled.clone();
    unlabeled["action"] = json!("unlabeled");
    let mut opened = labeled.clone();
    opened["action"] = json!("opened");
    let mut other_label = labeled.clone();
    other_label["label"]["name"] = json!("bug");
    let cases = [
        ("issues", &unlabeled, "`issues` action `unlabeled`"),
        ("issues", &opened, "`issues` action `opened`"),
        (
            "issues",
            &other_label,
            "no genflow is triggered by the label `bug`",
        ),
        ("push", &labeled, "`push` events start nothing"),
        ("issue_comment", &labeled, "`issue_comment` events"),
    ];
    for (i, (event, payload, why)) in cases.iter().enumerate() {
        let reply = send(&app, github(event, &format!("d-{i}"), payload)).await;
        assert_eq!(reply.status, StatusCode::OK, "{event}: {}", reply.body);
        let ignored = reply.json()["ignored"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(ignored.contains(why), "{event}: {ignored}");
    }
    // The label name is compared exactly.
    let mut case_differs = labeled.clone();
    case_differs["label"]["name"] = json!("Fleet-Review");
    let reply = send(&app, github("issues", "d-case", &case_differs)).await;
    assert!(reply.json()["ignored"].is_string(), "{}", reply.body);

    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 30, "hook": {"type": "Repository", "events": ["issues"]}});
    let reply = send(&app, github("ping", "d-ping", &ping)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"ok": true}));
    assert!(runs(&env).await.is_empty());
}

#[tokio::test]
async fn a_bad_or_missing_github_signature_is_401_and_starts_nothing() {
    let (env, app) = hooks_env(true).await;
    let body = fixture("github_issues_labeled").to_string().into_bytes();
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let cases = [
        ("no header", None, body.clone()),
        (
            "another secret",
            Some(signature("not the secret", &body)),
            body.clone(),
        ),
        (
            "signature of another body",
            Some(signature(GH_SECRET, &body)),
            tampered,
        ),
        ("not hex", Some("sha256=zz".to_owned()), body.clone()),
        (
            "sha1 form",
            Some(signature(GH_SECRET, &body).replace("sha256=", "sha1=")),
            body.clone(),
        ),
    ];
    for (what, sig, body) in cases {
        let reply = send(&app, github_raw("issues", DELIVERY, body, sig)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.body
        );
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("X-Hub-Signature-256")),
            "{what}: {}",
            reply.body
        );
        assert!(!reply.body.contains(GH_SECRET));
    }
    assert!(runs(&env).await.is_empty());
}

#[tokio::test]
async fn a_gitlab_issue_hook_that_adds_the_label_starts_one_run_once_per_delivery() {
    let (env, app) = hooks_env(true).await;
    let payload = fixture("gitlab_issue_hook");
    let first = send(&app, gitlab("Issue Hook", UUID, &payload)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let id = only_run(&first);
    assert_eq!(id, fleet_server::hooks::run_id("gitlab", UUID, "triage"));
    let run = env
        .store()
        .get_run(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run.definition.param_values,
        values(&[
            ("depth", "quick"),
            ("ticket_author", "root"),
            (
                "ticket_body",
                "Create new API for manipulations with repository"
            ),
            ("ticket_labels", "API,fleet-review"),
            ("ticket_number", "23"),
            ("ticket_title", "New API: create/update/delete file"),
            ("ticket_url", "http://example.com/diaspora/issues/23"),
        ])
    );
    assert_eq!(
        run.triggered_by.as_deref(),
        Some("gitlab:gitlabhq/gitlab-test#23 (@root) http://example.com/diaspora/issues/23")
    );
    let again = send(&app, gitlab("Issue Hook", UUID, &payload)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(only_run(&again), id);
    assert_eq!(runs(&env).await.len(), 1);
}

#[tokio::test]
async fn a_gitlab_merge_request_hook_starts_a_run_named_with_a_bang() {
    let (env, app) = hooks_env(true).await;
    let reply = send(
        &app,
        gitlab(
            "Merge Request Hook",
            UUID,
            &fixture("gitlab_merge_request_hook"),
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let run = env
        .store()
        .get_run(&only_run(&reply))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let p = &run.definition.param_values;
    assert_eq!(p["ticket_number"], "1");
    assert_eq!(p["ticket_title"], "MS-Viewport");
    assert_eq!(p["ticket_body"], "");
    assert_eq!(
        run.triggered_by.as_deref(),
        Some("gitlab:gitlabhq/gitlab-test!1 (@root) http://example.com/diaspora/merge_requests/1")
    );
}

#[tokio::test]
async fn gitlab_hooks_that_add_no_trigger_label_start_nothing() {
    let (env, app) = hooks_env(true).await;
    let added = fixture("gitlab_issue_hook");
    // The trigger label removed: in `previous`, not in `current`.
    let mut removed = added.clone();
    let (prev, cur) = (
        added["changes"]["labels"]["current"].clone(),
        added["changes"]["labels"]["previous"].clone(),
    );
    removed["changes"]["labels"]["previous"] = prev;
    removed["changes"]["labels"]["current"] = cur;
    // Another label added.
    let mut other = added.clone();
    other["changes"]["labels"]["current"][1]["title"] = json!("docs");
    // A change that is not about labels (e.g. the title was edited).
    let mut no_labels = added.clone();
    if let Some(changes) = no_labels["changes"].as_object_mut() {
        changes.remove("labels");
    }
    let cases = [
        ("Issue Hook", &removed, "added no label"),
        (
            "Issue Hook",
            &other,
            "no genflow is triggered by the label `docs`",
        ),
        ("Issue Hook", &no_labels, "changed no labels"),
        ("Note Hook", &added, "`Note Hook` events start nothing"),
        // Confidential issues are not read into runs.
        ("Confidential Issue Hook", &added, "start nothing"),
    ];
    for (i, (event, payload, why)) in cases.iter().enumerate() {
        let reply = send(&app, gitlab(event, &format!("uuid-{i}"), payload)).await;
        assert_eq!(reply.status, StatusCode::OK, "{event}: {}", reply.body);
        let ignored = reply.json()["ignored"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(ignored.contains(why), "{event}: {ignored}");
    }
    assert!(runs(&env).await.is_empty());
}

#[tokio::test]
async fn a_bad_or_missing_gitlab_token_is_401_and_starts_nothing() {
    let (env, app) = hooks_env(true).await;
    let body = fixture("gitlab_issue_hook").to_string().into_bytes();
    for (what, token) in [
        ("no token", None),
        ("wrong token", Some("gitlab-token-for-test")),
        ("longer token", Some("gitlab-token-for-tests ")),
        ("empty token", Some("")),
    ] {
        let reply = send(&app, gitlab_raw("Issue Hook", UUID, token, body.clone())).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            reply.body
        );
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("X-Gitlab-Token")),
            "{what}: {}",
            reply.body
        );
    }
    assert!(runs(&env).await.is_empty());
}

#[tokio::test]
async fn payloads_over_one_mib_are_refused_with_413() {
    let (env, app) = hooks_env(true).await;
    let mut payload = fixture("github_issues_labeled");
    payload["issue"]["body"] = json!("x".repeat(1024 * 1024));
    let body = payload.to_string().into_bytes();
    // Signed correctly: the size alone refuses it.
    let sig = signature(GH_SECRET, &body);
    let reply = send(
        &app,
        github_raw("issues", DELIVERY, body.clone(), Some(sig)),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.body
    );
    let reply = send(&app, gitlab_raw("Issue Hook", UUID, Some(GL_TOKEN), body)).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.body
    );
    assert!(runs(&env).await.is_empty());
}

#[tokio::test]
async fn hooks_without_their_secret_are_not_enabled() {
    let (env, app) = hooks_env(false).await;
    let reply = send(
        &app,
        github("issues", DELIVERY, &fixture("github_issues_labeled")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert!(
        reply.body.contains("server.github.secret_env"),
        "{}",
        reply.body
    );
    let reply = send(
        &app,
        gitlab("Issue Hook", UUID, &fixture("gitlab_issue_hook")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert!(
        reply.body.contains("server.gitlab.token_env"),
        "{}",
        reply.body
    );
    assert!(runs(&env).await.is_empty());
}

#[test]
fn a_hook_secret_variable_that_is_unset_stops_the_server_from_starting() {
    let server: fleet_core::config::ServerConfig = serde_json::from_value(json!({
        "github": {"secret_env": "FLEET_GH_SECRET"},
        "gitlab": {"token_env": "FLEET_GL_TOKEN"}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let err = HookSecrets::from_config(&server, |name| {
        (name == "FLEET_GH_SECRET").then(|| "set".to_owned())
    })
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("FLEET_GL_TOKEN"), "{err}");
    assert!(err.contains("server.gitlab.token_env"), "{err}");
    let empty = HookSecrets::from_config(&server, |_| Some(String::new()));
    assert!(empty.is_err(), "an empty secret is no secret");
    let ok = HookSecrets::from_config(&server, |name| Some(format!("secret of {name}")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!format!("{ok:?}").contains("secret of"), "{ok:?}");
}

#[tokio::test]
async fn a_ticket_value_its_pattern_refuses_is_422_and_starts_nothing() {
    let (env, app) = hooks_env(true).await;
    let mut payload = fixture("github_issues_labeled");
    payload["label"]["name"] = json!("fleet-summary");
    payload["issue"]["title"] = json!("Crash when the title has ünïcode");
    let reply = send(&app, github("issues", DELIVERY, &payload)).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let json = reply.json();
    assert_eq!(json["refused"][0]["genflow"], "summary");
    assert_eq!(json["refused"][0]["param"], "ticket_title");
    assert!(runs(&env).await.is_empty());
}

#[tokio::test]
async fn every_genflow_a_delivery_triggers_starts_once() {
    let (env, app) = hooks_env(true).await;
    // GitLab can add several labels in one change.
    let mut payload = fixture("gitlab_issue_hook");
    let mut summary_label = payload["changes"]["labels"]["current"][1].clone();
    summary_label["title"] = json!("fleet-summary");
    summary_label["id"] = json!(208);
    if let Some(current) = payload["changes"]["labels"]["current"].as_array_mut() {
        current.push(summary_label);
    }
    let first = send(&app, gitlab("Issue Hook", UUID, &payload)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let started: Vec<(String, String)> = first.json()["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["genflow"].as_str().unwrap_or_default().to_owned(),
                r["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        started,
        vec![
            (
                "triage".to_owned(),
                fleet_server::hooks::run_id("gitlab", UUID, "triage")
            ),
            (
                "summary".to_owned(),
                fleet_server::hooks::run_id("gitlab", UUID, "summary")
            ),
        ]
    );
    let again = send(&app, gitlab("Issue Hook", UUID, &payload)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(runs(&env).await.len(), 2);
}

#[tokio::test]
async fn the_run_page_links_back_to_the_ticket() {
    let (env, app) = hooks_env(true).await;
    let reply = send(
        &app,
        github("issues", DELIVERY, &fixture("github_issues_labeled")),
    )
    .await;
    let id = only_run(&reply);
    let page = send(&env.app(), get_as_operator(&format!("/runs/{id}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains(
            "started by <a href=\"https://github.com/Codertocat/Hello-World/issues/1\" rel=\"noopener noreferrer\">github:Codertocat/Hello-World#1 (@Octocat)</a>"
        ),
        "{}",
        page.body
    );
    // The API and the run id prefix still find it.
    let api = send(
        &env.app(),
        get_as_operator(&format!("/api/v1/runs/{}", &id[..8])),
    )
    .await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    assert_eq!(api.json()["id"], id);
}
