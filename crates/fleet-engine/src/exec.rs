//! Executing one step of each kind. Returns what to record; the caller
//! commits it through the state machine.

use crate::Engine;
use fleet_core::config::{BUILTIN_MODEL, Budget, Config, Genflow, Step, StepKind};
use fleet_core::dag;
use fleet_core::flags::{FlagCounts, sidecar_path};
use fleet_core::run::Verdict;
use fleet_corpus::{Corpus, Limits};
use fleet_models::{Builtin, Model, ModelRequest, ProviderOptions, UpstreamDoc};
use fleet_store::{NewArtifact, RunRecord, StepRun};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The models steps may use, by config name.
pub(crate) struct Models {
    by_name: BTreeMap<String, Arc<dyn Model>>,
    /// Models whose config cannot work, with why: only the steps using them fail.
    unavailable: BTreeMap<String, String>,
}

impl Models {
    pub(crate) fn new(config: &Config, settings: &crate::Settings) -> Self {
        let mut by_name: BTreeMap<String, Arc<dyn Model>> = BTreeMap::new();
        let mut unavailable = BTreeMap::new();
        by_name.insert(BUILTIN_MODEL.to_owned(), Arc::new(Builtin));
        let options = ProviderOptions {
            cache_dir: Some(settings.state_dir.join("cache").join("models")),
            no_cache: settings.no_cache,
            work_dir: Some(settings.root.clone()),
            ..ProviderOptions::default()
        };
        for (name, m) in &config.models {
            match fleet_models::from_config(name, m, &options) {
                Ok(model) => {
                    by_name.insert(name.clone(), model);
                }
                Err(e) => {
                    unavailable.insert(name.clone(), e.to_string());
                }
            }
        }
        Models {
            by_name,
            unavailable,
        }
    }

    fn get(&self, name: &str) -> Result<Arc<dyn Model>, String> {
        if let Some(m) = self.by_name.get(name) {
            return Ok(m.clone());
        }
        match self.unavailable.get(name) {
            Some(why) => Err(format!("model `{name}`: {why}")),
            None => Err(format!(
                "model `{name}` is not defined in the config's `models`"
            )),
        }
    }
}

/// What is left of the run's budget after every step run recorded so far.
async fn budget_left(engine: &Engine, run: &RunRecord) -> Result<Option<Budget>, StepFailure> {
    let Some(budget) = run.definition.budget else {
        return Ok(None);
    };
    let spent = engine
        .store
        .step_runs(&run.id)
        .await
        .map_err(|e| StepFailure::store("cannot read the run's spending so far", e))?;
    let tokens: u64 = spent.iter().map(|s| s.input_tokens + s.output_tokens).sum();
    let cost: f64 = spent.iter().filter_map(|s| s.cost_usd).sum();
    Ok(Some(Budget {
        tokens: budget.tokens.map(|t| t.saturating_sub(tokens)),
        cost_usd: budget.cost_usd.map(|c| (c - cost).max(0.0)),
    }))
}

pub(crate) struct StepDone {
    pub artifacts: Vec<NewArtifact>,
    pub step_run: Option<StepRun>,
    /// What a review raised, by severity (none for other kinds).
    pub flags: FlagCounts,
    /// The corpus files kept as evidence (`evidence.keep_corpus`).
    pub blobs: Vec<fleet_store::Blob>,
}

pub(crate) struct StepFailure {
    pub message: String,
    /// Boxed: a failure is the rare path and should not make every result large.
    pub step_run: Option<Box<StepRun>>,
    /// The database was out of reach (`StoreError::Unavailable`): not the
    /// step's failure. The step is left to be executed again rather than
    /// failed, so a dropped connection never fails a run behind its Go.
    pub store_unavailable: Option<fleet_store::StoreError>,
}

impl From<String> for StepFailure {
    fn from(message: String) -> Self {
        StepFailure {
            message,
            step_run: None,
            store_unavailable: None,
        }
    }
}

impl StepFailure {
    /// A store read the step needed failed; `what` says which.
    fn store(what: &str, e: fleet_store::StoreError) -> Self {
        StepFailure {
            message: format!("{what}: {e}"),
            step_run: None,
            store_unavailable: e.is_unavailable().then_some(e),
        }
    }
}

pub(crate) async fn execute(
    engine: &Engine,
    run: &RunRecord,
    idx: usize,
    attempt: u32,
) -> Result<StepDone, StepFailure> {
    let step = &run.definition.steps[idx];
    match step.kind {
        StepKind::Report | StepKind::Review => model_step(engine, run, idx, attempt).await,
        StepKind::Notify => notify_step(engine, run, idx, attempt).await,
        StepKind::Publish => crate::publish::publish_step(engine, run, idx, attempt).await,
        StepKind::Approval => Err(StepFailure::from(format!(
            "step `{}` is an approval gate; only a recorded decision completes it",
            step.name
        ))),
    }
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// The corpus a model step reads: its own globs/sources, or for a review
/// without its own, the same specification as the reports it reviews.
pub fn corpus_spec(genflow: &Genflow, idx: usize) -> Step {
    let step = &genflow.steps[idx];
    if step.kind == StepKind::Report || !step.corpus.is_empty() || !step.sources.is_empty() {
        return step.clone();
    }
    let deps = genflow.dependency_indices();
    let mut spec = step.clone();
    for up in dag::ancestors(&deps, idx) {
        let u = &genflow.steps[up];
        if u.kind == StepKind::Report {
            for g in &u.corpus {
                if !spec.corpus.contains(g) {
                    spec.corpus.push(g.clone());
                }
            }
            for s in &u.sources {
                if !spec.sources.iter().any(|x| x.name == s.name) {
                    spec.sources.push(s.clone());
                }
            }
            spec.include_ignored |= u.include_ignored;
        }
    }
    spec
}

/// The documents of the steps `idx` depends on (transitively), latest revisions.
async fn upstream_docs(
    engine: &Engine,
    run: &RunRecord,
    idx: usize,
) -> Result<Vec<UpstreamDoc>, StepFailure> {
    let deps = run.definition.dependency_indices();
    let ups = dag::ancestors(&deps, idx);
    if ups.is_empty() {
        return Ok(Vec::new());
    }
    let refs = engine
        .store
        .artifacts(&run.id)
        .await
        .map_err(|e| StepFailure::store("cannot load upstream documents", e))?;
    let latest = fleet_store::latest_revisions(&refs);
    let mut docs = Vec::new();
    for u in dag::topo_order(&deps)
        .into_iter()
        .filter(|u| ups.contains(u))
    {
        let s = &run.definition.steps[u];
        let out = s.out_path();
        let Some(r) = latest.get(&out) else { continue };
        let bytes = engine
            .store
            .artifact_bytes(&r.sha256)
            .await
            .map_err(|e| StepFailure::store(&format!("cannot load {out}"), e))?
            .ok_or_else(|| format!("artifact {} of {out} is missing from the store", r.sha256))?;
        let flags = match latest.get(&sidecar_path(&out)) {
            Some(fr) if s.kind == StepKind::Review => engine
                .store
                .artifact_bytes(&fr.sha256)
                .await
                .ok()
                .flatten()
                .and_then(|b| serde_json::from_slice(&b).ok()),
            _ => None,
        };
        docs.push(UpstreamDoc {
            step: s.name.clone(),
            kind: s.kind,
            path: out,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            flags,
        });
    }
    Ok(docs)
}

async fn model_step(
    engine: &Engine,
    run: &RunRecord,
    idx: usize,
    attempt: u32,
) -> Result<StepDone, StepFailure> {
    let step = run.definition.steps[idx].clone();
    let started_at = now();
    let model_name = step.model_name().to_owned();
    let model = engine.models.get(&model_name)?;
    let settings = engine
        .config
        .models
        .get(&model_name)
        .map(|m| serde_json::to_value(m).unwrap_or_default())
        .unwrap_or_else(|| serde_json::json!({ "provider": "builtin" }));

    let corpus = run_corpus(engine, run, idx).await?;
    let manifest = serde_json::to_value(&corpus.manifest).ok();
    // Only a review carries the gaps as flags (see gaps.rs).
    let own_gaps = corpus.manifest.gaps.clone();

    let upstream = upstream_docs(engine, run, idx).await?;
    // A report being redrafted gets the flags of the review that sent it back.
    let feedback = if step.kind == StepKind::Report {
        redraft_feedback(engine, run, idx).await
    } else {
        None
    };
    let request = ModelRequest {
        genflow: run.genflow_name.clone(),
        step: step.name.clone(),
        kind: step.kind,
        prompt: step.prompt.clone().unwrap_or_default(),
        corpus,
        upstream,
        feedback,
        budget: budget_left(engine, run).await?,
        release: run.definition.release.clone(),
    };
    let mut step_run = StepRun {
        step: step.name.clone(),
        attempt,
        model: Some(model_name.clone()),
        prompt: step.prompt.clone(),
        settings,
        manifest,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: None,
        cached: false,
        started_at,
        finished_at: None,
        error: None,
    };
    let completion = match model.complete(&request).await {
        Ok(c) => c,
        Err(e) => {
            let message = format!("model `{model_name}`: {e}");
            step_run.finished_at = Some(now());
            step_run.error = Some(message.clone());
            return Err(StepFailure {
                step_run: Some(Box::new(step_run)),
                ..StepFailure::from(message)
            });
        }
    };
    step_run.input_tokens = completion.usage.input_tokens;
    step_run.output_tokens = completion.usage.output_tokens;
    step_run.cost_usd = completion.usage.cost_usd;
    step_run.cached = completion.cached;
    step_run.finished_at = Some(now());

    let out = step.out_path();
    let mut text = completion.text;
    let mut flags = completion.flags;
    if step.kind == StepKind::Review {
        let gaps = crate::gaps::review_gaps(engine, run, idx, &own_gaps).await;
        let flags = flags.get_or_insert_with(|| fleet_core::flags::FlagSet {
            step: step.name.clone(),
            flags: Vec::new(),
        });
        crate::gaps::add_gap_flags(&gaps, flags, &mut text);
    }
    let mut artifacts = vec![NewArtifact {
        step: step.name.clone(),
        path: out.clone(),
        bytes: text.into_bytes(),
    }];
    let mut counts = FlagCounts::NONE;
    if step.kind == StepKind::Review {
        let flags = flags.unwrap_or_default();
        counts = flags.counts();
        let json =
            serde_json::to_vec_pretty(&flags).map_err(|e| format!("cannot encode flags: {e}"))?;
        artifacts.push(NewArtifact {
            step: step.name.clone(),
            path: sidecar_path(&out),
            bytes: json,
        });
    }
    // What was kept is decided on the document as written (`cited`), and
    // the manifest recorded with the result names each kept file's sha256.
    let kept = crate::kept::keep(
        run.definition.evidence.keep_corpus,
        &request.corpus,
        &artifacts[0].bytes,
    );
    step_run.manifest = serde_json::to_value(&kept.manifest).ok();
    Ok(StepDone {
        artifacts,
        step_run: Some(step_run),
        flags: counts,
        blobs: kept.blobs,
    })
}

/// The corpus of step `idx`. Steps of one run that read the same
/// specification (a review without its own corpus reads its report's) get
/// the very same snapshot, gathered once: the review then checks exactly what
/// the report saw, and the run reads the tree once.
async fn run_corpus(engine: &Engine, run: &RunRecord, idx: usize) -> Result<Corpus, String> {
    let spec = corpus_spec(&run.definition, idx);
    let key = (
        run.id.clone(),
        serde_json::to_string(&(&spec.corpus, &spec.sources, spec.include_ignored))
            .unwrap_or_default(),
    );
    if let Some(hit) = engine
        .corpus_cache
        .lock()
        .ok()
        .and_then(|c| c.get(&key).cloned())
    {
        return Ok((*hit).clone());
    }
    let root = engine.settings.root.clone();
    let name = spec.name.clone();
    let corpus =
        tokio::task::spawn_blocking(move || fleet_corpus::gather(&root, &spec, &Limits::default()))
            .await
            .map_err(|e| format!("corpus gathering stopped: {e}"))?
            .map_err(|e| format!("step `{name}`: {e}"))?;
    if let Ok(mut cache) = engine.corpus_cache.lock() {
        cache.insert(key, Arc::new(corpus.clone()));
    }
    Ok(corpus)
}

/// When a review sent this report back (`on_flag.redraft`), its latest flags.
async fn redraft_feedback(
    engine: &Engine,
    run: &RunRecord,
    idx: usize,
) -> Option<fleet_core::flags::FlagSet> {
    let name = &run.definition.steps[idx].name;
    let (review_idx, review) = run
        .definition
        .steps
        .iter()
        .enumerate()
        .find(|(_, s)| s.on_flag.as_ref().is_some_and(|f| &f.redraft == name))?;
    if run.state.steps[review_idx].redrafts == 0 {
        return None;
    }
    let refs = engine.store.artifacts(&run.id).await.ok()?;
    let latest = fleet_store::latest_revisions(&refs);
    let flags_ref = latest.get(&sidecar_path(&review.out_path()))?;
    let bytes = engine
        .store
        .artifact_bytes(&flags_ref.sha256)
        .await
        .ok()??;
    serde_json::from_slice(&bytes).ok()
}

/// A notify step: deliver what its start queued (email, webhook, Slack, with
/// retries), then write `out` (e.g. sent.md): the decision it announces and
/// exactly what went to whom.
async fn notify_step(
    engine: &Engine,
    run: &RunRecord,
    idx: usize,
    attempt: u32,
) -> Result<StepDone, StepFailure> {
    let step = &run.definition.steps[idx];
    let started_at = now();
    // The deliveries were queued when the step started; send them (with
    // retries) before writing what went where.
    fleet_notify::announce_deliveries(&engine.config, &run.id, &run.definition, &run.state, idx)
        .map_err(StepFailure::from)?;
    let round = fleet_notify::announce_round(&run.definition, &run.state, idx);
    let delivered = engine
        .notifier()
        .deliver_step(&run.id, &step.name, round)
        .await
        .map_err(|e| StepFailure::from(format!("step `{}`: {e}", step.name)))?;
    let decisions = engine
        .store
        .decisions(&run.id)
        .await
        .map_err(|e| StepFailure::store("cannot load decisions", e))?;
    let deps = run.definition.dependency_indices();
    let ups = dag::ancestors(&deps, idx);
    let mut text = format!(
        "# {}: announcement\n\nRun `{}` of genflow `{}` (definition {}).\n\n",
        step.name, run.id, run.genflow_name, run.definition_hash
    );
    let mut any_gate = false;
    for (i, s) in run.definition.steps.iter().enumerate() {
        if s.kind != StepKind::Approval || !ups.contains(&i) {
            continue;
        }
        any_gate = true;
        for d in decisions
            .iter()
            .filter(|d| d.step == s.name && d.verdict == Verdict::Go)
        {
            text.push_str(&format!(
                "**GO** at gate `{}` by {} ({}) at {}.\n\n",
                s.name, d.approver, d.channel, d.decided_at
            ));
            if !d.shown.is_empty() {
                text.push_str("Approved on these document revisions:\n\n| document | revision | sha256 |\n|---|---|---|\n");
                for a in &d.shown {
                    text.push_str(&format!(
                        "| {} | {} | `{}` |\n",
                        a.path, a.revision, a.sha256
                    ));
                }
                text.push('\n');
            }
        }
    }
    if !any_gate {
        text.push_str("No approval gate precedes this step.\n\n");
    }
    let at = now();
    text.push_str("## Deliveries\n\n");
    text.push_str(&fleet_notify::sent_report(&delivered));
    text.push_str(&format!(
        "| file | {} | written | {} | - | - |\n",
        step.out_path(),
        at
    ));
    Ok(StepDone {
        artifacts: vec![NewArtifact {
            step: step.name.clone(),
            path: step.out_path(),
            bytes: text.into_bytes(),
        }],
        step_run: Some(StepRun {
            step: step.name.clone(),
            attempt,
            model: None,
            prompt: None,
            settings: serde_json::json!({
                "channels": delivered.iter().map(|d| d.channel.as_str()).chain(["file"]).collect::<Vec<_>>(),
            }),
            manifest: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_usd: None,
            cached: false,
            started_at,
            finished_at: Some(at),
            error: None,
        }),
        flags: FlagCounts::NONE,
        blobs: Vec::new(),
    })
}
