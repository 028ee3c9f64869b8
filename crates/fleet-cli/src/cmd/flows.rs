//! `fleet flows`: the genflows and their steps as a DAG.

use fleet_core::config::{Config, Genflow, Param, StepKind, Trigger};
use fleet_core::dag;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Serialize)]
struct FlowJson<'a> {
    name: &'a str,
    description: Option<&'a str>,
    schedule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger: Option<&'a Trigger>,
    #[serde(skip_serializing_if = "<[Param]>::is_empty")]
    params: &'a [Param],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    schedule_params: &'a BTreeMap<String, String>,
    definition_hash: String,
    steps: Vec<StepJson<'a>>,
}

#[derive(Serialize)]
struct StepJson<'a> {
    name: &'a str,
    kind: StepKind,
    depends_on: &'a [String],
    out: String,
    /// 0 for steps with no dependencies, else 1 + the deepest dependency.
    level: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    approvers: Vec<String>,
}

/// `  trigger: github label `x`, gitlab label `y``.
fn trigger_line(t: &Trigger) -> String {
    let labels: Vec<String> = [("github", &t.github), ("gitlab", &t.gitlab)]
        .into_iter()
        .filter_map(|(forge, l)| l.as_ref().map(|l| format!("{forge} label `{}`", l.label)))
        .collect();
    format!("  trigger: {}\n", labels.join(", "))
}

/// Step indices in dependency order with their DAG level.
fn levels(flow: &Genflow) -> Vec<(usize, usize)> {
    let deps = flow.dependency_indices();
    let order = dag::topo_order(&deps);
    let mut level = vec![0; flow.steps.len()];
    for &i in &order {
        level[i] = deps[i].iter().map(|&d| level[d] + 1).max().unwrap_or(0);
    }
    order.into_iter().map(|i| (i, level[i])).collect()
}

pub fn json(config: &Config) -> serde_json::Value {
    let flows: Vec<FlowJson> = config
        .genflows
        .iter()
        .map(|g| {
            let resolved = config.resolved_genflow(g);
            FlowJson {
                name: &g.name,
                description: g.description.as_deref(),
                schedule: g.schedule.as_deref(),
                trigger: g.trigger.as_ref(),
                params: &g.params,
                schedule_params: &g.schedule_params,
                definition_hash: resolved.definition_hash(),
                steps: levels(g)
                    .into_iter()
                    .map(|(i, level)| {
                        let s = &g.steps[i];
                        StepJson {
                            name: &s.name,
                            kind: s.kind,
                            depends_on: &s.depends_on,
                            out: s.out_path(),
                            level,
                            model: s.kind.uses_model().then(|| s.model_name()),
                            approvers: resolved.steps[i].approvers.clone(),
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    serde_json::json!({ "genflows": flows })
}

pub fn text(config: &Config) -> String {
    let mut out = String::new();
    for g in &config.genflows {
        let resolved = config.resolved_genflow(g);
        out.push_str(&g.name);
        if let Some(d) = &g.description {
            out.push_str(&format!(" - {d}"));
        }
        out.push('\n');
        if let Some(s) = &g.schedule {
            out.push_str(&format!("  schedule: {s}\n"));
        }
        if let Some(t) = &g.trigger {
            out.push_str(&trigger_line(t));
        }
        for p in &g.params {
            out.push_str(&param_line(p, g.schedule_params.get(&p.name)));
        }
        let rows = levels(g);
        let width = g.steps.iter().map(|s| s.name.len()).max().unwrap_or(0) + 2;
        for (i, level) in rows {
            let s = &g.steps[i];
            let name = format!("{}{}", "  ".repeat(level), s.name);
            let mut line = format!(
                "  {name:<w$} {:<9} -> {}",
                s.kind.as_str(),
                s.out_path(),
                w = width + 2 * max_level(g)
            );
            if !s.depends_on.is_empty() {
                line.push_str(&format!("  after: {}", s.depends_on.join(", ")));
            }
            if s.kind.uses_model() {
                line.push_str(&format!("  model: {}", s.model_name()));
            }
            if s.kind == StepKind::Approval {
                let approvers = &resolved.steps[i].approvers;
                if approvers.is_empty() {
                    line.push_str("  approvers: anyone");
                } else {
                    line.push_str(&format!(
                        "  approvers: {} ({} required)",
                        approvers.join(", "),
                        s.required
                    ));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// `  param: NAME  default: VALUE  pattern: RE  scheduled: VALUE  - DESCRIPTION`,
/// each part only when set; a param without a default says it is required.
fn param_line(p: &Param, scheduled: Option<&String>) -> String {
    let mut line = format!("  param: {}", p.name);
    match &p.default {
        Some(d) => line.push_str(&format!("  default: {}", shown_value(d))),
        None => line.push_str("  required"),
    }
    if let Some(re) = &p.pattern {
        line.push_str(&format!("  pattern: {re}"));
    }
    if let Some(v) = scheduled {
        line.push_str(&format!("  scheduled: {}", shown_value(v)));
    }
    if let Some(d) = &p.description {
        line.push_str(&format!("  - {d}"));
    }
    line.push('\n');
    line
}

/// A value as typed, quoted when it would otherwise be invisible or run
/// into the next column (empty, or with spaces).
fn shown_value(v: &str) -> String {
    if v.is_empty() || v.contains(char::is_whitespace) {
        format!("{v:?}")
    } else {
        v.to_owned()
    }
}

fn max_level(g: &Genflow) -> usize {
    levels(g).into_iter().map(|(_, l)| l).max().unwrap_or(0)
}
