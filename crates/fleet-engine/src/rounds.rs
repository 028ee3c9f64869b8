//! The redraft rounds of a run's reviews, read from the store: each round's
//! flags sidecar, its review document and the report revision it reviewed,
//! matched round to round by `fleet_core::rounds`. What the decision page
//! and `fleet show` list.

use fleet_core::config::OnFlag;
use fleet_core::flags::{FlagSet, sidecar_path};
use fleet_core::rounds::{Outcome, Round, rounds};
use fleet_store::{ArtifactRef, RunRecord, Store, StoreError};

/// The stored revisions of one round.
#[derive(Debug, Clone)]
pub struct RoundRevisions {
    /// The report revision the round reviewed.
    pub report: Option<ArtifactRef>,
    /// The review's document.
    pub review: Option<ArtifactRef>,
    /// The review's flags sidecar; one per round.
    pub flags: ArtifactRef,
}

/// One review with `on_flag` and its rounds so far.
#[derive(Debug, Clone)]
pub struct ReviewRounds {
    pub review: String,
    pub on_flag: OnFlag,
    /// The report's `out`.
    pub report_out: String,
    /// Index = round number - 1, like `rounds`.
    pub revisions: Vec<RoundRevisions>,
    pub rounds: Vec<Round>,
    /// `None` until the review has written a round.
    pub outcome: Option<Outcome>,
    /// The last two revisions of the report (older first), when it was redrafted.
    pub last_two: Option<(ArtifactRef, ArtifactRef)>,
}

/// The reviews with `on_flag` among `steps` (step indices), in the
/// genflow's order, with their rounds. Reads one sidecar per round.
pub async fn review_rounds(
    store: &dyn Store,
    run: &RunRecord,
    refs: &[ArtifactRef],
    steps: impl IntoIterator<Item = usize>,
) -> Result<Vec<ReviewRounds>, StoreError> {
    let mut indices: Vec<usize> = steps.into_iter().collect();
    indices.sort_unstable();
    indices.dedup();
    let mut out = Vec::new();
    for i in indices {
        let Some(def) = run.definition.steps.get(i) else {
            continue;
        };
        let Some(on_flag) = &def.on_flag else {
            continue;
        };
        let Some(report) = run.definition.step(&on_flag.redraft) else {
            continue;
        };
        let review_out = def.out_path();
        let report_out = report.out_path();
        let revisions_of = |path: &str| {
            let mut v: Vec<&ArtifactRef> = refs.iter().filter(|r| r.path == path).collect();
            v.sort_by_key(|r| r.revision);
            v
        };
        let sidecars = revisions_of(&sidecar_path(&review_out));
        let reviews = revisions_of(&review_out);
        let reports = revisions_of(&report_out);
        let mut sets = Vec::with_capacity(sidecars.len());
        let mut revisions = Vec::with_capacity(sidecars.len());
        for (k, flags) in sidecars.iter().enumerate() {
            let bytes = store
                .artifact_bytes(&flags.sha256)
                .await?
                .unwrap_or_default();
            // The engine writes every sidecar from a `FlagSet`; one that does
            // not parse (edited by hand?) counts as a round without flags.
            sets.push(serde_json::from_slice::<FlagSet>(&bytes).unwrap_or_default());
            // The document is written in the same commit as its sidecar.
            let review = reviews
                .iter()
                .find(|r| r.revision == flags.revision)
                .map(|r| (*r).clone());
            revisions.push(RoundRevisions {
                report: reviewed_report(&reports, sidecars.len(), k, flags),
                review,
                flags: (*flags).clone(),
            });
        }
        let rounds = rounds(&sets);
        let used = run.state.steps.get(i).map_or(0, |s| s.redrafts);
        let outcome = Outcome::of(&rounds, on_flag, used);
        let last_two = match reports.as_slice() {
            [.., a, b] => Some(((*a).clone(), (*b).clone())),
            _ => None,
        };
        out.push(ReviewRounds {
            review: def.name.clone(),
            on_flag: on_flag.clone(),
            report_out,
            revisions,
            rounds,
            outcome,
            last_two,
        });
    }
    Ok(out)
}

/// The report revision round `k` reviewed. Every report revision makes the
/// review run again, so while the counts agree they pair one to one; after
/// a manual retry of the review alone they do not, and the round reviewed
/// the newest report revision written before its own.
fn reviewed_report(
    reports: &[&ArtifactRef],
    rounds: usize,
    k: usize,
    flags: &ArtifactRef,
) -> Option<ArtifactRef> {
    if reports.len() == rounds {
        return reports.get(k).map(|r| (*r).clone());
    }
    reports
        .iter()
        .rev()
        .find(|r| r.created_at <= flags.created_at)
        .map(|r| (*r).clone())
}
