//! Which gate openings and run ends a long-running process has already
//! reported.
//!
//! A worker drives a run again whenever a claim for it arrives, and each
//! drive reports the gates it finds waiting and the end it finds: without
//! this, a worker's log said "waiting for a decision" once per re-drive of
//! the same gate, and "run finished" once per drive that saw the end.

use fleet_store::RunRecord;
use std::collections::HashSet;
use std::sync::Mutex;

/// Remembered gate rounds; past this the memory starts over (a repeated
/// line is the worst that can happen).
const REMEMBERED: usize = 10_000;

#[derive(Default)]
pub struct AnnouncedGates(Mutex<HashSet<(String, String, u32)>>);

impl AnnouncedGates {
    /// True the first time the gate `step` of `run` is reported in its
    /// current round (a redraft opens a new round, reported again).
    pub fn first(&self, run: &RunRecord, step: &str) -> bool {
        let round = run
            .definition
            .step_index(step)
            .map_or(0, |i| run.state.steps[i].attempt);
        let Ok(mut seen) = self.0.lock() else {
            return true;
        };
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert((run.id.clone(), step.to_owned(), round))
    }

    /// True the first time the end of `run` is reported (a retried run
    /// ends again at a later version, reported again).
    pub fn first_end(&self, run: &RunRecord) -> bool {
        let version = u32::try_from(run.version).unwrap_or(u32::MAX);
        let Ok(mut seen) = self.0.lock() else {
            return true;
        };
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        // No step is named "" (names are validated), so this never meets a gate.
        seen.insert((run.id.clone(), String::new(), version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_core::run::RunState;

    fn run(id: &str, gate_round: u32) -> RunRecord {
        let text = include_str!("../../fleet-cli/example/release-gate/.fleet/config.yaml");
        let config = fleet_core::config::check_str(text)
            .config
            .unwrap_or_else(|| panic!("the example config is valid"));
        let genflow = config.genflows[0].clone();
        let mut state = RunState::new(&genflow, None);
        let gate = genflow
            .steps
            .iter()
            .position(|s| s.kind == fleet_core::config::StepKind::Approval)
            .unwrap_or_else(|| panic!("the example has a gate"));
        state.steps[gate].attempt = gate_round;
        let now = jiff::Timestamp::now();
        RunRecord {
            id: id.to_owned(),
            genflow_name: genflow.name.clone(),
            definition_hash: genflow.definition_hash(),
            definition: std::sync::Arc::new(genflow),
            state,
            version: 1,
            triggered_by: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn each_gate_round_is_reported_once() {
        let gates = AnnouncedGates::default();
        let step = "go-no-go";
        assert!(gates.first(&run("a", 1), step), "first report");
        assert!(!gates.first(&run("a", 1), step), "the same round again");
        assert!(gates.first(&run("b", 1), step), "another run");
        assert!(
            gates.first(&run("a", 2), step),
            "a new round after a redraft"
        );
    }

    #[test]
    fn each_end_is_reported_once() {
        let ends = AnnouncedGates::default();
        let mut a = run("a", 1);
        assert!(ends.first_end(&a));
        assert!(!ends.first_end(&a), "the same end seen by a second drive");
        assert!(ends.first_end(&run("b", 1)), "another run");
        a.version = 9;
        assert!(ends.first_end(&a), "ended again after a retry");
    }
}
