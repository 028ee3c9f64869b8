//! Which deliveries a transition calls for. Pure: the engine puts the result
//! in the transition's outbox.

use crate::url_label;
use fleet_core::config::{Config, Genflow, StepKind};
use fleet_core::dag;
use fleet_core::run::RunState;
use fleet_store::{DeliveryPurpose, NewDelivery};
use serde_json::json;

/// The emails a gate opening sends, or why it sends none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GatePlan {
    pub deliveries: Vec<NewDelivery>,
    /// Said in the run's audit log when nobody is emailed.
    pub note: Option<String>,
}

/// One email per approver of gate `gate`, for the round `state` opened.
pub fn gate_deliveries(
    config: &Config,
    run_id: &str,
    genflow: &Genflow,
    state: &RunState,
    gate: usize,
) -> GatePlan {
    let Some(step) = genflow.steps.get(gate) else {
        return GatePlan::default();
    };
    if step.approvers.is_empty() {
        return GatePlan {
            deliveries: Vec::new(),
            note: Some(format!(
                "gate `{}` names no approvers, so nobody was emailed; anyone may decide with `fleet approve`",
                step.name
            )),
        };
    }
    if config.notify.smtp.is_none() {
        return GatePlan {
            deliveries: Vec::new(),
            note: Some(format!(
                "no `notify.smtp` is configured, so the approvers of gate `{}` were not emailed",
                step.name
            )),
        };
    }
    let round = state.steps.get(gate).map_or(0, |s| s.attempt);
    GatePlan {
        deliveries: step
            .approvers
            .iter()
            .map(|a| email(run_id, &step.name, round, DeliveryPurpose::Approval, a))
            .collect(),
        note: None,
    }
}

fn email(run_id: &str, step: &str, round: u32, purpose: DeliveryPurpose, to: &str) -> NewDelivery {
    NewDelivery {
        run_id: run_id.to_owned(),
        step: step.to_owned(),
        round,
        purpose,
        channel: "email".into(),
        recipient: to.trim().to_owned(),
        label: to.trim().to_owned(),
        payload: json!({}),
    }
}

/// The announcement's round: the rounds of every gate upstream of the
/// notify step, summed. Retrying a failed notify step keeps the round (so
/// what was sent is not sent again); a gate that re-opened and was approved
/// again makes a new round (a new decision is announced afresh).
pub fn announce_round(genflow: &Genflow, state: &RunState, idx: usize) -> u32 {
    let deps = genflow.dependency_indices();
    dag::ancestors(&deps, idx)
        .into_iter()
        .filter(|&i| genflow.steps[i].kind == StepKind::Approval)
        .filter_map(|i| state.steps.get(i))
        .fold(0u32, |sum, s| sum.saturating_add(s.attempt))
}

/// Everything notify step `idx` sends: `to` by email, `webhook` signed,
/// `slack:<url>` channels. `file` is the step's `out`, written by the
/// engine. Errs, naming the missing setting, when a channel it needs is not
/// configured.
pub fn announce_deliveries(
    config: &Config,
    run_id: &str,
    genflow: &Genflow,
    state: &RunState,
    idx: usize,
) -> Result<Vec<NewDelivery>, String> {
    let Some(step) = genflow.steps.get(idx) else {
        return Ok(Vec::new());
    };
    let round = announce_round(genflow, state, idx);
    let mut out: Vec<NewDelivery> = Vec::new();
    let wants_email = !step.to.is_empty() || step.channels.iter().any(|c| c == "email");
    if wants_email {
        if step.to.is_empty() {
            return Err(format!(
                "step `{}` lists the `email` channel but no `to:` recipients",
                step.name
            ));
        }
        if config.notify.smtp.is_none() {
            return Err(format!(
                "step `{}` emails {}, but the config has no `notify.smtp`",
                step.name,
                step.to.join(", ")
            ));
        }
        for to in &step.to {
            out.push(email(
                run_id,
                &step.name,
                round,
                DeliveryPurpose::Announce,
                to,
            ));
        }
    }
    let wants_webhook = step.webhook.is_some() || step.channels.iter().any(|c| c == "webhook");
    if wants_webhook {
        let Some(url) = &step.webhook else {
            return Err(format!(
                "step `{}` lists the `webhook` channel but has no `webhook:` URL",
                step.name
            ));
        };
        if config
            .notify
            .webhook
            .as_ref()
            .and_then(|w| w.secret_env.as_ref())
            .is_none()
        {
            return Err(format!(
                "step `{}` posts to a webhook, which Fleet signs: set `notify.webhook.secret_env` to the name of the environment variable holding the secret",
                step.name
            ));
        }
        out.push(post(run_id, &step.name, round, "webhook", url));
    }
    for c in &step.channels {
        if let Some(url) = c.strip_prefix("slack:") {
            out.push(post(run_id, &step.name, round, "slack", url.trim()));
        }
    }
    // The same recipient listed twice is one delivery (the key is unique).
    let mut seen = std::collections::HashSet::new();
    out.retain(|d| seen.insert((d.channel.clone(), d.recipient.to_lowercase())));
    Ok(out)
}

fn post(run_id: &str, step: &str, round: u32, channel: &str, url: &str) -> NewDelivery {
    NewDelivery {
        run_id: run_id.to_owned(),
        step: step.to_owned(),
        round,
        purpose: DeliveryPurpose::Announce,
        channel: channel.to_owned(),
        recipient: url.to_owned(),
        label: format!("{channel} {}", url_label(url)),
        payload: json!({}),
    }
}
