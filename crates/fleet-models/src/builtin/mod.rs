//! `builtin`: the offline, deterministic, rule-based analyst. It needs no
//! network or key, costs no tokens, and every document it writes says it is
//! rule-based. A report lists what the rules found in the corpus; a review
//! re-derives the risks and holds the upstream documents against them.

mod analysis;
mod changelog;
mod lexicon;
mod migrations;
mod rank;
mod report;
mod review;
mod roles;
mod rules;
mod scan;
#[cfg(test)]
mod spec;
mod tracker;

use crate::{BoxFuture, Completion, Model, ModelError, ModelRequest, Usage};
use analysis::Analysis;
use fleet_core::config::{BUILTIN_MODEL, StepKind};

/// The builtin analyst. Stateless: one value serves any number of steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtin;

impl Builtin {
    /// The work behind [`Model::complete`], without the future.
    pub fn complete_now(&self, req: &ModelRequest) -> Result<Completion, ModelError> {
        let analysis = Analysis::of(&req.corpus, req.release.as_deref());
        let (text, flags) = match req.kind {
            StepKind::Report => (report::render(req, &analysis), None),
            StepKind::Review => {
                let review = review::review(req, &analysis);
                (review.text, Some(review.flags))
            }
            other => {
                return Err(ModelError::UnsupportedKind {
                    model: BUILTIN_MODEL.to_string(),
                    kind: other,
                });
            }
        };
        Ok(Completion {
            text,
            flags,
            usage: Usage::default(),
            model: BUILTIN_MODEL.to_string(),
            cached: false,
        })
    }
}

impl Model for Builtin {
    fn name(&self) -> &str {
        BUILTIN_MODEL
    }

    fn complete<'a>(
        &'a self,
        req: &'a ModelRequest,
    ) -> BoxFuture<'a, Result<Completion, ModelError>> {
        // The analysis is CPU-only and fast; a ready future avoids an async runtime dependency.
        Box::pin(std::future::ready(self.complete_now(req)))
    }
}
