//! Counters of what this process did (runs started and finished, step
//! attempts and their durations, decisions, deliveries), rendered in the
//! Prometheus text format by the server's `/metrics`.
//!
//! Per process, counted where the event happens: with several servers and
//! workers on one database each reports its own, and Prometheus sums them.
//! They start at zero with the process. (The database-wide gauges and
//! totals that `/metrics` also shows are computed from the store.)
//!
//! Hand-written like the rest of `/metrics`: a few mutex-guarded maps,
//! touched a handful of times per step, need no metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of `fleet_step_duration_seconds`, in seconds: builtin
/// steps take milliseconds, hosted models seconds to minutes.
pub const STEP_BUCKETS: [f64; 14] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

/// One counter family: label values -> count.
#[derive(Default)]
struct Counter(Mutex<BTreeMap<Vec<String>, u64>>);

impl Counter {
    fn inc(&self, labels: &[&str]) {
        if let Ok(mut map) = self.0.lock() {
            *map.entry(labels.iter().map(|l| (*l).to_owned()).collect())
                .or_default() += 1;
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str, names: &[&str]) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        let Ok(map) = self.0.lock() else { return };
        for (values, n) in map.iter() {
            let _ = writeln!(out, "{name}{{{}}} {n}", labels(names, values));
        }
    }
}

#[derive(Default, Clone)]
struct Buckets {
    /// Per bucket, the observations at or below its bound (not cumulative).
    counts: [u64; STEP_BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// `fleet_step_duration_seconds`, by step kind.
#[derive(Default)]
struct Histogram(Mutex<BTreeMap<String, Buckets>>);

impl Histogram {
    fn observe(&self, kind: &str, seconds: f64) {
        let Ok(mut map) = self.0.lock() else { return };
        let b = map.entry(kind.to_owned()).or_default();
        if let Some(i) = STEP_BUCKETS.iter().position(|le| seconds <= *le) {
            b.counts[i] += 1;
        }
        b.sum += seconds;
        b.count += 1;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let Ok(map) = self.0.lock() else { return };
        for (kind, b) in map.iter() {
            let kind = label_value(kind);
            let mut cumulative = 0;
            for (le, n) in STEP_BUCKETS.iter().zip(b.counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{kind=\"{kind}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{kind=\"{kind}\",le=\"+Inf\"}} {}\n\
                 {name}_sum{{kind=\"{kind}\"}} {:.6}\n\
                 {name}_count{{kind=\"{kind}\"}} {}",
                b.count, b.sum, b.count
            );
        }
    }
}

fn labels(names: &[&str], values: &[String]) -> String {
    names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", label_value(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A label value escaped for the text format.
pub fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// This process's counters. One per [`crate::Engine`], shared with its notifier.
#[derive(Default)]
pub struct Metrics {
    runs_started: Counter,
    runs_finished: Counter,
    steps_finished: Counter,
    decisions: Counter,
    deliveries: Counter,
    step_duration: Histogram,
}

impl Metrics {
    pub fn run_started(&self, genflow: &str) {
        self.runs_started.inc(&[genflow]);
    }

    pub fn run_finished(&self, genflow: &str, status: &str) {
        self.runs_finished.inc(&[genflow, status]);
    }

    /// A step attempt whose result was committed (`succeeded` or `failed`).
    pub fn step_finished(&self, kind: &str, status: &str, elapsed: Duration) {
        self.steps_finished.inc(&[kind, status]);
        self.step_duration.observe(kind, elapsed.as_secs_f64());
    }

    pub fn decision(&self, verdict: &str, channel: &str) {
        self.decisions.inc(&[verdict, channel]);
    }

    /// One delivery attempt's outcome (`sent`, `retrying`, `failed`, `skipped`).
    pub fn delivery(&self, channel: &str, status: &str) {
        self.deliveries.inc(&[channel, status]);
    }

    /// Appends every family in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        self.runs_started.render(
            out,
            "fleet_runs_started_total",
            "Runs this process started.",
            &["genflow"],
        );
        self.runs_finished.render(
            out,
            "fleet_runs_finished_total",
            "Runs that ended (succeeded, rejected, failed, cancelled) by a commit of this process.",
            &["genflow", "status"],
        );
        self.steps_finished.render(
            out,
            "fleet_steps_finished_total",
            "Step attempts this process executed and recorded, by outcome.",
            &["kind", "status"],
        );
        self.decisions.render(
            out,
            "fleet_decisions_total",
            "Gate decisions recorded by this process.",
            &["verdict", "channel"],
        );
        self.deliveries.render(
            out,
            "fleet_deliveries_total",
            "Notification delivery attempts by this process, by outcome.",
            &["channel", "status"],
        );
        self.step_duration.render(
            out,
            "fleet_step_duration_seconds",
            "Duration of the step attempts this process executed.",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_counts_everything() {
        let m = Metrics::default();
        m.step_finished("report", "succeeded", Duration::from_millis(3));
        m.step_finished("report", "succeeded", Duration::from_millis(700));
        m.step_finished("report", "failed", Duration::from_secs(5000));
        let mut out = String::new();
        m.render(&mut out);
        for line in [
            "fleet_step_duration_seconds_bucket{kind=\"report\",le=\"0.01\"} 1",
            "fleet_step_duration_seconds_bucket{kind=\"report\",le=\"0.5\"} 1",
            "fleet_step_duration_seconds_bucket{kind=\"report\",le=\"1\"} 2",
            "fleet_step_duration_seconds_bucket{kind=\"report\",le=\"600\"} 2",
            "fleet_step_duration_seconds_bucket{kind=\"report\",le=\"+Inf\"} 3",
            "fleet_step_duration_seconds_count{kind=\"report\"} 3",
            "fleet_steps_finished_total{kind=\"report\",status=\"succeeded\"} 2",
            "fleet_steps_finished_total{kind=\"report\",status=\"failed\"} 1",
        ] {
            assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.run_started("a\"b\\c\nd");
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("fleet_runs_started_total{genflow=\"a\\\"b\\\\c\\nd\"} 1"));
    }
}
