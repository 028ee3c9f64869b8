//! The `fleet` binary: parses arguments once into validated settings and
//! hands them to the library crates. Exit codes: 0 success, 1 a run or
//! command failed, 2 usage or config errors.

mod cmd;
mod context;
mod corpus_check;
mod logging;
mod workspace;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use workspace::{InvalidConfig, Locator, UsageError};

// glibc malloc was ~15% of the engine's CPU (arena contention between the
// runtime's threads and the store's writer); mimalloc roughly halves that.
// Built with `no_thp`: where transparent huge pages are "always", mimalloc's
// arenas otherwise fault in (and zero) 2 MiB at a time, again after every
// purge: 15% of the engine's CPU was the kernel clearing pages.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fleet",
    version,
    about = "Run AI workflows (genflows) with human approval gates and an auditable record of every decision.",
    long_about = "Run AI workflows (genflows) with human approval gates.\n\n\
        A report step drafts a document from real sources, an independent review step hunts for what \
        the draft underplays, a named person makes the go/no-go call while the run is paused, and only \
        then does anything get announced. Genflows are defined in .fleet/config.yaml, found by walking \
        up from the working directory (like git).",
    propagate_version = true
)]
struct Cli {
    /// Run as if fleet was started in DIR.
    #[arg(short = 'C', value_name = "DIR", global = true)]
    dir: Option<PathBuf>,
    /// Use this config file instead of searching for .fleet/config.yaml.
    #[arg(long, value_name = "PATH", global = true, env = "FLEET_CONFIG")]
    config: Option<PathBuf>,
    /// The database: postgres://USER[:PASSWORD]@HOST[:PORT]/DB (several
    /// servers and workers share it) or sqlite://PATH. Default: the embedded
    /// SQLite database .fleet/fleet.db.
    #[arg(
        long,
        value_name = "URL",
        global = true,
        env = "FLEET_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a working example project (config and a small repository to gate).
    Init {
        /// Where to write it (created if missing).
        #[arg(default_value = ".", value_name = "DIR")]
        target: PathBuf,
        /// Which example.
        #[arg(long, default_value = "release-gate", value_parser = clap::builder::PossibleValuesParser::new(cmd::init::EXAMPLES))]
        example: String,
        /// Overwrite files that already exist.
        #[arg(long)]
        force: bool,
    },
    /// Check .fleet/config.yaml and report every problem (exit 2 on errors).
    Validate,
    /// List the genflows and their steps in dependency order.
    Flows {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of the config, for editor autocompletion.
    Schema,
    /// Show what a step would read (manifest, sizes, token estimate) without running anything.
    Corpus {
        /// The genflow.
        genflow: String,
        /// The report or review step.
        step: String,
        #[arg(long)]
        json: bool,
    },
    /// Start a run of a genflow; it executes until it finishes or waits at a gate.
    Run {
        /// The genflow to run.
        genflow: String,
        /// A value for one of the genflow's params (repeatable); the others get their defaults.
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Who is starting the run (default: $FLEET_USER, else git's user.email).
        #[arg(long = "as", value_name = "EMAIL")]
        user: Option<String>,
        /// Block until the run finishes; exit 0 only if it succeeded (for CI pipelines).
        #[arg(long)]
        wait: bool,
        /// Print one JSON object (run_id, status, steps, decisions) instead of text.
        #[arg(long)]
        json: bool,
        /// Call the models even when a cached answer exists (new answers are still cached).
        #[arg(long)]
        no_cache: bool,
        /// Print the run id and return at once; `fleet worker` processes execute the run.
        #[arg(long, conflicts_with_all = ["wait", "on_workers"])]
        detach: bool,
        /// Leave the steps to `fleet worker` processes and only follow the run.
        #[arg(long)]
        on_workers: bool,
    },
    /// Create or upgrade the database schema (PostgreSQL needs this first).
    Migrate,
    /// Database maintenance.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// Execute the steps of every run in the database until stopped.
    ///
    /// Claims runnable steps (of runs any process started), drives their
    /// runs and sends due notifications. SIGTERM or Ctrl-C finishes the steps
    /// in progress, then exits; a second signal exits at once.
    Worker {
        /// Steps executed at once.
        #[arg(long, default_value_t = 4, value_name = "N")]
        concurrency: usize,
        /// How often to look for work when no notification came (e.g. a
        /// step whose worker died, once its lease lapses).
        #[arg(long, default_value = "2s", value_name = "DURATION")]
        poll: String,
        #[command(flatten)]
        log: logging::LogArgs,
    },
    /// List runs, newest first.
    Runs {
        /// Only runs of this genflow.
        #[arg(long = "flow", value_name = "GENFLOW")]
        flow: Option<String>,
        /// Only runs with this status (running, waiting, succeeded, rejected, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Show a run: steps, documents with their sha256, redraft rounds, decisions.
    Show {
        /// Run id (or a unique prefix of at least 4 characters).
        run: String,
        /// Only this step (with every attempt's record in --json).
        #[arg(long)]
        step: Option<String>,
        #[arg(long)]
        json: bool,
        /// Print what the last redraft changed in the report, as a unified diff.
        #[arg(long)]
        diff: bool,
    },
    /// Record a Go decision at a gate.
    Approve {
        /// Run id (or a unique prefix).
        run: String,
        /// The gate (needed only when several are open).
        #[arg(long)]
        step: Option<String>,
        /// Who is deciding (default: $FLEET_USER, else git's user.email).
        #[arg(long = "as", value_name = "EMAIL")]
        user: Option<String>,
        /// Why (optional for Go).
        #[arg(long)]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Record a No-go decision at a gate; the run stops as rejected.
    Reject {
        /// Run id (or a unique prefix).
        run: String,
        /// The gate (needed only when several are open).
        #[arg(long)]
        step: Option<String>,
        /// Who is deciding (default: $FLEET_USER, else git's user.email).
        #[arg(long = "as", value_name = "EMAIL")]
        user: Option<String>,
        /// Why the release must not go out (required).
        #[arg(long, required = true)]
        reason: String,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run that has not finished.
    Cancel {
        /// Run id (or a unique prefix).
        run: String,
    },
    /// Retry a failed or cancelled run.
    Retry {
        /// Run id (or a unique prefix).
        run: String,
        /// Also re-run this step and everything after it.
        #[arg(long, value_name = "STEP")]
        from: Option<String>,
    },
    /// Continue runs a crashed or killed process left unfinished.
    Resume,
    /// Serve the dashboard, decision pages and JSON API; drive runs and start scheduled ones.
    Serve {
        /// Address to listen on (default: `server.bind` from the config, else 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
        /// No operator authentication (only allowed on a loopback address).
        #[arg(long)]
        insecure_local: bool,
        #[command(flatten)]
        log: logging::LogArgs,
    },
    /// Serve Fleet's tools to an AI agent over the Model Context Protocol (stdio).
    ///
    /// Tools: list and validate genflows, start runs with parameters, list
    /// and show runs, read documents and review flags, see what a gate waits
    /// for, and email an approver a decision link. No tool decides, cancels
    /// or edits. Add to an MCP client as the command `fleet mcp` (with `-C
    /// DIR` for the workspace).
    Mcp {
        /// Leave the steps of runs it starts to `fleet worker`s (or a
        /// server) instead of executing them in this process.
        #[arg(long)]
        on_workers: bool,
    },
    /// Approval gate helpers.
    Gate {
        #[command(subcommand)]
        command: GateCommand,
    },
    /// Check or export the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Check an evidence bundle (`fleet audit export`) offline: every file
    /// against SHA256SUMS, every signature under KEY, the audit chain and the
    /// kept corpus; exit 1 naming the first file that fails.
    Verify {
        /// The bundle directory.
        dir: PathBuf,
        /// The public key you expect the bundle to be signed by (as `fleet
        /// audit pubkey` prints it), or a file holding it. Not the bundle's
        /// own pubkey.txt: a bundle cannot vouch for itself.
        #[arg(long, value_name = "KEY_OR_FILE")]
        key: String,
    },
    /// Print a shell completion script (e.g. for /etc/bash_completion.d/fleet).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command into a directory.
    Man {
        /// Write fleet.1, fleet-run.1, ... into DIR instead of printing fleet.1.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum GateCommand {
    /// Print a signed decision link for an approver (e.g. when theirs expired).
    Link {
        /// Run id (or a unique prefix).
        run: String,
        /// The approval gate.
        step: String,
        /// The approver the link is for.
        #[arg(long = "for", value_name = "EMAIL")]
        approver: String,
        /// How long the link stays valid.
        #[arg(long, default_value = "7d")]
        ttl: String,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Copy the embedded database into an empty PostgreSQL database, audit chain intact.
    Copy {
        /// The embedded database, e.g. sqlite://.fleet/fleet.db.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The PostgreSQL database (migrated first; must hold no runs).
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the event hash chain and every artifact's sha256, and check
    /// the log against its signed checkpoints; exit 1 naming the first problem.
    Verify {
        /// Also check the log against a checkpoint kept elsewhere (from
        /// `fleet audit checkpoint`, an email, a bundle): fails if the log
        /// was truncated or rewritten after it.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// A public key (as `fleet audit pubkey` prints it) to trust besides
        /// this installation's; repeatable.
        #[arg(long = "key", value_name = "VKEY")]
        keys: Vec<String>,
    },
    /// Print the public key attestations and checkpoints are signed with.
    Pubkey {
        /// Also list the retired keys the audit log records (their
        /// evidence still verifies).
        #[arg(long)]
        all: bool,
    },
    /// Make a new signing key current; the old public key stays in the
    /// audit log, retired, so evidence it signed still verifies.
    RotateKey,
    /// Print the newest signed checkpoint of the audit log, to keep elsewhere.
    Checkpoint,
    /// Write a self-contained evidence bundle for one run.
    Export {
        /// Run id (or a unique prefix).
        run: String,
        /// Directory to write (must be new or empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(invalid) = e.downcast_ref::<InvalidConfig>() {
                logging::error(&invalid.to_string());
                return ExitCode::from(2);
            }
            if let Some(usage) = e.downcast_ref::<UsageError>() {
                logging::error(&format!("error: {usage}"));
                return ExitCode::from(2);
            }
            if let Some(
                engine @ (fleet_engine::EngineError::UnknownGenflow { .. }
                | fleet_engine::EngineError::Params(_)),
            ) = e.downcast_ref()
            {
                logging::error(&format!("error: {engine}"));
                return ExitCode::from(2);
            }
            logging::error(&format!("error: {e:#}"));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let mut locator = Locator::new(cli.dir.as_deref(), cli.config.as_deref())?;
    locator.database_url = cli.database_url.filter(|u| !u.trim().is_empty());
    match cli.command {
        Command::Init {
            target,
            example,
            force,
        } => {
            cmd::init::run(&locator.cwd.join(target), &example, force)?;
        }
        Command::Validate => {
            let mut ws = locator.load()?;
            let unmatched =
                corpus_check::unmatched_glob_warnings(&ws, &corpus_check::all_steps(&ws));
            ws.warnings.extend(unmatched);
            ws.warnings.sort_by_key(|d| d.pos);
            ws.print_warnings(&locator.cwd);
            let flows = ws.config.genflows.len();
            let steps: usize = ws.config.genflows.iter().map(|g| g.steps.len()).sum();
            println!(
                "{}: ok ({flows} genflow{}, {steps} step{})",
                ws.display_config_path(&locator.cwd),
                if flows == 1 { "" } else { "s" },
                if steps == 1 { "" } else { "s" },
            );
        }
        Command::Flows { json } => {
            let ws = locator.load()?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&cmd::flows::json(&ws.config))?
                );
            } else {
                ws.print_warnings(&locator.cwd);
                print!("{}", cmd::flows::text(&ws.config));
            }
        }
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&fleet_core::config::json_schema())?
            );
        }
        Command::Corpus {
            genflow,
            step,
            json,
        } => {
            let ws = locator.load()?;
            cmd::corpus::run(&ws, &locator.cwd, &genflow, &step, json)?;
        }
        Command::Serve {
            bind,
            insecure_local,
            log,
        } => {
            logging::init(log.log_format);
            return cmd::serve::run(&locator, bind, insecure_local);
        }
        Command::Migrate => return cmd::db::migrate(&locator),
        Command::Db {
            command: DbCommand::Copy { from, to },
        } => return cmd::db::copy(&locator, &from, &to),
        Command::Worker {
            concurrency,
            poll,
            log,
        } => {
            logging::init(log.log_format);
            return cmd::worker::run(&locator, cmd::worker::WorkerArgs { concurrency, poll });
        }
        Command::Verify { dir, key } => {
            let key = if locator.cwd.join(&key).is_file() {
                locator.cwd.join(&key).to_string_lossy().into_owned()
            } else {
                key
            };
            return cmd::verify_bundle::verify(&locator.cwd.join(dir), &key);
        }
        Command::Completions { shell } => cmd::completions::completions(Cli::command(), shell)?,
        Command::Man { out } => {
            let out = out.map(|d| locator.cwd.join(d));
            cmd::completions::man(Cli::command(), out.as_deref())?;
        }
        other => {
            // One thread is enough for a CLI invocation and starts fastest;
            // blocking work (corpus reads) goes to tokio's blocking pool.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            return rt.block_on(run_with_store(&locator, other));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Commands that open the store.
async fn run_with_store(locator: &Locator, command: Command) -> Result<ExitCode> {
    use cmd::runs;
    use fleet_core::run::Verdict;
    let no_cache = matches!(command, Command::Run { no_cache: true, .. });
    let app = context::App::open_with(locator, |s| s.no_cache = no_cache).await?;
    app.ws.print_warnings(&locator.cwd);
    Ok(match command {
        Command::Run {
            genflow,
            params,
            user,
            wait,
            json,
            no_cache: _,
            detach,
            on_workers,
        } => {
            let mode = if detach {
                runs::Follow::Detach
            } else if on_workers {
                runs::Follow::Watch
            } else {
                runs::Follow::Execute
            };
            let params = runs::parse_params(&params)?;
            runs::run(&app, &genflow, &params, user, wait, json, mode).await?
        }
        Command::Runs {
            flow,
            status,
            limit,
            json,
        } => {
            runs::runs(&app, flow, status, limit, json).await?;
            ExitCode::SUCCESS
        }
        Command::Show {
            run,
            step,
            json,
            diff,
        } => {
            runs::show(&app, &run, step, json, diff).await?;
            ExitCode::SUCCESS
        }
        Command::Approve {
            run,
            step,
            user,
            reason,
            json,
        } => {
            runs::decide(
                &app,
                runs::Decide {
                    run,
                    step,
                    user,
                    verdict: Verdict::Go,
                    reason,
                    json,
                },
            )
            .await?
        }
        Command::Reject {
            run,
            step,
            user,
            reason,
            json,
        } => {
            runs::decide(
                &app,
                runs::Decide {
                    run,
                    step,
                    user,
                    verdict: Verdict::NoGo,
                    reason: Some(reason),
                    json,
                },
            )
            .await?
        }
        Command::Cancel { run } => {
            runs::cancel(&app, &run).await?;
            ExitCode::SUCCESS
        }
        Command::Retry { run, from } => runs::retry(&app, &run, from).await?,
        Command::Resume => {
            runs::resume(&app).await?;
            ExitCode::SUCCESS
        }
        Command::Mcp { on_workers } => {
            cmd::mcp::run(&app, on_workers).await?;
            ExitCode::SUCCESS
        }
        Command::Gate {
            command:
                GateCommand::Link {
                    run,
                    step,
                    approver,
                    ttl,
                },
        } => {
            cmd::gate::link(&app, &run, &step, &approver, &ttl).await?;
            ExitCode::SUCCESS
        }
        Command::Audit { command } => match command {
            AuditCommand::Verify { checkpoint, keys } => {
                let kept = checkpoint.map(|c| locator.cwd.join(c));
                cmd::audit::verify(&app, kept.as_deref(), &keys).await?
            }
            AuditCommand::Pubkey { all } => {
                cmd::keys::pubkey(&app, all).await?;
                ExitCode::SUCCESS
            }
            AuditCommand::RotateKey => {
                cmd::keys::rotate(&app).await?;
                ExitCode::SUCCESS
            }
            AuditCommand::Checkpoint => cmd::audit::checkpoint(&app).await?,
            AuditCommand::Export { run, out } => {
                cmd::bundle::export(&app, &run, &locator.cwd.join(out)).await?;
                ExitCode::SUCCESS
            }
        },
        Command::Init { .. }
        | Command::Serve { .. }
        | Command::Worker { .. }
        | Command::Migrate
        | Command::Db { .. }
        | Command::Validate
        | Command::Flows { .. }
        | Command::Schema
        | Command::Corpus { .. }
        | Command::Verify { .. }
        | Command::Completions { .. }
        | Command::Man { .. } => {
            anyhow::bail!("internal error: this command does not use the store")
        }
    })
}
