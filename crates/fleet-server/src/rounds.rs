//! The redraft rounds a decision page shows (see `fleet_engine::rounds`):
//! at the top, where each review loop ended; then every round with the
//! revisions it wrote and the flags it raised and answered; then what the
//! last redraft changed in the report.

use crate::views::{DiffView, Failure, ViewCache, url_segment};
use fleet_core::flags::Flag;
use fleet_core::rounds::RoundFlag;
use fleet_engine::ReviewRounds;
use fleet_store::{ArtifactRef, RunRecord, Store};
use std::sync::Arc;

/// Lines of context around each change of the redraft diff.
const DIFF_CONTEXT: usize = 3;

/// A stored revision a round links to (through the approver's link).
pub struct RevLink {
    pub path: String,
    /// The path, URL-encoded for the revision view's query.
    pub path_q: String,
    pub revision: u32,
}

impl RevLink {
    fn of(r: &ArtifactRef) -> RevLink {
        RevLink {
            path: r.path.clone(),
            path_q: url_segment(&r.path),
            revision: r.revision,
        }
    }
}

pub struct FlagLine {
    pub id: String,
    pub severity: &'static str,
    pub claim: String,
    /// Its id in the round before, when it was raised there too.
    pub was: Option<String>,
}

impl FlagLine {
    fn raised(f: &RoundFlag) -> FlagLine {
        FlagLine {
            was: f.was.clone(),
            ..FlagLine::answered(&f.flag)
        }
    }

    fn answered(f: &Flag) -> FlagLine {
        FlagLine {
            id: f.id.clone(),
            severity: f.severity.as_str(),
            claim: f.claim.clone(),
            was: None,
        }
    }
}

pub struct RoundRow {
    pub number: u32,
    /// How many of `raised` were first raised in this round.
    pub new: usize,
    pub report: Option<RevLink>,
    pub review: Option<RevLink>,
    pub raised: Vec<FlagLine>,
    pub answered: Vec<FlagLine>,
}

/// One review loop on the decision page.
pub struct RoundsView {
    pub review: String,
    pub report: String,
    pub max: u32,
    pub bar: &'static str,
    /// "1 of 1 redrafts used; 1 high flag remains", or empty before the
    /// review's first round.
    pub line: String,
    /// The bound was reached with flags open.
    pub bound: bool,
    /// No flag at the bar remains.
    pub settled: bool,
    pub rows: Vec<RoundRow>,
    /// What the last redraft changed in the report.
    pub diff: Option<RedraftDiff>,
}

/// The unified diff of the last two revisions of the report.
pub struct RedraftDiff {
    pub from: RevLink,
    pub to: RevLink,
    pub lines: Arc<DiffView>,
}

impl RoundsView {
    pub(crate) fn weight(&self) -> usize {
        let rows: usize = self
            .rows
            .iter()
            .flat_map(|r| r.raised.iter().chain(&r.answered))
            .map(|f| 96 + f.claim.len())
            .sum();
        let diff = self.diff.as_ref().map_or(0, |d| d.lines.weight());
        512 + self.line.len() + rows + diff
    }
}

/// The review loops upstream of gate `gate`, as the page shows them.
pub async fn rounds_views(
    store: &dyn Store,
    cache: &ViewCache,
    run: &RunRecord,
    gate: usize,
    refs: &[ArtifactRef],
) -> Result<Vec<RoundsView>, Failure> {
    let deps = run.definition.dependency_indices();
    let upstream = fleet_core::dag::ancestors(&deps, gate);
    let loops = fleet_engine::review_rounds(store, run, refs, upstream)
        .await
        .map_err(Failure::from_store)?;
    let mut out = Vec::with_capacity(loops.len());
    for l in loops {
        out.push(view(store, cache, l).await?);
    }
    Ok(out)
}

async fn view(
    store: &dyn Store,
    cache: &ViewCache,
    l: ReviewRounds,
) -> Result<RoundsView, Failure> {
    let diff = match &l.last_two {
        Some((a, b)) => {
            let d = cache
                .diff(store, &a.sha256, &b.sha256, Some(DIFF_CONTEXT))
                .await?;
            Some(RedraftDiff {
                from: RevLink::of(a),
                to: RevLink::of(b),
                lines: d,
            })
        }
        None => None,
    };
    let rows = l
        .rounds
        .iter()
        .zip(&l.revisions)
        .map(|(round, revs)| RoundRow {
            number: round.number,
            new: round.new_flags().count(),
            report: revs.report.as_ref().map(RevLink::of),
            review: revs.review.as_ref().map(RevLink::of),
            raised: round.raised.iter().map(FlagLine::raised).collect(),
            answered: round.answered.iter().map(FlagLine::answered).collect(),
        })
        .collect();
    Ok(RoundsView {
        report: l.on_flag.redraft.clone(),
        max: l.on_flag.max,
        bar: l.on_flag.bar().as_str(),
        line: l.outcome.map(|o| o.line()).unwrap_or_default(),
        bound: l.outcome.is_some_and(|o| o.bound_reached()),
        settled: l.outcome.is_some_and(|o| o.open == 0),
        review: l.review,
        rows,
        diff,
    })
}
