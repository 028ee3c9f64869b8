//! Corpus globs that match no file in the workspace: a typo in a directory
//! name would otherwise give a clean-looking report built from nothing.
//! Found by walking the workspace (so not part of the pure config check) and
//! reported as config warnings at the glob's `file:line:col`.

use crate::workspace::Workspace;
use fleet_core::config::locate::{Seg, position};
use fleet_core::config::{CorpusEntry, Diagnostic, Pos};
use fleet_corpus::{CorpusGap, Limits, gather_globs};

/// A warning for every corpus glob of every step in `steps` (genflow index,
/// step index) that matches no file. Globs that cannot be gathered at all
/// (e.g. one escaping the workspace) are left to the errors that report them.
pub fn unmatched_glob_warnings(ws: &Workspace, steps: &[(usize, usize)]) -> Vec<Diagnostic> {
    let mut warnings = Vec::new();
    for &(g, s) in steps {
        let genflow = &ws.config.genflows[g];
        let step = &genflow.steps[s];
        // A glob that uses params matches what a run's values make of it;
        // the run records it as a gap if that matches nothing.
        let globs: Vec<String> = step
            .corpus_globs()
            .into_iter()
            .filter(|g| !g.contains("{{"))
            .collect();
        if globs.is_empty() {
            continue;
        }
        let Ok(corpus) = gather_globs(&ws.root, &globs, step.include_ignored, &Limits::default())
        else {
            continue;
        };
        for gap in &corpus.manifest.gaps {
            let CorpusGap::GlobMatchedNothing { glob, hint } = gap else {
                continue;
            };
            let index = step
                .corpus
                .iter()
                .position(|c| c.glob() == glob)
                .unwrap_or(0);
            let mut path = vec![
                Seg::Key("genflows"),
                Seg::Index(g),
                Seg::Key("steps"),
                Seg::Index(s),
                Seg::Key("corpus"),
                Seg::Index(index),
            ];
            if matches!(step.corpus.get(index), Some(CorpusEntry::Scoped(_))) {
                path.push(Seg::Key("glob"));
            }
            let pos = position(&ws.source, &path).unwrap_or(Pos { line: 1, col: 1 });
            let help = hint.clone().unwrap_or_else(|| {
                if step.include_ignored {
                    "check the path: globs are relative to the workspace root".to_string()
                } else {
                    "check the path: globs are relative to the workspace root, and hidden and \
                     git-ignored files are skipped unless the step sets include_ignored: true"
                        .to_string()
                }
            });
            warnings.push(
                Diagnostic::warning(
                    pos,
                    format!(
                        "corpus glob `{glob}` of step `{}` in genflow `{}` matches no file: the step would read nothing for it",
                        step.name, genflow.name
                    ),
                )
                .with_help(help),
            );
        }
    }
    warnings
}

/// Every step of every genflow, for `fleet validate`.
pub fn all_steps(ws: &Workspace) -> Vec<(usize, usize)> {
    ws.config
        .genflows
        .iter()
        .enumerate()
        .flat_map(|(g, flow)| (0..flow.steps.len()).map(move |s| (g, s)))
        .collect()
}
