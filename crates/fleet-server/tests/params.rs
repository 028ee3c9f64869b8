//! Genflow params over HTTP: the API's run-start body, the run page, and
//! the genflow page's start form (router `oneshot`, a real store and engine).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::json;
use std::collections::BTreeMap;

/// A value `note` allows that would be markup if it were not escaped.
const MARKUP: &str = r#"<script>alert("x")</script> & 'co'"#;

/// The release-gate example with three params: `version` (required, a
/// pattern, used in the gate's question), `channel` (a default) and `note`
/// (any printable ASCII, so markup gets through its pattern).
fn with_params(text: String) -> String {
    let declared = text.replace(
        "    description: Go/no-go for the next release, decided by the release owner on the evidence.\n",
        "    description: Go/no-go for the next release, decided by the release owner on the evidence.\n\
         \x20   params:\n\
         \x20     - {name: version, pattern: '\\d+\\.\\d+\\.\\d+', description: The release being gated}\n\
         \x20     - {name: channel, default: stable}\n\
         \x20     - {name: note, default: none, pattern: '[ -~]{0,80}'}\n",
    );
    let templated = declared.replace(
        "question: Ship release 2.4.0 to production?",
        "question: \"Ship release {{ params.version }} to production?\"",
    );
    assert_ne!(
        templated, text,
        "the example config changed; update this edit"
    );
    templated
}

fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn run_count(env: &Env) -> usize {
    env.store()
        .list_runs(&fleet_store::RunFilter::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .len()
}

fn question(run: &fleet_store::RunRecord) -> String {
    run.definition
        .steps
        .iter()
        .find(|s| s.name == "go-no-go")
        .and_then(|s| s.question.clone())
        .unwrap_or_else(|| panic!("no go-no-go question"))
}

const START: &str = "/api/v1/genflows/release-gate/runs";

#[tokio::test]
async fn api_start_binds_the_values_into_the_run() {
    let env = env_with(false, with_params).await;
    let app = env.app();
    let started = send(
        &app,
        post_json(
            START,
            Some(API_TOKEN),
            json!({"triggered_by": "ci", "params": {"version": "4.2.0", "note": MARKUP}}),
        ),
    )
    .await;
    assert_eq!(started.status, StatusCode::CREATED, "{}", started.body);
    let id = started.json()["id"].as_str().unwrap_or_default().to_owned();
    let run = env
        .store()
        .get_run(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run.definition.param_values,
        values(&[
            ("channel", "stable"),
            ("note", MARKUP),
            ("version", "4.2.0")
        ]),
        "given values, and the default for the one not given"
    );
    assert_eq!(question(&run), "Ship release 4.2.0 to production?");
    let shown = send(&app, get_as_operator(&format!("/api/v1/runs/{id}")))
        .await
        .json();
    assert_eq!(
        shown["params"],
        json!({"channel": "stable", "note": MARKUP, "version": "4.2.0"})
    );
}

#[tokio::test]
async fn api_refuses_bad_values_with_422_naming_the_param_and_creates_no_run() {
    let env = env_with(false, with_params).await;
    let app = env.app();
    for (what, params, named) in [
        (
            "undeclared",
            json!({"version": "4.2.0", "colour": "blue"}),
            "`colour`",
        ),
        ("missing", json!({"channel": "beta"}), "`version`"),
        ("pattern-failing", json!({"version": "4.2"}), "`version`"),
        (
            "pattern-failing default override",
            json!({"version": "4.2.0", "note": "tab\there"}),
            "`note`",
        ),
    ] {
        let r = send(
            &app,
            post_json(START, Some(API_TOKEN), json!({"params": params})),
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {}",
            r.body
        );
        assert!(
            r.header("content-type").starts_with("application/json"),
            "{what}: {}",
            r.header("content-type")
        );
        let body = r.json();
        let error = body["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(named), "{what}: `{error}` names {named}");
        // The same name, machine-readable, for a client to point at its field.
        assert_eq!(
            body["param"].as_str().map(|p| format!("`{p}`")).as_deref(),
            Some(named),
            "{what}: {body}"
        );
        assert_eq!(body["status"], 422, "{what}: {body}");
        assert_eq!(run_count(&env).await, 0, "{what} created a run");
    }
}

#[tokio::test]
async fn api_errors_that_are_not_about_a_param_have_no_param_field() {
    let env = env_with(false, with_params).await;
    let app = env.app();
    let r = send(
        &app,
        post_json(
            "/api/v1/genflows/no-such-flow/runs",
            Some(API_TOKEN),
            json!({"params": {"version": "4.2.0"}}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let body = r.json();
    assert!(body["error"].is_string(), "{body}");
    assert!(body.get("param").is_none(), "{body}");
}

#[tokio::test]
async fn openapi_describes_the_param_of_a_refusal() {
    let doc = fleet_server::openapi();
    let error = &doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"];
    assert_eq!(error["properties"]["param"]["type"], "string", "{error}");
    assert_eq!(error["required"], json!(["error", "status"]), "{error}");
    let start = &doc["paths"]["/api/v1/genflows/{name}/runs"]["post"];
    assert_eq!(
        start["responses"]["422"]["$ref"], "#/components/responses/Error",
        "{start}"
    );
}

#[tokio::test]
async fn run_page_lists_each_value_escaped() {
    let env = env_with(false, with_params).await;
    let run = env
        .engine
        .start_run_with_params(
            "release-gate",
            Some("ci".into()),
            &values(&[("version", "4.2.0"), ("note", MARKUP)]),
            fleet_store::new_run_id(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let page = send(&env.app(), get_as_operator(&format!("/runs/{}", run.id))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for shown in [
        "<code>channel</code> = <code>stable</code>",
        "<code>version</code> = <code>4.2.0</code>",
        "<code>note</code> = <code>&#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; &#38; &#39;co&#39;</code>",
    ] {
        assert!(page.body.contains(shown), "page lacks `{shown}`");
    }
    assert!(!page.body.contains("<script>alert"), "markup got through");
}

fn form_post(uri: &str, fields: &[(&str, &str)]) -> Request<Body> {
    let mut request = post_form(uri, None, fields);
    request.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {API_TOKEN}")
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    request
}

const FORM: &str = "/genflows/release-gate/runs";

#[tokio::test]
async fn start_form_has_one_input_per_param() {
    let env = env_with(false, with_params).await;
    let page = send(&env.app(), get_as_operator("/genflows/release-gate")).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    for input in [
        // No default: empty and required; its pattern and help text.
        r#"<input type="text" id="param-version" name="param.version" value="" pattern="\d+\.\d+\.\d+" title="must match \d+\.\d+\.\d+" required aria-describedby="param-version-help">"#,
        r#"<small class="muted" id="param-version-help">The release being gated</small>"#,
        // A default: prefilled, not required.
        r#"<input type="text" id="param-channel" name="param.channel" value="stable">"#,
        r#"<input type="text" id="param-note" name="param.note" value="none" pattern="[ -~]{0,80}" title="must match [ -~]{0,80}">"#,
    ] {
        assert!(body.contains(input), "page lacks `{input}`:\n{body}");
    }
    // A genflow without params keeps the bare button.
    let plain = env_with(false, |t| t).await;
    let page = send(&plain.app(), get_as_operator("/genflows/release-gate")).await;
    assert!(page.body.contains("Start a run") && !page.body.contains("<input"));
}

#[tokio::test]
async fn start_form_posts_the_values() {
    let env = env_with(false, with_params).await;
    let app = env.app();
    let r = send(
        &app,
        form_post(
            FORM,
            &[
                ("param.version", "4.3.1"),
                ("param.channel", "beta"),
                ("param.note", MARKUP),
            ],
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = r
        .header("location")
        .strip_prefix("/runs/")
        .unwrap_or_else(|| panic!("redirect to {}", r.header("location")))
        .to_owned();
    let run = env
        .store()
        .get_run(&id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run.definition.param_values,
        values(&[("channel", "beta"), ("note", MARKUP), ("version", "4.3.1")])
    );
    assert_eq!(run.triggered_by.as_deref(), Some("web"));
}

#[tokio::test]
async fn start_form_shows_a_bad_value_on_the_page_and_creates_no_run() {
    let env = env_with(false, with_params).await;
    let app = env.app();
    let bad = r#"4.3"><script>x</script>"#;
    let r = send(
        &app,
        form_post(FORM, &[("param.version", bad), ("param.channel", "beta")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.header("content-type").starts_with("text/html"));
    // The message names the param, the form is there again with the values
    // as typed (escaped), and the field is marked.
    assert!(
        r.body.contains(r#"<p class="notice bad" role="alert" id="start-error">parameter `version`: `4.3&#34;&#62;&#60;script&#62;x&#60;/script&#62;` does not match its pattern"#),
        "{}",
        r.body
    );
    assert!(r.body.contains(
        r#"name="param.version" value="4.3&#34;&#62;&#60;script&#62;x&#60;/script&#62;""#
    ));
    assert!(
        r.body
            .contains(r#"aria-invalid="true" aria-errormessage="start-error""#)
    );
    assert!(r.body.contains(r#"name="param.channel" value="beta""#));
    assert!(!r.body.contains("<script>x"));
    // A field left out entirely is not given: no default, so it is missing.
    let r = send(&app, form_post(FORM, &[("param.channel", "beta")])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body
            .contains("parameter `version` of genflow `release-gate` has no default")
    );
    assert_eq!(run_count(&env).await, 0);
}

#[tokio::test]
async fn start_form_keeps_refusing_cross_site_posts() {
    let env = env_with(false, with_params).await;
    let mut request = form_post(FORM, &[("param.version", "4.3.1")]);
    request.headers_mut().insert(
        "sec-fetch-site",
        "cross-site".parse().unwrap_or_else(|e| panic!("{e}")),
    );
    let r = send(&env.app(), request).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // And without operator credentials the post goes to the login page.
    let r = send(
        &env.app(),
        post_form(FORM, None, &[("param.version", "4.3.1")]),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header("location").starts_with("/login"));
    assert_eq!(run_count(&env).await, 0);
}
