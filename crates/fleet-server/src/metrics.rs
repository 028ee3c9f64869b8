//! `/metrics` in the Prometheus text format. Two kinds of series:
//!
//! - computed from the database (runs by status, step attempts, tokens,
//!   cost, waiting gates): every process sharing it reports the same
//!   numbers, and nothing resets on restart;
//! - counted by this process as things happen (`fleet_runs_started_total`,
//!   `fleet_steps_finished_total`, `fleet_step_duration_seconds`, ...;
//!   `fleet_engine::metrics`): each process its own, summed by Prometheus.

use crate::AppState;
use crate::views::Failure;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use fleet_core::run::{RunStatus, StepStatus};
use fleet_engine::metrics::label_value as label;
use fleet_store::RunFilter;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The labels of a step's series: `genflow="…",step="…"`, escaped.
fn step_labels(s: &fleet_store::StepStats) -> String {
    format!(
        "genflow=\"{}\",step=\"{}\"",
        label(&s.genflow),
        label(&s.step)
    )
}

pub async fn metrics(State(state): State<AppState>) -> Result<Response, Failure> {
    let store = state.engine.store();
    let stats = store.stats().await.map_err(Failure::from_store)?;
    let waiting = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Waiting),
            ..RunFilter::default()
        })
        .await
        .map_err(Failure::from_store)?;
    let now = jiff::Timestamp::now();
    let mut out = String::with_capacity(4096);
    let counts: BTreeMap<&str, u64> = stats
        .runs_by_status
        .iter()
        .map(|(s, n)| (s.as_str(), *n))
        .collect();
    out.push_str("# HELP fleet_runs Runs in the database by status.\n# TYPE fleet_runs gauge\n");
    for status in RunStatus::ALL {
        let n = counts.get(status.as_str()).copied().unwrap_or(0);
        let _ = writeln!(out, "fleet_runs{{status=\"{}\"}} {n}", status.as_str());
    }
    out.push_str("# HELP fleet_step_attempts_total Step attempts recorded.\n# TYPE fleet_step_attempts_total counter\n");
    for s in &stats.steps {
        let _ = writeln!(
            out,
            "fleet_step_attempts_total{{{}}} {}",
            step_labels(s),
            s.attempts
        );
    }
    // Named apart from this process's `fleet_step_duration_seconds`
    // histogram: one name cannot have two types.
    out.push_str("# HELP fleet_recorded_step_duration_seconds Time spent in finished step attempts recorded in the database.\n# TYPE fleet_recorded_step_duration_seconds summary\n");
    for s in &stats.steps {
        let l = step_labels(s);
        let _ = writeln!(
            out,
            "fleet_recorded_step_duration_seconds_sum{{{l}}} {:.6}",
            s.seconds
        );
        let _ = writeln!(
            out,
            "fleet_recorded_step_duration_seconds_count{{{l}}} {}",
            s.finished
        );
    }
    out.push_str("# HELP fleet_tokens_total Model tokens used by steps.\n# TYPE fleet_tokens_total counter\n");
    for s in &stats.steps {
        let l = step_labels(s);
        let _ = writeln!(
            out,
            "fleet_tokens_total{{{l},direction=\"input\"}} {}",
            s.input_tokens
        );
        let _ = writeln!(
            out,
            "fleet_tokens_total{{{l},direction=\"output\"}} {}",
            s.output_tokens
        );
    }
    out.push_str("# HELP fleet_cost_usd_total Model cost of steps in US dollars.\n# TYPE fleet_cost_usd_total counter\n");
    for s in &stats.steps {
        let _ = writeln!(
            out,
            "fleet_cost_usd_total{{{}}} {:.6}",
            step_labels(s),
            s.cost_usd
        );
    }
    // Gates waiting now, and the oldest wait per gate. A waiting run changes
    // only when someone votes, so its last update is when the wait began
    // (or the last partial vote of an N-of-M gate).
    let mut gates: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for run in &waiting {
        let age = (now.as_millisecond() - run.updated_at.as_millisecond()).max(0) as f64 / 1000.0;
        for (i, s) in run.state.steps.iter().enumerate() {
            if s.status == StepStatus::Waiting {
                let name = run
                    .definition
                    .steps
                    .get(i)
                    .map(|d| d.name.clone())
                    .unwrap_or_default();
                let e = gates
                    .entry((run.genflow_name.clone(), name))
                    .or_insert((0, 0.0));
                e.0 += 1;
                e.1 = e.1.max(age);
            }
        }
    }
    out.push_str("# HELP fleet_gates_waiting Approval gates waiting for a decision.\n# TYPE fleet_gates_waiting gauge\n");
    for ((g, s), (n, _)) in &gates {
        let _ = writeln!(
            out,
            "fleet_gates_waiting{{genflow=\"{}\",step=\"{}\"}} {n}",
            label(g),
            label(s)
        );
    }
    out.push_str("# HELP fleet_gate_wait_seconds_max How long the longest-waiting gate has waited.\n# TYPE fleet_gate_wait_seconds_max gauge\n");
    for ((g, s), (_, age)) in &gates {
        let _ = writeln!(
            out,
            "fleet_gate_wait_seconds_max{{genflow=\"{}\",step=\"{}\"}} {age:.3}",
            label(g),
            label(s)
        );
    }
    state.engine.metrics().render(&mut out);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}
