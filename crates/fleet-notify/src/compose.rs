//! Turning a queued delivery into a message, from what the store holds at
//! send time (so an approval email counts the flags the gate's approvers
//! will actually see, and a link is minted only when it is sent, never stored).

use crate::channel::{Email, HttpPost, Outgoing};
use crate::{Notifier, delivery_key_hash, message_id};
use fleet_core::config::StepKind;
use fleet_core::dag;
use fleet_core::flags::{FlagSet, FlagSeverity, sidecar_path};
use fleet_core::run::{StepStatus, Verdict};
use fleet_store::{ArtifactRef, Delivery, DeliveryPurpose, RunRecord};
use serde_json::{Value, json};

/// What to do with a claimed delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Composed {
    Send(Outgoing),
    /// It no longer applies (e.g. the gate was decided before the email went out).
    Skip(String),
}

/// Why a delivery could not be composed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ComposeError {
    /// The store could not be read (a dropped connection, a busy or full
    /// disk): worth another attempt later, like a transient send failure.
    Store(String),
    /// A template or the data itself: waiting does not fix it.
    Data(String),
}

impl From<String> for ComposeError {
    fn from(message: String) -> Self {
        ComposeError::Data(message)
    }
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

fn doc_json(r: &ArtifactRef) -> Value {
    json!({ "path": r.path, "revision": r.revision, "sha256": r.sha256 })
}

pub(crate) async fn compose(n: &Notifier, d: &Delivery) -> Result<Composed, ComposeError> {
    let run = n
        .store
        .get_run(&d.run_id)
        .await
        .map_err(|e| ComposeError::Store(format!("cannot load run {}: {e}", d.run_id)))?;
    let Some(idx) = run.definition.step_index(&d.step) else {
        return Ok(Composed::Skip(format!("run has no step `{}`", d.step)));
    };
    let templates = n.templates.as_ref().map_err(|e| e.clone())?;
    let render = |key: &str, ctx: &Value| templates.render(key, ctx).map_err(|e| e.to_string());
    match d.purpose {
        DeliveryPurpose::Approval
        | DeliveryPurpose::Reminder(_)
        | DeliveryPurpose::Requested(_) => {
            let state = &run.state.steps[idx];
            if state.status != StepStatus::Waiting || state.attempt != d.round {
                return Ok(Composed::Skip(format!(
                    "gate `{}` is no longer waiting for this round (it is {})",
                    d.step, state.status
                )));
            }
            let ctx = approval_context(n, &run, idx, d).await?;
            email(
                n,
                d,
                render("approval_subject", &ctx)?,
                render("approval_text", &ctx)?,
                render("approval_html", &ctx)?,
            )
            .map_err(ComposeError::Data)
        }
        DeliveryPurpose::Announce => {
            let ctx = announce_context(n, &run, idx).await?;
            match d.channel.as_str() {
                "email" => email(
                    n,
                    d,
                    render("announce_subject", &ctx)?,
                    render("announce_text", &ctx)?,
                    render("announce_html", &ctx)?,
                )
                .map_err(ComposeError::Data),
                "webhook" => {
                    let mut body = ctx.clone();
                    if let Some(o) = body.as_object_mut() {
                        o.insert("type".into(), "fleet.announce".into());
                        o.insert("delivery_id".into(), delivery_key_hash(d).into());
                        o.insert("text".into(), render("announce_text", &ctx)?.into());
                    }
                    Ok(Composed::Send(Outgoing::Webhook(HttpPost {
                        url: d.recipient.clone(),
                        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
                        delivery_id: delivery_key_hash(d),
                    })))
                }
                "slack" => {
                    let body = json!({ "text": render("announce_text", &ctx)? });
                    Ok(Composed::Send(Outgoing::Slack(HttpPost {
                        url: d.recipient.clone(),
                        body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
                        delivery_id: delivery_key_hash(d),
                    })))
                }
                other => Err(format!("unknown channel `{other}`").into()),
            }
        }
    }
}

fn email(
    n: &Notifier,
    d: &Delivery,
    subject: String,
    text: String,
    html: String,
) -> Result<Composed, String> {
    Ok(Composed::Send(Outgoing::Email(Email {
        to: d.recipient.clone(),
        subject,
        text,
        html,
        message_id: message_id(d, &n.domain),
    })))
}

async fn approval_context(
    n: &Notifier,
    run: &RunRecord,
    idx: usize,
    d: &Delivery,
) -> Result<Value, ComposeError> {
    let step = &run.definition.steps[idx];
    let refs = n
        .store
        .artifacts(&run.id)
        .await
        .map_err(|e| ComposeError::Store(format!("cannot load the run's documents: {e}")))?;
    let documents = fleet_store::upstream_documents(run, idx, &refs);
    let (mut high, mut medium, mut low) = (0, 0, 0);
    let mut signals = Vec::new();
    for r in &documents {
        let is_sidecar = run
            .definition
            .step(&r.step)
            .is_some_and(|s| s.kind == StepKind::Review && sidecar_path(&s.out_path()) == r.path);
        if !is_sidecar {
            continue;
        }
        let flags: Option<FlagSet> = n
            .store
            .artifact_bytes(&r.sha256)
            .await
            // A failed read must not become "no flags" in the email.
            .map_err(|e| ComposeError::Store(format!("cannot load the review's flags: {e}")))?
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some(flags) = flags else { continue };
        let (h, m, l) = (
            flags.count(FlagSeverity::High),
            flags.count(FlagSeverity::Medium),
            flags.count(FlagSeverity::Low),
        );
        high += h;
        medium += m;
        low += l;
        signals.push(if h > 0 {
            format!(
                "{}: {h} high-severity flag(s); read them before deciding",
                r.step
            )
        } else {
            format!("{}: no high-severity flags", r.step)
        });
        for f in flags
            .flags
            .iter()
            .filter(|f| f.severity != FlagSeverity::Low)
            .take(5)
        {
            signals.push(format!("{} ({}): {}", f.id, f.severity.as_str(), f.claim));
        }
    }
    let documents: Vec<Value> = documents
        .iter()
        .filter(|r| !r.path.ends_with(".flags.json"))
        .map(doc_json)
        .collect();
    let link = n
        .links
        .as_ref()
        .and_then(|l| l.link(&run.id, &step.name, &d.recipient));
    Ok(json!({
        "approver": d.recipient,
        "gate": step.name,
        "genflow": run.genflow_name,
        "question": step.question.clone().unwrap_or_else(|| format!("Go or no-go for {}?", run.genflow_name)),
        "run_id": run.id,
        "run_short": short(&run.id),
        "reminder": match d.purpose { DeliveryPurpose::Reminder(k) => k, _ => 0 },
        "high": high, "medium": medium, "low": low,
        "signals": signals,
        "documents": documents,
        "link": link,
        "params": run.definition.param_values,
    }))
}

async fn announce_context(
    n: &Notifier,
    run: &RunRecord,
    idx: usize,
) -> Result<Value, ComposeError> {
    let d = run.definition.dependency_indices();
    let ups = dag::ancestors(&d, idx);
    let decisions = n
        .store
        .decisions(&run.id)
        .await
        .map_err(|e| ComposeError::Store(format!("cannot load decisions: {e}")))?;
    let mut out = Vec::new();
    for (i, s) in run.definition.steps.iter().enumerate() {
        if s.kind != StepKind::Approval || !ups.contains(&i) {
            continue;
        }
        let round = run.state.steps[i].attempt;
        for dec in decisions
            .iter()
            .filter(|x| x.step == s.name && x.verdict == Verdict::Go && x.gate_round == round)
        {
            out.push(json!({
                "gate": s.name,
                "approver": dec.approver,
                "channel": dec.channel,
                "decided_at": dec.decided_at.to_string(),
                "documents": dec.shown.iter().map(doc_json).collect::<Vec<_>>(),
            }));
        }
    }
    let public = n.config.server.public_url.as_deref();
    let run_url = public.map(|u| format!("{}/runs/{}", u.trim_end_matches('/'), run.id));
    let (attestation, attestation_url) = attestation(n, run, &ups, public).await?;
    // So copies of the log's state live outside the database.
    let checkpoint = n
        .store
        .events_of_kind("audit.checkpoint", Some(1))
        .await
        .map_err(|e| format!("cannot read the latest checkpoint: {e}"))?
        .pop()
        .and_then(|e| e.payload["note"].as_str().map(str::to_owned));
    Ok(json!({
        "attestation": attestation,
        "attestation_url": attestation_url,
        "checkpoint": checkpoint,
        "genflow": run.genflow_name,
        "run_id": run.id,
        "run_short": short(&run.id),
        "step": run.definition.steps[idx].name,
        "definition_hash": run.definition_hash,
        "run_url": run_url,
        "decisions": out,
        "params": run.definition.param_values,
    }))
}

/// The newest signed attestation of the gates upstream of the announcement
/// (the DSSE envelope as a JSON object), and the server's URL for it
/// (operator- or approver-protected, like the run's other documents).
async fn attestation(
    n: &Notifier,
    run: &RunRecord,
    ups: &std::collections::BTreeSet<usize>,
    public_url: Option<&str>,
) -> Result<(Value, Option<String>), String> {
    let gates: Vec<&str> = ups
        .iter()
        .map(|&i| &run.definition.steps[i])
        .filter(|s| s.kind == StepKind::Approval)
        .map(|s| s.name.as_str())
        .collect();
    let refs = n
        .store
        .artifacts(&run.id)
        .await
        .map_err(|e| format!("cannot list artifacts: {e}"))?;
    let Some(newest) = refs
        .iter()
        .filter(|r| r.path.ends_with(".intoto.json") && gates.contains(&r.step.as_str()))
        .max_by_key(|r| r.created_at)
    else {
        return Ok((Value::Null, None));
    };
    let bytes = n
        .store
        .artifact_bytes(&newest.sha256)
        .await
        .map_err(|e| format!("cannot read the attestation: {e}"))?
        .ok_or_else(|| format!("the attestation {} is missing", newest.sha256))?;
    let envelope: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the attestation {} is not JSON: {e}", newest.path))?;
    let url = public_url.map(|u| {
        format!(
            "{}/runs/{}/attestations/{}?rev={}",
            u.trim_end_matches('/'),
            run.id,
            url_escape(&newest.step),
            newest.revision
        )
    });
    Ok((envelope, url))
}

/// A step name as one URL path segment.
fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
