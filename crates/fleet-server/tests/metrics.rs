//! `/metrics` counts what this process did: a release gate started through
//! the API, driven by the server's worker, decided with an approver link and
//! announced to a real webhook on loopback; then the counters and the
//! step-duration histogram say so. Also the request id on every response.

mod common;

use axum::http::{Request, StatusCode};
use common::*;
use serde_json::json;

/// A webhook receiver on loopback that accepts everything.
async fn webhook_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("addr: {e}"));
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/hook")
}

/// The announce step posts to `hook`. Signing needs a secret from the
/// environment; PATH is always set (changing the environment of a threaded
/// test process is unsound).
fn with_webhook(hook: &str) -> impl FnOnce(String) -> String {
    let hook = hook.to_owned();
    move |text| {
        let text = text.replace(
            "{name: announce, depends_on: [go-no-go, readiness], kind: notify, out: sent.md}",
            &format!(
                "{{name: announce, depends_on: [go-no-go, readiness], kind: notify, out: sent.md, webhook: \"{hook}\"}}"
            ),
        );
        format!("notify:\n  webhook: {{secret_env: PATH}}\n{text}")
    }
}

async fn metrics(app: &axum::Router) -> String {
    let r = send(app, get_as_operator("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

fn has(body: &str, line: &str) -> bool {
    body.lines().any(|l| l == line)
}

#[tokio::test]
async fn a_release_gate_through_the_api_is_counted() {
    let hook = webhook_receiver().await;
    let mut env = env_with(false, with_webhook(&hook)).await;
    let _stop = env.spawn_worker();
    let app = env.app();

    let before = metrics(&app).await;
    assert!(
        has(&before, "# TYPE fleet_step_duration_seconds histogram"),
        "{before}"
    );
    assert!(!before.contains("fleet_runs_started_total{"), "{before}");

    let started = send(
        &app,
        post_json(
            "/api/v1/genflows/release-gate/runs",
            Some(API_TOKEN),
            json!({}),
        ),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = started.json()["id"].as_str().unwrap_or_default().to_owned();
    let waiting = env.wait_settled(&id).await;
    assert_eq!(waiting.state.status.as_str(), "waiting");

    let link = send(
        &app,
        post_json(
            &format!("/api/v1/runs/{id}/gates/go-no-go/links"),
            Some(API_TOKEN),
            json!({"approver": OWNER}),
        ),
    )
    .await
    .json();
    let url = link["url"].as_str().unwrap_or_default();
    let token = url.rsplit("t=").next().unwrap_or_default();
    let decided = send(
        &app,
        post_json(
            &format!("/api/v1/runs/{id}/gates/go-no-go/decisions"),
            None,
            json!({"token": token, "verdict": "go"}),
        ),
    )
    .await;
    assert!(decided.status.is_success(), "{}", decided.body);
    let done = env.wait_terminal(&id).await;
    assert_eq!(done.state.status.as_str(), "succeeded");

    let after = metrics(&app).await;
    for line in [
        "fleet_runs_started_total{genflow=\"release-gate\"} 1",
        "fleet_runs_finished_total{genflow=\"release-gate\",status=\"succeeded\"} 1",
        "fleet_steps_finished_total{kind=\"report\",status=\"succeeded\"} 1",
        "fleet_steps_finished_total{kind=\"review\",status=\"succeeded\"} 1",
        "fleet_steps_finished_total{kind=\"notify\",status=\"succeeded\"} 1",
        "fleet_decisions_total{verdict=\"go\",channel=\"api\"} 1",
        "fleet_deliveries_total{channel=\"webhook\",status=\"sent\"} 1",
        "fleet_step_duration_seconds_bucket{kind=\"report\",le=\"+Inf\"} 1",
        "fleet_step_duration_seconds_count{kind=\"report\"} 1",
        "fleet_step_duration_seconds_count{kind=\"notify\"} 1",
        // The database-wide series are still there, under their own names.
        "fleet_runs{status=\"succeeded\"} 1",
        "fleet_recorded_step_duration_seconds_count{genflow=\"release-gate\",step=\"readiness\"} 1",
    ] {
        assert!(has(&after, line), "no `{line}` in:\n{after}");
    }
    // Buckets are cumulative: each is at most the next.
    let buckets: Vec<u64> = after
        .lines()
        .filter(|l| l.starts_with("fleet_step_duration_seconds_bucket{kind=\"review\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(buckets.len(), 15, "{after}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
    assert_eq!(buckets.last(), Some(&1));
}

#[tokio::test]
async fn a_no_go_on_the_decision_page_is_counted() {
    let mut env = env().await;
    let _stop = env.spawn_worker();
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (_, cookie, fields) = open_gate(&app, &run.id, &token).await;
    let r = send(
        &app,
        post_form(
            &format!("/runs/{}/gates/go-no-go", run.id),
            Some(&cookie),
            &as_refs(&with(
                &fields,
                &[("verdict", "no_go"), ("reason", "REG-1423 is open")],
            )),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    env.wait_terminal(&run.id).await;
    let body = metrics(&app).await;
    for line in [
        "fleet_decisions_total{verdict=\"no_go\",channel=\"web\"} 1",
        "fleet_runs_finished_total{genflow=\"release-gate\",status=\"rejected\"} 1",
    ] {
        assert!(has(&body, line), "no `{line}` in:\n{body}");
    }
    // Nothing was announced behind a No-go.
    assert!(
        !body.contains("fleet_steps_finished_total{kind=\"notify\""),
        "{body}"
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let env = env().await;
    let app = env.app();
    let a = send(&app, get("/healthz")).await;
    let b = send(&app, get("/healthz")).await;
    let id = a.header("x-request-id");
    assert_eq!(id.len(), 32, "{id}");
    assert_ne!(id, b.header("x-request-id"));
    // A caller's plain id is kept, so its logs and ours line up...
    let mine = send(
        &app,
        Request::get("/no/such/page")
            .header("x-request-id", "lb-7f3a.19")
            .body(axum::body::Body::empty())
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    assert_eq!(mine.status, StatusCode::NOT_FOUND);
    assert_eq!(mine.header("x-request-id"), "lb-7f3a.19");
    assert_eq!(mine.header("x-frame-options"), "DENY");
    // ...one that could forge log content is replaced.
    let forged = send(
        &app,
        Request::get("/healthz")
            .header("x-request-id", "a\" level=ERROR")
            .body(axum::body::Body::empty())
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    assert_eq!(forged.header("x-request-id").len(), 32);
}
