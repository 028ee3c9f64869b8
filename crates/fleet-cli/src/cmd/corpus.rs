//! `fleet corpus FLOW STEP`: what a step would read, without running it.

use crate::workspace::{UsageError, Workspace};
use anyhow::{Result, bail};
use fleet_corpus::{CorpusReport, Limits, Tokenizer, count_tokens, gather, render_manifest};

pub fn run(ws: &Workspace, flow: &str, step: &str, json: bool) -> Result<()> {
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
