//! Router tests (tower `oneshot`) against a real workspace, store and engine.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use fleet_core::run::Verdict;
use fleet_store::{NewArtifact, Transition};
use serde_json::json;

#[tokio::test]
async fn decision_page_shows_documents_flags_and_hashes_and_get_never_decides() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let app = env.app();
    let (page, _, fields) = open_gate(&app, &run.id, &token).await;
    let body = &page.body;
    for needle in [
        "Ship release 2.4.0 to production?",
        OWNER,
        "readiness.md",
        "risks.md",
        "REG-1423",
        "docs/releases/2.4.0.md:27",
        "id=\"go\"",
        "id=\"nogo\"",
    ] {
        assert!(body.contains(needle), "page lacks `{needle}`");
    }
    // Every revision shown is listed with its sha256, and the form carries them.
    let refs = env
        .store()
        .artifacts(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refs.len() >= 3);
    let shown = &fields
        .iter()
        .find(|(k, _)| k == "shown")
        .unwrap_or_else(|| panic!("shown"))
        .1;
    for r in &refs {
        assert!(
            body.contains(&format!("sha256:{}", r.sha256)),
            "{} sha missing",
            r.path
        );
        assert!(shown.contains(&r.sha256));
    }
    // Security headers.
    assert!(
        page.header("content-security-policy")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(page.header("x-content-type-options"), "nosniff");
    assert_eq!(page.header("referrer-policy"), "no-referrer");
    // GET (twice, as a mail scanner would) decides nothing.
    send(
        &app,
        get(&format!(
            "/runs/{}/gates/go-no-go?t={}",
            run.id,
            enc(&token)
        )),
    )
    .await;
    let decisions = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(decisions.is_empty());
    let now = env
        .store()
        .get_run(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(now.version, run.version);
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_refused() {
    let env = env_with(false, two_approvers).await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let good = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (_, cookie, fields) = open_gate(&app, &run.id, &good).await;

    // Forged: signed with another secret.
    let other_secret = fleet_server::Secret::from_bytes(b"some-other-secret-0123".to_vec())
        .unwrap_or_else(|e| panic!("{e}"));
    let forger = fleet_server::Signer::new(&other_secret).unwrap_or_else(|e| panic!("{e}"));
    let forged = forger.approver_token(&fleet_server::ApproverClaims {
        run: run.id.clone(),
        step: "go-no-go".into(),
        approver: OWNER.into(),
        expires: jiff::Timestamp::now().as_second() + 3600,
    });
    let expired = env.token(&run.id, "go-no-go", OWNER, -1);
    let other_gate = env.token(&run.id, "announce", OWNER, 3600);
    let other_run = env.token("0000-other-run", "go-no-go", OWNER, 3600);
    let not_an_approver = env.token(&run.id, "go-no-go", "mallory@example.com", 3600);
    let tampered = format!("{}x", &good[..good.len() - 1]);
    for (what, t) in [
        ("forged", forged.as_str()),
        ("expired", expired.as_str()),
        ("other gate", other_gate.as_str()),
        ("other run", other_run.as_str()),
        ("tampered", tampered.as_str()),
        ("empty", ""),
    ] {
        let r = send(
            &app,
            get(&format!("/runs/{}/gates/go-no-go?t={}", run.id, enc(t))),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "GET with {what} token");
        // POST with an otherwise valid form.
        let mut f = fields.clone();
        f.retain(|(k, _)| k != "t");
        f.push(("t".into(), t.into()));
        f.push(("verdict".into(), "go".into()));
        let r = send(
            &app,
            post_form(
                &format!("/runs/{}/gates/go-no-go", run.id),
                Some(&cookie),
                &as_refs(&f),
            ),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::FORBIDDEN,
            "POST with {what} token: {}",
            r.body
        );
    }
    assert!(
        send(
            &app,
            get(&format!(
                "/runs/{}/gates/go-no-go?t={}",
                run.id,
                enc(&expired)
            ))
        )
        .await
        .body
        .contains("expired")
    );

    // A valid link for someone who is not an approver: the engine refuses (403).
    let (_, cookie_m, fields_m) = open_gate(&app, &run.id, &not_an_approver).await;
    let r = send(
        &app,
        post_form(
            &format!("/runs/{}/gates/go-no-go", run.id),
            Some(&cookie_m),
            &as_refs(&with(&fields_m, &[("verdict", "go")])),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("not an approver"));

    // The second approver's link decides as the second approver, never as the owner.
    let second = env.token(&run.id, "go-no-go", SECOND, 3600);
    let (_, c2, f2) = open_gate(&app, &run.id, &second).await;
    let r = send(
        &app,
        post_form(
            &format!("/runs/{}/gates/go-no-go", run.id),
            Some(&c2),
            &as_refs(&with(&f2, &[("verdict", "go")])),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let d = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].approver, SECOND);
    assert_eq!(d[0].channel, "web");
}

#[tokio::test]
async fn csrf_failures_are_refused_and_record_nothing() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (_, cookie, fields) = open_gate(&app, &run.id, &token).await;
    let uri = format!("/runs/{}/gates/go-no-go", run.id);
    let go = with(&fields, &[("verdict", "go")]);
    // No cookie (a cross-site form post).
    let r = send(&app, post_form(&uri, None, &as_refs(&go))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Another browser's nonce.
    let r = send(
        &app,
        post_form(
            &uri,
            Some("fleet_csrf=00112233445566778899aabbccddeeff"),
            &as_refs(&go),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A wrong CSRF value.
    let mut bad = go.clone();
    for (k, v) in &mut bad {
        if k == "csrf" {
            *v = "AAAA".into();
        }
    }
    let r = send(&app, post_form(&uri, Some(&cookie), &as_refs(&bad))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("could not be verified"));
    let d = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(d.is_empty());
}

#[tokio::test]
async fn no_go_needs_a_reason_then_go_completes_the_run() {
    let mut env = env().await;
    let _stop = env.spawn_worker();
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (_, cookie, fields) = open_gate(&app, &run.id, &token).await;
    let uri = format!("/runs/{}/gates/go-no-go", run.id);
    let r = send(
        &app,
        post_form(
            &uri,
            Some(&cookie),
            &as_refs(&with(&fields, &[("verdict", "no_go"), ("reason", "  ")])),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("needs a reason"), "{}", r.body);
    assert!(r.body.contains("id=\"go\""), "the form is still there");
    let r = send(
        &app,
        post_form(
            &uri,
            Some(&cookie),
            &as_refs(&with(&fields, &[("verdict", "go")])),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let location = r.header("location").to_owned();
    assert!(location.contains("done=1"));
    let done = env.wait_terminal(&run.id).await;
    assert_eq!(done.state.status.as_str(), "succeeded");
    let d = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].verdict, Verdict::Go);
    // The decision is bound to exactly the revisions the page posted.
    let posted: Vec<(String, String)> = serde_json::from_str(
        &fields
            .iter()
            .find(|(k, _)| k == "shown")
            .unwrap_or_else(|| panic!("shown"))
            .1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let bound: Vec<(String, String)> = d[0]
        .shown
        .iter()
        .map(|r| (r.path.clone(), r.sha256.clone()))
        .collect();
    assert_eq!(bound, posted);
    // After the decision the page says so and offers no buttons.
    let after = send(&app, get(&location)).await;
    assert!(after.body.contains("Your decision was recorded"));
    assert!(!after.body.contains("id=\"go\""));
}

#[tokio::test]
async fn a_revision_that_changed_since_the_page_loaded_is_refused_with_409() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (_, cookie, fields) = open_gate(&app, &run.id, &token).await;
    // A new revision of readiness.md lands after the page was shown.
    let current = env
        .store()
        .get_run(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut t = Transition::new(&current, current.state.clone());
    t.artifacts.push(NewArtifact {
        step: "readiness".into(),
        path: "readiness.md".into(),
        bytes: b"# Readiness (redrafted)\n\nREG-1423 fixed.\n".to_vec(),
    });
    env.store()
        .commit(t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = send(
        &app,
        post_form(
            &format!("/runs/{}/gates/go-no-go", run.id),
            Some(&cookie),
            &as_refs(&with(&fields, &[("verdict", "go")])),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(
        r.body
            .contains("readiness.md changed after this page was loaded"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("REG-1423 fixed."),
        "the page now shows the new revision"
    );
    let d = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(d.is_empty());
    // The diff view shows what changed between the revisions.
    let diff = send(
        &app,
        get_as_operator(&format!("/runs/{}/diff/readiness.md", run.id)),
    )
    .await;
    assert_eq!(diff.status, StatusCode::OK);
    assert!(diff.body.contains("revision 1 → 2"));
    assert!(diff.body.contains("class=\"dl add\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_go_posts_record_exactly_one_decision() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (_, cookie, fields) = open_gate(&app, &run.id, &token).await;
    let form = with(&fields, &[("verdict", "go")]);
    let uri = format!("/runs/{}/gates/go-no-go", run.id);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        let req = post_form(&uri, Some(&cookie), &as_refs(&form));
        tasks.push(tokio::spawn(async move { send(&app, req).await.status }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, refused), (1, 19), "{statuses:?}");
    let d = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.len(), 1);
}

#[tokio::test]
async fn operators_need_the_token_unless_insecure_local() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    for uri in [
        "/",
        "/genflows/release-gate",
        &format!("/runs/{}", run.id),
        "/metrics",
    ] {
        let r = send(&app, get(uri)).await;
        assert!(
            r.status == StatusCode::SEE_OTHER || r.status == StatusCode::UNAUTHORIZED,
            "{uri} without auth: {}",
            r.status
        );
    }
    let r = send(&app, get("/runs/x")).await;
    assert!(r.header("location").starts_with("/login?next="));
    let r = send(&app, get("/api/v1/runs")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), "Bearer");
    let wrong = Request::get("/api/v1/runs")
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(send(&app, wrong).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, get_as_operator("/api/v1/runs")).await.status,
        StatusCode::OK
    );

    // Login form: wrong token 401; right token sets an HttpOnly SameSite cookie.
    let login_page = send(&app, get("/login?next=/runs")).await;
    assert_eq!(login_page.status, StatusCode::OK);
    let r = send(
        &app,
        post_form("/login", None, &[("token", "wrong"), ("next", "/")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = send(
        &app,
        post_form(
            "/login",
            None,
            &[("token", API_TOKEN), ("next", "//evil.example/")],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), "/", "no open redirect");
    let set = r.header("set-cookie").to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = r
        .cookie("fleet_session")
        .unwrap_or_else(|| panic!("no session cookie"));
    let with_cookie = Request::get("/")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(send(&app, with_cookie).await.status, StatusCode::OK);
    let r = send(&app, post_form("/logout", Some(&cookie), &[])).await;
    assert!(r.header("set-cookie").contains("Max-Age=0"));

    // --insecure-local: no token needed.
    let open = env_with(true, |t| t).await;
    assert_eq!(send(&open.app(), get("/")).await.status, StatusCode::OK);
    assert_eq!(
        send(&open.app(), get("/api/v1/runs")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn operator_pages_render() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let dash = send(&app, get_as_operator("/")).await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(dash.body.contains(&run.id[..8]) && dash.body.contains("Waiting for a decision"));
    let filtered = send(&app, get_as_operator("/?status=succeeded")).await;
    assert!(
        !filtered
            .body
            .contains(&format!("<code>{}</code>", &run.id[..8]))
    );
    assert_eq!(
        send(&app, get_as_operator("/?status=bogus")).await.status,
        StatusCode::BAD_REQUEST
    );
    let flow = send(&app, get_as_operator("/genflows/release-gate")).await;
    assert_eq!(flow.status, StatusCode::OK);
    assert!(flow.body.contains("risk-review") && flow.body.contains(&run.id[..8]));
    assert_eq!(
        send(&app, get_as_operator("/genflows/nope")).await.status,
        StatusCode::NOT_FOUND
    );
    let page = send(&app, get_as_operator(&format!("/runs/{}", run.id))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<svg class=\"dag\""));
    assert!(page.body.contains("dag-node st-waiting"));
    assert!(
        page.body.contains("/gates/go-no-go?t=v1."),
        "approver links for the waiting gate"
    );
    let art = send(
        &app,
        get_as_operator(&format!("/runs/{}/artifacts/readiness.md", run.id)),
    )
    .await;
    assert_eq!(art.status, StatusCode::OK);
    assert!(art.body.contains("<h1>Readiness report"));
    let flags = send(
        &app,
        get_as_operator(&format!("/runs/{}/artifacts/risks.flags.json", run.id)),
    )
    .await;
    assert!(flags.body.contains("REG-1423"));
    assert_eq!(
        send(
            &app,
            get_as_operator(&format!("/runs/{}/artifacts/nope.md", run.id))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, get_as_operator("/runs/ffffffff-0000"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let css = send(&app, get("/assets/fleet.css")).await;
    assert!(css.header("content-type").starts_with("text/css"));
    assert_eq!(send(&app, get("/healthz")).await.status, StatusCode::OK);
    let metrics = send(&app, get_as_operator("/metrics")).await;
    assert!(
        metrics.body.contains("fleet_runs{status=\"waiting\"} 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("fleet_gates_waiting{genflow=\"release-gate\",step=\"go-no-go\"} 1")
    );
    assert!(metrics.body.contains(
        "fleet_recorded_step_duration_seconds_count{genflow=\"release-gate\",step=\"readiness\"} 1"
    ));
    // Start a run from the genflow page.
    let r = send(
        &app,
        Request::post("/genflows/release-gate/runs")
            .header(header::AUTHORIZATION, format!("Bearer {API_TOKEN}"))
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header("location").starts_with("/runs/"));
    assert_eq!(
        send(&app, get("/no/such/page")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn model_output_with_script_and_javascript_links_renders_inert() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let current = env
        .store()
        .get_run(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut t = Transition::new(&current, current.state.clone());
    t.artifacts.push(NewArtifact {
        step: "readiness".into(),
        path: "readiness.md".into(),
        bytes: b"# Hostile\n\n<script>fetch('/steal')</script>\n\n[details](javascript:alert(document.cookie))\n\n<a href=\"JaVaScRiPt:alert(1)\" onmouseover=\"alert(2)\">x</a> <img src=x onerror=alert(3)>\n".to_vec(),
    });
    env.store()
        .commit(t)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    for uri in [
        format!("/runs/{}/artifacts/readiness.md", run.id),
        format!("/runs/{}/gates/go-no-go?t={}", run.id, enc(&token)),
    ] {
        let page = send(&app, get_as_operator(&uri)).await;
        assert_eq!(page.status, StatusCode::OK);
        let lower = page.body.to_ascii_lowercase();
        assert!(lower.contains("<h1>hostile</h1>"), "{uri}");
        for bad in [
            "<script",
            "javascript:",
            "onmouseover",
            "onerror",
            "fetch('/steal')",
        ] {
            assert!(!lower.contains(bad), "{uri}: `{bad}` survived");
        }
    }
    // The raw API serves it as text, never as HTML.
    let raw = send(
        &app,
        get_as_operator(&format!("/api/v1/runs/{}/artifacts/readiness.md", run.id)),
    )
    .await;
    assert!(raw.header("content-type").starts_with("text/plain"));
    assert_eq!(raw.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn json_api_lists_starts_and_decides() {
    let mut env = env().await;
    let _stop = env.spawn_worker();
    let run = env.run_to_gate().await;
    let app = env.app();
    let flows = send(&app, get_as_operator("/api/v1/genflows")).await.json();
    assert_eq!(flows[0]["name"], "release-gate");
    let flow = send(&app, get_as_operator("/api/v1/genflows/release-gate"))
        .await
        .json();
    assert_eq!(flow["definition"]["steps"][2]["approvers"][0], OWNER);
    assert_eq!(
        send(&app, get_as_operator("/api/v1/genflows/nope"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let runs = send(&app, get_as_operator("/api/v1/runs?status=waiting"))
        .await
        .json();
    assert_eq!(runs[0]["id"], run.id.as_str());
    assert_eq!(runs[0]["waiting_gates"][0], "go-no-go");
    let one = send(
        &app,
        get_as_operator(&format!("/api/v1/runs/{}", &run.id[..8])),
    )
    .await
    .json();
    assert_eq!(one["steps"][0]["status"], "succeeded");
    let steps = send(
        &app,
        get_as_operator(&format!("/api/v1/runs/{}/steps", run.id)),
    )
    .await
    .json();
    assert_eq!(steps[0]["step"], "readiness");
    let arts = send(
        &app,
        get_as_operator(&format!("/api/v1/runs/{}/artifacts", run.id)),
    )
    .await
    .json();
    let sha = arts[0]["sha256"].as_str().unwrap_or_default().to_owned();
    let content = send(
        &app,
        get_as_operator(&format!("/api/v1/runs/{}/artifacts/readiness.md", run.id)),
    )
    .await;
    assert_eq!(content.header("x-fleet-sha256"), sha);
    let by_flow = send(&app, get_as_operator("/api/v1/genflows/release-gate/runs"))
        .await
        .json();
    assert_eq!(by_flow.as_array().map(Vec::len), Some(1));

    // Start a run as CI would.
    let started = send(
        &app,
        post_json(
            "/api/v1/genflows/release-gate/runs",
            Some(API_TOKEN),
            json!({"triggered_by": "ci-pipeline"}),
        ),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let started_id = started.json()["id"].as_str().unwrap_or_default().to_owned();
    assert!(started.header("location").ends_with(&started_id));
    // With `wait`, the answer comes once the worker brought the run to its gate.
    let waited = send(
        &app,
        post_json(
            "/api/v1/genflows/release-gate/runs?wait=true",
            Some(API_TOKEN),
            json!({"triggered_by": "ci-pipeline"}),
        ),
    )
    .await;
    assert_eq!(waited.status, StatusCode::CREATED, "{}", waited.body);
    assert_eq!(waited.json()["status"], "waiting", "{}", waited.body);
    assert_eq!(waited.json()["waiting_gates"][0], "go-no-go");
    // Keyset pages: newest first, each run once, page 2 after page 1's last.
    let all = send(&app, get_as_operator("/api/v1/runs")).await.json();
    let all: Vec<String> = all
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(all.len(), 3, "{all:?}");
    let first = send(&app, get_as_operator("/api/v1/runs?limit=2"))
        .await
        .json();
    let last = first[1]["id"].as_str().unwrap_or_default().to_owned();
    let second = send(
        &app,
        get_as_operator(&format!("/api/v1/runs?limit=2&before={last}")),
    )
    .await
    .json();
    assert_eq!(
        [&first[0]["id"], &first[1]["id"], &second[0]["id"]]
            .map(|v| v.as_str().unwrap_or_default().to_owned()),
        [all[0].clone(), all[1].clone(), all[2].clone()]
    );
    assert_eq!(second.as_array().map(Vec::len), Some(1));
    assert_eq!(
        send(
            &app,
            post_json("/api/v1/genflows/nope/runs", Some(API_TOKEN), json!({}))
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(
            &app,
            post_json("/api/v1/genflows/release-gate/runs", None, json!({}))
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    // Issue a link, then decide with its token.
    let link = send(
        &app,
        post_json(
            &format!("/api/v1/runs/{}/gates/go-no-go/links", run.id),
            Some(API_TOKEN),
            json!({"approver": OWNER}),
        ),
    )
    .await;
    assert_eq!(link.status, StatusCode::OK, "{}", link.body);
    let url = link.json()["url"].as_str().unwrap_or_default().to_owned();
    assert!(url.starts_with(&format!(
        "http://fleet.test/runs/{}/gates/go-no-go?t=",
        run.id
    )));
    let refused = send(
        &app,
        post_json(
            &format!("/api/v1/runs/{}/gates/go-no-go/links", run.id),
            Some(API_TOKEN),
            json!({"approver": "mallory@example.com"}),
        ),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let token = url.rsplit("t=").next().unwrap_or_default().to_owned();
    let decide_uri = format!("/api/v1/runs/{}/gates/go-no-go/decisions", run.id);
    let forged = send(
        &app,
        post_json(
            &decide_uri,
            None,
            json!({"token": "v1.e30.AAAA", "verdict": "go"}),
        ),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.json()["error"].is_string());
    let stale = send(&app, post_json(&decide_uri, None, json!({"token": token, "verdict": "go", "shown": [{"path": "readiness.md", "sha256": "0".repeat(64)}]}))).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    let no_reason = send(
        &app,
        post_json(
            &decide_uri,
            None,
            json!({"token": token, "verdict": "no_go"}),
        ),
    )
    .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = send(
        &app,
        post_json(
            &decide_uri,
            None,
            json!({"token": token, "verdict": "no_go", "reason": "REG-1423 is open"}),
        ),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.json()["status"], "rejected");
    let again = send(
        &app,
        post_json(&decide_uri, None, json!({"token": token, "verdict": "go"})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let decisions = send(
        &app,
        get_as_operator(&format!("/api/v1/runs/{}/decisions", run.id)),
    )
    .await
    .json();
    assert_eq!(decisions[0]["channel"], "api");
    assert_eq!(decisions[0]["reason"], "REG-1423 is open");
    // The worker drove the started run to its gate by itself.
    let started_run = env.wait_settled(&started_id).await;
    assert_eq!(started_run.state.status.as_str(), "waiting");
    assert_eq!(started_run.triggered_by.as_deref(), Some("ci-pipeline"));
}

/// Every path and method in the OpenAPI document is routed, and every API
/// route the router serves is documented.
#[tokio::test]
async fn openapi_document_matches_the_routes() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let doc = send(&app, get("/api/v1/openapi.json")).await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("no paths"));
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item
            .as_object()
            .unwrap_or_else(|| panic!("path item"))
            .keys()
        {
            documented.push(format!("{} {path}", method.to_uppercase()));
            let uri = path
                .replace("{id}", &run.id)
                .replace("{name}", "release-gate")
                .replace("{step}", "go-no-go")
                .replace("{path}", "readiness.md");
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header(header::AUTHORIZATION, format!("Bearer {API_TOKEN}"))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap_or_else(|e| panic!("{e}"));
            let r = send(&app, req).await;
            assert!(
                r.status != StatusCode::NOT_FOUND && r.status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri} is documented but answers {}: {}",
                r.status,
                r.body
            );
        }
    }
    documented.sort();
    let mut served = vec![
        "GET /api/v1/genflows",
        "GET /api/v1/genflows/{name}",
        "GET /api/v1/genflows/{name}/runs",
        "POST /api/v1/genflows/{name}/runs",
        "GET /api/v1/runs",
        "GET /api/v1/runs/{id}",
        "GET /api/v1/runs/{id}/steps",
        "GET /api/v1/runs/{id}/artifacts",
        "GET /api/v1/runs/{id}/artifacts/{path}",
        "GET /api/v1/runs/{id}/decisions",
        "POST /api/v1/runs/{id}/gates/{step}/links",
        "POST /api/v1/runs/{id}/gates/{step}/decisions",
        "GET /api/v1/openapi.json",
    ];
    served.sort();
    assert_eq!(documented, served);
    // And an undocumented API path is not served.
    assert_eq!(
        send(&app, get_as_operator("/api/v1/nothing")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn flag_evidence_links_open_the_cited_line_of_files_the_run_read_only() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (page, _, _) = open_gate(&app, &run.id, &token).await;
    let base = format!("/runs/{}/gates/go-no-go/source?t={}", run.id, enc(&token));
    let link = format!("{base}&amp;path=docs%2Freleases%2F2.4.0.md#L27");
    assert!(
        page.body.contains(&link),
        "evidence links to the cited line"
    );
    let source = send(
        &app,
        get(&format!("{base}&path=docs%2Freleases%2F2.4.0.md")),
    )
    .await;
    assert_eq!(source.status, StatusCode::OK, "{}", source.body);
    assert!(source.body.contains("id=\"L27\""));
    assert!(source.body.contains("REG-1423 (P1, open)"));
    assert!(!source.body.contains("has changed since"));
    // Only files the run read; never the secret, never outside the workspace.
    for path in [
        ".fleet/secret",
        ".fleet%2Fconfig.yaml",
        "..%2F..%2Fetc%2Fpasswd",
        "%2Fetc%2Fpasswd",
    ] {
        let r = send(&app, get(&format!("{base}&path={path}"))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
    }
    let forged = send(
        &app,
        get(&format!(
            "/runs/{}/gates/go-no-go/source?t=v1.e30.AAAA&path=docs%2Freleases%2F2.4.0.md",
            run.id
        )),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A file edited since the run read it is flagged as such.
    let file = env.dir.path().join("docs/releases/2.4.0.md");
    let mut text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    text.push_str("\nedited later\n");
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
    let source = send(
        &app,
        get(&format!("{base}&path=docs%2Freleases%2F2.4.0.md")),
    )
    .await;
    assert!(source.body.contains("has changed since the run read it"));
}

/// Commits new documents for the readiness step of `run`, as a redraft would.
/// A second revision of readiness.md, mentioning REG-1423 as fixed.
async fn redraft_readiness(env: &Env, run: &str) -> fleet_store::RunRecord {
    add_documents(
        env,
        run,
        &[(
            "readiness.md",
            "# Readiness (redrafted)\n\nREG-1423 fixed.\n",
        )],
    )
    .await
}

async fn add_documents(env: &Env, run: &str, docs: &[(&str, &str)]) -> fleet_store::RunRecord {
    add_documents_to(env.store().as_ref(), run, docs).await
}

/// New revisions of `docs` (path, text) in run `run`, committed through `store`.
async fn add_documents_to(
    store: &dyn fleet_store::Store,
    run: &str,
    docs: &[(&str, &str)],
) -> fleet_store::RunRecord {
    let current = store.get_run(run).await.unwrap_or_else(|e| panic!("{e}"));
    let mut t = Transition::new(&current, current.state.clone());
    for (path, text) in docs {
        t.artifacts.push(NewArtifact {
            step: "readiness".into(),
            path: (*path).into(),
            bytes: text.as_bytes().to_vec(),
        });
    }
    store.commit(t).await.unwrap_or_else(|e| panic!("{e}")).0
}

/// Pages reuse rendered documents and diffs by sha256: each revision has its
/// own entry, the same bytes under a non-markdown path render as text, and
/// a page served from the cache is byte for byte what a server with an empty
/// cache renders.
#[tokio::test]
async fn cached_documents_never_mix_and_match_a_fresh_render() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let second = "# Second draft\n\n<b>bold</b> <script>alert(1)</script> REG-1423 fixed.\n";
    add_documents(
        &env,
        &run.id,
        &[("readiness.md", second), ("notes.txt", second)],
    )
    .await;
    let refs = env
        .store()
        .artifacts(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first_sha = &refs
        .iter()
        .find(|r| r.path == "readiness.md" && r.revision == 1)
        .unwrap_or_else(|| panic!("readiness.md r1"))
        .sha256;
    let first = env
        .store()
        .artifact_bytes(first_sha)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("bytes of r1"));
    let first = String::from_utf8_lossy(&first).into_owned();

    let uri = |rest: &str| format!("/runs/{}/{rest}", run.id);
    let rev1 = uri("artifacts/readiness.md?rev=1");
    let rev2 = uri("artifacts/readiness.md?rev=2");
    let notes = uri("artifacts/notes.txt");
    let forward = uri("diff/readiness.md?from=1&to=2");
    let backward = uri("diff/readiness.md?from=2&to=1");
    let page = |u: &str| send(&app, get_as_operator(u));

    let r1 = page(&rev1).await;
    let r2 = page(&rev2).await;
    let text = page(&notes).await;
    for r in [&r1, &r2, &text] {
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert!(r1.body.contains(&fleet_server::markdown::render(&first)));
    assert!(!r1.body.contains("Second draft"), "r1 shows r2's content");
    assert!(r2.body.contains(&fleet_server::markdown::render(second)));
    assert!(r2.body.contains("<h1>Second draft</h1>"));
    assert!(!r2.body.contains("<script>alert(1)"), "{}", r2.body);
    // Same bytes, other kind of path: escaped text, not the markdown render.
    assert!(text.body.contains("# Second draft"), "{}", text.body);
    assert!(text.body.contains("&lt;script&gt;"), "{}", text.body);
    assert!(!text.body.contains("<h1>Second draft</h1>"));

    let d1 = page(&forward).await;
    let d2 = page(&backward).await;
    // Keyed by the ordered pair: 1→2 adds what 2→1 removes.
    let line = "<span class=\"sign\">{}</span># Second draft";
    assert!(
        d1.body
            .contains(&format!("class=\"dl add\">{}", line.replace("{}", "+")))
    );
    assert!(
        d2.body
            .contains(&format!("class=\"dl del\">{}", line.replace("{}", "-")))
    );

    // Served again (from the cache) and by a server whose cache is empty.
    let fresh = env.uncached_app();
    for (u, before) in [
        (&rev1, &r1),
        (&rev2, &r2),
        (&notes, &text),
        (&forward, &d1),
        (&backward, &d2),
    ] {
        assert_eq!(page(u).await.body, before.body, "{u} from the cache");
        assert_eq!(
            send(&fresh, get_as_operator(u)).await.body,
            before.body,
            "{u} rendered afresh"
        );
    }
}

/// The decision page and the runs API reuse what they built for a run's
/// version; whatever is committed later (a new revision, a decision made
/// elsewhere) shows on the next request.
#[tokio::test]
async fn pages_show_what_was_committed_after_they_were_cached() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let listed = |app: axum::Router| async move {
        let list = send(&app, get_as_operator("/api/v1/runs")).await.json();
        list.as_array()
            .and_then(|a| a.first().cloned())
            .unwrap_or_else(|| panic!("no run listed"))
    };

    let (first, _, _) = open_gate(&app, &run.id, &token).await;
    assert!(first.body.contains("Nobody has decided yet."));
    let before = listed(app.clone()).await;
    assert_eq!(before["version"], json!(run.version));
    assert_eq!(before["waiting_gates"], json!(["go-no-go"]));

    let redrafted = redraft_readiness(&env, &run.id).await;
    let (second, _, fields) = open_gate(&app, &run.id, &token).await;
    assert!(!first.body.contains("REG-1423 fixed."));
    assert!(second.body.contains("REG-1423 fixed."), "the new revision");
    assert!(second.body.contains("readiness.md</code> r2"));
    let refs = env
        .store()
        .artifacts(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r2 = refs
        .iter()
        .find(|r| r.path == "readiness.md" && r.revision == 2)
        .unwrap_or_else(|| panic!("r2"));
    let shown = &fields
        .iter()
        .find(|(k, _)| k == "shown")
        .unwrap_or_else(|| panic!("shown"))
        .1;
    assert!(
        shown.contains(&r2.sha256),
        "the form binds the new revision"
    );
    assert_eq!(
        listed(app.clone()).await["version"],
        json!(redrafted.version)
    );

    // Decided through the CLI path, not through this server's pages.
    let decided = go_through_the_cli(&env, &run.id).await;
    let third = send(
        &app,
        get(&format!(
            "/runs/{}/gates/go-no-go?t={}",
            run.id,
            enc(&token)
        )),
    )
    .await;
    assert!(third.body.contains("via cli"), "{}", third.body);
    assert!(!third.body.contains("id=\"go\""), "no buttons once decided");
    let after = listed(app.clone()).await;
    assert_eq!(after["version"], json!(decided.version));
    assert_eq!(after["waiting_gates"], json!([]));
}

/// `/api/v1/runs` reuses its whole body while the store lists the same runs
/// at the same versions: a commit to a listed run, a new run, and a run
/// leaving the filter each show on the very next request.
#[tokio::test]
async fn the_runs_listing_changes_with_the_next_commit() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let list = |uri: &'static str| {
        let app = app.clone();
        async move {
            let r = send(&app, get_as_operator(uri)).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body
        }
    };
    let ids_and_versions = |body: &str| -> Vec<(String, i64)> {
        serde_json::from_str::<serde_json::Value>(body)
            .unwrap_or_else(|e| panic!("{e}: {body}"))
            .as_array()
            .unwrap_or_else(|| panic!("not an array: {body}"))
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap_or_default().to_owned(),
                    r["version"].as_i64().unwrap_or_default(),
                )
            })
            .collect()
    };
    const ALL: &str = "/api/v1/runs";
    const WAITING: &str = "/api/v1/runs?status=waiting";

    let first = list(ALL).await;
    assert_eq!(list(ALL).await, first, "served again unchanged");
    assert_eq!(ids_and_versions(&first), [(run.id.clone(), run.version)]);
    assert_eq!(
        ids_and_versions(&list(WAITING).await),
        [(run.id.clone(), run.version)]
    );

    // A commit to the listed run.
    let redrafted = add_documents(&env, &run.id, &[("notes.txt", "A redraft.\n")]).await;
    assert_eq!(
        ids_and_versions(&list(ALL).await),
        [(run.id.clone(), redrafted.version)]
    );

    // A new run, listed first (newest first).
    let started = env
        .engine
        .start_run("release-gate", Some("ci@example.com".into()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ids_and_versions(&list(ALL).await),
        [
            (started.id.clone(), started.version),
            (run.id.clone(), redrafted.version)
        ]
    );

    // A run leaving the filter: decided, it no longer waits.
    assert_eq!(
        ids_and_versions(&list(WAITING).await),
        [(run.id.clone(), redrafted.version)]
    );
    let decided = go_through_the_cli(&env, &run.id).await;
    assert_ne!(decided.state.status, fleet_core::run::RunStatus::Waiting);
    assert_eq!(ids_and_versions(&list(WAITING).await), []);
    let all = ids_and_versions(&list(ALL).await);
    assert_eq!(all[1], (run.id.clone(), decided.version));

    // Each body is what a server with an empty cache answers.
    let fresh = env.uncached_app();
    for uri in [ALL, WAITING] {
        assert_eq!(
            send(&fresh, get_as_operator(uri)).await.body,
            list(uri).await
        );
    }
}

/// A commit made by another process (a second store on the same file: to
/// SQLite, the same thing) shows in `/api/v1/runs` and on the decision page
/// on the very next request, though both were cached.
#[tokio::test]
async fn a_commit_by_another_process_shows_on_the_next_request() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let page_uri = format!("/runs/{}/gates/go-no-go?t={}", run.id, enc(&token));
    let listed_version = |body: &str| -> i64 {
        let v: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v[0]["version"].as_i64().unwrap_or_default()
    };
    let first = send(&app, get_as_operator("/api/v1/runs")).await.body;
    assert_eq!(
        send(&app, get_as_operator("/api/v1/runs")).await.body,
        first,
        "served again unchanged"
    );
    assert_eq!(listed_version(&first), run.version);
    let page = send(&app, get(&page_uri)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(!page.body.contains("A note from elsewhere"));

    let other = fleet_store::SqliteStore::open(&env.dir.path().join(".fleet/fleet.db"))
        .await
        .unwrap_or_else(|e| panic!("second store: {e}"));
    let committed = add_documents_to(
        &other,
        &run.id,
        &[("readiness.md", "# Readiness\n\nA note from elsewhere.\n")],
    )
    .await;
    drop(other);

    let after = send(&app, get_as_operator("/api/v1/runs")).await.body;
    assert_eq!(listed_version(&after), committed.version);
    let page = send(&app, get(&page_uri)).await;
    assert!(
        page.body.contains("A note from elsewhere"),
        "the page still shows the old revision"
    );
}

/// Browsers send `Accept-Encoding: gzip`: the decision page and the runs
/// listing then come gzipped, decode to exactly what is served
/// uncompressed, keep the security headers, and show a commit made after
/// they were cached.
#[tokio::test]
async fn gzipped_responses_are_the_same_pages_and_stay_fresh() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    // The same browser (the same CSRF cookie) asks with and without gzip.
    let (_, cookie, _) = open_gate(&app, &run.id, &token).await;
    let gate = format!("/runs/{}/gates/go-no-go?t={}", run.id, enc(&token));
    let fetch = |uri: String, gzip: bool| {
        let app = app.clone();
        let cookie = cookie.clone();
        async move {
            let mut request = Request::get(uri)
                .header(header::COOKIE, cookie)
                .header(header::AUTHORIZATION, format!("Bearer {API_TOKEN}"));
            if gzip {
                request = request.header(header::ACCEPT_ENCODING, "gzip, deflate, br");
            }
            let r = send(
                &app,
                request
                    .body(Body::empty())
                    .unwrap_or_else(|e| panic!("{e}")),
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.header("content-encoding"), if gzip { "gzip" } else { "" });
            assert_eq!(r.header("vary"), "accept-encoding");
            assert!(
                r.header("content-security-policy")
                    .contains("default-src 'none'")
            );
            assert_eq!(r.header("x-frame-options"), "DENY");
            assert_eq!(r.header("cache-control"), "no-store");
            r.body
        }
    };
    for uri in [gate.clone(), "/api/v1/runs".to_owned()] {
        let plain = fetch(uri.clone(), false).await;
        assert_eq!(fetch(uri.clone(), true).await, plain, "{uri}");
        assert!(!plain.contains("REG-1423 fixed."));
    }

    let redrafted = redraft_readiness(&env, &run.id).await;
    let page = fetch(gate.clone(), true).await;
    assert!(page.contains("REG-1423 fixed."), "the new revision");
    assert!(page.contains("readiness.md</code> r2"));
    assert_eq!(fetch(gate, false).await, page);
    let listed = fetch("/api/v1/runs".to_owned(), true).await;
    assert!(
        listed.contains(&format!("\"version\":{}", redrafted.version)),
        "{listed}"
    );
}

/// The flags part of the page is cached per token (its source links carry
/// it): each approver's page links with their own token only, never with
/// the token of someone who opened the page before.
#[tokio::test]
async fn each_approver_gets_links_with_their_own_token() {
    let env = env_with(false, two_approvers).await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let owner = env.token(&run.id, "go-no-go", OWNER, 3600);
    let second = env.token(&run.id, "go-no-go", SECOND, 3600);
    let source_link = |token: &str| format!("/source?t={}&amp;path=", enc(token));
    for _ in 0..2 {
        for (mine, theirs) in [(&owner, &second), (&second, &owner)] {
            let (page, _, _) = open_gate(&app, &run.id, mine).await;
            assert!(page.body.contains(&source_link(mine)), "{}", page.body);
            assert!(
                !page.body.contains(theirs.as_str()),
                "another approver's token"
            );
        }
    }
}

/// The owner's Go at the gate, decided through the engine (as `fleet
/// approve` does), not through this server's pages.
async fn go_through_the_cli(env: &Env, run_id: &str) -> fleet_store::RunRecord {
    env.engine
        .decide(fleet_engine::DecisionRequest {
            run: run_id.to_owned(),
            step: Some("go-no-go".into()),
            approver: OWNER.into(),
            verdict: Verdict::Go,
            reason: None,
            channel: "cli".into(),
            shown: None,
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A browser without the CSRF cookie gets the link's own nonce, so repeated
/// visits are the same page (served from cache); one with a cookie keeps
/// its own nonce and is not sent another; each link has its own nonce; and
/// a link that stopped verifying is refused even though its page is cached.
#[tokio::test]
async fn decision_pages_are_per_link_and_nonce_and_stay_guarded() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let app = env.app();
    let owner = env.token(&run.id, "go-no-go", OWNER, 3600);
    let second = env.token(&run.id, "go-no-go", SECOND, 3600);
    let (first, cookie, fields) = open_gate(&app, &run.id, &owner).await;
    let (again, cookie_again, _) = open_gate(&app, &run.id, &owner).await;
    assert_eq!(again.body, first.body, "the same link, the same page");
    assert_eq!(cookie_again, cookie);
    let nonce = |fields: &[(String, String)]| {
        fields
            .iter()
            .find(|(k, _)| k == "nonce")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(cookie, format!("fleet_csrf={}", nonce(&fields)));
    let (_, other_cookie, other_fields) = open_gate(&app, &run.id, &second).await;
    assert_ne!(other_cookie, cookie, "each link has its own nonce");
    assert_ne!(nonce(&other_fields), nonce(&fields));

    // A browser that already holds a nonce keeps it.
    let mine = "00112233445566778899aabbccddeeff";
    let uri = format!("/runs/{}/gates/go-no-go?t={}", run.id, enc(&owner));
    let with_cookie = |value: &str| {
        Request::get(&uri)
            .header(header::COOKIE, format!("fleet_csrf={value}"))
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("request: {e}"))
    };
    for _ in 0..2 {
        let page = send(&app, with_cookie(mine)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.cookie("fleet_csrf"), None, "no new cookie");
        assert_eq!(hidden(&page.body, "nonce"), mine);
        assert_ne!(hidden(&page.body, "csrf"), hidden(&first.body, "csrf"));
    }

    // The cached page is not served to a link that no longer verifies.
    let forged = format!("{}A", &owner[..owner.len() - 1]);
    let forged = if forged == owner {
        format!("{}B", &owner[..owner.len() - 1])
    } else {
        forged
    };
    let r = send(
        &app,
        get(&format!(
            "/runs/{}/gates/go-no-go?t={}",
            run.id,
            enc(&forged)
        )),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

#[tokio::test]
async fn decision_page_leads_with_what_was_not_read() {
    let gappy = env_with(false, |t| {
        t.replacen("\"docs/runbooks/*.md\"", "\"docs/runbok/*.md\"", 1)
    })
    .await;
    let run = gappy.run_to_gate().await;
    let token = gappy.token(&run.id, "go-no-go", OWNER, 3600);
    let (page, _, _) = open_gate(&gappy.app(), &run.id, &token).await;
    let body = html_unescape(&page.body);
    let banner = body.find("id=\"not-read\"").expect("the not-read banner");
    let glob = body
        .find("step `readiness`: corpus glob `docs/runbok/*.md` matched no file")
        .expect("the banner names the glob and its step");
    let first_document = body.find("class=\"card doc\"").expect("a document");
    assert!(
        banner < glob && glob < first_document,
        "the banner comes before the documents"
    );

    // The example as shipped reads every glob: no banner.
    let env = env().await;
    let run = env.run_to_gate().await;
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (page, _, _) = open_gate(&env.app(), &run.id, &token).await;
    assert!(!page.body.contains("id=\"not-read\""));
}
