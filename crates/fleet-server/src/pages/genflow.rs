//! The genflow page and its "Start a run" form: one input per declared
//! param, posted back as `param.NAME`. A value the genflow refuses renders
//! the page again (422) with the message and the values as they were typed,
//! so a person fixes the field instead of reading a bare error.
//!
//! The form needs no token of its own: like every operator route it sits
//! behind `auth::require_operator` (a SameSite=Strict session cookie, and a
//! cross-site post refused by `Sec-Fetch-Site`).

use super::{RunRow, form_decode, render, run_row};
use crate::AppState;
use crate::views::{Failure, fmt_time, url_segment};
use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use fleet_core::config::{Genflow, ParamError, StepKind};
use fleet_engine::EngineError;
use fleet_store::RunFilter;
use std::collections::BTreeMap;

/// Form fields carry this prefix so a param can never collide with another
/// field the form may grow.
const FIELD_PREFIX: &str = "param.";

struct StepDef {
    name: String,
    kind: &'static str,
    depends_on: String,
    details: String,
}

/// One param's input in the start form.
struct ParamInput {
    name: String,
    /// The posted field name (`param.NAME`).
    field: String,
    /// The element id (`param-NAME`), for the label and the help text.
    id: String,
    value: String,
    /// The HTML `pattern` attribute; empty when the param declares none.
    pattern: String,
    description: String,
    /// No default: the browser asks for a value before posting.
    required: bool,
    /// The value the last post was refused for.
    invalid: bool,
}

#[derive(Template)]
#[template(path = "genflow.html")]
struct GenflowPage {
    title: String,
    nav: bool,
    name: String,
    description: String,
    schedule: String,
    next_due: String,
    definition_hash: String,
    start_href: String,
    params: Vec<ParamInput>,
    /// Why the last start was refused; empty on a plain visit.
    error: String,
    steps: Vec<StepDef>,
    runs: Vec<RunRow>,
}

/// A start the genflow refused: the values as posted and why.
struct Refused<'a> {
    given: &'a BTreeMap<String, String>,
    error: &'a ParamError,
}

pub(super) async fn genflow_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Html<String>, Failure> {
    render(&page(&state, &name, None).await?)
}

pub(super) async fn start_run(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Failure> {
    let given = posted_params(&body);
    let started = state
        .engine
        .start_run_with_params(&name, Some("web".into()), &given, fleet_store::new_run_id())
        .await;
    match started {
        Ok(run) => {
            state.kick(&run.id);
            Ok(Redirect::to(&format!("/runs/{}", url_segment(&run.id))).into_response())
        }
        Err(EngineError::Params(error)) => {
            let refused = Refused {
                given: &given,
                error: &error,
            };
            let page = page(&state, &name, Some(refused)).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(Failure::from_engine(e)),
    }
}

/// The `param.NAME` fields of a urlencoded form body (the first of a
/// repeated name). Other fields are ignored; an empty or missing body gives
/// no values, so every param gets its default.
fn posted_params(body: &[u8]) -> BTreeMap<String, String> {
    let text = String::from_utf8_lossy(body);
    let mut params = BTreeMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = form_decode(key);
        if let Some(name) = key.strip_prefix(FIELD_PREFIX) {
            params
                .entry(name.to_owned())
                .or_insert_with(|| form_decode(value).into_owned());
        }
    }
    params
}

fn param_inputs(genflow: &Genflow, refused: Option<&Refused<'_>>) -> Vec<ParamInput> {
    let bad = refused.and_then(|r| r.error.param());
    genflow
        .params
        .iter()
        .map(|p| {
            // After a refusal, show what was typed; else the default.
            let posted = refused.and_then(|r| r.given.get(&p.name));
            ParamInput {
                field: format!("{FIELD_PREFIX}{}", p.name),
                id: format!("param-{}", p.name),
                value: posted.or(p.default.as_ref()).cloned().unwrap_or_default(),
                pattern: p
                    .pattern
                    .as_deref()
                    .and_then(html_pattern)
                    .unwrap_or_default()
                    .to_owned(),
                description: p.description.clone().unwrap_or_default(),
                required: p.default.is_none(),
                invalid: bad == Some(p.name.as_str()),
                name: p.name.clone(),
            }
        })
        .collect()
}

/// The `pattern` as an HTML `pattern` attribute, when the browser reads it
/// as the server does. Browsers use JavaScript regexes (`v` flag): a syntax
/// error there only drops the check, but a few constructs are valid in both
/// with another meaning (`[[:alpha:]]` is a nested class, `\w` and `\b` are
/// ASCII-only), and the browser would then refuse a value the server
/// accepts. Those are left to the server, which checks every value anyway.
fn html_pattern(pattern: &str) -> Option<&str> {
    const DIFFERENT: [&str; 5] = ["[:", "\\w", "\\W", "\\b", "\\B"];
    (!DIFFERENT.iter().any(|d| pattern.contains(d))).then_some(pattern)
}

async fn page(
    state: &AppState,
    name: &str,
    refused: Option<Refused<'_>>,
) -> Result<GenflowPage, Failure> {
    let config = state.engine.config();
    let Some(g) = config.genflow(name) else {
        return Err(Failure::not_found(format!("genflow `{name}`")));
    };
    let resolved = config.resolved_genflow(g);
    let store = state.engine.store();
    let runs = store
        .list_runs(&RunFilter {
            genflow: Some(name.to_owned()),
            status: None,
            limit: Some(200),
            before: None,
        })
        .await
        .map_err(Failure::from_store)?;
    let next_due = store
        .schedules()
        .await
        .map_err(Failure::from_store)?
        .into_iter()
        .find(|s| s.genflow == name)
        .map(|s| fmt_time(s.next_due))
        .unwrap_or_else(|| "not scheduled yet".into());
    let steps = resolved
        .steps
        .iter()
        .map(|s| StepDef {
            name: s.name.clone(),
            kind: s.kind.as_str(),
            depends_on: s.depends_on.join(", "),
            details: match s.kind {
                StepKind::Approval => format!(
                    "approvers: {} (needs {})",
                    s.approvers.join(", "),
                    s.required
                ),
                StepKind::Report | StepKind::Review => {
                    format!("model {} → {}", s.model_name(), s.out_path())
                }
                _ => format!("→ {}", s.out_path()),
            },
        })
        .collect();
    Ok(GenflowPage {
        title: name.to_owned(),
        nav: true,
        description: g.description.clone().unwrap_or_default(),
        schedule: g.schedule.clone().unwrap_or_default(),
        next_due,
        definition_hash: resolved.definition_hash(),
        start_href: format!("/genflows/{}/runs", url_segment(name)),
        params: param_inputs(g, refused.as_ref()),
        error: refused.map(|r| r.error.to_string()).unwrap_or_default(),
        steps,
        runs: runs.iter().map(run_row).collect(),
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::{html_pattern, posted_params};

    #[test]
    fn patterns_read_otherwise_by_browsers_are_left_to_the_server() {
        for same in [
            r"\d+\.\d+\.\d+",
            "[ -~]{0,80}",
            "(?:beta|stable)",
            r"\p{L}+",
        ] {
            assert_eq!(html_pattern(same), Some(same));
        }
        for different in [r"[[:alpha:]]+", r"\w+", r"v\b.*", r"\W"] {
            assert_eq!(html_pattern(different), None, "{different}");
        }
    }

    #[test]
    fn only_param_fields_are_read_decoded_first_one_wins() {
        let got = posted_params(
            b"param.version=4.2.0&param.note=%3Cb%3E+%26+x&other=1&param.version=9&param.empty=",
        );
        let want: Vec<(&str, &str)> =
            vec![("empty", ""), ("note", "<b> & x"), ("version", "4.2.0")];
        let got: Vec<(&str, &str)> = got.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(got, want);
        assert!(posted_params(b"").is_empty());
    }
}
