//! Nothing read is never a clean bill. A review whose own corpus, or the
//! corpus of a report it reviews, has gaps (a glob that matched no file, a
//! source that printed nothing, nothing at all) gets one high flag per gap,
//! whatever model wrote it: a model cannot flag what it was never shown, so
//! this guardrail lives in the engine, not in a prompt.

use crate::Engine;
use fleet_core::config::StepKind;
use fleet_core::dag;
use fleet_core::flags::{Flag, FlagSet, FlagSeverity};
use fleet_corpus::{CorpusGap, Manifest};
use fleet_store::{RunRecord, StepRun};

/// `(step, gap)` for the review at `idx`: each upstream report's gaps, as
/// recorded by that report's latest attempt, then the review's own. A review
/// reading its report's corpus shares its gaps; each is named once, under the
/// report whose config declares it.
pub(crate) async fn review_gaps(
    engine: &Engine,
    run: &RunRecord,
    idx: usize,
    own: &[CorpusGap],
) -> Vec<(String, CorpusGap)> {
    let deps = run.definition.dependency_indices();
    let reports: Vec<usize> = dag::ancestors(&deps, idx)
        .into_iter()
        .filter(|&u| run.definition.steps[u].kind == StepKind::Report)
        .collect();
    let records = if reports.is_empty() {
        Vec::new()
    } else {
        // Without the records (a store error) the review's own gaps still stand.
        engine.store.step_runs(&run.id).await.unwrap_or_default()
    };
    let mut gaps = recorded_gaps(run, &reports, &records);
    for gap in own {
        if !gaps.iter().any(|(_, g)| g == gap) {
            gaps.push((run.definition.steps[idx].name.clone(), gap.clone()));
        }
    }
    gaps
}

/// The gaps recorded in the corpus manifests of `steps` (indices into the
/// run's definition, in that order), each step's latest attempt, each gap
/// once under the first step that has it. What the decision page shows first.
pub fn recorded_gaps(
    run: &RunRecord,
    steps: &[usize],
    records: &[StepRun],
) -> Vec<(String, CorpusGap)> {
    let mut gaps: Vec<(String, CorpusGap)> = Vec::new();
    for &i in steps {
        let name = &run.definition.steps[i].name;
        let latest = records
            .iter()
            .filter(|r| &r.step == name && r.manifest.is_some())
            .max_by_key(|r| (r.attempt, r.started_at));
        let recorded = latest
            .and_then(|r| r.manifest.clone())
            .and_then(|m| serde_json::from_value::<Manifest>(m).ok());
        for gap in recorded.map(|m| m.gaps).unwrap_or_default() {
            if !gaps.iter().any(|(_, g)| *g == gap) {
                gaps.push((name.clone(), gap));
            }
        }
    }
    gaps
}

/// Puts one high flag per gap in front of the review's own flags (ids `G1`,
/// `G2`, ...), and a note saying so at the top of the review's document.
pub(crate) fn add_gap_flags(gaps: &[(String, CorpusGap)], flags: &mut FlagSet, text: &mut String) {
    if gaps.is_empty() {
        return;
    }
    let mut added: Vec<Flag> = gaps
        .iter()
        .enumerate()
        .map(|(i, (step, gap))| Flag {
            id: format!("G{}", i + 1),
            severity: FlagSeverity::High,
            claim: format!("step `{step}`: {}", gap.describe()),
            evidence: Vec::new(),
        })
        .collect();
    let mut note = String::from(
        "> **Not read** (added by Fleet to every review, whatever the model): the findings below \
         cover only what was read.\n",
    );
    for flag in &added {
        note.push_str(&format!("> - **{}** {}\n", flag.id, flag.claim));
    }
    note.push('\n');
    text.insert_str(0, &note);
    added.append(&mut flags.flags);
    flags.flags = added;
}
