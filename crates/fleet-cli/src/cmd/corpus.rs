//! `fleet corpus FLOW STEP`: what a step would read, without running it.

use crate::workspace::{UsageError, Workspace};
use anyhow::{Result, bail};
use fleet_corpus::{CorpusReport, Limits, Tokenizer, count_tokens, gather, render_manifest};
use std::path::Path;

pub fn run(ws: &Workspace, cwd: &Path, flow: &str, step: &str, json: bool) -> Result<()> {
    let Some(genflow) = ws.config.genflow(flow) else {
        let known: Vec<&str> = ws.config.genflows.iter().map(|g| g.name.as_str()).collect();
        bail!(UsageError(format!(
            "no genflow named `{flow}` (genflows: {})",
            known.join(", ")
        )));
    };
    let Some(idx) = genflow.step_index(step) else {
        let known: Vec<&str> = genflow.steps.iter().map(|s| s.name.as_str()).collect();
        bail!(UsageError(format!(
            "genflow `{flow}` has no step `{step}` (steps: {})",
            known.join(", ")
        )));
    };
    if !genflow.steps[idx].kind.uses_model() {
        bail!(UsageError(format!(
            "step `{step}` is a {} step; only report and review steps read a corpus",
            genflow.steps[idx].kind
        )));
    }
    // The steps whose globs this step reads: its own, or for a review
    // without any, those of the reports it reviews.
    let g = ws
        .config
        .genflows
        .iter()
        .position(|f| f.name == genflow.name)
        .unwrap_or(0);
    let deps = genflow.dependency_indices();
    let mut declaring = vec![(g, idx)];
    if genflow.steps[idx].corpus.is_empty() {
        declaring.extend(
            fleet_core::dag::ancestors(&deps, idx)
                .into_iter()
                .filter(|&u| genflow.steps[u].kind == fleet_core::config::StepKind::Report)
                .map(|u| (g, u)),
        );
    }
    let unmatched = crate::corpus_check::unmatched_glob_warnings(ws, &declaring);
    if !unmatched.is_empty() {
        eprint!(
            "{}",
            fleet_core::config::render_all(&unmatched, &ws.display_config_path(cwd), &ws.source)
        );
    }
    let spec = fleet_engine::corpus_spec(genflow, idx);
    let corpus = gather(&ws.root, &spec, &Limits::default())?;
    let tokenizer = Tokenizer::for_model(ws.config.models.get(spec.model_name()));
    let tokens: usize = corpus
        .documents
        .iter()
        .map(|d| count_tokens(&d.text, tokenizer))
        .sum();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&CorpusReport::new(&corpus, tokens))?
        );
    } else {
        print!("{}", render_manifest(&corpus, tokens));
    }
    Ok(())
}
