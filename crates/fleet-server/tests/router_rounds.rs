//! Redraft rounds on the decision page (router tests): a loop that
//! converges and one that hits its bound, driven by a scripted `command`
//! model through the real engine, store and router.

mod common;

use axum::http::StatusCode;
use common::*;
use fleet_core::run::Verdict;

/// The decision page of `run` for the owner: (page, token).
async fn gate_page(env: &Env, run: &str) -> (Reply, String) {
    let token = env.token(run, "go-no-go", OWNER, 3600);
    let (page, _, _) = open_gate(&env.app(), run, &token).await;
    (page, token)
}

fn assert_has(body: &str, needles: &[&str]) {
    for needle in needles {
        assert!(body.contains(needle), "page lacks `{needle}`:\n{body}");
    }
}

/// The link a round gives to revision `rev` of `path`.
fn revision_link(run: &str, token: &str, path: &str, rev: u32) -> String {
    format!(
        "/runs/{run}/gates/go-no-go/revision?t={}&amp;path={}&amp;rev={rev}",
        enc(token),
        enc(path)
    )
}

#[tokio::test]
async fn a_converging_loop_lists_both_rounds_the_diff_and_decides_on_the_latest() {
    let mut env = redraft_env(2, false).await;
    let _stop = env.spawn_worker();
    let run = env.run_to_gate().await;
    assert_eq!(
        run.state.steps[1].redrafts, 1,
        "one redraft, then no high flag"
    );
    let (page, token) = gate_page(&env, &run.id).await;
    let body = &page.body;
    assert_has(
        body,
        &[
            "class=\"notice redraft-banner ok\"",
            "<strong>converged after 1 redraft; no high flags remain (1 lower flag stands)</strong>",
            "id=\"rounds\"",
            // Round 1 raised both; round 2 answered the rollback and kept
            // the load test, now under another id.
            "<strong>F1</strong> The rollback plan is TBD. <span class=\"tag\">new</span>",
            "<strong>F2</strong> The load test was skipped. <span class=\"tag\">new</span>",
            "<strong>F1</strong> <s>The rollback plan is TBD.</s>",
            "<strong>F1</strong> The load test was skipped. <span class=\"tag again\">remains (was F2)</span>",
            // The unified diff of the two report revisions.
            "readiness.md</code> r1 → r2 · 1 added, 1 removed",
            "<div class=\"dl del\"><span class=\"sign\">-</span>Rollback plan: TBD</div>",
            "<div class=\"dl add\"><span class=\"sign\">+</span>Rollback plan: restore the previous build, then replay the queue.</div>",
        ],
    );
    assert_eq!(body.matches("<tr class=\"round\">").count(), 2, "{body}");
    assert!(!body.contains("redraft limit was reached"));
    // The banner comes before the documents.
    let banner = body.find("redraft-banner").unwrap_or(usize::MAX);
    let documents = body.find("<h2>Documents</h2>").unwrap_or(0);
    assert!(
        banner < documents,
        "the banner is at the top: {banner} {documents}"
    );
    // Each round links both of its revisions.
    for (path, rev) in [
        ("readiness.md", 1),
        ("readiness.md", 2),
        ("risks.md", 1),
        ("risks.md", 2),
    ] {
        assert!(
            body.contains(&revision_link(&run.id, &token, path, rev)),
            "no link to {path} r{rev}"
        );
    }

    // A round's link opens that revision through the approver's link.
    let app = env.app();
    let first = send(
        &app,
        get(&html_unescape(&revision_link(
            &run.id,
            &token,
            "readiness.md",
            1,
        ))),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_has(
        &first.body,
        &[
            "Rollback plan: TBD",
            "id=\"earlier\"",
            "decides on revision 2",
        ],
    );
    let latest = send(
        &app,
        get(&html_unescape(&revision_link(
            &run.id,
            &token,
            "readiness.md",
            2,
        ))),
    )
    .await;
    assert!(
        latest.body.contains("restore the previous build")
            && !latest.body.contains("id=\"earlier\"")
    );
    // Never without a valid link, nor for what the gate does not show.
    let other = env.token(&run.id, "announce", OWNER, 3600);
    for (uri, status) in [
        (
            format!(
                "/runs/{}/gates/go-no-go/revision?path=readiness.md&rev=1",
                run.id
            ),
            StatusCode::FORBIDDEN,
        ),
        (
            html_unescape(&revision_link(&run.id, &other, "readiness.md", 1)),
            StatusCode::FORBIDDEN,
        ),
        (
            html_unescape(&revision_link(&run.id, &token, "readiness.md", 3)),
            StatusCode::NOT_FOUND,
        ),
        (
            html_unescape(&revision_link(&run.id, &token, "../fleet.db", 1)),
            StatusCode::NOT_FOUND,
        ),
    ] {
        assert_eq!(send(&app, get(&uri)).await.status, status, "{uri}");
    }

    // The approver decides on the latest revisions, and the decision says so.
    let (_, cookie, fields) = open_gate(&app, &run.id, &token).await;
    let r = send(
        &app,
        post_form(
            &format!("/runs/{}/gates/go-no-go", run.id),
            Some(&cookie),
            &as_refs(&with(&fields, &[("verdict", "go")])),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let done = env.wait_terminal(&run.id).await;
    assert_eq!(done.state.status.as_str(), "succeeded");
    let d = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((d.len(), d[0].verdict), (1, Verdict::Go));
    let refs = env
        .store()
        .artifacts(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let latest = fleet_store::latest_revisions(&refs);
    let shown: Vec<(&str, u32)> = d[0]
        .shown
        .iter()
        .map(|r| (r.path.as_str(), r.revision))
        .collect();
    assert_eq!(
        shown,
        [
            ("readiness.md", 2),
            ("risks.flags.json", 2),
            ("risks.md", 2)
        ]
    );
    for r in &d[0].shown {
        assert_eq!(latest.get(&r.path).map(|l| &l.sha256), Some(&r.sha256));
    }
}

#[tokio::test]
async fn a_loop_that_hits_its_bound_goes_to_the_gate_and_says_so_at_the_top() {
    let env = redraft_env(1, true).await;
    let run = env.run_to_gate().await;
    assert_eq!(run.state.steps[1].redrafts, 1);
    let (page, _) = gate_page(&env, &run.id).await;
    let body = &page.body;
    assert_has(
        body,
        &[
            "class=\"notice redraft-banner bad\"",
            "<strong>1 of 1 redrafts used; 1 high flag remains</strong>. The redraft limit was reached",
            "(risk-review sends readiness back on high flags, at most 1 time)",
            "<strong>F2</strong> Security sign-off is still pending. <span class=\"tag\">new</span>",
            "<strong>F1</strong> <s>The rollback plan is TBD.</s>",
            "<strong>F1</strong> Security sign-off is still pending. <span class=\"tag again\">remains (was F2)</span>",
            "<div class=\"dl del\"><span class=\"sign\">-</span>Rollback plan: TBD</div>",
        ],
    );
    assert_eq!(body.matches("<tr class=\"round\">").count(), 2, "{body}");
    // The flags the approver weighs are the last round's.
    assert!(
        body.contains("Review flags <span class=\"muted\">(1 from risk-review)"),
        "{body}"
    );
}

#[tokio::test]
async fn a_gate_without_a_redraft_loop_shows_no_rounds() {
    let env = env().await;
    let run = env.run_to_gate().await;
    let (page, _) = gate_page(&env, &run.id).await;
    assert!(page.body.contains("<h2>Documents</h2>"));
    assert!(!page.body.contains("id=\"rounds\""));
    assert!(!page.body.contains("redraft-banner"));
}
