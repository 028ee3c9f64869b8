//! A fanned-out run over HTTP: the run page and the API group the
//! instances of a `for_each` step, and one decision page shows every
//! instance's document and flags, and its decision covers all of them
//! (router `oneshot`, a real store and engine).

mod common;

use axum::http::StatusCode;
use common::*;
use fleet_engine::Quiet;

const KB: &str = r#"approvers:
  - release-owner@example.com
genflows:
  - name: kb
    steps:
      - name: write-up
        kind: report
        for_each: "incidents/*.md"
        prompt: "Turn {{ item.name }} into a knowledge-base article."
        out: "kb/{{ item.stem }}.md"
      - {name: check, kind: review, depends_on: [write-up], prompt: Find what the article underplays.}
      - {name: go-no-go, kind: approval, depends_on: [check], question: Publish these articles?}
"#;

const INCIDENTS: &[(&str, &str)] = &[
    ("db", "# DB outage\n\n- [ ] Rollback plan TBD\n"),
    ("cache", "# Cache stampede\n\nResolved by adding jitter.\n"),
    (
        "login",
        "# Login bug\n\n- [ ] Sign-off from support pending\n",
    ),
];

async fn fanned_run(env: &Env) -> fleet_store::RunRecord {
    for (stem, text) in INCIDENTS {
        let path = env.dir.path().join(format!("incidents/{stem}.md"));
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
    let run = env
        .engine
        .start_run("kb", Some("ci@example.com".into()))
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let run = env
        .engine
        .drive(&run.id, &Quiet)
        .await
        .unwrap_or_else(|e| panic!("drive: {e}"));
    assert_eq!(run.state.status.as_str(), "waiting");
    run
}

#[tokio::test]
async fn one_decision_page_shows_every_instance_and_its_decision_covers_them_all() {
    let env = env_with(false, |_| KB.to_owned()).await;
    let run = fanned_run(&env).await;
    let app = env.app();
    let token = env.token(&run.id, "go-no-go", OWNER, 3600);
    let (page, cookie, fields) = open_gate(&app, &run.id, &token).await;
    let refs = env
        .store()
        .artifacts(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Three articles, three reviews, three flag sidecars.
    assert_eq!(refs.len(), 9, "{refs:?}");
    let shown = &fields
        .iter()
        .find(|(k, _)| k == "shown")
        .unwrap_or_else(|| panic!("shown"))
        .1;
    for r in &refs {
        assert!(
            page.body.contains(&format!("sha256:{}", r.sha256)),
            "{} is not on the page",
            r.path
        );
        assert!(shown.contains(&r.sha256), "{} is not in the form", r.path);
    }
    for (stem, _) in INCIDENTS {
        assert!(page.body.contains(&format!("kb/{stem}.md")), "kb/{stem}.md");
        assert!(
            page.body.contains(&format!("check/incidents/{stem}.md")),
            "the review of {stem}"
        );
    }
    // The open checklist items of two incidents are raised as flags of
    // their own review, both on this one page.
    assert!(page.body.contains("Rollback plan TBD"), "db's flag");
    assert!(
        page.body.contains("Sign-off from support pending"),
        "login's flag"
    );

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
    let decisions = env
        .store()
        .decisions(&run.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(decisions.len(), 1);
    let mut decided: Vec<(&str, &str)> = decisions[0]
        .shown
        .iter()
        .map(|r| (r.path.as_str(), r.sha256.as_str()))
        .collect();
    decided.sort();
    let mut listed: Vec<(&str, &str)> = refs
        .iter()
        .map(|r| (r.path.as_str(), r.sha256.as_str()))
        .collect();
    listed.sort();
    assert_eq!(
        decided, listed,
        "the decision covers every instance's revision"
    );
}

#[tokio::test]
async fn the_run_page_and_the_api_group_the_instances() {
    let env = env_with(false, |_| KB.to_owned()).await;
    let run = fanned_run(&env).await;
    let app = env.app();

    let page = send(&app, get_as_operator(&format!("/runs/{}", run.id))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = html_unescape(&page.body);
    assert!(
        body.contains("write-up (report, once per file: 3 files; 3 succeeded)"),
        "no group header: {body}"
    );
    assert!(body.contains("check (review, once per file: 3 files; 3 succeeded)"));
    for (stem, _) in INCIDENTS {
        assert!(body.contains(&format!("↳ incidents/{stem}.md")), "{stem}");
    }

    let api = send(&app, get_as_operator(&format!("/api/v1/runs/{}", run.id))).await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.body);
    let json = api.json();
    let fan_outs = json["fan_outs"].as_array().expect("fan_outs");
    assert_eq!(fan_outs.len(), 2, "{json}");
    assert_eq!(fan_outs[0]["step"], "write-up");
    assert_eq!(
        fan_outs[0]["instances"],
        serde_json::json!([
            "write-up[incidents/cache.md]",
            "write-up[incidents/db.md]",
            "write-up[incidents/login.md]"
        ])
    );
    assert_eq!(fan_outs[1]["statuses"], "3 succeeded");
    let steps = json["steps"].as_array().expect("steps");
    let instance = steps
        .iter()
        .find(|s| s["name"] == "check[incidents/db.md]")
        .expect("an instance");
    assert_eq!(instance["instance"]["of"], "check");
    assert_eq!(instance["instance"]["key"], "incidents/db.md");
    let gate = steps
        .iter()
        .find(|s| s["name"] == "go-no-go")
        .expect("gate");
    assert!(
        gate.get("instance").is_none(),
        "the gate is no instance: {gate}"
    );
}
