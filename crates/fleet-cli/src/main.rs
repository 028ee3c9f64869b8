//! The `fleet` binary: parses arguments once into validated settings and
//! hands them to the library crates. Exit codes: 0 success, 1 a run or
//! command failed, 2 usage or config errors.

mod cmd;
mod workspace;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use workspace::{InvalidConfig, Locator, UsageError};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(invalid) = e.downcast_ref::<InvalidConfig>() {
                eprintln!("{invalid}");
                return ExitCode::from(2);
            }
            if let Some(usage) = e.downcast_ref::<UsageError>() {
                eprintln!("error: {usage}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let locator = Locator::new(cli.dir.as_deref(), cli.config.as_deref())?;
    match cli.command {
        Command::Init {
            target,
            example,
            force,
        } => {
            cmd::init::run(&locator.cwd.join(target), &example, force)?;
        }
        Command::Validate => {
            let ws = locator.load()?;
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
                println!("{}", serde_json::to_string_pretty(&cmd::flows::json(&ws.config))?);
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
    }
    Ok(ExitCode::SUCCESS)
}
