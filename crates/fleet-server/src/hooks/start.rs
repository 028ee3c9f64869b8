//! What a labeled ticket starts: every genflow whose trigger label it
//! added, each once per delivery, and the answer that says so.

use super::{Event, Ticket, failure, loggable};
use crate::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fleet_core::config::{Genflow, Trigger};
use fleet_engine::EngineError;
use fleet_store::StoreError;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

fn label_of<'t>(trigger: &'t Trigger, provider: &str) -> Option<&'t str> {
    let t = if provider == "github" {
        trigger.github.as_ref()
    } else {
        trigger.gitlab.as_ref()
    };
    t.map(|t| t.label.as_str())
}

/// The genflows a label this event added triggers.
fn triggered<'c>(flows: &'c [Genflow], provider: &str, ticket: &Ticket) -> Vec<&'c Genflow> {
    flows
        .iter()
        .filter(|g| {
            g.trigger
                .as_ref()
                .and_then(|t| label_of(t, provider))
                .is_some_and(|label| ticket.added.iter().any(|a| a == label))
        })
        .collect()
}

/// The run id for one (provider, delivery, genflow): a UUID (version 8,
/// from a sha256), the same for every repeat of the delivery.
pub fn run_id(provider: &str, delivery: &str, genflow: &str) -> String {
    let mut h = Sha256::new();
    for part in ["fleet hook run v1", provider, delivery, genflow] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

pub(super) async fn handle(
    state: &AppState,
    provider: &'static str,
    delivery: Option<&str>,
    event: Event,
) -> Response {
    let ticket = match event {
        Event::Ping => return (StatusCode::OK, axum::Json(json!({"ok": true}))).into_response(),
        Event::Ignored(why) => {
            return (StatusCode::OK, axum::Json(json!({"ignored": why}))).into_response();
        }
        Event::Labeled(t) => t,
    };
    let config = state.engine.config().clone();
    let flows = triggered(&config.genflows, provider, &ticket);
    if flows.is_empty() {
        let why = format!(
            "no genflow is triggered by the label{} {} on {provider}",
            if ticket.added.len() == 1 { "" } else { "s" },
            ticket
                .added
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return (StatusCode::OK, axum::Json(json!({"ignored": why}))).into_response();
    }
    let Some(delivery) = delivery.filter(|d| !d.trim().is_empty()) else {
        let header = if provider == "github" {
            "X-GitHub-Delivery"
        } else {
            "X-Gitlab-Event-UUID or Idempotency-Key"
        };
        return failure(
            StatusCode::BAD_REQUEST,
            format!("missing {header}: a run is started once per delivery id"),
        );
    };
    let mut runs = Vec::new();
    let mut refused = Vec::new();
    let mut started = false;
    for flow in flows {
        match start(state, provider, delivery, &ticket, flow).await {
            Ok((id, new)) => {
                started |= new;
                runs.push(json!({
                    "genflow": flow.name,
                    "id": id,
                    "status": if new { "started" } else { "existing" },
                }));
            }
            Err(e) => {
                let why = reason(&e);
                eprintln!(
                    "hooks: {provider} delivery {} for genflow {}: refused: {why}",
                    loggable(Some(delivery)),
                    flow.name
                );
                let param = match &e {
                    EngineError::Params(p) => p.param().map(str::to_owned),
                    _ => None,
                };
                refused.push(json!({"genflow": flow.name, "error": why, "param": param}));
            }
        }
    }
    let status = if !refused.is_empty() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else if started {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut body = json!({"delivery": delivery, "runs": runs});
    if !refused.is_empty() {
        body["refused"] = Value::Array(refused);
    }
    (status, axum::Json(body)).into_response()
}

/// Why a run was refused, without the value a pattern refused (a ticket's
/// body can be a megabyte; the param's name says enough).
fn reason(e: &EngineError) -> String {
    match e {
        EngineError::Params(fleet_core::config::ParamError::Pattern { name, pattern, .. }) => {
            format!("the ticket's `{name}` does not match the parameter's pattern `{pattern}`")
        }
        other => other.to_string(),
    }
}

/// Starts `flow` for the ticket, or finds the run this delivery already
/// started: `(run id, whether it is new)`.
async fn start(
    state: &AppState,
    provider: &str,
    delivery: &str,
    ticket: &Ticket,
    flow: &Genflow,
) -> Result<(String, bool), EngineError> {
    let id = run_id(provider, delivery, &flow.name);
    match state.engine.store().get_run(&id).await {
        Ok(run) => return Ok((run.id, false)),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let params: BTreeMap<String, String> = ticket
        .params()
        .into_iter()
        .filter(|(name, _)| flow.params.iter().any(|p| p.name == *name))
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    match state
        .engine
        .start_run_with_params(&flow.name, Some(ticket.triggered_by()), &params, id.clone())
        .await
    {
        Ok(run) => {
            state.kick(&run.id);
            eprintln!(
                "hooks: {provider} delivery {} started run {} of {}",
                loggable(Some(delivery)),
                run.id,
                flow.name
            );
            Ok((run.id, true))
        }
        // The same delivery, at the same moment, on another request.
        Err(EngineError::Store(StoreError::AlreadyExists(_))) => Ok((id, false)),
        Err(e) => Err(e),
    }
}
