//! Run commands: run, runs, show, approve, reject, cancel, retry, resume.

use crate::context::{App, current_user};
use crate::workspace::{UsageError, display_path};
use anyhow::{Context as _, Result, bail};
use fleet_core::config::fan_out::fan_out_summaries;
use fleet_core::run::{RunStatus, StepStatus, Verdict};
use fleet_engine::{DecisionRequest, Observer, StepInfo, Until, run_dir};
use fleet_store::{ArtifactRef, RunFilter, RunRecord};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

/// Plain progress lines on stderr (stdout stays for results and JSON).
pub struct Lines {
    pub quiet: bool,
}

impl Observer for Lines {
    fn step_started(&self, _run: &RunRecord, step: &str, attempt: u32) {
        if !self.quiet {
            let again = if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            };
            eprintln!("  {step:<16} running{again}");
        }
    }

    fn step_finished(
        &self,
        _run: &RunRecord,
        step: &str,
        status: StepStatus,
        elapsed: Duration,
        info: &StepInfo,
    ) {
        if !self.quiet {
            eprintln!("{}", finished_line(step, status, elapsed, info));
        }
    }

    fn gate_opened(&self, _run: &RunRecord, step: &str, approvers: &[String]) {
        if !self.quiet {
            eprintln!("{}", gate_line(step, approvers));
        }
    }
}

/// `  readiness        succeeded in 25 ms, 1200 in / 800 out tokens -> readiness.md`
fn finished_line(step: &str, status: StepStatus, elapsed: Duration, info: &StepInfo) -> String {
    let mut line = format!("  {step:<16} {status} in {}", fmt_elapsed(elapsed));
    if info.input_tokens + info.output_tokens > 0 {
        line.push_str(&format!(
            ", {} in / {} out tokens",
            info.input_tokens, info.output_tokens
        ));
    }
    if info.cached {
        line.push_str(", cached");
    }
    if let Some(e) = &info.error {
        line.push_str(&format!(": {e}"));
    } else if let Some(out) = &info.out {
        line.push_str(&format!(" -> {out}"));
    }
    line
}

/// Live progress on a terminal: one spinner per running step, replaced by
/// its outcome (status, duration, tokens) when it finishes.
pub struct Bars {
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
}

impl Bars {
    pub fn new() -> Self {
        Bars {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr(),
            ),
            bars: Default::default(),
        }
    }
}

impl Observer for Bars {
    fn step_started(&self, _run: &RunRecord, step: &str, attempt: u32) {
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("  {spinner} {prefix:<16} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(step.to_owned());
        bar.set_message(if attempt > 1 {
            format!("running (attempt {attempt})")
        } else {
            "running".to_owned()
        });
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(step.to_owned(), bar);
        }
    }

    fn step_finished(
        &self,
        run: &RunRecord,
        step: &str,
        status: StepStatus,
        elapsed: Duration,
        info: &StepInfo,
    ) {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(step));
        let line = finished_line(step, status, elapsed, info);
        // The outcome is printed above the live area, which only ever holds
        // running steps, so nothing printed later can overwrite it.
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let _ = self.multi.println(line);
        let _ = run;
    }

    fn gate_opened(&self, _run: &RunRecord, step: &str, approvers: &[String]) {
        let _ = self.multi.println(gate_line(step, approvers));
    }
}

fn gate_line(step: &str, approvers: &[String]) -> String {
    let who = if approvers.is_empty() {
        "anyone".to_owned()
    } else {
        approvers.join(", ")
    };
    format!("  {step:<16} waiting for a decision from {who}")
}

/// The observer for a command: bars on a terminal, lines otherwise, nothing for --json.
pub fn observer(json: bool) -> Box<dyn Observer> {
    use std::io::IsTerminal;
    if !json && std::io::stderr().is_terminal() {
        Box::new(Bars::new())
    } else {
        Box::new(Lines { quiet: json })
    }
}

fn fmt_elapsed(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Exit code for a run: 0 unless it ended badly; with `wait`, 0 only on success.
fn exit_for(run: &RunRecord, wait: bool) -> ExitCode {
    match run.state.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Running | RunStatus::Waiting if !wait => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

/// Executes what a crashed process left behind, saying so. Embedded
/// database only: with a database URL, `fleet worker` processes do this.
/// Bounded: only steps whose lease lapsed (or that nobody started) are
/// claimed, a few at a time, never every unfinished run.
async fn resume_others(app: &App, quiet: bool) -> Result<()> {
    if !app.embedded {
        return Ok(());
    }
    let settings = app.engine.settings();
    let claims = app
        .store()
        .claim_steps(&settings.worker_id, settings.lease_ttl, 8, None)
        .await?;
    let mut driven: Vec<&str> = Vec::new();
    for claim in &claims {
        if driven.contains(&claim.run_id.as_str()) {
            continue;
        }
        driven.push(&claim.run_id);
        if !quiet {
            eprintln!(
                "Resuming run {} (left unfinished by an earlier process)",
                claim.run_id
            );
        }
        app.engine
            .execute_claim(claim, observer(quiet).as_ref())
            .await?;
    }
    Ok(())
}

/// Who executes a run `fleet run` started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// This process executes the steps (racing any worker; each step runs
    /// once) and follows the run to its gate or end.
    Execute,
    /// Workers execute; this process follows and reports.
    Watch,
    /// Print the id and return.
    Detach,
}

/// `--param NAME=VALUE` arguments as a map; a name given twice is a usage
/// error rather than a silent last-one-wins.
pub fn parse_params(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut params = BTreeMap::new();
    for arg in args {
        let Some((name, value)) = arg.split_once('=') else {
            bail!(UsageError(format!(
                "--param `{arg}`: write NAME=VALUE, e.g. --param version=4.2.0"
            )));
        };
        let name = name.trim();
        if params.insert(name.to_owned(), value.to_owned()).is_some() {
            bail!(UsageError(format!("--param `{name}` is given twice")));
        }
    }
    Ok(params)
}

pub async fn run(
    app: &App,
    flow: &str,
    params: &BTreeMap<String, String>,
    user: Option<String>,
    wait: bool,
    json: bool,
    mode: Follow,
) -> Result<ExitCode> {
    if mode == Follow::Execute {
        resume_others(app, json).await?;
    }
    let triggered_by = current_user(user);
    let run = app
        .engine
        .start_run_with_params(flow, triggered_by, params, fleet_store::new_run_id())
        .await?;
    if mode == Follow::Detach {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&run_json(app, &run).await?)?
            );
        } else {
            println!("{}", run.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if !json {
        eprintln!("Run {} of {} started", run.id, run.genflow_name);
    }
    let observer = observer(json);
    let execute = mode == Follow::Execute;
    let mut run = app
        .engine
        .follow(&run.id, observer.as_ref(), execute, Until::GateOrEnd)
        .await?;
    deliver(app, &run.id, json).await?;
    if wait && !run.state.is_terminal() {
        if !json {
            print_gate_help(app, &run);
        }
        // Someone decides, from this host or another; follow what comes after.
        run = app
            .engine
            .follow(&run.id, observer.as_ref(), execute, Until::End)
            .await?;
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&run_json(app, &run).await?)?
        );
    } else {
        print_outcome(app, &run);
    }
    Ok(exit_for(&run, wait))
}

/// Sends what the run's transitions queued (approver emails) before the
/// command exits, and says what happened.
async fn deliver(app: &App, run_id: &str, quiet: bool) -> Result<()> {
    let report = app.engine.deliver_pending(Some(run_id)).await?;
    if quiet || report.is_empty() {
        return Ok(());
    }
    eprintln!(
        "Notifications: {} sent, {} to retry, {} failed, {} no longer needed",
        report.sent, report.retrying, report.failed, report.skipped
    );
    for p in &report.problems {
        eprintln!("  {p}");
    }
    if report.retrying > 0 {
        eprintln!("  Retries are sent by `fleet serve` or the next fleet command for this run.");
    }
    Ok(())
}

fn print_gate_help(app: &App, run: &RunRecord) {
    for (i, s) in run.state.steps.iter().enumerate() {
        if s.status != StepStatus::Waiting {
            continue;
        }
        let step = &run.definition.steps[i];
        let who = if step.approvers.is_empty() {
            "EMAIL".to_owned()
        } else {
            step.approvers[0].clone()
        };
        println!("Run {} is waiting at gate `{}`.", run.id, step.name);
        if let Some(q) = &step.question {
            println!("  {q}");
        }
        let dir = display_path(&run_dir(&app.ws.root.join(".fleet"), &run.id), &app.ws.root);
        println!("  Read the documents in {dir}/");
        println!(
            "  Go:    fleet approve {} --step {} --as {who}",
            run.id, step.name
        );
        println!(
            "  No-go: fleet reject {} --step {} --as {who} --reason \"...\"",
            run.id, step.name
        );
        if step.approvers.len() > 1 || step.required > 1 {
            println!(
                "  Approvers: {} ({} required)",
                step.approvers.join(", "),
                step.required
            );
        }
    }
}

fn print_outcome(app: &App, run: &RunRecord) {
    match run.state.status {
        RunStatus::Waiting => print_gate_help(app, run),
        RunStatus::Running => println!(
            "Run {} is running (steps are being executed by another process).",
            run.id
        ),
        status => {
            println!("Run {} {status}.", run.id);
            for (i, s) in run.state.steps.iter().enumerate() {
                if let Some(e) = &s.error {
                    println!("  {}: {e}", run.definition.steps[i].name);
                }
            }
            let dir = display_path(&run_dir(&app.ws.root.join(".fleet"), &run.id), &app.ws.root);
            println!("  Documents: {dir}/");
        }
    }
}

pub async fn runs(
    app: &App,
    flow: Option<String>,
    status: Option<String>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let status = match status {
        None => None,
        Some(s) => Some(RunStatus::from_name(&s).ok_or_else(|| {
            UsageError(format!(
                "unknown status `{s}` (use running, waiting, succeeded, rejected, failed or cancelled)"
            ))
        })?),
    };
    let runs = app
        .store()
        .list_runs(&RunFilter {
            genflow: flow,
            status,
            limit: Some(limit),
            before: None,
        })
        .await?;
    if json {
        let list: Vec<_> = runs
            .iter()
            .map(|r| {
                json!({
                    "run_id": r.id, "genflow": r.genflow_name, "status": r.state.status.as_str(),
                    "triggered_by": r.triggered_by, "created_at": r.created_at.to_string(),
                    "updated_at": r.updated_at.to_string(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "runs": list }))?
        );
        return Ok(());
    }
    if runs.is_empty() {
        println!("No runs yet. Start one with `fleet run GENFLOW`.");
        return Ok(());
    }
    println!(
        "{:<36}  {:<16} {:<10} {:<20} TRIGGERED BY",
        "RUN", "GENFLOW", "STATUS", "CREATED (UTC)"
    );
    for r in runs {
        println!(
            "{:<36}  {:<16} {:<10} {:<20} {}",
            r.id,
            r.genflow_name,
            r.state.status.as_str(),
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.triggered_by.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

fn latest_for(refs: &[ArtifactRef], path: &str) -> Option<ArtifactRef> {
    refs.iter()
        .filter(|r| r.path == path)
        .max_by_key(|r| r.revision)
        .cloned()
}

pub async fn run_json(app: &App, run: &RunRecord) -> Result<serde_json::Value> {
    let store = app.store();
    let refs = store.artifacts(&run.id).await?;
    let step_runs = store.step_runs(&run.id).await?;
    let decisions = store.decisions(&run.id).await?;
    let dir = run_dir(&app.ws.root.join(".fleet"), &run.id);
    let steps: Vec<_> = run
        .definition
        .steps
        .iter()
        .zip(&run.state.steps)
        .map(|(def, st)| {
            let out = def.out_path();
            let art = latest_for(&refs, &out);
            let last = step_runs
                .iter()
                .filter(|s| s.step == def.name)
                .max_by_key(|s| s.attempt);
            let input = step_runs
                .iter()
                .filter(|s| s.step == def.name)
                .map(|s| s.input_tokens)
                .sum::<u64>();
            let output = step_runs
                .iter()
                .filter(|s| s.step == def.name)
                .map(|s| s.output_tokens)
                .sum::<u64>();
            let cost: Option<f64> = step_runs
                .iter()
                .filter(|s| s.step == def.name)
                .filter_map(|s| s.cost_usd)
                .reduce(|a, b| a + b);
            json!({
                "name": def.name,
                "kind": def.kind,
                "status": st.status.as_str(),
                "attempt": st.attempt,
                "out": out,
                "path": art.as_ref().map(|_| dir.join(&out).display().to_string()),
                "sha256": art.as_ref().map(|a| a.sha256.clone()),
                "revision": art.as_ref().map(|a| a.revision),
                "tokens": { "input": input, "output": output },
                "cost_usd": cost,
                "model": last.and_then(|s| s.model.clone()),
                "cached": last.is_some_and(|s| s.cached),
                "started_at": last.map(|s| s.started_at.to_string()),
                "finished_at": last.and_then(|s| s.finished_at.map(|t| t.to_string())),
                "error": st.error,
                "instance": def.instance,
            })
        })
        .collect();
    let fan_outs = fan_out_summaries(&run.definition, &run.state);
    Ok(json!({
        "run_id": run.id,
        "status": run.state.status.as_str(),
        "genflow": run.genflow_name,
        "definition_hash": run.definition_hash,
        "params": run.definition.param_values,
        "fan_outs": fan_outs,
        "triggered_by": run.triggered_by,
        "created_at": run.created_at.to_string(),
        "updated_at": run.updated_at.to_string(),
        "dir": dir.display().to_string(),
        "steps": steps,
        "decisions": decisions,
    }))
}

pub async fn show(app: &App, id: &str, step: Option<String>, json: bool, diff: bool) -> Result<()> {
    let run = app.engine.run(id).await?;
    if let Some(name) = &step
        && run.definition.step(name).is_none()
    {
        bail!(UsageError(format!(
            "run {} has no step `{name}` (steps: {})",
            run.id,
            run.definition
                .steps
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut value = run_json(app, &run).await?;
    let refs = app.store().artifacts(&run.id).await?;
    let mut loops = super::rounds::load(app, &run, &refs).await?;
    if let Some(name) = &step {
        loops.retain(|l| &l.review == name || &l.on_flag.redraft == name);
    }
    if let Some(name) = &step {
        let one = value["steps"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name.as_str()).cloned())
            .unwrap_or_default();
        if json {
            let mut out = json!({
                "run_id": run.id,
                "status": run.state.status.as_str(),
                "step": one,
                "rounds": super::rounds::to_json(&loops),
            });
            let step_runs = app.store().step_runs(&run.id).await?;
            out["attempts"] = serde_json::to_value(
                step_runs
                    .into_iter()
                    .filter(|s| &s.step == name)
                    .collect::<Vec<_>>(),
            )?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            return Ok(());
        }
        value["steps"] = json!([one]);
    }
    if json {
        value["rounds"] = super::rounds::to_json(&loops);
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "Run {}  ({})", run.id, run.state.status)?;
    writeln!(
        out,
        "  genflow:    {} ({})",
        run.genflow_name, run.definition_hash
    )?;
    writeln!(
        out,
        "  started by: {}",
        run.triggered_by.as_deref().unwrap_or("-")
    )?;
    writeln!(out, "  created:    {}", run.created_at)?;
    for (name, param_value) in &run.definition.param_values {
        writeln!(out, "  param:      {name} = {param_value}")?;
    }
    writeln!(out, "  documents:  {}", value["dir"].as_str().unwrap_or(""))?;
    writeln!(out)?;
    // Instances of a fanned-out step are listed under one header line,
    // each by its file.
    let label = |s: &serde_json::Value| match s["instance"]["key"].as_str() {
        Some(key) => format!("  ↳ {key}"),
        None => s["name"].as_str().unwrap_or("").to_owned(),
    };
    let steps: Vec<&serde_json::Value> = value["steps"].as_array().into_iter().flatten().collect();
    let name_width = steps
        .iter()
        .map(|s| label(s).chars().count())
        .max()
        .unwrap_or(0)
        .clamp(16, 48);
    let out_width = steps
        .iter()
        .map(|s| s["out"].as_str().unwrap_or("").chars().count())
        .max()
        .unwrap_or(0)
        .clamp(14, 48);
    writeln!(
        out,
        "  {:<name_width$} {:<9} {:<10} {:<out_width$} {:>8} {:>9}  SHA256",
        "STEP", "KIND", "STATUS", "OUT", "TOKENS", "COST"
    )?;
    let mut total_tokens = 0;
    let mut total_cost: Option<f64> = None;
    let mut fan_out_headers = value["fan_outs"]
        .as_array()
        .into_iter()
        .flatten()
        .peekable();
    for s in steps {
        if let Some(header) = fan_out_headers.peek()
            && header["instances"][0] == s["name"]
        {
            let n = header["instances"].as_array().map_or(0, Vec::len);
            writeln!(
                out,
                "  {} ({}, once per file: {n} file{}; {})",
                header["step"].as_str().unwrap_or(""),
                header["kind"].as_str().unwrap_or(""),
                if n == 1 { "" } else { "s" },
                header["statuses"].as_str().unwrap_or("")
            )?;
            fan_out_headers.next();
        }
        let tokens = s["tokens"]["input"].as_u64().unwrap_or(0)
            + s["tokens"]["output"].as_u64().unwrap_or(0);
        let cost = s["cost_usd"].as_f64();
        total_tokens += tokens;
        if let Some(c) = cost {
            total_cost = Some(total_cost.unwrap_or(0.0) + c);
        }
        let cost = cost
            .map(|c| format!("${c:.4}"))
            .unwrap_or_else(|| "-".into());
        let cached = if s["cached"].as_bool() == Some(true) {
            " (cached)"
        } else {
            ""
        };
        let sha = s["sha256"]
            .as_str()
            .map(|h| format!("{}…", &h[..h.len().min(16)]))
            .unwrap_or_else(|| "-".into());
        let rev = s["revision"]
            .as_u64()
            .map(|r| format!(" rev {r}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  {:<name_width$} {:<9} {:<10} {:<out_width$} {:>8} {:>9}  {sha}{rev}{cached}",
            label(s),
            s["kind"].as_str().unwrap_or(""),
            s["status"].as_str().unwrap_or(""),
            s["out"].as_str().unwrap_or(""),
            tokens,
            cost
        )?;
        if let Some(e) = s["error"].as_str() {
            writeln!(out, "      error: {e}")?;
        }
    }
    if total_tokens > 0 || total_cost.is_some() {
        // The columns before TOKENS: name, kind (9), status (10), out, and their spaces.
        let width = name_width + 1 + 9 + 1 + 10 + 1 + out_width;
        writeln!(
            out,
            "  {:<width$} {:>8} {:>9}",
            "total",
            total_tokens,
            total_cost
                .map(|c| format!("${c:.4}"))
                .unwrap_or_else(|| "-".into())
        )?;
    }
    super::rounds::print(&mut out, app, &run, &loops, diff).await?;
    let decisions = app.store().decisions(&run.id).await?;
    if !decisions.is_empty() {
        writeln!(out)?;
        writeln!(out, "  Decisions:")?;
        for d in decisions {
            let verdict = match d.verdict {
                Verdict::Go => "GO",
                Verdict::NoGo => "NO-GO",
            };
            writeln!(
                out,
                "    {} {verdict} by {} via {} at {}{}{}",
                d.step,
                d.approver,
                d.channel,
                d.decided_at,
                if d.is_final { " (final)" } else { "" },
                d.reason.map(|r| format!(": {r}")).unwrap_or_default()
            )?;
            for r in d.shown {
                writeln!(
                    out,
                    "      shown {} rev {} sha256 {}",
                    r.path, r.revision, r.sha256
                )?;
            }
        }
    }
    Ok(())
}

pub struct Decide {
    pub run: String,
    pub step: Option<String>,
    pub user: Option<String>,
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub json: bool,
}

pub async fn decide(app: &App, d: Decide) -> Result<ExitCode> {
    let Some(approver) = current_user(d.user) else {
        bail!(UsageError(
            "who is deciding? pass --as EMAIL (or set FLEET_USER)".into()
        ));
    };
    if d.verdict == Verdict::NoGo && d.reason.as_deref().is_none_or(|r| r.trim().is_empty()) {
        bail!(UsageError("a no-go needs a reason: --reason TEXT".into()));
    }
    resume_others(app, d.json).await?;
    let run = app
        .engine
        .decide(DecisionRequest {
            run: d.run,
            step: d.step,
            approver: approver.clone(),
            verdict: d.verdict,
            reason: d.reason,
            channel: "cli".into(),
            shown: None,
        })
        .await?;
    if !d.json {
        let word = match d.verdict {
            Verdict::Go => "Go",
            Verdict::NoGo => "No-go",
        };
        eprintln!("{word} recorded for run {} by {approver}.", run.id);
    }
    // From here on the decision stands whatever fails: say so, or a script
    // that retries is told "already decided" with no sign its first try won.
    let recorded = || {
        format!(
            "the decision was recorded for run {}, but continuing the run failed (`fleet resume` or a worker continues it)",
            run.id
        )
    };
    let run = app
        .engine
        .drive(&run.id, observer(d.json).as_ref())
        .await
        .with_context(recorded)?;
    deliver(app, &run.id, d.json).await.with_context(recorded)?;
    if d.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&run_json(app, &run).await?)?
        );
    } else {
        print_outcome(app, &run);
    }
    Ok(match run.state.status {
        RunStatus::Failed | RunStatus::Cancelled => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

pub async fn cancel(app: &App, id: &str) -> Result<()> {
    let run = app.engine.cancel(id).await?;
    println!("Run {} cancelled.", run.id);
    Ok(())
}

pub async fn retry(app: &App, id: &str, from: Option<String>) -> Result<ExitCode> {
    resume_others(app, false).await?;
    let run = app.engine.retry(id, from.as_deref()).await?;
    eprintln!("Retrying run {}", run.id);
    let run = app.engine.drive(&run.id, observer(false).as_ref()).await?;
    print_outcome(app, &run);
    Ok(exit_for(&run, false))
}

pub async fn resume(app: &App) -> Result<()> {
    let ids = app.store().unfinished_runs().await?;
    if ids.is_empty() {
        println!("Nothing to resume.");
        return Ok(());
    }
    for id in ids {
        eprintln!("Resuming run {id}");
        let run = app.engine.drive(&id, observer(false).as_ref()).await?;
        print_outcome(app, &run);
    }
    Ok(())
}
